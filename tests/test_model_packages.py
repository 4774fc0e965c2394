"""Model packages: a wrong sha256, a missing file, an unreadable model, or a bad manifest is a
clear error naming the file and what was expected."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from conftest import require_backend

from edge.errors import ModelError
from edge.inference import load_model
from edge.models import read_manifest, resolve_model


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
    with pytest.raises(ModelError, match=r"files\.tflite: .*pose_detection\.tflite is missing; run `edge models fetch`"):
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
def test_unreadable_model_names_file_and_format(runner: str, fmt: str, filename: str, expected: str, tmp_path: Path) -> None:
    require_backend(runner)
    (tmp_path / filename).write_bytes(b"this is not a model" * 10)
    manifest = {"name": "junk", "task": "detect", "decoder": "yolov8", "labels": ["a"],
                "files": {fmt: {"path": filename}}}
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    with pytest.raises(ModelError) as info:
        load_model(str(tmp_path), runner)
    assert str(tmp_path / filename) in str(info.value) and expected in str(info.value)


def test_manifest_errors_name_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "model.yaml"
    path.write_text("name: x\ntask: detect\ndecoder: yolo9\nlabels: [a]\nfiles:\n  onnx:\n    path: m.onnx\n    sha256: abc\n")
    with pytest.raises(ModelError) as info:
        read_manifest(path)
    msg = str(info.value)
    assert f"{path}:3: decoder: Input should be" in msg
    assert f"{path}:8: files.onnx.sha256: String should match pattern" in msg


def test_unknown_model_lists_where_it_looked(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"model 'nosuch' not found: .* in .*models"):
        resolve_model("nosuch", [tmp_path / "models"])


def test_bare_export_without_metadata_asks_for_a_manifest(tmp_path: Path) -> None:
    import numpy as np
    from onnx_graphs import constant_output_model

    path = constant_output_model(tmp_path / "plain.onnx", {"out": np.zeros((1, 6, 10), np.float32)})
    with pytest.raises(ModelError, match=r"no Ultralytics metadata .* write a model\.yaml"):
        resolve_model(str(path))
