#!/usr/bin/env python3
"""Benchmarks, measured in one run on this machine (never asserted in tests).

``runners``: for each model and every runner that can read it here, load it, feed a real
preprocessed frame and report per-inference latency (median and p90 of N runs after warm-up),
plus the whole single-frame path (preprocess + infer + decode) for comparison.

    python tools/bench.py runners --model blazeface --model blazepose -n 50
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

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


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("runners", help="per-runner inference latency")
    p.add_argument("--model", action="append", required=True)
    p.add_argument("-n", type=int, default=50)
    p.add_argument("--image", type=Path, help="default: scikit-image's astronaut")
    p.add_argument("--json", action="store_true")
    args = parser.parse_args()
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
