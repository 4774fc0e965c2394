"""``edge quantize``: the gate's figures, the head finder, the frame sources, the package it
writes and the runner selection that reads it; then the whole command on real models
(BlazePose through NNCF from its .tflite, the PP-OCR detector through ONNX Runtime QDQ and
NNCF), a quantisation broken on purpose (calibrated on a blank frame) that the gate refuses,
and the YOLO-head lesson on a YOLOv8-shaped graph (synthetic weights, tests/onnx_graphs.py):
with its head kept in float it agrees, with the head quantised it does not.

Figures are never timed: speeds are reported, not asserted. The real-model rows use
``--bar 0.9`` so that a CPU whose float reference differs (bf16 on AMX) still passes; the
closing figures at the default bar come from the same command on the CLI.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

import cv2
import numpy as np
import onnx
import pytest
import yaml
from conftest import require_backend
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import ultralytics_metadata, yolov8_like_model

from edge.cli import main
from edge.errors import BackendUnavailable, QuantizeError
from edge.inference import load_model
from edge.models import ModelPackage, read_manifest, resolve_model
from edge.quantize.gate import agreement, covered, match
from edge.quantize.head import head_nodes, is_ramp, onnx_graph
from edge.quantize.package import check_out, write_package
from edge.quantize.sources import evenly, sample_frames
from edge.runners.select import HardwareInfo, select_runner
from edge.types import Detections


def signs(folder: Path, seed: int, count: int) -> Path:
    """Real photographs (scikit-image) with printed signs on them (tools/make_signs.py)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tools"))
    from make_signs import make_signs

    return make_signs(folder, seed, count)


def dets(boxes: list[list[float]], classes: list[int] | None = None, keypoints: list | None = None) -> Detections:
    n = len(boxes)
    return Detections(
        xyxy=np.array(boxes, np.float32).reshape(n, 4),
        score=np.ones(n, np.float32),
        class_id=np.array(classes if classes is not None else [0] * n, np.int32),
        keypoints=None if keypoints is None else np.array(keypoints, np.float32),
    )


# --- the gate's figures ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("ref", "other", "pairs"),
    [
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]]), [(0, 0)]),
        (dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]], [1]), []),  # another class never matches
        (dets([[0, 0, 10, 10]]), dets([[5, 0, 15, 10]]), []),  # IoU 1/3 < 0.5
        (dets([[0, 0, 10, 10]]), dets([[2, 0, 12, 10]]), [(0, 0)]),  # IoU 2/3
        # Each detection is used once, best IoU first.
        (dets([[0, 0, 10, 10], [1, 0, 11, 10]]), dets([[1, 0, 11, 10]]), [(1, 0)]),
        (dets([]), dets([[0, 0, 1, 1]]), []),
    ],
)
def test_match_by_class_and_iou(ref: Detections, other: Detections, pairs: list[tuple[int, int]]) -> None:
    assert [(i, j) for i, j, _ in match(ref, other)] == pairs


@pytest.mark.parametrize(
    ("frames", "by_coverage", "f1", "keypoints", "score"),
    [
        ([(dets([[0, 0, 10, 10]]), dets([[0, 0, 10, 10]]))], False, 1.0, None, 1.0),
        ([(dets([[0, 0, 10, 10]]), dets([]))], False, 0.0, None, 0.0),
        # 2 matched of 3 + 2 detections: F1 = 4/5.
        ([(dets([[0, 0, 10, 10], [20, 20, 30, 30], [40, 40, 50, 50]]), dets([[0, 0, 10, 10], [20, 20, 30, 30]]))],
         False, 0.8, None, 0.8),
        ([(dets([]), dets([]))], False, 1.0, None, 1.0),  # nothing on both sides agrees
        # 20 people matched, the one car lost: pooled F1 40/41, but the car's class scores 0.
        ([(dets([[i * 20, 0, i * 20 + 10, 10] for i in range(20)] + [[0, 50, 10, 60]], [0] * 20 + [1]),
           dets([[i * 20, 0, i * 20 + 10, 10] for i in range(20)]))], False, 40 / 41, None, 0.0),
        # Keypoints: one of two moved by 0.3 of the box diagonal -> half within tolerance.
        ([(dets([[0, 0, 30, 40]], keypoints=[[[5, 5], [10, 10]]]), dets([[0, 0, 30, 40]], keypoints=[[[5, 5], [25, 10]]]))],
         False, 1.0, 0.5, 0.5),
        # Text: one line against its two words agrees by coverage although F1 sees 3 misses.
        ([(dets([[0, 0, 100, 20]]), dets([[0, 0, 45, 20], [55, 0, 100, 20]]))], True, 0.0, None, 1.0),
        ([(dets([[0, 0, 100, 20]]), dets([[0, 0, 45, 20], [200, 0, 240, 20]]))], True, 0.0, None, 1 / 3),
    ],
)  # fmt: skip
def test_agreement(frames: list, by_coverage: bool, f1: float, keypoints: float | None, score: float) -> None:
    got = agreement(frames, by_coverage=by_coverage)
    assert got.f1 == pytest.approx(f1)
    assert got.keypoints == (None if keypoints is None else pytest.approx(keypoints))
    assert got.score == pytest.approx(score)


