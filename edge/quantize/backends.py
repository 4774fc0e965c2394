"""Post-training static quantisation: ONNX Runtime's QDQ quantiser and NNCF for OpenVINO.

Both take the calibration tensors exactly as ``edge run`` feeds them (letterboxed, colour order,
normalised, laid out by the model's own preprocessor) and keep the detection head in float
(``edge.quantize.head``) unless told otherwise.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import QuantizeError
from edge.logs import StderrHandler
from edge.quantize.head import head_nodes, onnx_graph, openvino_graph
from edge.runners.base import one_line

EXTRA = "pip install 'edge-runtime[quantize]'"
# Per-channel QDQ needs DequantizeLinear's axis attribute: opset 13 or later.
MIN_QDQ_OPSET = 13

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class Quantized:
    """What a quantiser wrote, and which nodes it kept in float."""

    path: Path
    kept_float: tuple[str, ...]


def _require(module: str, what: str) -> Any:
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise QuantizeError(
            f"{what} needs {module.split('.', maxsplit=1)[0]}, which is not installed ({exc}); {EXTRA}"
        ) from None


def quantize_onnx(
    src: Path,
    dst: Path,
    tensors: list[np.ndarray],
    input_name: str,
    keep_head: bool = True,
    progress: Progress | None = None,
) -> Quantized:
    """ONNX Runtime static quantisation to QDQ: int8 per-channel weights and int8 activations
    (S8S8, ONNX Runtime's recommended QDQ format on x86-64), MinMax calibration on ``tensors``
    (moving average over the frames).
    U8 activations lost the PP-OCR detector's gate here (0.79 against 0.96 for S8S8 on an AVX2
    EPYC): on CPUs without VNNI, U8S8 kernels can saturate (ONNX Runtime's quantisation docs)."""
    onnx = _require("onnx", "--to onnx-int8")
    quantization = _require("onnxruntime.quantization", "--to onnx-int8")
    from onnxruntime.quantization.shape_inference import quant_pre_process

    with tempfile.TemporaryDirectory(prefix="edge-quantize-") as tmp:
        work = Path(tmp)
        try:
            model = onnx.load(str(src))
        except Exception as exc:
            raise QuantizeError(f"{src}: not a readable ONNX model ({one_line(exc)})") from None
        model = _at_least_opset(model, src, onnx)
        upgraded = work / "upgraded.onnx"
        onnx.save(model, str(upgraded))
        prepared = work / "prepared.onnx"
        try:  # folds batch norms and constants so the quantised graph fuses well
            quant_pre_process(str(upgraded), str(prepared), skip_symbolic_shape=True)
        except Exception as exc:
            logging.getLogger(__name__).warning(
                "%s: ONNX Runtime's pre-processing failed (%s); quantising the model as it is",
                src,
                one_line(exc),
            )
            shutil.copyfile(upgraded, prepared)
        model = onnx.load(str(prepared))
        _name_nodes(model)
        onnx.save(model, str(prepared))
        nodes, outputs = onnx_graph(model)
        kept = head_nodes(nodes, outputs) if keep_head else []
        try:
            quantization.quantize_static(
                str(prepared),
                str(dst),
                _Reader(input_name, tensors, progress),
                quant_format=quantization.QuantFormat.QDQ,
                per_channel=True,
                weight_type=quantization.QuantType.QInt8,
                activation_type=quantization.QuantType.QInt8,
                nodes_to_exclude=kept,
                calibrate_method=quantization.CalibrationMethod.MinMax,
                # A moving average of each batch's min/max: single outlier frames stop stretching
                # the ranges (PP-OCR's gate: 0.942 plain MinMax, 0.991 averaged, same frames).
                extra_options={"CalibMovingAverage": True},
            )
        except QuantizeError:
            raise
        except Exception as exc:
            raise QuantizeError(f"{src}: ONNX Runtime could not quantise it ({one_line(exc)})") from None
    return Quantized(dst, tuple(kept))


def _at_least_opset(model: Any, src: Path, onnx: Any) -> Any:
    default = next((o for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    if default is None or default.version >= MIN_QDQ_OPSET:
        return model
    from onnx import version_converter

    try:
        return version_converter.convert_version(model, MIN_QDQ_OPSET)
    except Exception as exc:
        raise QuantizeError(
            f"{src}: opset {default.version} must be converted to {MIN_QDQ_OPSET} for per-channel "
            f"int8, and ONNX's converter failed ({one_line(exc)}); re-export at opset >= {MIN_QDQ_OPSET}"
        ) from None


def _name_nodes(model: Any) -> None:
    """Give unnamed nodes stable names: exclusion lists refer to nodes by name."""
    taken = {n.name for n in model.graph.node if n.name}
    for i, node in enumerate(model.graph.node):
        if not node.name:
            name = f"{node.op_type}_{i}"
            while name in taken:
                name += "_"
            node.name = name
            taken.add(name)


class _Reader:
    """ONNX Runtime's ``CalibrationDataReader`` protocol over preprocessed tensors."""

    def __init__(self, input_name: str, tensors: list[np.ndarray], progress: Progress | None) -> None:
        self._name = input_name
        self._tensors = tensors
        self._progress = progress
        self._iter: Iterator[np.ndarray] = iter(tensors)
        self._done = 0

    def get_next(self) -> dict[str, np.ndarray] | None:
        tensor = next(self._iter, None)
        if tensor is None:
            return None
        self._done += 1
        if self._progress is not None:
            self._progress(self._done, len(self._tensors))
        return {self._name: tensor}

    def rewind(self) -> None:
        self._iter = iter(self._tensors)
        self._done = 0


def quantize_openvino(src: Path, dst: Path, tensors: list[np.ndarray], keep_head: bool = True) -> Quantized:
    """NNCF post-training quantisation of ``src`` (IR, ONNX or TFLite, read by OpenVINO) into
    the IR ``dst`` (.xml + .bin); NNCF draws its own progress bar."""
    ov = _require("openvino", "--to openvino-int8")
    nncf = _require("nncf", "--to openvino-int8")
    _quiet_nncf()
    try:
        model = ov.Core().read_model(str(src))
    except Exception as exc:
        raise QuantizeError(f"{src}: OpenVINO cannot read it ({one_line(exc)})") from None
    nodes, outputs = openvino_graph(model)
    kept = head_nodes(nodes, outputs) if keep_head else []
    try:
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bar: stdout is the report's
            quantized = nncf.quantize(
                model,
                nncf.Dataset(tensors),
                subset_size=len(tensors),
                ignored_scope=nncf.IgnoredScope(names=kept, validate=False),
            )
        ov.save_model(quantized, str(dst))
        _store_int8_weights(ov, dst)
    except Exception as exc:
        raise QuantizeError(f"{src}: NNCF could not quantise it ({one_line(exc)})") from None
    return Quantized(dst, tuple(kept))


def _store_int8_weights(ov: Any, xml: Path) -> None:
    """Fold the weights' FakeQuantize into int8 constants, so the IR stores int8 weights. NNCF
    leaves that to compile time when a Convert sits between weights and FakeQuantize (f16
    weights, as in TFLite files): the IR came out larger than the float file (6.8 against 5.9
    MB for BlazePose; 3.3 MB after this). The pass is OpenVINO's own (used by its converter); it
    matches on the IR read back, not on NNCF's in-memory model."""
    try:
        from openvino._offline_transformations import compress_quantize_weights_transformation
    except ImportError:  # an OpenVINO without it: the IR stays larger, and runs the same
        return
    model = ov.Core().read_model(str(xml))
    compress_quantize_weights_transformation(model)
    scratch = xml.with_name(xml.stem + ".packed.xml")
    ov.save_model(model, str(scratch))
    del model
    scratch.replace(xml)
    scratch.with_suffix(".bin").replace(xml.with_suffix(".bin"))


def _quiet_nncf() -> None:
    """NNCF logs every ignored node at INFO on a handler bound to stdout at import: keep its
    warnings, on stderr (stdout carries ``--json``)."""
    logger = logging.getLogger("nncf")
    logger.setLevel(logging.WARNING)
    for handler in list(logger.handlers):
        if type(handler) is logging.StreamHandler:
            logger.removeHandler(handler)
            replacement = StderrHandler()
            replacement.setFormatter(handler.formatter)
            logger.addHandler(replacement)
