#!/usr/bin/env bash
# Check edge's TensorRT runner on a real Jetson and print a report to paste into an issue.
#
# For the shipped PP-OCRv4 detector (models/ppocr_det/ch_PP-OCRv4_det_infer.onnx, fetched by
# `edge models fetch`) and every .onnx given: build a TensorRT engine (minutes, once), load it
# a second time (must come from the cache, no build), run the same input through TensorRT and
# ONNX Runtime, compare the outputs and time both. Exit 0 when every model passes.
#
# Usage: tools/jetson_check.sh [--precision f16|f32] [--dla N] [--runs N] [--size HxW]
#                              [--cache-dir DIR] [--allow-non-jetson] [MODEL.onnx ...]
# Run it from the venv edge is installed in (on JetPack: a venv made with
# --system-site-packages, so TensorRT's Python bindings are visible; plus cuda-python).
# PYTHON picks the interpreter (default python3). The engine cache defaults to
# ~/.cache/edge/jetson-check, so a second run is quick.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}

allow=0
for arg in "$@"; do
    [ "$arg" = "--allow-non-jetson" ] && allow=1
done
if [ -f /etc/nv_tegra_release ] || grep -qsi tegra /proc/device-tree/compatible; then
    :
elif [ "$allow" = 0 ]; then
    echo "jetson_check: this is not a Jetson (no /etc/nv_tegra_release, no tegra in the device tree);" \
        "pass --allow-non-jetson to run anyway" >&2
    exit 2
fi

exec "$PYTHON" - "$@" <<'PY'
import argparse
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from edge.errors import EdgeError
from edge.runners.base import RunnerOptions, feed_shape, load_runner

SHIPPED = Path("models/ppocr_det/ch_PP-OCRv4_det_infer.onnx")
TOLERANCE = {"f32": 1e-3, "f16": 5e-2}  # of max(1, largest |output|); int8 and DLA as f16

ap = argparse.ArgumentParser(prog="jetson_check.sh")
ap.add_argument("models", nargs="*", type=Path)
ap.add_argument("--precision", choices=["f16", "f32"], default="f16")
ap.add_argument("--dla", type=int, default=None)
ap.add_argument("--runs", type=int, default=20)
ap.add_argument("--size", default="640x640", help="HxW for inputs whose image size is dynamic")
ap.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "edge" / "jetson-check")
ap.add_argument("--allow-non-jetson", action="store_true")
args = ap.parse_args()
size = tuple(int(v) for v in args.size.lower().split("x"))


def read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace").replace("\0", "").strip().splitlines()[0]
    except (OSError, IndexError):
        return "-"


def run(cmd: list[str]) -> str:
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout.strip() or "-"
    except (OSError, subprocess.SubprocessError):
        return "-"


def module_of(name: str) -> str:
    try:
        mod = __import__(name, fromlist=["_"])
    except Exception as exc:
        return f"not importable ({type(exc).__name__}: {exc})"
    fake = " (a FAKE test double, not TensorRT)" if getattr(mod, "FAKE", False) else ""
    return f"{getattr(mod, '__version__', '?')} from {Path(mod.__file__ or '?').parent}{fake}"


def dist(name: str) -> str:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "-"