def test_coverage_counts_boxes_half_covered() -> None:
    boxes = np.array([[0, 0, 10, 10], [20, 0, 30, 10]], np.float32)
    assert covered(boxes, np.array([[0, 0, 6, 10]], np.float32)) == 1  # 60 % of the first
    assert covered(boxes, np.array([[0, 0, 4, 10]], np.float32)) == 0  # 40 %
    assert covered(boxes, np.zeros((0, 4), np.float32)) == 0


# --- the head ---------------------------------------------------------------------------------


def dfl_graph(path: Path) -> Path:
    """A YOLOv8-style tail: learned conv -> softmax -> DFL conv (weights 0..15) -> Mul by the
    stride -> Concat with the sigmoid scores."""
    rng = np.random.default_rng(1)
    inits = [
        numpy_helper.from_array(rng.standard_normal((17, 3, 1, 1)).astype(np.float32), "w"),
        numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1), "dfl_w"),
        numpy_helper.from_array(np.array([8.0], np.float32), "stride"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["feat"], name="learned"),
        helper.make_node("Split", ["feat"], ["box", "cls"], axis=1, num_outputs=2, name="split"),
        helper.make_node("Softmax", ["box"], ["soft"], axis=1, name="softmax"),
        helper.make_node("Conv", ["soft", "dfl_w"], ["dist"], name="dfl"),
        helper.make_node("Mul", ["dist", "stride"], ["px"], name="scale"),
        helper.make_node("Sigmoid", ["cls"], ["score"], name="sigmoid"),
        helper.make_node("Concat", ["px", "score"], ["out"], axis=1, name="concat"),
    ]
    graph = helper.make_graph(
        nodes, "dfl", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 2, 4, 4])], initializer=inits,
    )  # fmt: skip
    # Split's num_outputs needs opset 18.
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


@pytest.mark.parametrize(
    ("values", "ramp"),
    [(np.arange(16), True), (np.arange(16).reshape(1, 16, 1, 1), True), (np.arange(1, 17), False),
     (np.array([0.0]), False), (np.array([0, 2, 1]), False)],
)  # fmt: skip
def test_is_ramp(values: np.ndarray, ramp: bool) -> None:
    assert is_ramp(values) is ramp


def test_head_stops_at_learned_layers_and_takes_the_dfl(tmp_path: Path) -> None:
    nodes, outputs = onnx_graph(onnx.load(str(dfl_graph(tmp_path / "dfl.onnx"))))
    assert sorted(head_nodes(nodes, outputs)) == ["concat", "dfl", "scale", "sigmoid", "softmax", "split"]


def test_head_of_the_yolov8_shaped_graph(tmp_path: Path) -> None:
    model = onnx.load(str(yolov8_like_model(tmp_path / "y.onnx")))
    for i, node in enumerate(model.graph.node):
        node.name = f"n{i}_{node.op_type}"
    nodes, outputs = onnx_graph(model)
    assert sorted(head_nodes(nodes, outputs)) == ["n1_Reshape", "n2_Add", "n3_Sigmoid", "n4_Mul", "n5_Add"]


