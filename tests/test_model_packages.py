"""Model packages: a wrong sha256, a missing file, an unreadable model, or a bad manifest is a
clear error naming the file and what was expected; Ultralytics OpenVINO exports (unnamed output
tensors, ``metadata.yaml``) load and match their ONNX twin."""

from __future__ import annotations

import shutil
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from conftest import require_backend
from onnx_graphs import (
    constant_output_model,
    openvino_export,
    ultralytics_metadata,
    yolov8_like_model,
    yolov8_like_tflite,
)

from edge.errors import ModelError
from edge.inference import LoadedModel, load_model
from edge.models import read_manifest, resolve_model
from edge.runners.base import RunnerOptions, backend_version


def copy_package(models_dir: Path, name: str, dest: Path) -> Path:
    shutil.copytree(models_dir / name, dest / name)
    return dest / name


def test_wrong_sha256_names_file_and_expected_hash(models_dir: Path, tmp_path: Path) -> None:
    pkg = copy_package(models_dir, "blazeface", tmp_path)
    model = pkg / "face_detection_short_range.tflite"
    data = bytearray(model.read_bytes())
    data[1000] ^= 0xFF  # one flipped byte
    model.write_bytes(bytes(data))
    with pytest.raises(ModelError) as info:
        load_model(str(pkg), "litert")
    msg = str(info.value)
    assert str(model) in msg
    assert "expected bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8" in msg
    assert "edge models fetch" in msg


def test_missing_file_says_how_to_get_it(models_dir: Path, tmp_path: Path) -> None:
    pkg = copy_package(models_dir, "blazepose", tmp_path)
    (pkg / "pose_detection.tflite").unlink()
    with pytest.raises(
        ModelError, match=r"files\.tflite: .*pose_detection\.tflite is missing; run `edge models fetch`"
    ):
        load_model(str(pkg), "litert")


@pytest.mark.parametrize(
    ("runner", "fmt", "filename", "expected"),
    [
        ("litert", "tflite", "m.tflite", "not a readable TFLite flatbuffer"),
        ("onnxruntime", "onnx", "m.onnx", "not a readable ONNX model"),
        ("openvino", "onnx", "m.onnx", "OpenVINO cannot read it as ONNX"),
        ("openvino", "tflite", "m.tflite", "OpenVINO cannot read it as TFLITE"),
    ],
)
def test_unreadable_model_names_file_and_format(
    runner: str, fmt: str, filename: str, expected: str, tmp_path: Path
) -> None:
    require_backend(runner)
    (tmp_path / filename).write_bytes(b"this is not a model" * 10)
    manifest = {
        "name": "junk",
        "task": "detect",
        "decoder": "yolov8",
        "labels": ["a"],
        "files": {fmt: {"path": filename}},
    }
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError) as info:
        load_model(str(tmp_path), runner)
    assert str(tmp_path / filename) in str(info.value) and expected in str(info.value)


