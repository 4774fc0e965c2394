"""Corrupt model files: every loading failure is a one-line ``ModelError`` naming the file and
what was expected, through ``load_model`` on each installed runner and through ``edge infer``.

Each case builds a broken package (a ``model.yaml`` naming a broken file) or a broken bare
export in a temporary folder and returns the file the message must name.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml
from conftest import REPO, require_backend
from onnx_graphs import constant_output_model, openvino_export

from edge.errors import ModelError
from edge.inference import load_model

RANDOM = np.random.default_rng(7).bytes(4096)
FORMAT_FILE = {"onnx": "m.onnx", "tflite": "m.tflite", "openvino": "m.xml"}
RUNNERS = {"onnx": ("onnxruntime", "openvino"), "tflite": ("litert", "openvino"), "openvino": ("openvino",)}


def good_file(fmt: str, dest: Path, models_dir: Path) -> Path:
    """A valid model of ``fmt`` at ``dest`` (IR: .xml and .bin)."""
    if fmt == "tflite":
        shutil.copy(models_dir / "blazeface" / "face_detection_short_range.tflite", dest)
        return dest
    onnx_file = constant_output_model(dest.with_suffix(".onnx"), {"output0": np.zeros((1, 6, 4), np.float32)})
    if fmt == "openvino":
        folder = openvino_export(onnx_file, dest.parent / "ir_openvino_model", None)
        for part in ("xml", "bin"):
            shutil.move(folder / f"ir.{part}", dest.with_suffix(f".{part}"))
        onnx_file.unlink()
    return dest


Maker = Callable[[Path, Path], Path]  # (model file path, models_dir) -> file the message names


def write(data: bytes) -> Maker:
    def make(path: Path, _models: Path) -> Path:
        path.write_bytes(data)
        return path

    return make


def cut(keep: Callable[[int], int]) -> Maker:
    """A valid file cut to its first ``keep(size)`` bytes (the IR's .xml; its .bin kept)."""

    def make(path: Path, models: Path) -> Path:
        good_file(path.suffix.lstrip(".").replace("xml", "openvino"), path, models)
        data = path.read_bytes()
        path.write_bytes(data[: keep(len(data))])
        return path

    return make


def a_directory(path: Path, _models: Path) -> Path:
    path.mkdir()
    return path


def weights(change: Callable[[Path], None]) -> Maker:
    """A valid IR whose .bin is then changed (removed, emptied, cut, replaced by a folder)."""

    def make(path: Path, models: Path) -> Path:
        good_file("openvino", path, models)
        change(path.with_suffix(".bin"))
        return path.with_suffix(".bin") if not path.with_suffix(".bin").is_file() else path

    return make


def truncate_half(p: Path) -> None:
    p.write_bytes(p.read_bytes()[: p.stat().st_size // 2])


def replace_by_dir(p: Path) -> None:
    p.unlink()
    p.mkdir()


def not_ir_xml(path: Path, models: Path) -> Path:
    good_file("openvino", path, models)
    path.write_text("<?xml version='1.0'?>\n<config><item>not a network</item></config>\n")
    return path


def onnx_external_data_missing(path: Path, _models: Path) -> Path:
    import onnx

    constant_output_model(path, {"output0": np.ones((1, 6, 400), np.float32)})
    model = onnx.load(str(path))
    onnx.save_model(model, str(path), save_as_external_data=True, location="m.onnx.data", size_threshold=0)
    (path.parent / "m.onnx.data").unlink()
    return path


def tfl3_header(path: Path, _models: Path) -> Path:
    path.write_bytes(b"\x1c\x00\x00\x00TFL3" + RANDOM)
    return path


COMMON: dict[str, tuple[Maker, str]] = {
    "empty": (write(b""), "is empty (0 bytes); expected"),
    "random-bytes": (write(RANDOM), ""),
    "text": (write(b"hello, I am not a model\n" * 20), ""),
    "truncated-100-bytes": (cut(lambda n: 100), ""),
    "truncated-half": (cut(lambda n: n // 2), ""),
    "directory": (a_directory, "is not a regular file; expected the model's"),
}
SPECIFIC: dict[str, dict[str, tuple[Maker, str]]] = {
    "onnx": {"external-data-missing": (onnx_external_data_missing, "")},
    "tflite": {"tfl3-header-then-garbage": (tfl3_header, "")},
    "openvino": {
        "bin-missing": (weights(lambda p: p.unlink()), "not found; expected the weights of OpenVINO IR"),
        "bin-empty": (weights(lambda p: p.write_bytes(b"")), "cannot read it as IR"),
        "bin-truncated": (weights(truncate_half), "cannot read it as IR"),
        "bin-is-a-directory": (weights(replace_by_dir), "is a directory; expected the weights"),
        "xml-not-ir": (not_ir_xml, "cannot read it as IR"),
    },
}
# What the message says when the case gives no phrase: the runner names the format it expected.
EXPECTED_BY_RUNNER = {
    ("onnxruntime", "onnx"): "not a readable ONNX model",
    ("openvino", "onnx"): "OpenVINO cannot read it as ONNX",
    ("litert", "tflite"): "not a readable TFLite flatbuffer",
    ("openvino", "tflite"): "OpenVINO cannot read it as TFLITE",
    ("openvino", "openvino"): "OpenVINO cannot read it as IR",
}

CASES = [
    pytest.param(fmt, runner, maker, phrase, id=f"{fmt}-{name}-{runner}")
    for fmt in FORMAT_FILE
    for name, (maker, phrase) in {**COMMON, **SPECIFIC[fmt]}.items()
    for runner in RUNNERS[fmt]
]


def package(tmp_path: Path, fmt: str, maker: Maker, models_dir: Path) -> tuple[Path, Path]:
    """A package folder whose model.yaml names a broken file; returns (folder, file to name).
    A broken IR .xml keeps a valid .bin beside it, so the .xml itself is what is tested."""
    if fmt == "openvino":
        good_file(fmt, tmp_path / FORMAT_FILE[fmt], models_dir).unlink()
    named = maker(tmp_path / FORMAT_FILE[fmt], models_dir)
    manifest = {
        "name": "broken", "task": "detect", "decoder": "yolov8", "labels": ["a", "b"],
        "input": {"size": [64, 64]}, "files": {fmt: {"path": FORMAT_FILE[fmt]}},
    }  # fmt: skip
    (tmp_path / "model.yaml").write_text(yaml.safe_dump(manifest))
    return tmp_path, named


def assert_one_line_naming(exc: BaseException, path: Path, phrase: str) -> None:
    msg = str(exc)
    assert "\n" not in msg, msg
    assert str(path) in msg, msg
    assert phrase in msg, msg


@pytest.mark.parametrize(("fmt", "runner", "maker", "phrase"), CASES)
def test_corrupt_model_file_is_a_one_line_model_error(
    fmt: str, runner: str, maker: Maker, phrase: str, tmp_path: Path, models_dir: Path
) -> None:
    require_backend(runner)
    folder, named = package(tmp_path, fmt, maker, models_dir)
    with pytest.raises(ModelError) as info:
        load_model(str(folder), runner)
    assert_one_line_naming(info.value, named, phrase or EXPECTED_BY_RUNNER[(runner, fmt)])


def two_xmls(tmp: Path) -> Path:
    folder = tmp / "two_openvino_model"
    folder.mkdir()
    (folder / "a.xml").write_text("<net/>")
    (folder / "b.xml").write_text("<net/>")
    return folder


def no_xml(tmp: Path) -> Path:
    folder = tmp / "none_openvino_model"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("task: detect\n")
    return folder


def dir_named_onnx(tmp: Path) -> Path:
    (tmp / "yolov8n.onnx").mkdir()
    return tmp / "yolov8n.onnx"


def bare(name: str, data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / name).write_bytes(data)
        return tmp / name

    return make


def manifest_text(data: bytes) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        (tmp / "model.yaml").write_bytes(data)
        return tmp / "model.yaml"

    return make


def manifest_dir(tmp: Path) -> Path:
    (tmp / "model.yaml").mkdir()
    return tmp / "model.yaml"


# (case, builder returning the reference to load (and the file to name), phrase)
BARE_CASES = [
    ("folder-with-two-xmls", two_xmls, "expected one OpenVINO .xml in the folder"),
    ("folder-without-xml", no_xml, "expected one OpenVINO .xml in the folder"),
    ("directory-named-like-onnx", dir_named_onnx, "is a directory; expected a onnx model file"),
    ("bare-onnx-empty", bare("y.onnx", b""), "is empty (0 bytes); expected an ONNX model"),
    ("bare-onnx-random", bare("y.onnx", RANDOM), "not a readable ONNX model"),
    ("bare-tflite-random", bare("y.tflite", RANDOM), "no Ultralytics metadata"),
    ("bare-engine-empty", bare("y.engine", b""), "is empty (0 bytes); expected a TensorRT engine"),
    ("unknown-suffix", bare("y.pt", RANDOM), "unknown model file type; expected"),
    (
        "manifest-binary",
        manifest_text(b"\xff\xfe\x00garbage"),
        "cannot read model manifest (byte 0 is not UTF-8)",
    ),
    ("manifest-bad-yaml", manifest_text(b"name: [x\n"), "invalid YAML in model manifest"),
    ("manifest-a-list", manifest_text(b"- a\n- b\n"), "expected a mapping (name, task, decoder"),
    ("manifest-is-a-directory", manifest_dir, "cannot read model manifest"),
    ("manifest-empty", manifest_text(b""), "Input should be a valid dictionary"),
    ("manifest-fields-missing", manifest_text(b"name: x\ntask: detect\n"), ":1: decoder: Field required; "),
]


@pytest.mark.parametrize(("build", "phrase"), [pytest.param(b, p, id=i) for i, b, p in BARE_CASES])
def test_broken_export_or_manifest_is_a_one_line_model_error(
    build: Callable[[Path], Path], phrase: str, tmp_path: Path
) -> None:
    named = build(tmp_path)
    ref = tmp_path if named.name == "model.yaml" else named
    with pytest.raises(ModelError) as info:
        load_model(str(ref), "auto")
    assert_one_line_naming(info.value, named, phrase)


def fifo_in_place_of_model(tmp: Path) -> tuple[Path, str]:
    os.mkfifo(tmp / "m.onnx")  # reading it would block until a writer comes
    (tmp / "model.yaml").write_text(yaml.safe_dump({
        "name": "f", "task": "detect", "decoder": "yolov8", "labels": ["a"], "files": {"onnx": {"path": "m.onnx"}},
    }))  # fmt: skip
    return tmp, "onnxruntime"


def cli_package(fmt: str, runner: str, data: bytes) -> Callable[[Path], tuple[Path, str]]:
    def make(tmp: Path) -> tuple[Path, str]:
        folder, _ = package(tmp, fmt, write(data), REPO / "models")
        return folder, runner

    return make


def bad_metadata(tmp: Path) -> tuple[Path, str]:
    folder = tmp / "yolov8n_openvino_model"
    folder.mkdir()
    (folder / "yolov8n.xml").write_text("<net/>")
    (folder / "metadata.yaml").write_text("task: detect\nnames: {0: person\n")
    return folder, "openvino"


def wrong_decoder(tmp: Path) -> tuple[Path, str]:
    constant_output_model(tmp / "m.onnx", {"output0": np.zeros((1, 40, 97), np.float32)})
    (tmp / "model.yaml").write_text(yaml.safe_dump({
        "name": "w", "task": "detect", "decoder": "yolov8", "labels": ["a", "b"], "files": {"onnx": {"path": "m.onnx"}},
    }))  # fmt: skip
    return tmp, "onnxruntime"


CLI_CASES = [
    pytest.param(fifo_in_place_of_model, "onnxruntime", id="fifo-onnx"),
    pytest.param(cli_package("onnx", "onnxruntime", RANDOM), "onnxruntime", id="random-onnx-onnxruntime"),
    pytest.param(cli_package("onnx", "openvino", RANDOM), "openvino", id="random-onnx-openvino"),
    pytest.param(cli_package("tflite", "litert", RANDOM), "litert", id="random-tflite-litert"),
    pytest.param(cli_package("openvino", "openvino", b"<net"), "openvino", id="xml-without-bin-openvino"),
    pytest.param(bad_metadata, "openvino", id="invalid-metadata-yaml"),
    pytest.param(wrong_decoder, "onnxruntime", id="outputs-do-not-fit-decoder"),
    pytest.param(lambda tmp: (tmp / "nothing-here.onnx", "onnxruntime"), "onnxruntime", id="no-such-model"),
]


@pytest.mark.parametrize(("build", "runner"), CLI_CASES)
def test_edge_infer_with_a_bad_model_prints_one_line(
    build: Callable[[Path], tuple[Path, str]], runner: str, tmp_path: Path
) -> None:
    require_backend(runner)
    image = tmp_path / "img.png"
    cv2.imwrite(str(image), np.zeros((48, 64, 3), np.uint8))
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    ref, runner = build(model_dir)
    proc = subprocess.run(
        [sys.executable, "-m", "edge", "infer", "--model", str(ref), "--runner", runner, str(image)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
    )
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("edge: error: ") and str(model_dir) in lines[0], lines[0]