# --- frame sources ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "count", "expected"),
    [(10, 3, [0, 5, 9]), (3, 10, [0, 1, 2]), (5, 5, [0, 1, 2, 3, 4]), (100, 1, [0])],
)
def test_evenly(total: int, count: int, expected: list[int]) -> None:
    assert evenly(total, count) == expected


def test_sample_frames_from_a_video_and_a_folder(tmp_path: Path) -> None:
    video = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"mp4v"), 10, (64, 48))
    for i in range(20):
        writer.write(np.full((48, 64, 3), i * 10, np.uint8))
    writer.release()
    frames = sample_frames(video, 4)
    assert len(frames) == 4 and frames[0].shape == (48, 64, 3)
    assert [int(f.mean() + 5) // 10 for f in frames] == [0, 6, 13, 19]  # evenly spread, in order
    folder = tmp_path / "images"
    folder.mkdir()
    for i in range(5):
        cv2.imwrite(str(folder / f"{i}.png"), np.full((8, 8, 3), i, np.uint8))
    (folder / "notes.txt").write_text("not an image")
    assert [int(f[0, 0, 0]) for f in sample_frames(folder, 3)] == [0, 2, 4]
    # Converted as read: only what convert returns is kept.
    small = sample_frames(video, 4, convert=lambda f: f[:2, :2, 0].copy())
    assert [f.shape for f in small] == [(2, 2)] * 4 and [int(f[0, 0] + 5) // 10 for f in small] == [0, 6, 13, 19]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing", "not found; expected a folder of images or a video file"),
        (lambda p: (p / "empty").mkdir() or p / "empty", "no images in the folder"),
        (lambda p: (p / "a.txt").write_text("x") and p / "a.txt", "unknown file type .txt"),
        (lambda p: (p / "bad.jpg").write_bytes(b"not a jpeg") and p / "bad.jpg", "not a readable image"),
        (lambda p: (p / "bad.mp4").write_bytes(b"not a video") and p / "bad.mp4", "bad.mp4"),
    ],
)
def test_sample_frames_errors_name_the_option_and_path(tmp_path: Path, make, message: str) -> None:
    path = make(tmp_path)
    with pytest.raises(QuantizeError, match="--calib") as err:
        sample_frames(path, 5, "--calib")
    assert message in str(err.value) and str(path) in str(err.value)


# --- selection of the int8 twin -------------------------------------------------------------

HW = HardwareInfo(
    arch="x86_64", cpu_vendor="AuthenticAMD", cpu_model="AMD EPYC", cpu_flags=("avx2",), board=None,
    is_jetson=False, is_raspberry_pi=False, backends={"onnxruntime": "1", "openvino": "1", "litert": "1"},
)  # fmt: skip


def twin_package(tmp_path: Path, report: dict | None, float_onnx: bool = True):
    base = resolve_model("ppocr_det")
    files = {"onnx": base.files["onnx"]} if float_onnx else {}
    return replace(
        base, files=MappingProxyType(files), sha256=MappingProxyType({}),
        int8_files=MappingProxyType({"onnx": tmp_path / "m.int8.onnx"}), int8_sha256=MappingProxyType({"onnx": None}),
        quantization=MappingProxyType({"onnx": MappingProxyType(report)} if report else {}),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("report", "int8", "float_onnx", "chosen_int8", "reason"),
    [
        ({"agreement": 0.97, "speedup": 1.4, "cpu": "AMD EPYC"}, None, True, True, "1.40x float's speed on this CPU"),
        ({"agreement": 0.97, "speedup": 0.7, "cpu": "AMD EPYC"}, None, True, False, "float kept"),
        ({"agreement": 0.97, "speedup": 0.7, "cpu": "Intel Xeon"}, None, True, True, "measured on Intel Xeon"),
        (None, None, True, True, "no gate report"),
        ({"agreement": 0.80, "passed": False, "speedup": 2.0, "cpu": "AMD EPYC"}, None, True, False, "failed its gate"),
        ({"agreement": 0.80, "passed": False, "speedup": 2.0, "cpu": "AMD EPYC"}, True, True, True, "int8 asked for"),
        ({"agreement": 0.97, "speedup": 1.4, "cpu": "AMD EPYC"}, False, True, False, "float asked for"),
        ({"agreement": 0.97, "speedup": 0.7, "cpu": "AMD EPYC"}, True, True, True, "int8 asked for"),
        # Only an int8 file: it runs when allowed...
        ({"agreement": 0.97, "speedup": 1.4, "cpu": "AMD EPYC"}, None, False, True, "1.40x"),
    ],
)  # fmt: skip
def test_selection_of_the_int8_twin(
    tmp_path: Path, report: dict | None, int8: bool | None, float_onnx: bool, chosen_int8: bool, reason: str
) -> None:
    sel = select_runner(twin_package(tmp_path, report, float_onnx), HW, "onnxruntime", int8)
    assert sel.int8 is chosen_int8
    assert sel.path.name == ("m.int8.onnx" if chosen_int8 else "ch_PP-OCRv4_det_infer.onnx")
    assert any(reason in r for r in sel.reasons), sel.reasons


