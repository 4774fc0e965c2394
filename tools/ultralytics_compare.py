"""Whole-process comparison of edge with Ultralytics ``predict`` on one clip (issue 12).

What it measures, for each side, as a user runs it, from process start to exit:

* Ultralytics: ``python -c`` that imports ultralytics, loads ``YOLO(export, task="detect")`` and
  iterates ``model.predict(clip, stream=True, verbose=False, imgsz=...)`` over every frame.
* edge: ``edge run CONFIG`` of a config with one ``type: file`` camera on the clip (``loop: false``,
  ``buffer: lossless``: every frame processed; edge exits at the end of the file), MQTT and the event
  log off, the export as the model with ``--edge-runner``. Every edge run shares one state_dir:
  with ``--edge-runner auto`` an uncounted first run times the backends (a daemon's first start
  on a machine), and the counted runs take the cached choice, as every later start does.

For each run: wall seconds of the whole subprocess (start to exit, so imports, model loading and
warm-up are in), frames, fps = frames / wall, CPU seconds (user + sys of the child and the children
it waited for, from ``os.wait4``) and the child's peak RSS (``ru_maxrss``). The sides run
``--repeat`` times, alternating (which one goes first alternates too); the summary is the median of
each, and the ratio edge fps / Ultralytics fps.

Ultralytics is NEVER a dependency of edge: this script runs with the throwaway venv's python
(made by ``tools/ultralytics_venv.sh``, default /work/yolo/venv) and imports ultralytics only in
that child process. Example::

    /work/yolo/venv/bin/python tools/ultralytics_compare.py --clip /work/yolo/clip720.mp4 \\
        --export /work/yolo/models/yolov8n-640.onnx --edge /work/main/.venv/bin/edge \\
        --edge-runner onnxruntime
"""

from __future__ import annotations

import argparse
import ast
import importlib.metadata
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

ULTRALYTICS_CHILD = """\
import sys
from ultralytics import YOLO
export, clip, imgsz = sys.argv[1], sys.argv[2], int(sys.argv[3])
model = YOLO(export, task="detect")
frames = 0
for _ in model.predict(clip, stream=True, verbose=False, imgsz=imgsz, device="cpu"):
    frames += 1
print(f"FRAMES {frames}")
"""

# Ultralytics must not try the network (weights, fonts, pip AutoUpdate): this machine has none.
ULTRALYTICS_ENV = {"YOLO_OFFLINE": "1", "YOLO_AUTOINSTALL": "false"}

EDGE_FRAMES = re.compile(r"stopped \((?P<why>[^)]*)\): (?P<frames>\d+) frame\(s\) processed")
ULTRALYTICS_FRAMES = re.compile(r"^FRAMES (\d+)$", re.MULTILINE)
SIDES = ("ultralytics", "edge")


class CompareError(Exception):
    """A one-line reason the comparison cannot go on."""


@dataclass(frozen=True)
class Run:
    """One whole-process run of one side."""

    side: str
    index: int
    wall_s: float
    frames: int
    fps: float
    cpu_s: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Summary:
    """The medians of one side's runs."""

    side: str
    runs: int
    wall_s: float
    frames: int
    fps: float
    cpu_s: float
    cpu_per_frame_ms: float
    peak_rss_mb: float


@dataclass(frozen=True)
class Child:
    """What a finished child process left: exit code, output and its resource use."""

    code: int
    stdout: str
    stderr: str
    wall_s: float
    cpu_s: float
    peak_rss_mb: float


