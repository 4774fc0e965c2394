"""Golden outputs of real pretrained models (MediaPipe BlazeFace/BlazePose, PP-OCRv4 det),
through every runner that can read them here, and agreement between runners."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import require_backend, text_image

from edge.decoders.nms import iou_matrix
from edge.inference import LoadedModel, load_model
from edge.runners.base import RunnerOptions

GOLDEN_FACE = np.array([[179, 82, 271, 175]], np.float32)
# Tests compare backends, so OpenVINO runs in f32 (its CPU default may be bf16).
OPTIONS = {
    "litert": RunnerOptions(),
    "openvino": RunnerOptions(precision="f32"),
    "onnxruntime": RunnerOptions(),
}


def _load(name: str, runner: str, models_dir: Path) -> LoadedModel:
    require_backend(runner)
    return load_model(name, runner, options=OPTIONS[runner], search_dirs=[models_dir])


@pytest.mark.parametrize("runner", ["litert", "openvino"])
def test_blazeface_finds_the_astronauts_face(runner: str, models_dir: Path, astronaut: np.ndarray) -> None:
    model = _load("blazeface", runner, models_dir)
    dets = model.infer(astronaut)
    assert len(dets) == 1
    assert dets.score[0] >= 0.9
    assert iou_matrix(dets.xyxy, GOLDEN_FACE)[0, 0] >= 0.6
    assert dets.keypoints is not None and dets.keypoints.shape == (1, 6, 2)
    # Eyes (keypoints 0 and 1) lie inside the face box, left eye left of the right one.
    (x1, y1, x2, y2), kp = dets.xyxy[0], dets.keypoints[0]
    assert x1 < kp[0, 0] < kp[1, 0] < x2 and y1 < kp[0, 1] < y2


@pytest.mark.parametrize("model_name", ["blazeface", "blazepose"])
@pytest.mark.parametrize("runner", ["litert", "openvino"])
def test_nothing_on_coffee(model_name: str, runner: str, models_dir: Path, coffee: np.ndarray) -> None:
    assert len(_load(model_name, runner, models_dir).infer(coffee)) == 0


@pytest.mark.parametrize("runner", ["litert", "openvino"])
def test_blazepose_finds_one_person(runner: str, models_dir: Path, astronaut: np.ndarray) -> None:
    model = _load("blazepose", runner, models_dir)
    dets = model.infer(astronaut)
    assert len(dets) == 1
    assert model.label(int(dets.class_id[0])) == "person"
    assert 0.7 <= dets.score[0] <= 0.9  # MediaPipe reports about 0.81
    # The shoulder-centre keypoint (2) falls inside the person box and in the frame.
    assert dets.keypoints is not None
    sx, sy = dets.keypoints[0, 2]
    x1, y1, x2, y2 = dets.xyxy[0]
    assert x1 <= sx <= x2 and y1 <= sy <= y2 and 0 <= sy < astronaut.shape[0]


@pytest.mark.parametrize("model_name", ["blazeface", "blazepose"])
def test_runners_agree(model_name: str, models_dir: Path, astronaut: np.ndarray) -> None:
    a = _load(model_name, "litert", models_dir).infer(astronaut)
    b = _load(model_name, "openvino", models_dir).infer(astronaut)
    assert len(a) == len(b) == 1
    assert iou_matrix(a.xyxy, b.xyxy)[0, 0] >= 0.95
    assert abs(float(a.score[0]) - float(b.score[0])) <= 0.01
    assert a.keypoints is not None and b.keypoints is not None
    np.testing.assert_allclose(a.keypoints, b.keypoints, atol=1.0)


def test_ppocr_det_onnxruntime_and_openvino_ir_agree(models_dir: Path, tmp_path: Path) -> None:
    """The PP-OCR detector through ONNX Runtime, and as OpenVINO IR made by openvino.convert_model."""
    require_backend("openvino")
    import openvino as ov

    onnx_file = models_dir / "ppocr_det" / "ch_PP-OCRv4_det_infer.onnx"
    ir = tmp_path / "ppocr_det.xml"
    # save_model compresses weights to FP16 unless told not to; keep f32 for a tight comparison.
    ov.save_model(ov.convert_model(str(onnx_file)), str(ir), compress_to_fp16=False)
    manifest = (models_dir / "ppocr_det" / "model.yaml").read_text()
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "model.yaml").write_text(
        manifest.replace("  onnx:\n", f"  openvino:\n    path: {ir}\n  onnx:\n").replace(
            "path: ch_PP-OCRv4", f"path: {onnx_file.parent}/ch_PP-OCRv4"
        )
    )
    ort_model = load_model(str(pkg), "onnxruntime")
    # The same float tensor goes into both runners: OpenVINO without its folded preprocessing.
    ov_model = load_model(
        str(pkg), "openvino", options=RunnerOptions(precision="f32", graph_preprocess=False)
    )
    assert ov_model.selection.format == "openvino"

    img = text_image()
    pre = ort_model.preprocessor()
    tensor = pre.new_tensor()
    pre(img, tensor)
    prob_ort = ort_model.run_tensor(tensor)[0]
    prob_ov = ov_model.run_tensor(tensor)[0]
    assert prob_ort.shape == prob_ov.shape == (1, 1, 640, 640)
    assert float(np.abs(prob_ort - prob_ov).max()) < 1e-3

    a, b = ort_model.infer(img), ov_model.infer(img)
    assert len(a) == len(b) == 2  # the two lines of text
    assert np.all(iou_matrix(a.xyxy, b.xyxy).max(axis=1) >= 0.95)
    # The first line "GATE 7 OPEN" is drawn from x=40, baseline y=120.
    top = a[np.argsort(a.xyxy[:, 1])][:1]
    assert top.xyxy[0, 0] < 60 and 60 < top.xyxy[0, 1] < 100 and 115 < top.xyxy[0, 3] < 140