@pytest.mark.parametrize("report", [{"agreement": 0.97, "speedup": 0.7, "cpu": "AMD EPYC"}, None])
def test_an_int8_only_format_never_runs_as_float(tmp_path: Path, report: dict | None) -> None:
    """...and when float is asked for (or the twin was measured slower), there is no float onnx
    file for ONNX Runtime to run: refused, naming what the model has."""
    pkg = twin_package(tmp_path, report, float_onnx=False)
    with pytest.raises(BackendUnavailable, match="int8 twins only run when allowed"):
        select_runner(pkg, HW, "onnxruntime", False if report is None else None)


def pose_twin(tmp_path: Path, report: dict) -> ModelPackage:
    """BlazePose as `edge quantize --to openvino-int8` leaves it: a float .tflite, an int8 IR."""
    base = resolve_model("blazepose")
    return replace(
        base, int8_files=MappingProxyType({"openvino": tmp_path / "pose.int8.xml"}),
        int8_sha256=MappingProxyType({"openvino": None}),
        quantization=MappingProxyType({"openvino": MappingProxyType(report)}),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("report", "int8", "backend", "file"),
    [
        # On an AMD PC auto would run the .tflite on LiteRT; the twin moves OpenVINO first.
        ({"agreement": 0.96, "speedup": 1.3, "cpu": "AMD EPYC"}, None, "openvino", "pose.int8.xml"),
        ({"agreement": 0.96, "speedup": 1.3, "cpu": "AMD EPYC"}, True, "openvino", "pose.int8.xml"),
        ({"agreement": 0.96, "speedup": 1.3, "cpu": "AMD EPYC"}, False, "litert", "pose_detection.tflite"),
        ({"agreement": 0.96, "speedup": 0.5, "cpu": "AMD EPYC"}, None, "litert", "pose_detection.tflite"),
        ({"agreement": 0.60, "passed": False, "cpu": "AMD EPYC"}, None, "litert", "pose_detection.tflite"),
    ],
)  # fmt: skip
def test_auto_runs_the_twin_on_a_backend_that_reads_it(
    tmp_path: Path, report: dict, int8: bool | None, backend: str, file: str
) -> None:
    sel = select_runner(pose_twin(tmp_path, report), HW, "auto", int8)
    assert (sel.backend, sel.path.name) == (backend, file), sel.reasons
    # A runner asked for by name reads the float .tflite when the twin may not run.
    named = select_runner(pose_twin(tmp_path, report), HW, "openvino", int8)
    assert named.path.name == ("pose.int8.xml" if backend == "openvino" else "pose_detection.tflite")


# --- the package --------------------------------------------------------------------------------