def test_manifest_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text(
        "name: x\ntask: detect\ndecoder: yolo9\nlabels: [a]\nfiles:\n  onnx:\n    path: m.onnx\n    sha256: abc\n"
    )
    with pytest.raises(ModelError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert f"{path}:3: decoder: Input should be" in msg
    assert f"{path}:8: files.onnx.sha256: String should match pattern" in msg


def test_unknown_model_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model 'nosuch' not found: .* in .*models"):
        resolve_model("nosuch", [tmp_path / "models"])


def test_bare_export_without_metadata_asks_for_a_manifest(tmp_path: Path) -> None:
    path = constant_output_model(tmp_path / "plain.onnx", {"out": np.zeros((1, 6, 10), np.float32)})
    with pytest.raises(ModelError, match=r"no Ultralytics metadata .* write a model\.yaml"):
        resolve_model(str(path))


@pytest.fixture(scope="module")
def ultralytics_exports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One YOLOv8-shaped detector exported the ways Ultralytics 8.4 does: ONNX with
    ``metadata_props``, ``yolov8n_openvino_model/`` (IR with unnamed output tensors, or with
    unnamed inputs too, plus ``metadata.yaml``) and TFLite with its metadata zip appended."""
    d = tmp_path_factory.mktemp("exports")
    meta = ultralytics_metadata(["person", "car"], 64)
    onnx_file = yolov8_like_model(d / "yolov8n.onnx", metadata={k: str(v) for k, v in meta.items()})
    exports = {"onnx": onnx_file, "tflite": yolov8_like_tflite(d / "yolov8n_float32.tflite", metadata=meta)}
    if backend_version("openvino") is not None:
        exports["openvino"] = openvino_export(onnx_file, d / "yolov8n_openvino_model", meta)
        exports["openvino-unnamed-inputs"] = openvino_export(
            onnx_file, d / "all" / "yolov8n_openvino_model", meta, unnamed_inputs=True
        )
    return exports


@pytest.mark.parametrize(
    ("export", "runner"),
    [
        ("openvino", "openvino"),
        ("openvino-unnamed-inputs", "openvino"),
        ("tflite", "litert"),
        ("tflite", "openvino"),
    ],
)
def test_ultralytics_export_matches_its_onnx_twin(
    export: str, runner: str, ultralytics_exports: dict[str, Path], astronaut: np.ndarray
) -> None:
    """Each export loads from its own metadata and gives the ONNX export's detections (OpenVINO
    in f32). The OpenVINO exports' output tensors have no names, as in Ultralytics 8.4."""
    require_backend(runner)
    options = RunnerOptions(precision="f32") if runner == "openvino" else RunnerOptions()
    model = load_model(str(ultralytics_exports[export]), runner, options=options)
    twin = load_model(str(ultralytics_exports["onnx"]), "onnxruntime")
    assert model.package.labels == ("person", "car") and model.package.decoder == "yolov8"
    assert model.input_format.width == model.input_format.height == 64
    if runner == "openvino":
        assert [o.name for o in model.runner.outputs] == ["output0"]

    raw = model.run_tensor(prepared(model, astronaut))[0]
    raw_twin = twin.run_tensor(prepared(twin, astronaut))[0]
    assert raw.shape == raw_twin.shape == (1, 6, 64)
    np.testing.assert_allclose(raw, raw_twin, atol=1e-4)
    if runner == "openvino":  # the pipeline's path: the async queue, fed by the input spec's name
        jobs = model.runner.async_infer(1)  # type: ignore[attr-defined]
        jobs.submit({model.input_spec.name: prepared(model, astronaut)}, 0)
        np.testing.assert_allclose(jobs.wait(0, 30)[0], raw_twin, atol=1e-4)

    a, b = twin.infer(astronaut), model.infer(astronaut)
    assert len(a) == len(b) > 5
    np.testing.assert_allclose(b.xyxy, a.xyxy, atol=0.05)  # frame pixels (512 / 64 = 8x the input)
    np.testing.assert_allclose(b.score, a.score, atol=1e-4)
    assert b.class_id.tolist() == a.class_id.tolist()


def prepared(model: LoadedModel, frame: np.ndarray) -> np.ndarray:
    pre = model.preprocessor()
    tensor = pre.new_tensor()
    pre(frame, tensor)
    return tensor


GOOD_META = ultralytics_metadata(["person", "car"], 64)


def meta_with(**changes: Any) -> dict[str, Any]:
    return {**GOOD_META, **changes}


