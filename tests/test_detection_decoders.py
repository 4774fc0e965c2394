"""YOLO v5/v8/v10 and SSD decoders on ONNX graphs with known outputs, through ONNX Runtime and
OpenVINO, decoded to the expected boxes in frame pixels after undoing the letterbox; a model
whose outputs do not fit its declared decoder is refused at load, naming file and output."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import require_backend
from onnx_graphs import constant_output_model

from edge.errors import ModelError
from edge.inference import load_model
from edge.models import resolve_model

# Frame 128x64 into a 64x64 input: scale 0.5, pad_y 16. Input (x, y) -> frame (2x, 2(y - 16)).
FRAME = np.zeros((64, 128, 3), np.uint8)


def to_frame(box: list[float]) -> list[float]:
    x1, y1, x2, y2 = box
    return [2 * x1, 2 * (y1 - 16), 2 * x2, 2 * (y2 - 16)]


# Candidates in input pixels (cx, cy, w, h): A wins class 0; B overlaps A (same class, lower
# score) and is suppressed; C is class 1; D is under the threshold.
A, B, C, D = (32, 32, 20, 10), (33, 32, 20, 10), (12, 24, 8, 8), (50, 40, 6, 6)
CLASS_SCORES = {"A": (0.9, 0.05), "B": (0.8, 0.1), "C": (0.1, 0.7), "D": (0.1, 0.1)}


def xyxy(c: tuple[float, float, float, float]) -> list[float]:
    cx, cy, w, h = c
    return [cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2]


def v8_output() -> np.ndarray:
    rows = [list(box) + list(CLASS_SCORES[k]) for k, box in zip("ABCD", (A, B, C, D), strict=True)]
    return np.array(rows, np.float32).T[None]  # (1, 4 + nc, N)


def v5_output() -> np.ndarray:
    # objectness x class prob gives the same scores as v8's table
    rows = []
    for k, box in zip("ABCD", (A, B, C, D), strict=True):
        s = CLASS_SCORES[k]
        obj = max(s)
        rows.append([*box, obj, s[0] / obj, s[1] / obj])
    return np.array(rows, np.float32)[None]  # (1, N, 5 + nc)


def v10_output() -> np.ndarray:
    rows = [xyxy(A) + [0.9, 0], xyxy(C) + [0.7, 1], xyxy(D) + [0.1, 0]]
    return np.array(rows + [[0, 0, 0, 0, 0, 0]] * 2, np.float32)[None]  # (1, N, 6)


def ssd_outputs() -> dict[str, np.ndarray]:
    norm = [[y1 / 64, x1 / 64, y2 / 64, x2 / 64] for x1, y1, x2, y2 in (xyxy(A), xyxy(C), xyxy(D))]
    return {
        "detection_boxes": np.array([norm + [[0, 0, 0, 0]]], np.float32),
        "detection_classes": np.array([[0, 1, 0, 0]], np.float32),
        "detection_scores": np.array([[0.9, 0.7, 0.1, 0.0]], np.float32),
        "num_detections": np.array([3], np.float32),
    }


EXPECTED = [(to_frame(xyxy(A)), 0, 0.9), (to_frame(xyxy(C)), 1, 0.7)]

CASES = {
    "yolov8": {"output": v8_output},
    "yolov5": {"output": v5_output},
    "yolov10": {"output": v10_output},
    "ssd": {"outputs": ssd_outputs},
}


def make_package(tmp_path: Path, decoder: str) -> Path:
    case = CASES[decoder]
    outputs = case["outputs"]() if "outputs" in case else {"output0": case["output"]()}
    constant_output_model(tmp_path / "model.onnx", outputs)
    manifest = {
        "name": f"const_{decoder}",
        "task": "detect",
        "decoder": decoder,
        "labels": ["person", "car"],
        "input": {"size": [64, 64]},
        "files": {"onnx": {"path": "model.onnx"}},
        "options": {"score_threshold": 0.25, "iou_threshold": 0.45},
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path


@pytest.mark.parametrize("runner", ["onnxruntime", "openvino"])
@pytest.mark.parametrize("decoder", list(CASES))
def test_decoder_gives_expected_boxes(decoder: str, runner: str, tmp_path: Path) -> None:
    require_backend(runner)
    model = load_model(str(make_package(tmp_path, decoder)), runner)
    dets = model.infer(FRAME)
    got = sorted(
        zip(dets.xyxy.tolist(), dets.class_id.tolist(), dets.score.tolist(), strict=True), key=lambda r: -r[2]
    )
    assert len(got) == len(EXPECTED)
    for (box, cls, score), (exp_box, exp_cls, exp_score) in zip(got, EXPECTED, strict=True):
        np.testing.assert_allclose(box, exp_box, atol=1e-3)
        assert cls == exp_cls
        assert score == pytest.approx(exp_score, abs=1e-5)
    assert [model.label(c) for _, c, _ in got] == ["person", "car"]


def test_bare_onnx_export_takes_labels_and_size_from_ultralytics_metadata(tmp_path: Path) -> None:
    meta = {
        "description": "Ultralytics YOLOv8n model",
        "task": "detect",
        "stride": "32",
        "batch": "1",
        "imgsz": "[64, 64]",
        "names": "{0: 'person', 1: 'car'}",
    }
    path = constant_output_model(tmp_path / "yolov8n.onnx", {"output0": v8_output()}, metadata=meta)
    package = resolve_model(str(path))
    assert package.labels == ("person", "car")
    assert package.decoder == "yolov8"
    assert package.input.size == (64, 64)
    dets = load_model(str(path), "onnxruntime").infer(FRAME)
    assert sorted(dets.class_id.tolist()) == [0, 1]


def test_end_to_end_export_metadata_selects_the_v10_decoder(tmp_path: Path) -> None:
    meta = {"task": "detect", "imgsz": "[64, 64]", "names": "{0: 'person', 1: 'car'}", "end2end": "True"}
    path = constant_output_model(tmp_path / "yolov10n.onnx", {"output0": v10_output()}, metadata=meta)
    assert resolve_model(str(path)).decoder == "yolov10"
    dets = load_model(str(path), "onnxruntime").infer(FRAME)
    np.testing.assert_allclose(dets.xyxy[0], EXPECTED[0][0], atol=1e-3)


def test_uint8_input_model_gets_raw_pixels(tmp_path: Path) -> None:
    """A model with a uint8 image input (no normalisation) is fed raw pixels, not floats."""
    from onnx import TensorProto

    path = constant_output_model(
        tmp_path / "u8.onnx",
        {"output0": v8_output()},
        input_shape=(1, 64, 64, 3),
        input_dtype=TensorProto.UINT8,
    )
    (tmp_path / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "u8",
                "task": "detect",
                "decoder": "yolov8",
                "labels": ["person", "car"],
                "files": {"onnx": {"path": path.name}},
            }
        )
    )
    model = load_model(str(tmp_path), "onnxruntime")
    assert model.input_spec.dtype == np.uint8 and model.input_spec.layout == "NHWC"
    frame = np.full((64, 128, 3), 200, np.uint8)
    pre = model.preprocessor()
    tensor = pre.new_tensor()
    pre(frame, tensor)
    assert tensor.dtype == np.uint8 and tensor[0, 32, 32, 0] == 200 and tensor[0, 0, 0, 0] == 114
    assert len(model.infer(frame)) == 2


def test_classify_decoder_gives_top_k_over_the_whole_frame(tmp_path: Path) -> None:
    logits = np.array([[0.5, 3.0, -1.0, 2.0, 0.0]], np.float32)
    constant_output_model(tmp_path / "cls.onnx", {"logits": logits}, input_shape=(1, 3, 32, 32))
    (tmp_path / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "cls",
                "task": "classify",
                "decoder": "classify",
                "labels": ["a", "b", "c", "d", "e"],
                "files": {"onnx": {"path": "cls.onnx"}},
                "options": {"top_k": 2},
            }
        )
    )
    dets = load_model(str(tmp_path), "onnxruntime").infer(FRAME)
    e = np.exp(logits[0] - logits[0].max())
    p = e / e.sum()
    assert dets.class_id.tolist() == [1, 3]
    np.testing.assert_allclose(dets.score, p[[1, 3]], rtol=1e-5)
    np.testing.assert_allclose(dets.xyxy, [[0, 0, 128, 64]] * 2)


def test_yolov8_pose_head_decodes_keypoints(tmp_path: Path) -> None:
    # One class, two keypoints (x, y, visibility) per candidate: 4 + 1 + 6 channels.
    rows = [[32, 32, 20, 10, 0.9, 30, 30, 1.0, 34, 34, 1.0], [10, 10, 4, 4, 0.1, 0, 0, 0, 0, 0, 0]]
    out = np.array(rows, np.float32).T[None]
    meta = {"task": "pose", "imgsz": "[64, 64]", "names": "{0: 'person'}", "kpt_shape": "[2, 3]"}
    path = constant_output_model(tmp_path / "pose.onnx", {"output0": out}, metadata=meta)
    dets = load_model(str(path), "onnxruntime").infer(FRAME)
    assert len(dets) == 1 and dets.keypoints is not None
    np.testing.assert_allclose(dets.keypoints[0], [[60, 28], [68, 36]], atol=1e-3)  # 2x, 2(y - 16)


def test_worker_batches_cameras_when_the_batch_axis_is_dynamic(tmp_path: Path) -> None:
    """Two cameras (real H.264/MPEG-4 clips written with OpenCV) share a model whose batch axis
    is dynamic and whose box depends on each image's brightness: one inference serves both, and
    each camera gets its own result back."""
    import time

    import cv2
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from edge.alerts.actions import ActionDispatcher
    from edge.buffer.ring import FrameRing
    from edge.capture.sources import OpenCvSource
    from edge.capture.thread import CaptureThread
    from edge.config.schema import FileSource
    from edge.pipeline.worker import CameraChannel, InferenceWorker
    from edge.rules.engine import RuleEngine

    const = v8_output()  # (1, 6, 4): row 0 holds cx
    shift = np.zeros_like(const)
    shift[0, 0, :] = 20.0  # cx moves by 20 x mean pixel value (0..1)
    nodes = [
        helper.make_node("ReduceMean", ["images", "axes"], ["m"], keepdims=1),  # (B, 1, 1, 1)
        helper.make_node("Reshape", ["m", "shape"], ["m3"]),  # (B, 1, 1)
        helper.make_node("Mul", ["m3", "shift"], ["delta"]),
        helper.make_node("Add", ["const", "delta"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "batched",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["batch", 3, 64, 64])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 4])],
        initializer=[numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
                     numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
                     numpy_helper.from_array(shift, "shift"), numpy_helper.from_array(const, "const")],
    )  # fmt: skip
    model_proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model_proto.ir_version = 8
    onnx.save(model_proto, str(tmp_path / "m.onnx"))
    (tmp_path / "model.yaml").write_text(
        yaml.safe_dump(
            {
                "name": "b",
                "task": "detect",
                "decoder": "yolov8",
                "labels": ["person", "car"],
                "input": {"size": [64, 64]},
                "files": {"onnx": {"path": "m.onnx"}},
            }
        )
    )
    model = load_model(str(tmp_path), "onnxruntime")
    assert model.input_spec.has_dynamic_batch

    channels, means = [], {}
    for name, level in (("dark", 40), ("bright", 220)):
        clip = tmp_path / f"{name}.mp4"
        writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 25, (128, 64))
        for _ in range(12):
            writer.write(np.full((64, 128, 3), level, np.uint8))
        writer.release()
        pre = model.preprocessor()
        ring = FrameRing(4, pre.new_tensor, "lossless")
        capture = CaptureThread(name, OpenCvSource(FileSource(type="file", path=str(clip))), ring, pre)
        channels.append(CameraChannel(name, ring, capture))
        probe = pre.new_tensor()
        pre(np.full((64, 128, 3), level, np.uint8), probe)
        means[name] = float(probe.mean())

    dispatcher = ActionDispatcher([])
    worker = InferenceWorker("b", model, RuleEngine({}, {}), dispatcher, "test")
    results: dict[str, list[float]] = {"dark": [], "bright": []}
    original = worker.model.decode

    def recording_decode(outputs, ctx):  # type: ignore[no-untyped-def]
        dets = original(outputs, ctx)
        results[current[0]].append(float((dets.xyxy[0, 0] + dets.xyxy[0, 2]) / 2))
        return dets

    current = [""]
    finish = worker._finish

    def tracking_finish(ch, slot, outputs, seconds):  # type: ignore[no-untyped-def]
        current[0] = ch.name
        finish(ch, slot, outputs, seconds)

    worker.model.decode = recording_decode  # type: ignore[method-assign]
    worker._finish = tracking_finish  # type: ignore[method-assign]
    for ch in channels:
        worker.add_camera(ch)
        ch.capture.start()
    deadline = time.monotonic() + 20
    while any(ch.ring.pending < 4 for ch in channels) and time.monotonic() < deadline:
        time.sleep(0.01)  # both rings full before the worker starts: the first pass must batch
    worker.start()
    worker.join(30)
    assert worker.batches >= 1 and worker.processed == 24
    for name, level_mean in means.items():
        expected_cx = 2 * (32 + 20 * level_mean)  # input x -> frame x (scale 0.5, no x padding)
        assert len(results[name]) == 12
        np.testing.assert_allclose(results[name], expected_cx, atol=0.5)
    assert abs(results["dark"][0] - results["bright"][0]) > 10  # the outputs were not mixed up


def zeros(*shape: int) -> np.ndarray:
    return np.zeros(shape, np.float32)


SSD_ORDER = {"output_order": "boxes,classes,scores,count"}
SSD_OK = {"boxes": zeros(1, 4, 4), "classes": zeros(1, 4), "scores": zeros(1, 4), "count": zeros(1)}
FITS: AbstractContextManager[Any] = nullcontext()


def refused(phrase: str) -> AbstractContextManager[Any]:
    return pytest.raises(ModelError, match=phrase)


# (decoder, labels, outputs, options, expectation): each family with outputs that fit and that do not.
# Input 64x64: BlazeFace has 8*8*2 + 4*4*6 = 224 anchors, BlazePose 8*8*2 + 4*4*2 + 2*2*6 = 184.
FIT_CASES = [
    ("yolov8", 2, {"output0": zeros(1, 6, 10)}, {}, FITS),
    ("yolov8", 2, {"output0": zeros(1, 10, 6)}, {}, FITS),
    ("yolov8", 2, {"output0": zeros(1, 7, 10)}, {}, refused(r"output 0 'output0' has shape \(1, 7, 10\); the yolov8 decoder expects candidates of 4 box \+ 2 class scores of shape \(1, 6, N\)")),
    ("yolov8", 2, {"output0": zeros(1, 6, 10, 1)}, {}, refused(r"output 0 'output0' has shape \(1, 6, 10, 1\)")),
    ("yolov8", 1, {"output0": zeros(1, 11, 10)}, {"kpt_shape": [2, 3]}, FITS),
    ("yolov8", 1, {"output0": zeros(1, 8, 10)}, {"kpt_shape": [2, 3]}, refused(r"1 class scores \+ 2x3 keypoint values")),
    ("yolov5", 2, {"output0": zeros(1, 10, 7)}, {}, FITS),
    ("yolov5", 2, {"output0": zeros(1, 10, 6)}, {}, refused(r"yolov5 decoder expects candidates of 4 box \+ objectness \+ 2 class scores")),
    ("yolov10", 2, {"output0": zeros(1, 300, 6)}, {}, FITS),
    ("yolov10", 2, {"output0": zeros(1, 300, 7)}, {}, refused(r"has shape \(1, 300, 7\); the yolov10 decoder expects detections")),
    ("yolov10", 2, {"output0": zeros(300)}, {}, refused(r"has shape \(300,\)")),
    ("ssd", 2, SSD_OK, SSD_ORDER, FITS),
    ("ssd", 2, {**SSD_OK, "boxes": zeros(1, 4, 5)}, SSD_ORDER, refused(r"output 0 'boxes' has shape \(1, 4, 5\); the ssd decoder expects boxes")),
    ("ssd", 2, {**SSD_OK, "count": zeros(1, 4)}, SSD_ORDER, refused(r"output 3 'count' has shape \(1, 4\); the ssd decoder expects count")),
    ("ssd", 2, {"boxes": zeros(1, 4, 4), "classes": zeros(1, 4), "scores": zeros(1, 4)}, SSD_ORDER, refused(r"reads output 3 \(count, .*\) but the model has 3 output")),
    ("ssd", 2, {"a": zeros(1, 4, 4), "b": zeros(1, 4)}, {}, refused(r"ssd decoder expects 4 outputs")),
    ("classify", 5, {"logits": zeros(1, 5)}, {}, FITS),
    ("classify", 5, {"logits": zeros(1, 1000)}, {}, refused(r"output 0 'logits' has shape \(1, 1000\); the classify decoder expects one score per label \(5\)")),
    ("blazeface", 1, {"regressors": zeros(1, 224, 16), "classificators": zeros(1, 224, 1)}, {}, FITS),
    ("blazeface", 1, {"regressors": zeros(1, 224, 12), "classificators": zeros(1, 224, 1)}, {}, refused(r"no output fits the blazeface decoder's 224 anchors x 16 regressors")),
    ("blazepose", 1, {"regressors": zeros(1, 184, 12), "classificators": zeros(1, 184, 1)}, {}, FITS),
    ("blazepose", 1, {"regressors": zeros(1, 184, 12), "classificators": zeros(1, 100, 1)}, {}, refused(r"no output fits the blazepose decoder's 184 anchor scores .*'classificators' \(1, 100, 1\)")),
    ("db", 1, {"maps": zeros(1, 1, 64, 64)}, {}, FITS),
    ("db", 1, {"maps": zeros(1, 2, 64, 64)}, {}, refused(r"output 0 'maps' has shape \(1, 2, 64, 64\); the db decoder expects a text probability map the size of the input of shape \(1, 1, 64, 64\)")),
    ("db", 1, {"maps": zeros(1, 1, 32, 32)}, {}, refused(r"has shape \(1, 1, 32, 32\)")),
]  # fmt: skip


@pytest.mark.parametrize(
    ("decoder", "labels", "outputs", "options", "expectation"),
    FIT_CASES,
    ids=[f"{c[0]}-{i}-{'fits' if c[4] is FITS else 'refused'}" for i, c in enumerate(FIT_CASES)],
)
def test_outputs_that_do_not_fit_the_decoder_are_refused_at_load(
    decoder: str,
    labels: int,
    outputs: dict[str, np.ndarray],
    options: dict[str, Any],
    expectation: AbstractContextManager[Any],
    tmp_path: Path,
) -> None:
    constant_output_model(tmp_path / "m.onnx", outputs)
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({
        "name": "fit", "task": "detect", "decoder": decoder, "labels": [f"c{i}" for i in range(labels)],
        "input": {"size": [64, 64]}, "files": {"onnx": {"path": "m.onnx"}}, "options": options,
    }))  # fmt: skip
    with expectation as info:
        model = load_model(str(tmp_path), "onnxruntime")
    if info is None:
        model.infer(FRAME)  # what fits at load also decodes
    else:
        assert "\n" not in str(info.value) and str(tmp_path / "m.onnx") in str(info.value)


@pytest.mark.parametrize("runner", ["onnxruntime", "openvino"])
def test_ppocr_recogniser_declared_as_a_yolo_detector_is_refused_at_load(
    runner: str, models_dir: Path, tmp_path: Path
) -> None:
    """The PP-OCR recogniser (output (1, 40, 6625) at 320x48) is not a YOLO detector."""
    require_backend(runner)
    rec = models_dir / "ppocr_det" / "ch_PP-OCRv4_rec_infer.onnx"
    (tmp_path / "model.yaml").write_text(yaml.safe_dump({
        "name": "rec", "task": "detect", "decoder": "yolov8", "labels": ["a", "b"],
        "input": {"size": [320, 48]}, "files": {"onnx": {"path": str(rec)}},
    }))  # fmt: skip
    with pytest.raises(ModelError) as info:
        load_model(str(tmp_path), runner)
    msg = str(info.value)
    assert "\n" not in msg and msg.startswith(f"{rec}: output 0 "), msg
    assert "has shape (1, 40, 6625); the yolov8 decoder expects candidates of 4 box + 2 class scores" in msg


def _reference_v8(rows: np.ndarray, nc: int, threshold: float) -> list[tuple[int, int, float]]:
    """Candidate by candidate, in plain Python: (index, best class, its score) above the threshold."""
    kept = []
    for i, row in enumerate(rows.tolist()):
        scores = row[4 : 4 + nc]
        best = max(range(nc), key=lambda c: (scores[c], -c))  # first of equal scores
        if scores[best] > threshold:
            kept.append((i, best, scores[best]))
    return kept


def _v8_rows(seed: int, n: int, nc: int, kpts: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows = np.zeros((n, 4 + nc + kpts), np.float32)
    rows[:, :2] = rng.uniform(8, 56, (n, 2))
    rows[:, 2:4] = rng.uniform(2, 8, (n, 2))  # small boxes far apart: NMS keeps most
    rows[:, 4 : 4 + nc] = rng.choice(np.float32([0.0, 0.2, 0.25, 0.3, 0.6, 0.9]), (n, nc))
    rows[:, 4 + nc :] = rng.uniform(0, 64, (n, kpts))
    if nc >= 2:
        rows[3, 4:6] = [0.6, 0.6]  # a tie: the first class wins
    rows[4, 4 : 4 + nc] = 0.25  # exactly the threshold: not kept
    rows[5, 4] = np.nan  # a NaN score is never kept
    return rows


@pytest.mark.parametrize(
    ("nc", "kpt_shape", "n"),
    [(3, None, 40), (80, None, 200), (1, [2, 3], 30), (2, [3, 3], 12), (6, None, 6), (2, None, 1)],
)
def test_yolov8_decoder_reads_both_layouts_the_same(nc: int, kpt_shape: list[int] | None, n: int) -> None:
    """Ultralytics' (1, C, N) takes a class-major path and (1, N, C) a candidate-major one: the
    same candidates give the same detections either way, and the classes and scores kept are
    those a plain loop finds (ties to the first class, the threshold itself and NaN not kept)."""
    from edge.decoders.base import DecodeContext, DecodeParams
    from edge.decoders.yolo import YoloV8Decoder
    from edge.types import Letterbox

    kpts = kpt_shape[0] * kpt_shape[1] if kpt_shape else 0
    rows = _v8_rows(n, max(n, 6), nc, kpts)[:n]
    decoder = YoloV8Decoder(nc, DecodeParams(0.25, 0.99, 1000), kpt_shape)
    ctx = DecodeContext(Letterbox(1.0, 0.0, 0.0), (64, 64))
    class_major = decoder([np.ascontiguousarray(rows.T)[None]], ctx)
    row_major = decoder([rows[None]], ctx)
    for got in (class_major, row_major):
        want = _reference_v8(rows, nc, 0.25)
        found = sorted((int(c), round(float(s), 6)) for c, s in zip(got.class_id, got.score, strict=True))
        assert found == sorted((c, round(s, 6)) for _i, c, s in want)
    np.testing.assert_array_equal(class_major.xyxy, row_major.xyxy)
    np.testing.assert_array_equal(class_major.class_id, row_major.class_id)
    if kpt_shape:
        assert class_major.keypoints is not None and row_major.keypoints is not None
        np.testing.assert_array_equal(class_major.keypoints, row_major.keypoints)