def run_child(argv: Sequence[str], env: dict[str, str], timeout: float, cwd: Path) -> Child:
    """Run ``argv`` to its exit; wall time from spawn to reaping, rusage of that child from wait4."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=out, stderr=err, env=env, cwd=cwd
        )
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid == proc.pid:
                break
            if time.perf_counter() > deadline:
                proc.kill()
                os.wait4(proc.pid, 0)
                proc.returncode = -9
                raise CompareError(f"{argv[0]}: still running after {timeout:.0f} s (--timeout), killed")
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        return Child(
            code=proc.returncode,
            stdout=out.read().decode(errors="replace"),
            stderr=err.read().decode(errors="replace"),
            wall_s=wall,
            cpu_s=usage.ru_utime + usage.ru_stime,
            peak_rss_mb=usage.ru_maxrss / 1024,  # KiB on Linux
        )


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"


def export_imgsz(export: Path) -> int:
    """The square input size an Ultralytics export was made for (its metadata), else 640."""
    if export.is_dir():
        meta = export / "metadata.yaml"
        if meta.is_file():
            match = re.search(r"^imgsz:\s*\n-\s*(\d+)", meta.read_text(), re.MULTILINE)
            if match:
                return int(match.group(1))
        return 640
    try:
        import onnx  # in the throwaway venv, as Ultralytics' export needs it

        props = {p.key: p.value for p in onnx.load(str(export), load_external_data=False).metadata_props}
        size = ast.literal_eval(props.get("imgsz", "[640]"))
        return int(size[0] if isinstance(size, list) else size)
    except (ImportError, ValueError, SyntaxError, OSError):
        return 640


def edge_config(export: Path, clip: Path, runner: str, state_dir: Path) -> str:
    """A config with one file camera on ``clip`` that processes every frame and ends at its end."""
    return f"""\
state_dir: {json.dumps(str(state_dir))}
status_interval: 1h
models:
  m: {{path: {json.dumps(str(export))}, runner: {runner}}}
cameras:
  clip:
    source: {{type: file, path: {json.dumps(str(clip))}, loop: false, realtime: false}}
    model: m
    buffer: lossless
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""


def run_ultralytics(args: argparse.Namespace, imgsz: int, index: int, work: Path) -> Run:
    env = {**os.environ, **ULTRALYTICS_ENV}
    argv = [args.python, "-c", ULTRALYTICS_CHILD, str(args.export), str(args.clip), str(imgsz)]
    child = run_child(argv, env, args.timeout, work)
    found = ULTRALYTICS_FRAMES.search(child.stdout)
    if child.code != 0 or not found:
        raise CompareError(f"ultralytics predict exited {child.code}: {_last_line(child.stderr)}")
    return _run("ultralytics", index, int(found.group(1)), child)


def run_edge(args: argparse.Namespace, index: int, work: Path) -> Run:
    state = work / "state"  # shared: runner: auto measures once, as a daemon's first start does
    config = work / "edge-compare.yaml"
    config.write_text(edge_config(args.export, args.clip, args.edge_runner, state))
    argv = [args.edge, "--log-format", "text", "run", str(config)]
    for item in args.edge_set:
        argv += ["--set", item]
    child = run_child(argv, dict(os.environ), args.timeout, work)
    found = EDGE_FRAMES.search(child.stderr)
    if child.code != 0 or not found:
        raise CompareError(f"edge run {config} exited {child.code}: {_last_line(child.stderr)}")
    if found.group("why") != "finished":
        raise CompareError(f"edge run {config} stopped ({found.group('why')}), not at the end of the clip")
    return _run("edge", index, int(found.group("frames")), child)


def _run(side: str, index: int, frames: int, child: Child) -> Run:
    return Run(
        side=side,
        index=index,
        wall_s=round(child.wall_s, 3),
        frames=frames,
        fps=round(frames / child.wall_s, 2),
        cpu_s=round(child.cpu_s, 2),
        peak_rss_mb=round(child.peak_rss_mb, 1),
    )


def summarise(side: str, runs: Sequence[Run]) -> Summary:
    mine = [r for r in runs if r.side == side]
    frames = int(statistics.median(r.frames for r in mine))
    cpu = statistics.median(r.cpu_s for r in mine)
    return Summary(
        side=side,
        runs=len(mine),
        wall_s=round(statistics.median(r.wall_s for r in mine), 3),
        frames=frames,
        fps=round(statistics.median(r.fps for r in mine), 2),
        cpu_s=round(cpu, 2),
        cpu_per_frame_ms=round(1000 * cpu / max(frames, 1), 1),
        peak_rss_mb=round(statistics.median(r.peak_rss_mb for r in mine), 1),
    )


def _row(side: str, label: str, wall: float, frames: int, fps: float, cpu: float, rss: float) -> str:
    return f"{side:<12} {label:>4} {wall:>8.2f} {frames:>6} {fps:>7.2f} {cpu:>8.2f} {rss:>11.1f}"