@pytest.mark.parametrize(
    ("content", "expectation", "phrase"),
    [
        (yaml.safe_dump(GOOD_META), nullcontext(), ""),
        (yaml.safe_dump(meta_with(imgsz=64)), nullcontext(), ""),
        ("task: detect\nnames: {0: person\n", pytest.raises(ModelError), ":3: invalid YAML"),
        ("task: detect\n\tnames: [a]\n", pytest.raises(ModelError), ":2: invalid YAML"),
        (
            "- person\n- car\n",
            pytest.raises(ModelError),
            "expected Ultralytics export metadata (a YAML mapping",
        ),
        ("just a sentence\n", pytest.raises(ModelError), "got a str"),
        (b"\xff\xfe\x00\x01", pytest.raises(ModelError), "cannot read it (byte 0 is not UTF-8)"),
        (yaml.safe_dump(meta_with(names=5)), pytest.raises(ModelError), "'names' must map class indices"),
        (
            yaml.safe_dump(meta_with(names={"x": "a"})),
            pytest.raises(ModelError),
            "'names' must map class indices",
        ),
        (yaml.safe_dump(meta_with(names=[])), pytest.raises(ModelError), "got list []"),
        (
            yaml.safe_dump(meta_with(imgsz="big")),
            pytest.raises(ModelError),
            "'imgsz' must be [height, width]",
        ),
        (yaml.safe_dump(meta_with(imgsz=[64])), pytest.raises(ModelError), "'imgsz' must be [height, width]"),
        (
            yaml.safe_dump(meta_with(imgsz=[64, -1])),
            pytest.raises(ModelError),
            "'imgsz' must be [height, width]",
        ),
        (
            yaml.safe_dump(meta_with(task="segment")),
            pytest.raises(ModelError),
            "'task' 'segment' is not supported",
        ),
        (yaml.safe_dump(meta_with(task="pose")), pytest.raises(ModelError), "needs metadata 'kpt_shape'"),
        (
            yaml.safe_dump(meta_with(task="pose", kpt_shape=[17])),
            pytest.raises(ModelError),
            "'kpt_shape' must be",
        ),
        (None, pytest.raises(ModelError), "cannot read it (Is a directory)"),
    ],
    ids=[
        "valid",
        "valid-square-int-imgsz",
        "unclosed-flow-mapping",
        "tab-indent",
        "a-list",
        "a-string",
        "not-utf8",
        "names-an-int",
        "names-not-indices",
        "names-empty",
        "imgsz-a-word",
        "imgsz-one-value",
        "imgsz-negative",
        "task-segment",
        "pose-without-kpt-shape",
        "kpt-shape-one-value",
        "a-directory",
    ],
)
def test_openvino_export_metadata_errors_name_the_file(
    content: str | bytes | None, expectation: AbstractContextManager[Any], phrase: str, tmp_path: Path
) -> None:
    folder = tmp_path / "yolov8n_openvino_model"
    folder.mkdir()
    (folder / "yolov8n.xml").write_text("<net/>")  # not read: metadata comes first
    meta = folder / "metadata.yaml"
    if content is None:
        meta.mkdir()
    elif isinstance(content, bytes):
        meta.write_bytes(content)
    else:
        meta.write_text(content)
    with expectation as info:
        package = resolve_model(str(folder))
    if info is None:
        assert package.labels == ("person", "car") and package.input.size == (64, 64)
    else:
        msg = str(info.value)
        assert "\n" not in msg and msg.startswith(str(meta)) and phrase in msg, msg


@pytest.mark.parametrize(
    ("changes", "phrase"),
    [
        ({"imgsz": "['a', 'b']"}, "'imgsz' must be [height, width]"),
        ({"names": "5"}, "'names' must map class indices"),
        ({"task": "pose", "kpt_shape": "5"}, "'kpt_shape' must be [keypoints, 2 or 3]"),
        ({"task": "['detect']"}, "is not supported"),
    ],
)
def test_onnx_export_metadata_of_the_wrong_type_is_a_model_error(
    changes: dict[str, str], phrase: str, tmp_path: Path
) -> None:
    meta = {"task": "detect", "imgsz": "[64, 64]", "names": "{0: 'person'}", **changes}
    path = constant_output_model(
        tmp_path / "y.onnx", {"output0": np.zeros((1, 5, 4), np.float32)}, metadata=meta
    )
    with pytest.raises(ModelError) as info:
        resolve_model(str(path))
    assert "\n" not in str(info.value) and str(path) in str(info.value) and phrase in str(info.value)


@pytest.mark.parametrize(
    ("manifest", "expected"),
    [
        ("name: x\nlabels: " + "[" * 200 + "]" * 200, "nested deeper than 64 levels"),
        ("a: &a [*a]\n", "recursive"),
        ("name: x\nname: y\n", "duplicate"),
    ],
)
def test_hostile_manifest_yaml_is_one_line_error(tmp_path: Path, manifest: str, expected: str) -> None:
    """A model.yaml goes through the config's bounded YAML reader (no RecursionError, no hang)."""
    (tmp_path / "model.yaml").write_text(manifest)
    with pytest.raises(ModelError) as info:
        read_manifest(tmp_path / "model.yaml")
    assert expected in str(info.value) and "\n" not in str(info.value) and str(tmp_path) in str(info.value)


def test_model_path_with_unknown_home_is_a_model_error() -> None:
    with pytest.raises(ModelError, match="nosuchuser"):
        resolve_model("~nosuchuser/m.onnx")
