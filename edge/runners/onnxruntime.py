"""ONNX Runtime runner: CPU everywhere, CUDA / OpenVINO execution providers when installed."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.runners.base import (
    RunnerOptions,
    finish_output,
    missing_backend,
    one_line,
    prepare_feed,
    require_model_file,
)
from edge.types import TensorSpec, guess_layout

# TensorRT EP is left out of the automatic list: building its engine takes minutes; ask for it.
AUTO_PROVIDERS = ("CUDAExecutionProvider", "OpenVINOExecutionProvider", "CPUExecutionProvider")

_ORT_DTYPES = {
    "tensor(float)": np.float32,
    "tensor(float16)": np.float16,
    "tensor(double)": np.float64,
    "tensor(uint8)": np.uint8,
    "tensor(int8)": np.int8,
    "tensor(int32)": np.int32,
    "tensor(int64)": np.int64,
    "tensor(bool)": np.bool_,
}


def ort_problem(exc: BaseException) -> str:
    """ONNX Runtime's complaint without its ``[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load
    model from <path> failed:`` preamble (the message already names the file)."""
    text = one_line(exc)
    return re.sub(r"^\[ONNXRuntimeError\] : \d+ : (\w+) : (?:Load model from .* failed:)?", r"\1: ", text)


def _spec(node: Any, path: Path) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d > 0 else None for d in node.shape)
    if node.type not in _ORT_DTYPES:
        raise ModelError(
            f"{path}: tensor {node.name!r} has type {node.type}; expected one of {', '.join(_ORT_DTYPES)}"
        )
    return TensorSpec(node.name, shape, np.dtype(_ORT_DTYPES[node.type]), guess_layout(shape))


class OnnxRuntimeRunner:
    backend = "onnxruntime"
    takes_bgr8 = False

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        try:
            import onnxruntime as ort
        except ImportError as exc:
            raise missing_backend(self.backend, exc) from exc
        self.path = path
        available = ort.get_available_providers()
        wanted = options.providers or AUTO_PROVIDERS
        providers = [p for p in wanted if p in available]
        if not providers:
            raise ModelError(f"none of the providers {list(wanted)} is available; installed: {available}")
        so = ort.SessionOptions()
        if options.threads:
            so.intra_op_num_threads = options.threads
        so.log_severity_level = 3
        # The memory pattern plans one block per input shape for every intermediate tensor and
        # keeps it: 22 MB resident for YOLOv8n at 640. Without it the arena reuses its chunks.
        so.enable_mem_pattern = False
        # ONNX Runtime's pool threads spin while they wait for work, taking the cores the capture
        # threads decode on: YOLOv8n-320 with 8 cameras on 2 cores held 0.53 of its detect rate
        # with spinning off against 0.42 with it on, at less CPU (edge bench --cameras 8).
        so.add_session_config_entry("session.intra_op.allow_spinning", "0")
        so.add_session_config_entry("session.inter_op.allow_spinning", "0")
        require_model_file(path, "an ONNX model")
        try:
            self._session = ort.InferenceSession(str(path), sess_options=so, providers=providers)
        except Exception as exc:
            raise ModelError(f"{path}: not a readable ONNX model ({ort_problem(exc)})") from exc
        self.providers = self._session.get_providers()
        self.inputs = [_spec(n, path) for n in self._session.get_inputs()]
        self.outputs = [_spec(n, path) for n in self._session.get_outputs()]
        self._output_names = [o.name for o in self.outputs]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        prepared = {s.name: prepare_feed(s, feeds[s.name]) for s in self.inputs}
        raw = self._session.run(self._output_names, prepared)
        return [finish_output(s, np.asarray(a)) for s, a in zip(self.outputs, raw, strict=True)]

    def close(self) -> None:
        self._session = None


def load(path: Path, options: RunnerOptions) -> OnnxRuntimeRunner:
    return OnnxRuntimeRunner(path, options)
