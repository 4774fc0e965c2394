#!/usr/bin/env python3
"""Benchmarks, measured in one run on this machine (never asserted in tests).

``runners``: for each model and every runner that can read it here, load it, feed a real
preprocessed frame and report per-inference latency (median and p90 of N runs after warm-up),
plus the whole single-frame path (preprocess + infer + decode) for comparison.

    python tools/bench.py runners --model blazeface --model blazepose -n 50

``preview``: CPU of ``edge run`` on the demo clip in real time with the preview off, on with
nobody watching, and on with one viewer (percent of one core; ``tools/preview_cost.py``).

    python tools/bench.py preview

``motion``: CPU of ``edge run`` in real time on a still scene and on the demo clip, with motion
gating off and on (``tools/motion_cost.py``).

    python tools/bench.py motion

``mixed``: still cameras beside moving ones on one model with motion gating: frames looked at
per second and latency for each kind (``tools/mixed_cost.py``).

    python tools/bench.py mixed --model yolov8n-320.onnx --input-size 320x192 --still 8 --moving 10

``pipeline``: P1 of issue 12, the pipeline against the best bare runner: ``edge bench``'s bare,
naive and pipeline measures for every runner that reads the model, then the best pipeline over
the runners divided by the best bare figure over the runners (``tools/pipeline_cost.py``);
``--repeat N`` runs it all N times per runner and reports medians (this machine's speed drifts).

    python tools/bench.py pipeline --model blazepose --model yolov8n.onnx --video demo/demo.mp4 \
        --frames 900 --repeat 3

``alerts``: alerts per second to a local broker, with and without the outbox. Nothing is
written into the working folder (the outbox databases go to a temporary folder by default).

``quantize``: ``edge quantize`` on BlazePose (OpenVINO) and the PP-OCR detector (ONNX Runtime
and OpenVINO): the gate's agreement, INT8/float speed of the bare runner, sizes
(``tools/quantize_bench.py``).

    python tools/bench.py quantize

``tracker``: cost per frame of ``ByteTracker.update`` and of the rule engine (one rule of each
kind: presence, line, dwell, count, absence) with 1, 10 and 50 objects in view (the synthetic
scenes of ``tests/synthetic_scenes.py`` at 10 fps: noisy boxes, misses, false positives, all
objects present the whole time); median and p90 in microseconds over the scene's frames.

    python tools/bench.py tracker --objects 1 --objects 10 --objects 50 -n 600
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.cli import frame_rate, image_size, positive_int
from edge.errors import EdgeError
from edge.inference import load_model
from edge.models import resolve_model
from edge.runners.base import RunnerOptions, backend_version
from edge.runners.select import READS


@dataclass
class RunnerResult:
    model: str
    runner: str
    variant: str
    file: str
    load_ms: float
    infer_median_ms: float
    infer_p90_ms: float
    frame_median_ms: float
    detections: int


def _frame(image: Path | None) -> np.ndarray:
    if image is not None:
        frame = cv2.imread(str(image))
        if frame is None:
            raise SystemExit(f"cannot read {image}")
        return frame
    import skimage.data

    return cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)


def _timed(fn: object, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        out.append((time.perf_counter() - t0) * 1000)
    return out


def variants(model: str) -> list[tuple[str, str, RunnerOptions]]:
    package = resolve_model(model)
    out = []
    for runner, formats in READS.items():
        if backend_version(runner) is None or not any(f in package.files for f in formats):
            continue
        if runner == "openvino":
            out.append((runner, "default precision", RunnerOptions()))
            out.append((runner, "f32", RunnerOptions(precision="f32")))
        else:
            out.append((runner, "", RunnerOptions()))
    return out


def bench_runners(models: list[str], n: int, image: Path | None) -> list[RunnerResult]:
    frame = _frame(image)
    results = []
    for name in models:
        for runner, variant, options in variants(name):
            try:
                model = load_model(name, runner, options=options)
            except EdgeError as exc:
                print(f"skip {name} on {runner}: {exc}", file=sys.stderr)
                continue
            pre = model.preprocessor()
            tensor = pre.new_tensor()
            pre(frame, tensor)
            for _ in range(5):
                model.run_tensor(tensor)
            infer = _timed(lambda m=model, t=tensor: m.run_tensor(t), n)
            whole = _timed(lambda m=model: m.infer(frame), n)
            dets = model.infer(frame)
            results.append(
                RunnerResult(
                    model=name,
                    runner=runner,
                    variant=variant,
                    file=model.selection.path.name,
                    load_ms=round(model.load_seconds * 1000, 1),
                    infer_median_ms=round(statistics.median(infer), 3),
                    infer_p90_ms=round(float(np.percentile(infer, 90)), 3),
                    frame_median_ms=round(statistics.median(whole), 3),
                    detections=len(dets),
                )
            )
            model.close()
            print(f"  {name}/{runner} {variant}: done", file=sys.stderr)
    return results


def bench_alerts(host: str, port: int, n: int, state: Path) -> list[dict[str, object]]:
    """Alerts/s to a broker until every PUBACK is in: paho alone (no outbox) against the
    outbox with synchronous=FULL and NORMAL."""
    import shutil
    import time as _time

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    from edge.alerts.mqtt import MqttPublisher
    from edge.alerts.outbox import OutboxStore
    from edge.alerts.payload import Alert
    from edge.config.schema import MqttConfig

    payload = json.dumps({"schema": 1, "pad": "x" * 400}).encode()  # about the size of an event
    rows: list[dict[str, object]] = []

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    client.max_inflight_messages_set(20)
    client.connect(host, port)
    client.loop_start()
    t0 = _time.perf_counter()
    infos = [client.publish("bench/raw", payload, qos=1) for _ in range(n)]
    for info in infos:
        info.wait_for_publish(60)
    dt = _time.perf_counter() - t0
    client.disconnect()
    client.loop_stop()
    rows.append({"mode": "paho only (no outbox: lost on restart)", "alerts": n, "seconds": round(dt, 3),
                 "alerts_per_s": round(n / dt, 1)})  # fmt: skip

    for sync in ("FULL", "NORMAL"):
        folder = state / f"outbox-{sync}"
        shutil.rmtree(folder, ignore_errors=True)
        store = OutboxStore(folder, synchronous=sync)  # type: ignore[arg-type]
        cfg = MqttConfig.model_validate({"host": host, "port": port, "device": f"bench{sync.lower()}"})
        pub = MqttPublisher(cfg, store)
        pub.start()
        pub.connected.wait(10)
        t0 = _time.perf_counter()
        for i in range(n):
            pub.enqueue(Alert(f"{i:032x}", "bench/outbox", payload))
        t_put = _time.perf_counter() - t0
        while store.depth:
            _time.sleep(0.001)
        dt = _time.perf_counter() - t0
        pub.close(2)
        per_alert = round(1000 * t_put / n, 3)
        rows.append({"mode": f"outbox synchronous={sync}", "alerts": n, "seconds": round(dt, 3),
                     "alerts_per_s": round(n / dt, 1), "store_ms_per_alert": per_alert})  # fmt: skip
        store.close()
    return rows


RULES_FOR_BENCH = {
    "in_zone": {"labels": ["person"], "zone": [[0.1, 0.1], [0.6, 0.1], [0.6, 0.9], [0.1, 0.9]]},
    "crossing": {"kind": "line", "labels": ["person"], "line": [[0.5, 1.0], [0.5, 0.0]]},
    "loitering": {"kind": "dwell", "dwell": "5s", "zone": [[0.4, 0.2], [0.9, 0.2], [0.9, 0.8], [0.4, 0.8]]},
    "crowd": {"kind": "count", "min_count": 5, "zone": [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]]},
    "empty": {"kind": "absence", "absent_after": "10s", "zone": [[0.7, 0.7], [1, 0.7], [1, 1], [0.7, 1]]},
}


def bench_tracker(objects: list[int], frames: int) -> list[dict[str, object]]:
    """Per-frame cost of the tracker and of the rule engine (one rule of each kind: presence,
    line, dwell, count, absence) on a synthetic scene of ``frames`` frames at 10 fps."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
    from synthetic_scenes import busy_scene, simulate

    from edge.config.schema import CameraConfig, RuleConfig
    from edge.rules import FrameInfo, RuleEngine
    from edge.tracking import ByteTracker

    camera = CameraConfig.model_validate({"source": {"type": "file", "path": "x.mp4"}, "model": "m"})
    rules = {n: RuleConfig.model_validate({"cameras": ["cam"], **r}) for n, r in RULES_FOR_BENCH.items()}
    rows: list[dict[str, object]] = []
    for count in objects:
        scene = simulate(busy_scene(count, duration=frames / 10.0, seed=count), fps=10, seed=1)
        wh = (1280, 720)
        for _ in range(2):  # the second pass is the one measured (warm caches and allocator)
            tracker = ByteTracker()
            engine = RuleEngine(rules, {"cam": camera})
            track_us, rules_us, events = [], [], 0
            for seq, frame in enumerate(scene):
                t0 = time.perf_counter()
                result = tracker.update(frame.detections, frame.t)
                t1 = time.perf_counter()
                info = FrameInfo("cam", seq, frame.t, 1.7e9 + frame.t, *wh)
                ended = tuple(tr.id for tr in result.ended)
                events += len(engine.evaluate(info, result.detections, ("person",), result.stationary, ended))
                engine.statuses()
                t2 = time.perf_counter()
                track_us.append((t1 - t0) * 1e6)
                rules_us.append((t2 - t1) * 1e6)
        both = [a + b for a, b in zip(track_us, rules_us, strict=True)]
        rows.append(
            {
                "objects": count,
                "frames": len(scene),
                "detections_per_frame": round(sum(len(f.detections) for f in scene) / len(scene), 1),
                "tracks_held": tracker.track_count,
                "update_median_us": round(statistics.median(track_us), 1),
                "update_p90_us": round(float(np.percentile(track_us, 90)), 1),
                "rules_median_us": round(statistics.median(rules_us), 1),
                "rules_p90_us": round(float(np.percentile(rules_us, 90)), 1),
                "total_median_us": round(statistics.median(both), 1),
                "events": events,
            }
        )
    return rows


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("runners", help="per-runner inference latency")
    p.add_argument("--model", action="append", required=True, help="model to measure (repeatable)")
    p.add_argument("-n", type=positive_int, default=50, help="timed runs per runner (default: 50)")
    p.add_argument("--image", type=Path, help="image to run on (default: scikit-image's astronaut)")
    p.add_argument("--json", action="store_true", help="print the results as one JSON document")
    p = sub.add_parser("alerts", help="alerts/s to a local broker: outbox on (FULL, NORMAL) vs off")
    p.add_argument("--host", default="127.0.0.1", help="broker host (default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=1883, help="broker port (default: 1883)")
    p.add_argument("-n", type=positive_int, default=2000, help="alerts per mode (default: 2000)")
    p.add_argument(
        "--state", type=Path, help="folder for the outbox databases (default: a temporary folder, removed)"
    )
    p = sub.add_parser("preview", help="CPU of edge run with the preview off, unwatched, and watched")
    p.add_argument("--clip", type=Path, default=Path("demo/demo.mp4"), help="video (default: the demo clip)")
    p.add_argument("--runner", default="litert", help="runner of the demo's model (default: litert)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default: 5)")
    p.add_argument("--window", type=float, default=20.0, help="seconds measured per mode (default: 20)")
    p = sub.add_parser("motion", help="CPU of edge run on a still scene and the demo, gating off and on")
    p.add_argument("--clip", type=Path, default=Path("demo/demo.mp4"), help="moving clip (default: the demo)")
    p.add_argument("--runner", default="litert", help="runner of the demo's model (default: litert)")
    p.add_argument("--warmup", type=float, default=5.0, help="seconds before measuring (default: 5)")
    p.add_argument("--window", type=float, default=20.0, help="seconds measured per mode (default: 20)")
    p = sub.add_parser("mixed", help="still cameras beside moving ones, gating on: rate and latency of each")
    p.add_argument("--model", default="blazepose", help="model (default: blazepose)")
    p.add_argument("--runner", default="openvino", help="runner (default: openvino)")
    p.add_argument("--clip", type=Path, default=Path("demo/demo.mp4"), help="moving clip (default: the demo)")
    p.add_argument("--still", type=positive_int, default=8, help="still cameras (default: 8)")
    p.add_argument("--moving", type=positive_int, default=10, help="moving cameras (default: 10)")
    p.add_argument("--fps", type=frame_rate, default=5.0, help="each camera's fps cap (default: 5)")
    p.add_argument("--input-size", type=image_size, help="WxH the model runs at (models.<name>.input_size)")
    p.add_argument("--warmup", type=float, default=15.0, help="seconds before measuring (default: 15)")
    p.add_argument("--window", type=float, default=30.0, help="seconds measured (default: 30)")
    p = sub.add_parser("pipeline", help="the pipeline against the best bare runner, over every runner")
    p.add_argument("--model", action="append", required=True, help="model to measure (repeatable)")
    p.add_argument("--video", type=Path, default=Path("demo/demo.mp4"), help="clip (default: the demo)")
    p.add_argument("--frames", type=positive_int, default=300, help="frames for naive and pipeline (300)")
    p.add_argument("--bare-runs", type=positive_int, default=200, help="bare inferences (default: 200)")
    p.add_argument("--repeat", type=positive_int, default=1, help="runs per runner, medians reported (1)")
    p = sub.add_parser("tracker", help="cost of the tracker and the rules per frame at 1, 10 and 50 objects")
    p.add_argument(
        "--objects",
        action="append",
        type=positive_int,
        help="objects in view (repeatable; default: 1, 10, 50)",
    )
    p.add_argument("-n", type=positive_int, default=600, help="frames per scene, at 10 fps (default: 600)")
    p = sub.add_parser("quantize", help="edge quantize on the shipped models: agreement, speed, size")
    p.add_argument("--clip", type=Path, default=Path("demo/demo.mp4"), help="BlazePose's frames (the demo)")
    p.add_argument("--calib-frames", type=positive_int, default=100, help="calibration frames (default: 100)")
    p.add_argument("--eval-frames", type=positive_int, default=60, help="evaluation frames (default: 60)")
    return parser


def main() -> int:
    args = _parser().parse_args()
    if args.command == "quantize":
        from quantize_bench import bench_quantize, format_quantize

        print(format_quantize(bench_quantize(args.clip.resolve(), args.calib_frames, args.eval_frames)))
        return 0
    if args.command == "tracker":
        rows = bench_tracker(args.objects or [1, 10, 50], args.n)
        print(
            f"{'objects':>7} {'frames':>6} {'dets/frame':>10} {'tracks':>6} {'track us':>9} {'p90':>7} "
            f"{'rules us':>9} {'p90':>7} {'both us':>8} {'events':>6}   (medians per frame; 5 rules)"
        )
        for r in rows:
            print(
                f"{r['objects']:>7} {r['frames']:>6} {r['detections_per_frame']:>10} {r['tracks_held']:>6} "
                f"{r['update_median_us']:>9} {r['update_p90_us']:>7} {r['rules_median_us']:>9} "
                f"{r['rules_p90_us']:>7} {r['total_median_us']:>8} {r['events']:>6}"
            )
        return 0
    if args.command == "pipeline":
        from pipeline_cost import bench_pipeline, format_pipeline

        costs = bench_pipeline(args.model, args.video.resolve(), args.frames, args.bare_runs, args.repeat)
        print(format_pipeline(costs))
        return 0
    if args.command == "mixed":
        from mixed_cost import bench_mixed, format_mixed

        mixed = bench_mixed(
            args.clip.resolve(), args.model, args.runner, args.still, args.moving, args.fps,
            args.warmup, args.window, args.input_size,
        )  # fmt: skip
        print(format_mixed(mixed, args.fps, args.window), flush=True)
        # The daemon ran in this process: end it as `edge` does (edge.cli.entry), without the
        # interpreter's finalisation, where OpenVINO's request queues can abort the process.
        os._exit(0)
    if args.command == "motion":
        from motion_cost import bench_motion, format_motion

        results = bench_motion(args.clip.resolve(), args.runner, args.warmup, args.window)
        print(format_motion(results, args.window))
        return 0
    if args.command == "preview":
        from preview_cost import bench_preview, format_preview

        results = bench_preview(args.clip.resolve(), args.runner, args.warmup, args.window)
        print(format_preview(results, args.window))
        return 0
    if args.command == "alerts":
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as tmp:
            for row in bench_alerts(args.host, args.port, args.n, args.state or Path(tmp)):
                print(json.dumps(row))
        return 0
    results = bench_runners(args.model, args.n, args.image)
    if args.json:
        print(json.dumps([asdict(r) for r in results], indent=2))
        return 0
    print(
        f"{'model':<11} {'runner':<12} {'variant':<18} {'load ms':>8} {'infer med':>10} {'p90':>8} "
        f"{'frame med':>10} dets"
    )
    for r in results:
        print(
            f"{r.model:<11} {r.runner:<12} {r.variant:<18} {r.load_ms:>8.1f} {r.infer_median_ms:>10.3f} "
            f"{r.infer_p90_ms:>8.3f} {r.frame_median_ms:>10.3f} {r.detections}"
        )
    print(
        f"(median of {args.n} runs after 5 warm-ups; 'frame' = preprocess + infer + decode of one "
        f"{_frame(args.image).shape[1]}x{_frame(args.image).shape[0]} image)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
