"""``edge quantize``: an INT8 twin of a model, kept only when it agrees with the float model.

Steps: resolve the model and pick its float source file for the target, load it on the
target's runner, sample calibration and evaluation frames and preprocess them exactly as
``edge run`` does, quantise (or take ``--check FILE``), load the result, compare decoded
detections on the evaluation frames (``edge.quantize.gate``), time both bare runners in the
same run, print the report, and write the package only when the agreement reaches ``--bar``
(or with ``--force``). Exit 3 when the gate refuses.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from edge import __version__
from edge.errors import GateFailed, QuantizeError
from edge.inference import LoadedModel, load_model
from edge.logs import progress
from edge.models import FORMAT_SUFFIX, ModelPackage, read_manifest, resolve_model
from edge.quantize.backends import Quantized, quantize_onnx, quantize_openvino
from edge.quantize.gate import Agreement, agreement
from edge.quantize.package import check_out, default_out_dir, write_package
from edge.quantize.sources import sample_frames
from edge.runners.base import ModelRunner, RunnerOptions, file_sha256
from edge.runners.select import probe_hardware

TARGETS = {"openvino-int8": ("openvino", "openvino"), "onnx-int8": ("onnx", "onnxruntime")}
# Float files each target can start from, best first.
SOURCES = {"openvino": ("openvino", "onnx", "tflite"), "onnx": ("onnx",)}
CHECK_FORMATS = {suffix: fmt for fmt, suffix in FORMAT_SUFFIX.items()}
CHECK_BACKENDS = {"onnx": "onnxruntime", "openvino": "openvino", "tflite": "litert"}


class ProgressLine:
    """``label 37/100`` on one line of stderr, redrawn on a terminal, every quarter otherwise."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.tty = sys.stderr.isatty()
        self._last = -1

    def __call__(self, done: int, total: int) -> None:
        quarter = 4 * done // max(total, 1)
        if self.tty:
            width = 30
            filled = width * done // max(total, 1)
            progress(
                f"{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total}", done=done >= total
            )
        elif quarter != self._last:
            sys.stderr.write(f"{self.label} {done}/{total}\n")
        self._last = quarter
        sys.stderr.flush()


def source_format(package: ModelPackage, fmt: str) -> str:
    """The float file the target quantises from; a clear error when there is none."""
    found = next((f for f in SOURCES[fmt] if f in package.files), None)
    if found is None:
        have = ", ".join(package.files)
        hint = " (--to openvino-int8 reads .tflite and ONNX too)" if fmt == "onnx" else ""
        raise QuantizeError(
            f"{package.origin}: --to {fmt}-int8 quantises a {' or '.join(SOURCES[fmt])} file; "
            f"model {package.name!r} has {have}{hint}"
        )
    return found


def _tensor_maker(model: LoadedModel) -> Callable[[np.ndarray], np.ndarray]:
    """Frame -> a new tensor, preprocessed exactly as ``edge run`` feeds this runner."""
    pre = model.preprocessor()

    def make(frame: np.ndarray) -> np.ndarray:
        tensor = pre.new_tensor()
        pre(frame, tensor)
        return tensor

    return make


def time_pair(
    a: ModelRunner, b: ModelRunner, name: str, tensor: np.ndarray, budget_s: float = 8.0
) -> tuple[float, float]:
    """Median milliseconds of ``a`` and ``b`` on ``tensor``, runs interleaved so that a busy
    machine slows both alike; about ``budget_s`` seconds in all."""
    feeds = {name: tensor}
    for runner in (a, b, a, b):
        runner.run(feeds)
    probe = time.perf_counter()
    a.run(feeds)
    b.run(feeds)
    rounds = int(min(50, max(5, budget_s / max(time.perf_counter() - probe, 1e-6))))
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(rounds):
        for runner, times in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            runner.run(feeds)
            times.append((time.perf_counter() - t0) * 1000)
    return statistics.median(ta), statistics.median(tb)


