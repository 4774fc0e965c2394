"""``models.<name>.input_size``: OpenVINO runs a square YOLO export at the frame's shape.

The model is ``yolov8_head_model``: the head of an Ultralytics YOLOv8 export, with the constants
that tie a real export to its size, and outputs that are known (a bright blob is found where it
is). The same rewrite was checked on a real Ultralytics YOLOv8n export (README, Performance).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import require_backend
from onnx_graphs import ultralytics_metadata, yolov8_head_model, yolov8_like_model

from edge.config import parse_config
from edge.config.schema import ModelConfig
from edge.daemon.app import Application
from edge.errors import ModelError
from edge.inference import load_model, runner_options
from edge.runners.base import RunnerOptions
from edge.runners.openvino import OpenVinoRunner
from edge.runners.openvino_resize import suggested_size
from edge.runners.select import probe_hardware


@pytest.fixture(autouse=True)
def _backends() -> None:
    require_backend("openvino")
    require_backend("onnxruntime")


def _head(tmp: Path, size: int = 128) -> Path:
    meta = {k: str(v) for k, v in ultralytics_metadata(["blob"], size).items()}
    return yolov8_head_model(tmp / "head.onnx", size, 1, meta)


def _frame(width: int, height: int, centre: tuple[int, int], radius: int) -> np.ndarray:
    """A dark frame with a bright round blob, brightest at its centre (no two cells tie)."""
    ys, xs = np.mgrid[0:height, 0:width]
    blob = np.exp(-((xs - centre[0]) ** 2 + (ys - centre[1]) ** 2) / (2.0 * radius**2))
    grey = (40 + 215 * blob).astype(np.uint8)
    return np.repeat(grey[:, :, None], 3, axis=2)


def _detect(
    path: Path, runner: str, hw: tuple[int, int] | None, frame: np.ndarray, state: Path | None = None
):  # type: ignore[no-untyped-def]
    opts = RunnerOptions(graph_hw=hw, openvino_cache=state)
    model = load_model(str(path), runner=runner, options=opts, overrides={"score_threshold": 0.5})
    try:
        return model.input_spec.image_hw(), model.infer(frame)
    finally:
        model.close()


# (id, frame size, input_size as (height, width), blob centre and radius in frame pixels)
SAME = [
    ("16:9 at 128x96", (1280, 720), (96, 128), (700, 300), 60),
    ("16:9 blob near the top", (1280, 720), (96, 128), (200, 90), 50),
    ("4:3 at 128x96", (640, 480), (96, 128), (320, 300), 40),
    ("portrait at 96x128", (480, 640), (128, 96), (240, 200), 45),
    ("2:1 at 128x64", (1280, 640), (64, 128), (900, 320), 70),
]


@pytest.mark.parametrize(("size", "hw", "centre", "radius"), [c[1:] for c in SAME], ids=[c[0] for c in SAME])
def test_a_resized_graph_finds_what_the_square_one_finds(
    tmp_path: Path, size: tuple[int, int], hw: tuple[int, int], centre: tuple[int, int], radius: int
) -> None:
    path = _head(tmp_path)
    frame = _frame(*size, centre, radius)
    square_hw, square = _detect(path, "openvino", None, frame)
    reference_hw, reference = _detect(path, "onnxruntime", None, frame)
    resized_hw, resized = _detect(path, "openvino", hw, frame)
    assert (square_hw, reference_hw, resized_hw) == ((128, 128), (128, 128), hw)
    assert len(square) >= 1 and square.score[0] > 0.9
    # The blob is found where it is: the best box is centred on it.
    box = square.xyxy[0]
    assert abs((box[0] + box[2]) / 2 - centre[0]) < radius and abs((box[1] + box[3]) / 2 - centre[1]) < radius
    for other in (reference, resized):
        assert len(other) == len(square)
        np.testing.assert_allclose(other.xyxy, square.xyxy, atol=1.0)
        np.testing.assert_allclose(other.score, square.score, atol=1e-4)


# (id, the export's size, the size it is run at (height, width))
NATIVE = [
    ("square to 16:9", 128, (96, 128)),
    ("square to portrait", 128, (128, 64)),
    ("square to a larger square", 64, (128, 128)),
    ("square to a smaller square", 128, (64, 64)),
]


@pytest.mark.parametrize(("size", "hw"), [c[1:] for c in NATIVE], ids=[c[0] for c in NATIVE])
def test_a_resized_graph_computes_what_one_built_at_that_size_does(
    tmp_path: Path, size: int, hw: tuple[int, int]
) -> None:
    """Every output, at every stride: the rewritten graph against the same head built at the
    new size (anchor grid, strides, reshape targets made for it)."""
    resized = OpenVinoRunner(yolov8_head_model(tmp_path / "a.onnx", size), RunnerOptions(graph_hw=hw))
    native = OpenVinoRunner(yolov8_head_model(tmp_path / "b.onnx", hw[1], height=hw[0]), RunnerOptions())
    image = np.random.default_rng(1).random((1, 3, *hw), dtype=np.float32)
    got, expected = resized.run({"images": image})[0], native.run({"images": image})[0]
    assert got.shape == expected.shape == (1, 5, sum((hw[0] // s) * (hw[1] // s) for s in (8, 16, 32)))
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)


def test_a_resized_graph_is_kept_and_imported_at_its_size(tmp_path: Path) -> None:
    path = _head(tmp_path)
    frame = _frame(1280, 720, (640, 360), 80)
    state = tmp_path / "openvino"
    first_hw, first = _detect(path, "openvino", (96, 128), frame, state)
    assert len(list(state.glob("*.blob"))) == 1
    again_hw, again = _detect(path, "openvino", (96, 128), frame, state)
    square_hw, _ = _detect(path, "openvino", None, frame, state)  # another size: another entry
    assert (first_hw, again_hw, square_hw) == ((96, 128), (96, 128), (128, 128))
    assert len(list(state.glob("*.blob"))) == 2
    np.testing.assert_allclose(again.xyxy, first.xyxy, atol=1e-3)


def _blazeface(models: Path, _tmp: Path) -> Path:
    return models / "blazeface"  # the package: its manifest names the decoder


def _no_grid(_models: Path, tmp: Path) -> Path:
    meta = {k: str(v) for k, v in ultralytics_metadata(["a", "b"], 64).items()}
    return yolov8_like_model(tmp / "plain.onnx", num_classes=2, size=64, metadata=meta)


def _head_file(_models: Path, tmp: Path) -> Path:
    return _head(tmp)


# (id, model, runner, input (height, width), what the one-line error says)
ERRORS = [
    ("no anchor grid: BlazeFace", _blazeface, "openvino", (128, 256), "input_size works on YOLO exports with an anchor-free head"),
    ("no anchor grid: a plain graph", _no_grid, "openvino", (32, 64), "no anchor grid for the model's 64x64 input was found"),
    ("not a multiple of the stride", _head_file, "openvino", (80, 128), "input_size must be a multiple of 32"),
    ("a runner that cannot resize", _head_file, "onnxruntime", (96, 128), "onnxruntime cannot run it at input_size 128x96 (runner: openvino can"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("make", "runner", "hw", "expected"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS]
)
def test_what_cannot_be_resized_is_refused_in_one_line(
    models_dir: Path,
    tmp_path: Path,
    make,
    runner: str,
    hw: tuple[int, int],
    expected: str,  # type: ignore[no-untyped-def]
) -> None:
    path = make(models_dir, tmp_path)
    with pytest.raises(ModelError) as info:
        load_model(str(path), runner=runner, options=RunnerOptions(graph_hw=hw))
    message = str(info.value)
    named = path / "face_detection_short_range.tflite" if path.is_dir() else path  # the file at fault
    assert expected in message and message.startswith(f"{named}: ") and "\n" not in message


def test_runner_auto_with_input_size_runs_openvino(tmp_path: Path) -> None:
    path = _head(tmp_path)
    cfg = ModelConfig(path=str(path), input_size=(128, 96))
    opts = runner_options(cfg, state_dir=tmp_path)
    assert opts.graph_hw == (96, 128)
    hw = probe_hardware(full=False)
    ort_first = replace(hw, cpu_vendor="AuthenticAMD", openvino_devices={})  # heuristics: ONNX Runtime
    model = load_model(str(path), runner="auto", options=opts, hardware=ort_first, state_dir=tmp_path)
    try:
        assert model.selection.backend == "openvino"
        assert model.selection.reasons[0] == "input_size 128x96: OpenVINO runs the graph at that size"
        assert model.input_spec.image_hw() == (96, 128)
    finally:
        model.close()
    assert not (tmp_path / "runner-choice.json").exists()  # nothing was timed


# (id, frame size, input size, the input_size suggested (None: none))
SUGGESTIONS = [
    ("16:9 in 640x640", (1280, 720), (640, 640), (640, 384)),
    ("16:9 in 320x320", (1920, 1080), (320, 320), (320, 192)),
    ("4:3 in 640x640", (640, 480), (640, 640), (640, 480)),
    ("portrait 9:16", (720, 1280), (640, 640), (384, 640)),
    ("square frames", (1080, 1080), (640, 640), None),
    ("already resized", (1280, 720), (640, 384), None),
    ("5:4, a fifth saved", (1280, 1024), (640, 640), (640, 512)),
    ("10:9, under a fifth saved", (1200, 1080), (640, 640), None),
]


@pytest.mark.parametrize(
    ("frame", "given", "expected"), [c[1:] for c in SUGGESTIONS], ids=[c[0] for c in SUGGESTIONS]
)
def test_the_suggested_input_size(
    frame: tuple[int, int], given: tuple[int, int], expected: tuple[int, int] | None
) -> None:
    assert suggested_size(frame, given) == expected


@pytest.mark.parametrize(
    ("input_size", "hint"), [(None, True), ((128, 96), False)], ids=["square", "resized"]
)
def test_the_daemon_says_once_which_input_size_skips_the_padding(
    demo_clip: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    input_size: tuple[int, int] | None,
    hint: bool,
) -> None:
    path = _head(tmp_path)
    size = f", input_size: [{input_size[0]}, {input_size[1]}]" if input_size else ""
    text = f"""
