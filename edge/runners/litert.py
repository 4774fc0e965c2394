"""LiteRT (TFLite) runner: ai-edge-litert, else tflite_runtime, else tensorflow.lite."""

from __future__ import annotations

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
from edge.types import QuantParams, TensorSpec, guess_layout

# Every TFLite flatbuffer carries this file identifier at bytes 4-8.
TFLITE_IDENTIFIER = b"TFL3"


def interpreter_class() -> Any:
    """The first importable TFLite interpreter class."""
    errors: list[str] = []
    try:
        from ai_edge_litert.interpreter import Interpreter

        return Interpreter
    except ImportError as exc:
        errors.append(str(exc))
    try:
        from tflite_runtime.interpreter import Interpreter

        return Interpreter
    except ImportError as exc:
        errors.append(str(exc))
    try:
        import tensorflow as tf

        return tf.lite.Interpreter
    except ImportError as exc:
        errors.append(str(exc))
    raise missing_backend("litert", ImportError("; ".join(errors)))


def _spec(detail: dict[str, Any]) -> TensorSpec:
    signature = detail.get("shape_signature", detail["shape"])
    shape = tuple(int(d) if d > 0 else None for d in signature)
    quant = None
    qp = detail.get("quantization_parameters", {})
    scales, zeros = qp.get("scales", []), qp.get("zero_points", [])
    if len(scales) == 1 and np.issubdtype(detail["dtype"], np.integer) and float(scales[0]) != 0.0:
        quant = QuantParams(float(scales[0]), int(zeros[0]))
    return TensorSpec(detail["name"], shape, np.dtype(detail["dtype"]), guess_layout(shape), quant)


class LiteRtRunner:
    backend = "litert"
    takes_bgr8 = False

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        cls = interpreter_class()
        self.path = path
        require_model_file(path, "a TFLite flatbuffer")
        with path.open("rb") as fh:
            head = fh.read(8)
        if head[4:8] != TFLITE_IDENTIFIER:
            raise ModelError(
                f"{path}: not a readable TFLite flatbuffer (expected the identifier "
                f"{TFLITE_IDENTIFIER.decode()} at byte 4, found {head[4:8]!r})"
            )
        try:
            self._interp = cls(model_path=str(path), num_threads=options.threads)
            self._interp.allocate_tensors()
        except Exception as exc:
            raise ModelError(f"{path}: not a readable TFLite flatbuffer ({one_line(exc)})") from exc
        in_details = self._interp.get_input_details()
        out_details = self._interp.get_output_details()
        self.inputs = [_spec(d) for d in in_details]
        self.outputs = [_spec(d) for d in out_details]
        self._in_index = {d["name"]: int(d["index"]) for d in in_details}
        self._in_shape = {d["name"]: tuple(int(x) for x in d["shape"]) for d in in_details}
        self._out_index = [int(d["index"]) for d in out_details]

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        arrays = {spec.name: prepare_feed(spec, feeds[spec.name]) for spec in self.inputs}
        resized = False
        for name, arr in arrays.items():
            if arr.shape != self._in_shape[name]:
                self._interp.resize_tensor_input(self._in_index[name], list(arr.shape))
                self._in_shape[name] = arr.shape
                resized = True
        if resized:
            self._interp.allocate_tensors()
        for name, arr in arrays.items():
            self._interp.set_tensor(self._in_index[name], arr)
        self._interp.invoke()
        return [
            finish_output(s, self._interp.get_tensor(i))  # get_tensor already returns a copy
            for s, i in zip(self.outputs, self._out_index, strict=True)
        ]

    def close(self) -> None:
        self._interp = None


def load(path: Path, options: RunnerOptions) -> LiteRtRunner:
    return LiteRtRunner(path, options)