def size_of(path: Path) -> int:
    return path.stat().st_size + (path.with_suffix(".bin").stat().st_size if path.suffix == ".xml" else 0)


def _with_twin(package: ModelPackage, fmt: str, path: Path) -> ModelPackage:
    return replace(
        package,
        int8_files=MappingProxyType({**package.int8_files, fmt: path}),
        int8_sha256=MappingProxyType({**package.int8_sha256, fmt: None}),
    )


def _target(args: argparse.Namespace, package: ModelPackage) -> tuple[str, str, str]:
    """(twin format, backend, float source format) from ``--to`` or ``--check``; one-line errors."""
    if args.check is None:
        if args.calib is None:
            raise QuantizeError("--calib is required (a folder of images or a video), unless --check FILE")
        fmt, backend = TARGETS[args.to]
        return fmt, backend, source_format(package, fmt)
    if args.calib is not None:
        raise QuantizeError("--check gates an int8 file made elsewhere: --calib is not used with it")
    if not args.check.is_file():
        raise QuantizeError(f"--check {args.check}: not found; expected an int8 .onnx, .xml or .tflite file")
    fmt = CHECK_FORMATS.get(args.check.suffix, "")
    if not fmt:
        raise QuantizeError(f"--check {args.check}: expected an .onnx, .xml or .tflite int8 model")
    if fmt not in package.files:
        raise QuantizeError(
            f"--check {args.check}: model {package.name!r} has no float {fmt} file to compare it with "
            f"(it has {', '.join(package.files)})"
        )
    return fmt, CHECK_BACKENDS[fmt], fmt


def cmd_quantize(args: argparse.Namespace) -> int:
    package = resolve_model(args.model)
    fmt, backend, src_fmt = _target(args, package)
    source = package.files[src_fmt]
    if args.check is not None and file_sha256(args.check) == file_sha256(source):
        raise QuantizeError(
            f"--check {args.check}: is the float file itself ({source.name}), not an int8 twin"
        )
    out = args.out or default_out_dir(package)
    check_out(out, package, source)
    hw = probe_hardware()
    # NNCF calibrates the model as read from disk: tensors as the plain preprocessor makes them.
    options = RunnerOptions(threads=args.threads, graph_preprocess=False)
    eval_frames = sample_frames(args.eval, args.eval_frames, "--eval")
    with contextlib.ExitStack() as stack:
        float_model = load_model(package, backend, options=options, hardware=hw, int8=False)
        stack.callback(float_model.close)
        if float_model.selection.format != src_fmt:
            raise QuantizeError(f"{source}: {backend} picked the {float_model.selection.format} file instead")
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edge-quantize-")))
        calibration = None
        if args.check is not None or args.calib is None:
            result = Quantized(args.check, ())
        else:
            calib = sample_frames(args.calib, args.calib_frames, "--calib", _tensor_maker(float_model))
            calibration = {"source": str(args.calib), "frames": len(calib)}
            int8_path = tmp / f"model{FORMAT_SUFFIX[fmt]}"
            print(f"quantising {source} for {backend} on {len(calib)} calibration frames", file=sys.stderr)
            if fmt == "onnx":
                result = quantize_onnx(
                    source, int8_path, calib, float_model.input_spec.name, not args.quantize_head,
                    ProgressLine("calibrating"),
                )  # fmt: skip
            else:
                result = quantize_openvino(source, int8_path, calib, not args.quantize_head)
        twin = _with_twin(package, fmt, result.path)
        int8_model = load_model(twin, backend, options=options, hardware=hw, int8=True)
        stack.callback(int8_model.close)
        report, agreed = _evaluate(
            args, package, float_model, int8_model, eval_frames, source, result, hw.cpu_model, calibration
        )
        _print_report(report, args.json)
        if agreed.score < args.bar and not args.force:
            raise GateFailed(
                f"agreement {agreed.score:.3f} is below --bar {args.bar}: nothing written "
                "(--force writes it anyway)"
            )
        manifest = write_package(package, out, fmt, source, result.path, report)
    written = read_manifest(manifest).int8_files[fmt].name
    print(f"wrote {manifest} (int8 {fmt}: {written})", file=sys.stderr)
    return 0