def test_package_is_written_merged_and_pinned(tmp_path: Path) -> None:
    base = resolve_model("ppocr_det")
    out = tmp_path / "pkg"
    for fmt, name in (("onnx", "a.onnx"), ("openvino", "b.xml")):
        scratch = tmp_path / name
        scratch.write_bytes(b"int8 " + fmt.encode())
        if fmt == "openvino":
            scratch.with_suffix(".bin").write_bytes(b"weights")
        write_package(base, out, fmt, base.files["onnx"], scratch, {"agreement": 0.97, "passed": True})
    pkg = read_manifest(out / "model.yaml")
    assert pkg.name == "ppocr_det-int8" and pkg.task == "ocr-det" and pkg.input == base.input
    assert set(pkg.files) == {"onnx"} and set(pkg.int8_files) == {"onnx", "openvino"}
    twin = pkg.int8_files["openvino"]
    assert twin.name.startswith("ch_PP-OCRv4_det_infer.int8-") and twin.suffix == ".xml"
    assert twin.with_suffix(".bin").read_bytes() == b"weights"
    for fmt in pkg.int8_files:
        assert pkg.verified_file(fmt, int8=True).exists()  # sha256 pinned and matching
    assert pkg.verified_file("onnx") == out / "ch_PP-OCRv4_det_infer.onnx"
    assert pkg.quantization["onnx"]["agreement"] == 0.97
    pkg.int8_files["onnx"].write_bytes(b"tampered")
    with pytest.raises(Exception, match="sha256 is"):
        pkg.verified_file("onnx", int8=True)
    # A new twin replaces the old one: new files first, then the manifest, then the old files go.
    scratch = tmp_path / "c.xml"
    scratch.write_bytes(b"int8 openvino, again")
    scratch.with_suffix(".bin").write_bytes(b"new weights")
    write_package(base, out, "openvino", base.files["onnx"], scratch, {"agreement": 0.98})
    again = read_manifest(out / "model.yaml")
    assert again.int8_files["openvino"] != twin and not twin.exists() and not twin.with_suffix(".bin").exists()
    assert again.verified_file("openvino", int8=True).read_bytes() == b"int8 openvino, again"


@pytest.mark.parametrize(
    ("other", "make_out", "message"),
    [
        ("blazeface", None, "holds a package of 'ppocr_det-int8' whose float files are not face_detection_short_range.tflite"),
        ("ppocr_det", "file", "is not a folder"),
        ("ppocr_det", "stray", "the folder has files but no model.yaml"),
    ],
)  # fmt: skip
def test_out_must_fit_the_model(tmp_path: Path, other: str, make_out: str | None, message: str) -> None:
    base = resolve_model("ppocr_det")
    out = tmp_path / "pkg"
    scratch = tmp_path / "a.onnx"
    scratch.write_bytes(b"x")
    if make_out is None:
        write_package(base, out, "onnx", base.files["onnx"], scratch, {})
    elif make_out == "file":
        out.write_text("a file")
    else:
        out.mkdir()
        (out / "notes.txt").write_text("mine")
    model = resolve_model(other)
    source = next(iter(model.files.values()))
    with pytest.raises(QuantizeError, match="--out") as err:
        check_out(out, model, source)
    assert message in str(err.value)


def test_package_refuses_to_merge_into_a_broken_manifest(tmp_path: Path) -> None:
    out = tmp_path / "pkg"
    out.mkdir()
    (out / "model.yaml").write_text("name: x\ntask: nonsense\n")
    scratch = tmp_path / "a.onnx"
    scratch.write_bytes(b"x")
    base = resolve_model("ppocr_det")
    with pytest.raises(Exception, match=r"model\.yaml"):
        write_package(base, out, "onnx", base.files["onnx"], scratch, {})
    assert sorted(p.name for p in out.iterdir()) == ["model.yaml"]


# --- the command on real models ---------------------------------------------------------------


