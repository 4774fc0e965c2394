"""OpenVINO with preprocessing folded into the compiled graph (``graph_preprocess``).

Real models (BlazeFace and BlazePose .tflite: NHWC, RGB, [-1, 1]; the PP-OCR detector .onnx:
NCHW, BGR, per-channel mean/std; a YOLOv8-shaped ONNX exported the Ultralytics way: NCHW,
RGB, 0..1) on real frames of the demo clip: the folded graph takes uint8 NHWC BGR and gives
the same outputs and detections as the capture-thread path.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_backend
from onnx import TensorProto
from onnx_graphs import constant_output_model, openvino_export, ultralytics_metadata, yolov8_like_model

from edge.buffer.preprocess import InputFormat
from edge.config import parse_config
from edge.decoders import DecodeContext
from edge.errors import ModelError
from edge.inference import LoadedModel, load_model, runner_options
from edge.runners.base import RunnerOptions
from edge.runners.openvino import fold_preprocessing, read_model


def _frames(clip: Path, count: int = 3) -> list[np.ndarray]:
    cap = cv2.VideoCapture(str(clip))
    total = int(cap.get(cv2.CAP_PROP_FRAME_COUNT))
    frames = []
    for i in range(count):
        cap.set(cv2.CAP_PROP_POS_FRAMES, (i + 1) * total // (count + 1))
        ok, frame = cap.read()
        assert ok
        frames.append(frame)
    cap.release()
    return frames


def _yolo_export(tmp_path: Path) -> str:
    onnx_path = yolov8_like_model(tmp_path / "yolo.onnx", num_classes=2, size=64)
    folder = openvino_export(
        onnx_path, tmp_path / "yolo_openvino_model", ultralytics_metadata(["a", "b"], 64)
    )
    return str(folder)


def _run(model: LoadedModel, frame: np.ndarray) -> tuple[list[np.ndarray], int]:
    pre = model.preprocessor()
    tensor = pre.new_tensor()
    box = pre(frame, tensor)
    outputs = model.run_tensor(tensor)
    dets = model.decode(outputs, DecodeContext(box, (frame.shape[1], frame.shape[0])))
    return outputs, len(dets)


# (model, input layout of the model as read, what the folded input looks like)
MODELS = [
    pytest.param("blazeface", (1, 128, 128, 3), id="blazeface-tflite-nhwc-rgb"),
    pytest.param("blazepose", (1, 224, 224, 3), id="blazepose-tflite-nhwc-rgb"),
    # dynamic: height and width pinned to the manifest's size, the batch left (no pin_batch)
    pytest.param("ppocr_det", (None, 640, 640, 3), id="ppocr-onnx-nchw-bgr-meanstd"),
    pytest.param("yolo", (1, 64, 64, 3), id="yolov8-shaped-ir-nchw-rgb"),
]


@pytest.mark.parametrize(("ref", "shape"), MODELS)
def test_folded_graph_takes_bgr8_and_agrees(
    ref: str, shape: tuple[int | None, ...], tmp_path: Path, demo_clip: Path, models_dir: Path
) -> None:
    require_backend("openvino")
    model_ref = _yolo_export(tmp_path) if ref == "yolo" else ref
    where = [models_dir]
    plain = load_model(
        model_ref, "openvino", options=RunnerOptions(graph_preprocess=False), search_dirs=where
    )
    folded = load_model(model_ref, "openvino", options=RunnerOptions(), search_dirs=where)
    try:
        assert not getattr(plain.runner, "takes_bgr8", False)
        assert plain.input_spec.dtype != np.uint8
        assert getattr(folded.runner, "takes_bgr8", False)
        assert folded.input_spec.dtype == np.uint8
        assert folded.input_spec.shape == shape
        assert folded.input_spec.layout == "NHWC"
        assert folded.input_format.color == "bgr"  # the capture thread leaves colour alone
        for frame in _frames(demo_clip):
            want, want_n = _run(plain, frame)
            got, got_n = _run(folded, frame)
            assert got_n == want_n
            for a, b in zip(want, got, strict=True):
                spread = float(a.max() - a.min()) or 1.0
                assert float(np.abs(a - b).max()) / spread < 1e-3
    finally:
        plain.close()
        folded.close()


def _uint8_input(tmp_path: Path) -> Path:
    out = {"output0": np.zeros((1, 6, 10), np.float32)}
    return constant_output_model(tmp_path / "u8.onnx", out, input_dtype=TensorProto.UINT8)


def _two_d_input(tmp_path: Path) -> Path:
    return constant_output_model(tmp_path / "flat.onnx", {"output0": np.zeros((1, 4), np.float32)}, (1, 16))


def _one_channel(tmp_path: Path) -> Path:
    return constant_output_model(
        tmp_path / "grey.onnx", {"output0": np.zeros((1, 4), np.float32)}, (1, 1, 32, 32)
    )


FMT = InputFormat(64, 64)


def _yolo(tmp_path: Path) -> Path:
    return yolov8_like_model(tmp_path / "y.onnx")


# (model file maker, options): never folded, and the model is left as it was
NOT_FOLDED = [
    pytest.param(_uint8_input, RunnerOptions(preprocess=FMT), id="uint8-input"),
    pytest.param(_two_d_input, RunnerOptions(preprocess=FMT), id="not-an-image"),
    pytest.param(_one_channel, RunnerOptions(preprocess=FMT), id="one-channel"),
    pytest.param(_yolo, RunnerOptions(preprocess=FMT, graph_preprocess=False), id="switched-off"),
    pytest.param(_yolo, RunnerOptions(preprocess=None), id="no-format-given"),
]


@pytest.mark.parametrize(("make", "options"), NOT_FOLDED)
def test_not_folded(make: Callable[[Path], Path], options: RunnerOptions, tmp_path: Path) -> None:
    require_backend("openvino")
    import openvino as ov

    model = read_model(ov.Core(), make(tmp_path))
    before = [(p.get_element_type(), p.get_partial_shape()) for p in model.inputs]
    assert fold_preprocessing(model, options) is False
    assert [(p.get_element_type(), p.get_partial_shape()) for p in model.inputs] == before


def test_config_switch_reaches_the_runner(tmp_path: Path) -> None:
    text = """
models:
  a: {path: blazeface, runner: openvino}
  b: {path: blazeface, runner: openvino, graph_preprocess: false}
cameras: {}
mqtt: {enabled: false}
"""
    cfg = parse_config(text, "<test>").config
    assert runner_options(cfg.models["a"]).graph_preprocess is True
    assert runner_options(cfg.models["b"]).graph_preprocess is False


def test_bad_switch_names_the_field() -> None:
    text = "models:\n  a: {path: blazeface, graph_preprocess: maybe}\ncameras: {}\n"
    with pytest.raises(Exception, match=r"graph_preprocess"):
        parse_config(text, "<test>")


def test_error_names_the_file_and_the_way_out(tmp_path: Path) -> None:
    """A format OpenVINO refuses to build (a mean of the wrong length) is a ModelError naming
    the file and graph_preprocess: false."""
    require_backend("openvino")
    from edge.runners.openvino import OpenVinoRunner

    path = yolov8_like_model(tmp_path / "y.onnx")
    bad = InputFormat(64, 64, mean=(1.0, 2.0), std=(1.0, 1.0, 1.0))  # type: ignore[arg-type]
    with pytest.raises(
        ModelError, match=r"y\.onnx: OpenVINO could not fold preprocessing .*graph_preprocess: false"
    ):
        OpenVinoRunner(path, RunnerOptions(preprocess=bad))