def _evaluate(
    args: argparse.Namespace,
    package: ModelPackage,
    float_model: LoadedModel,
    int8_model: LoadedModel,
    frames: list[np.ndarray],
    source: Path,
    result: Quantized,
    cpu: str,
    calibration: dict[str, Any] | None,
) -> tuple[dict[str, Any], Agreement]:
    progress = ProgressLine("evaluating")
    pairs = []
    for i, frame in enumerate(frames, 1):
        pairs.append((float_model.infer(frame), int8_model.infer(frame)))
        progress(i, len(frames))
    agreed = agreement(pairs, by_coverage=package.task == "ocr-det")
    if agreed.float_detections == 0:
        raise QuantizeError(
            f"--eval {args.eval}: the float model found nothing in {len(frames)} frame(s); the gate needs "
            f"frames that show {', '.join(package.labels[:5])}"
        )
    tensor = _tensor_maker(float_model)(frames[0])
    float_ms, int8_ms = time_pair(float_model.runner, int8_model.runner, float_model.input_spec.name, tensor)
    report: dict[str, Any] = {
        "agreement": round(agreed.score, 4),
        "bar": args.bar,
        "passed": agreed.score >= args.bar,
        "forced": bool(args.force and agreed.score < args.bar),
        **{
            k: (round(v, 4) if isinstance(v, float) else v)
            for k, v in asdict(agreed).items()
            if k != "per_class"
        },
        "per_class": {
            package.labels[c] if 0 <= c < len(package.labels) else str(c): round(f, 4)
            for c, f in agreed.per_class.items()
        },
        "runner": float_model.selection.backend,
        "cpu": cpu,
        "float_ms": round(float_ms, 2),
        "int8_ms": round(int8_ms, 2),
        "speedup": round(float_ms / int8_ms, 3),
        "float_file": source.name,
        "float_bytes": size_of(source),
        "float_sha256": file_sha256(source),
        "int8_bytes": size_of(result.path),
        "kept_float": len(result.kept_float),
        "calibration": calibration,
        "evaluation": {"source": str(args.eval), "frames": len(frames)},
        "checked": str(args.check) if args.check is not None else None,
        "edge": __version__,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }
    return report, agreed


def _print_report(report: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(report, indent=2))
        return
    kp = "" if report["keypoints"] is None else f", keypoints within tolerance {report['keypoints']:.3f}"
    iou = "" if report["mean_iou"] is None else f", mean IoU {report['mean_iou']:.3f}"
    if report["coverage"] is not None:
        iou += f"; boxes half-covered by the other model's: {report['coverage']:.3f} (the gate's figure)"
    verdict = "PASS" if report["passed"] else ("FAIL (forced)" if report["forced"] else "FAIL")
    lines = [
        f"agreement  {report['agreement']:.3f} (bar {report['bar']}) {verdict}",
        f"  F1 {report['f1']:.3f}: {report['matched']} matched of {report['float_detections']} float and "
        f"{report['int8_detections']} int8 detections in {report['frames']} frames{iou}{kp}",
        *(
            [f"  per class: {', '.join(f'{k} {v:.3f}' for k, v in report['per_class'].items())}"]
            if len(report["per_class"]) > 1
            else []
        ),
        f"speed      {report['runner']} on {report['cpu']}: float {report['float_ms']:.2f} ms, "
        f"int8 {report['int8_ms']:.2f} ms ({report['speedup']:.2f}x)",
        f"size       float {report['float_bytes'] / 1e6:.2f} MB, int8 {report['int8_bytes'] / 1e6:.2f} MB; "
        f"{report['kept_float']} head node(s) kept in float",
    ]
    print("\n".join(lines))