@pytest.fixture(scope="module")
def sign_sets(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("signs")
    return signs(root / "calib", 1, 60), signs(root / "eval", 2, 20)


def quantize(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict | None, str]:
    code = main(["quantize", *argv, "--json"])
    out, err = capsys.readouterr()
    return code, json.loads(out) if out.strip() else None, err


def test_blazepose_to_openvino_int8_passes_and_runs(
    tmp_path: Path, demo_clip: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    require_backend("openvino")
    out = tmp_path / "bp"
    code, report, err = quantize(
        capsys, "blazepose", "--calib", str(demo_clip), "--eval", str(demo_clip), "--calib-frames", "60",
        "--eval-frames", "60", "--bar", "0.9", "--out", str(out),
    )  # fmt: skip
    assert code == 0, err
    assert report is not None and report["passed"] and report["agreement"] >= 0.9
    assert report["keypoints"] is not None and report["float_detections"] > 10
    assert report["runner"] == "openvino" and report["float_ms"] > 0 and report["int8_ms"] > 0
    assert report["kept_float"] > 0 and report["float_file"] == "pose_detection.tflite"
    pkg = read_manifest(out / "model.yaml")
    assert set(pkg.files) == {"tflite"} and set(pkg.int8_files) == {"openvino"}
    # The twin is what OpenVINO runs now, and it still finds the astronaut.
    model = load_model(str(out), "openvino")
    try:
        assert model.selection.int8 and model.selection.path.name.startswith("pose_detection.int8-")
        cap = cv2.VideoCapture(str(demo_clip))
        cap.set(cv2.CAP_PROP_POS_FRAMES, 200)
        ok, frame = cap.read()
        cap.release()
        assert ok and len(model.infer(frame)) == 1
    finally:
        model.close()
    assert main(["probe", "--model", str(out), "--runner", "openvino"]) == 0
    assert "(int8)" in capsys.readouterr().out


def test_ppocr_to_onnx_and_openvino_int8_in_one_package(
    tmp_path: Path, sign_sets: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    require_backend("openvino")
    calib, evaluation = sign_sets
    out = tmp_path / "ocr"
    for target in ("onnx-int8", "openvino-int8"):
        code, report, err = quantize(
            capsys, "ppocr_det", "--to", target, "--calib", str(calib), "--eval", str(evaluation),
            "--bar", "0.9", "--out", str(out),
        )  # fmt: skip
        assert code == 0, err
        assert report is not None and report["coverage"] >= 0.9 and report["int8_bytes"] < report["float_bytes"]
    pkg = read_manifest(out / "model.yaml")
    assert set(pkg.int8_files) == {"onnx", "openvino"}
    assert set(pkg.quantization) == {"onnx", "openvino"}
    assert pkg.quantization["onnx"]["runner"] == "onnxruntime"


def test_a_broken_quantisation_is_refused_with_its_figures(
    tmp_path: Path, sign_sets: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """Calibrated on one blank frame, every activation range is wrong for real text."""
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "white.png"), np.full((480, 640, 3), 255, np.uint8))
    out = tmp_path / "never"
    code, report, err = quantize(
        capsys, "ppocr_det", "--to", "onnx-int8", "--calib", str(blank), "--eval", str(sign_sets[1]),
        "--out", str(out),
    )  # fmt: skip
    assert code == 3
    assert report is not None and not report["passed"] and report["agreement"] < 0.5
    assert "is below --bar 0.95: nothing written" in err
    assert not out.exists()


def yolo_like(tmp_path: Path) -> Path:
    meta = {k: v if isinstance(v, str) else json.dumps(v) for k, v in ultralytics_metadata(["person", "car"], 96).items()}
    return yolov8_like_model(tmp_path / "yolo_like.onnx", size=96, stride=8, metadata=meta)


def test_the_yolo_head_lesson(tmp_path: Path, sign_sets: tuple[Path, Path], capsys: pytest.CaptureFixture[str]) -> None:
    """Box coordinates (0-96) and scores (0-1) share one tensor: one int8 scale for both blurs
    the scores. With the head in float the twin agrees; with the head quantised it is refused."""
    model = yolo_like(tmp_path)
    calib, evaluation = sign_sets
    common = ["--to", "onnx-int8", "--calib", str(calib), "--eval", str(evaluation), "--calib-frames", "10", "--eval-frames", "10"]
    code, kept, err = quantize(capsys, str(model), *common, "--out", str(tmp_path / "kept"))
    assert code == 0, err
    code, wiped, err = quantize(capsys, str(model), *common, "--quantize-head", "--out", str(tmp_path / "wiped"))
    assert code == 3 and not (tmp_path / "wiped").exists()
    assert kept is not None and wiped is not None
    assert kept["kept_float"] == 5 and wiped["kept_float"] == 0
    assert kept["agreement"] >= 0.99 and wiped["agreement"] < 0.95
    # --force writes it anyway, marked as forced.
    code, forced, _ = quantize(capsys, str(model), *common, "--quantize-head", "--force", "--out", str(tmp_path / "wiped"))
    assert code == 0 and forced is not None and forced["forced"]
    assert read_manifest(tmp_path / "wiped" / "model.yaml").quantization["onnx"]["forced"] is True


def test_check_gates_an_int8_file_made_elsewhere(
    tmp_path: Path, sign_sets: tuple[Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    model = yolo_like(tmp_path)
    calib, evaluation = sign_sets
    code, _, err = quantize(
        capsys, str(model), "--to", "onnx-int8", "--calib", str(calib), "--eval", str(evaluation),
        "--calib-frames", "10", "--eval-frames", "10", "--out", str(tmp_path / "made"),
    )  # fmt: skip
    assert code == 0, err
    made = read_manifest(tmp_path / "made" / "model.yaml").int8_files["onnx"]
    code, report, err = quantize(
        capsys, str(model), "--check", str(made), "--eval", str(evaluation), "--eval-frames", "10",
        "--out", str(tmp_path / "checked"),
    )  # fmt: skip
    assert code == 0, err
    assert report is not None and report["checked"] == str(made) and report["calibration"] is None
    pkg = read_manifest(tmp_path / "checked" / "model.yaml")
    assert pkg.labels == ("person", "car") and pkg.decoder == "yolov8"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["blazepose", "--to", "onnx-int8", "--calib", "{clip}", "--eval", "{clip}"],
         "quantises a onnx file; model 'blazepose' has tflite (--to openvino-int8 reads .tflite and ONNX too)"),
        (["blazepose", "--eval", "{clip}"], "--calib is required"),
        (["blazepose", "--check", "{tmp}/m.bin", "--eval", "{clip}"], "expected an .onnx, .xml or .tflite int8 model"),
        (["blazepose", "--check", "{tmp}/m.onnx", "--eval", "{clip}"], "has no float onnx file to compare it with"),
        (["no_such_model", "--calib", "{clip}", "--eval", "{clip}"], "model 'no_such_model' not found"),
        (["blazepose", "--check", "{tmp}/nothere.tflite", "--eval", "{clip}"], "--check {tmp}/nothere.tflite: not found"),
        (["blazepose", "--check", "{tmp}/m.tflite", "--calib", "{clip}", "--eval", "{clip}"], "--calib is not used with it"),
        (["blazepose", "--check", "{float}", "--eval", "{clip}"], "is the float file itself (pose_detection.tflite)"),
        (["blazepose", "--calib", "{clip}", "--eval", "{clip}", "--out", "{tmp}/m.bin"], "--out {tmp}/m.bin: is not a folder"),
    ],
)  # fmt: skip
def test_errors_are_one_line(
    tmp_path: Path, demo_clip: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    for name in ("m.bin", "m.onnx", "m.tflite"):
        (tmp_path / name).write_bytes(b"x")
    float_file = resolve_model("blazepose").files["tflite"]
    args = [a.format(clip=demo_clip, tmp=tmp_path, float=float_file) for a in argv]
    message = message.format(tmp=tmp_path)
    assert main(["quantize", *args]) == 1
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_eval_frames_without_objects_are_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    require_backend("openvino")
    blank = tmp_path / "blank"
    blank.mkdir()
    cv2.imwrite(str(blank / "grey.png"), np.full((240, 320, 3), 128, np.uint8))
    assert main(["quantize", "blazepose", "--calib", str(blank), "--eval", str(blank)]) == 1
    assert "the float model found nothing in 1 frame(s); the gate needs frames that show person" in capsys.readouterr().err


def test_manifest_yaml_round_trips_the_report(tmp_path: Path) -> None:
    base = resolve_model("ppocr_det")
    scratch = tmp_path / "a.onnx"
    scratch.write_bytes(b"x")
    report = {"agreement": 0.9, "evaluation": {"source": "x", "frames": 3}, "keypoints": None}
    path = write_package(base, tmp_path / "p", "onnx", base.files["onnx"], scratch, report)
    stored = yaml.safe_load(path.read_text())["quantization"]["onnx"]
    assert stored == {**report, "int8_file": read_manifest(path).int8_files["onnx"].name}