def table(runs: Sequence[Run], summaries: Sequence[Summary], ratio: float) -> str:
    head = f"{'side':<12} {'run':>4} {'wall s':>8} {'frames':>6} {'fps':>7} {'cpu s':>8} {'peak RSS MB':>11}"
    lines = [head, "-" * len(head)]
    for r in runs:
        lines.append(_row(r.side, str(r.index), r.wall_s, r.frames, r.fps, r.cpu_s, r.peak_rss_mb))
    lines.append("-" * len(head))
    for s in summaries:
        row = _row(s.side, "med", s.wall_s, s.frames, s.fps, s.cpu_s, s.peak_rss_mb)
        lines.append(f"{row}   ({s.cpu_per_frame_ms:.1f} ms CPU/frame)")
    lines.append(f"edge fps / ultralytics fps = {ratio:.2f}")
    return "\n".join(lines)


def versions(edge: str) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in ("ultralytics", "torch", "onnxruntime", "openvino"):
        try:
            found[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            found[name] = "not installed"
    probe = subprocess.run([edge, "--version"], capture_output=True, text=True, check=False)
    found["edge"] = probe.stdout.strip() or probe.stderr.strip()
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clip", type=Path, required=True, help="the video both sides process")
    parser.add_argument(
        "--export", type=Path, required=True, help="an Ultralytics export: .onnx or *_openvino_model/"
    )
    parser.add_argument("--edge", default="edge", help="the edge executable (default: edge on PATH)")
    parser.add_argument("--edge-runner", choices=("auto", "onnxruntime", "openvino"), default="auto")
    parser.add_argument(
        "--edge-set", action="append", default=[], metavar="KEY=VALUE", help="passed to edge run as --set"
    )
    parser.add_argument("--imgsz", type=int, default=None, help="Ultralytics imgsz (default: the export's)")
    parser.add_argument(
        "--python", default=sys.executable, help="python with ultralytics (default: this one)"
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs of each side, alternating (default 3)")
    parser.add_argument(
        "--timeout", type=float, default=1800.0, help="seconds one run may take (default 1800)"
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if not args.clip.is_file():
        parser.error(f"{args.clip}: no such video file")
    if not args.export.exists():
        parser.error(f"{args.export}: no such export (a .onnx file or an *_openvino_model folder)")
    args.clip = args.clip.resolve()
    args.export = args.export.resolve()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    imgsz = args.imgsz or export_imgsz(args.export)
    runs: list[Run] = []
    try:
        with tempfile.TemporaryDirectory(prefix="ultralytics-compare-") as tmp:
            work = Path(tmp)
            if args.edge_runner == "auto":  # not counted: its first start times the backends
                print("priming: edge's first start measures the backends ...", file=sys.stderr, flush=True)
                run_edge(args, 0, work)
            for i in range(args.repeat):
                order = SIDES if i % 2 == 0 else SIDES[::-1]
                for side in order:
                    print(f"run {i + 1}/{args.repeat}: {side} ...", file=sys.stderr, flush=True)
                    run = (
                        run_ultralytics(args, imgsz, i + 1, work)
                        if side == "ultralytics"
                        else run_edge(args, i + 1, work)
                    )
                    print(
                        f"  {run.wall_s:.1f} s, {run.frames} frames, {run.fps:.2f} fps",
                        file=sys.stderr,
                        flush=True,
                    )
                    runs.append(run)
    except CompareError as exc:
        print(f"ultralytics_compare: {exc}", file=sys.stderr)
        return 1
    summaries = [summarise(side, runs) for side in SIDES]
    ultra, edge = summaries
    ratio = round(edge.fps / ultra.fps, 3) if ultra.fps else 0.0
    if args.json:
        doc = {
            "clip": str(args.clip),
            "export": str(args.export),
            "imgsz": imgsz,
            "edge_runner": args.edge_runner,
            "edge_set": args.edge_set,
            "versions": versions(args.edge),
            "runs": [asdict(r) for r in runs],
            "median": {s.side: asdict(s) for s in summaries},
            "edge_fps_over_ultralytics_fps": ratio,
        }
        print(json.dumps(doc, indent=2))
    else:
        print(f"clip {args.clip}, export {args.export} (imgsz {imgsz}), edge runner {args.edge_runner}")
        print(table(runs, summaries, ratio))
    return 0


if __name__ == "__main__":
    sys.exit(main())