state_dir: "{tmp_path / "state"}"
status_interval: 1h
models: {{m: {{path: "{path}", runner: openvino{size}}}}}
cameras:
  gate: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless}}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    caplog.set_level(logging.INFO, logger="edge.pipeline")
    app = Application(parse_config(text, "hint.yaml"), max_frames=6)
    app.start()
    try:
        result = app.run()
    finally:
        app.stop()
    assert result.frames == 6
    hints = [r.getMessage() for r in caplog.records if "input_size" in r.getMessage()]
    expected = "camera gate: its 1280x720 frames fill 56 % of model m's 128x128 input; models.m.input_size: [128, 96]"
    assert [h.startswith(expected) for h in hints] == ([True] if hint else [])


# (id, --input-size, exit code, what stdout (JSON) or stderr says)
INFER = [
    ("resized", "128x96", 0, '"score"'),
    ("not a multiple of 32", "128x100", 2, "expected multiples of 32 (YOLO's largest stride), got '128x100'"),
    ("not a size", "wide", 2, "expected WIDTHxHEIGHT such as 640x384, got 'wide'"),
]


@pytest.mark.parametrize(("size", "code", "says"), [c[1:] for c in INFER], ids=[c[0] for c in INFER])
def test_edge_infer_takes_an_input_size(tmp_path: Path, size: str, code: int, says: str) -> None:
    import subprocess
    import sys

    import cv2

    image = tmp_path / "blob.png"
    cv2.imwrite(str(image), _frame(1280, 720, (700, 300), 60))
    args = [sys.executable, "-m", "edge", "infer", "--model", str(_head(tmp_path)), "--runner", "openvino",
            "--score", "0.5", "--input-size", size, "--json", str(image)]  # fmt: skip
    out = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert out.returncode == code, out.stderr
    assert says in (out.stdout if code == 0 else out.stderr)