def test_input(shape: tuple[int, ...], dtype: np.dtype) -> np.ndarray:
    """A deterministic picture (text and shapes, normalised) for 3-channel NCHW inputs, else noise."""
    rng = np.random.default_rng(0)
    if len(shape) == 4 and shape[1] == 3 and np.issubdtype(dtype, np.floating):
        import cv2

        h, w = shape[2], shape[3]
        img = np.full((h, w, 3), 235, np.uint8)
        cv2.putText(img, "GATE 7 OPEN", (w // 16, h // 5), cv2.FONT_HERSHEY_SIMPLEX, w / 320, (0, 0, 0), max(1, w // 128))
        cv2.putText(img, "NO PARKING", (w // 10, h // 2), cv2.FONT_HERSHEY_SIMPLEX, w / 400, (30, 30, 30), max(1, w // 160))
        cv2.rectangle(img, (w // 2, 2 * h // 3), (7 * w // 8, 7 * h // 8), (40, 90, 200), -1)
        x = (img.astype(np.float32) / 255 - 0.45) / 0.225
        return np.ascontiguousarray(np.broadcast_to(x.transpose(2, 0, 1), shape)).astype(dtype)
    if np.issubdtype(dtype, np.floating):
        return rng.standard_normal(shape).astype(dtype)
    return rng.integers(0, 100, shape).astype(dtype)


def timed(runner, feeds, runs: int) -> float:
    runner.run(feeds)
    started = time.perf_counter()
    for _ in range(runs):
        runner.run(feeds)
    return (time.perf_counter() - started) / runs * 1000


is_jetson = Path("/etc/nv_tegra_release").exists() or "tegra" in read("/proc/device-tree/compatible").lower()
print("## edge TensorRT check (tools/jetson_check.sh)")
print()
print(f"- date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
print(f"- device: {'Jetson' if is_jetson else 'NOT a Jetson: this run proves nothing about TensorRT on hardware'}")
print(f"- board: {read('/proc/device-tree/model')}; L4T: {read('/etc/nv_tegra_release')}")
print(f"- JetPack: {run(['dpkg-query', '-W', '-f=${Version}', 'nvidia-jetpack'])}; arch {platform.machine()}; Python {platform.python_version()}")
print(f"- tensorrt: {module_of('tensorrt')}")
print(f"- cuda-python {dist('cuda-python')} (cuda-bindings {dist('cuda-bindings')}): runtime {module_of('cuda.bindings.runtime')}")
print(f"- onnxruntime: {module_of('onnxruntime')}; numpy {np.__version__}")
print(f"- edge: {run(['git', 'describe', '--always', '--dirty'])}")
print(f"- options: precision {args.precision}, dla {args.dla}, runs {args.runs}, dynamic size {size[0]}x{size[1]}, cache {args.cache_dir}")
print()
print("| model | input | engine | second load | max abs diff | tolerance | TensorRT ms | ONNX Runtime ms | verdict |")
print("|---|---|---|---|---|---|---|---|---|")

failed = 0
options = RunnerOptions(cache_dir=args.cache_dir, precision=args.precision, dla_core=args.dla, input_hw=size)
for path in [SHIPPED, *args.models]:
    name = path.name
    try:
        started = time.perf_counter()
        trt = load_runner("tensorrt", path, options)
        first = f"{'built' if trt.built else 'cached'} in {time.perf_counter() - started:.1f} s"
        started = time.perf_counter()
        again = load_runner("tensorrt", path, options)
        second = ("BUILT AGAIN (cache miss)" if again.built else "from the cache") + f" ({time.perf_counter() - started:.2f} s)"
        again.close()
        ort = load_runner("onnxruntime", path)
        feeds = {s.name: test_input(feed_shape(s, 64, size), s.dtype) for s in trt.inputs}
        got, want = trt.run(feeds), ort.run(feeds)
        diff = max(float(np.abs(g.astype(np.float64) - w).max()) if g.size else 0.0 for g, w in zip(got, want))
        scale = max([1.0] + [float(np.abs(w).max()) for w in want if w.size])
        tol = TOLERANCE["f32" if args.precision == "f32" and args.dla is None else "f16"] * scale
        shapes_ok = all(g.shape == w.shape for g, w in zip(got, want))
        ok = shapes_ok and diff <= tol and not again.built
        shape = ", ".join(f"{k} {v.shape}" for k, v in feeds.items())
        trt_ms, ort_ms = timed(trt, feeds, args.runs), timed(ort, feeds, args.runs)
        verdict = "PASS" if ok else ("FAIL (shapes differ)" if not shapes_ok else "FAIL")
        print(f"| {name} | {shape} | {first} | {second} | {diff:.3g} | {tol:.3g} | {trt_ms:.1f} | {ort_ms:.1f} | {verdict} |")
        failed += not ok
        trt.close()
        ort.close()
    except EdgeError as exc:
        print(f"| {name} | - | - | - | - | - | - | - | ERROR: {exc} |")
        failed += 1
print()
print(f"{'all passed' if not failed else f'{failed} failed'}; TensorRT is unverified on hardware until such a report says PASS on a Jetson.")
sys.exit(1 if failed else 0)
PY
