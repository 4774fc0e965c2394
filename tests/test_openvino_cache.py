"""OpenVINO's compiled models kept in ``<state_dir>/openvino``: the first load compiles and
keeps the compiled model, the next imports it and gives the same outputs; other settings make
another entry and replace the old one; a broken entry is kept aside as evidence and compiled
again; a cache that cannot be written only costs speed. Real OpenVINO on the real BlazeFace
(.tflite, with preprocessing folded in) and a YOLOv8-shaped ONNX."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_backend
from onnx_graphs import ultralytics_metadata, yolov8_like_model

from edge.buffer.preprocess import InputFormat
from edge.config.schema import ModelConfig
from edge.inference import runner_options
from edge.runners.base import RunnerOptions
from edge.runners.openvino import OpenVinoRunner

BLAZEFACE = InputFormat(128, 128, "rgb", mean=(127.5,) * 3, std=(127.5,) * 3)
YOLO = InputFormat(64, 64, "rgb")


def _blazeface(models_dir: Path, _tmp: Path) -> tuple[Path, InputFormat]:
    return models_dir / "blazeface" / "face_detection_short_range.tflite", BLAZEFACE


def _yolo(_models: Path, tmp: Path) -> tuple[Path, InputFormat]:
    meta = {k: str(v) for k, v in ultralytics_metadata(["a", "b"], 64).items()}
    return yolov8_like_model(tmp / "yolo.onnx", num_classes=2, size=64, metadata=meta), YOLO


MODELS = [pytest.param(_blazeface, id="blazeface-tflite"), pytest.param(_yolo, id="yolov8-shaped-onnx")]


def _frame(fmt: InputFormat, seed: int = 3) -> np.ndarray:
    """A textured BGR image of the model's input size, as the runner takes it."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 255, (fmt.height // 4, fmt.width // 4, 3), dtype=np.uint8)
    return cv2.resize(small, (fmt.width, fmt.height))


def _feed(runner: OpenVinoRunner, image: np.ndarray, fmt: InputFormat) -> dict[str, np.ndarray]:
    spec = runner.inputs[0]
    if runner.takes_bgr8:
        return {spec.name: image[None]}
    rgb = image[..., ::-1] if fmt.color == "rgb" else image
    x = (rgb.astype(np.float32) - np.array(fmt.mean, np.float32)) / np.array(fmt.std, np.float32)
    return {spec.name: (x[None] if spec.layout == "NHWC" else x.transpose(2, 0, 1)[None]).copy()}


def _entries(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _written(folder: Path) -> dict[str, tuple[int, int]]:
    """Each file's inode and modification time: a file written again changes them."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir()}


def _flip_a_byte(blob: Path) -> None:
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF  # in the weights: OpenVINO itself would import it
    blob.write_bytes(bytes(data))


def _edit_meta(meta: Path, **changes: object) -> None:
    meta.write_text(json.dumps({**json.loads(meta.read_text()), **changes}))


@pytest.mark.parametrize("make", MODELS)
def test_the_next_load_imports_the_compiled_model(
    make: Callable[[Path, Path], tuple[Path, InputFormat]],
    models_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_backend("openvino")
    path, fmt = make(models_dir, tmp_path)
    cache = tmp_path / "state" / "openvino"
    options = RunnerOptions(preprocess=fmt, openvino_cache=cache)
    image = _frame(fmt)
    caplog.set_level(logging.INFO, logger="edge.runners")

    first = OpenVinoRunner(path, options)
    assert first.takes_bgr8  # preprocessing folded in before the model was kept
    names = _entries(cache)
    assert len(names) == 2 and names[0].endswith(".blob") and names[1].endswith(".json")
    meta = json.loads((cache / names[1]).read_text())
    assert meta["takes_bgr8"] is True and meta["source"] == str(path.resolve())
    assert meta["facts"]["preprocess"] == [fmt.color, list(fmt.mean), list(fmt.std)]
    assert meta["blob_bytes"] == (cache / names[0]).stat().st_size
    assert any("kept in" in r.getMessage() for r in caplog.records)
    expected = first.run(_feed(first, image, fmt))
    kept = _written(cache)
    caplog.clear()

    second = OpenVinoRunner(path, options)
    assert any("imported from" in r.getMessage() for r in caplog.records)
    assert second.takes_bgr8 and second.inputs == first.inputs and second.outputs == first.outputs
    got = second.run(_feed(second, image, fmt))
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    assert _written(cache) == kept  # imported, not written again

    # without preprocessing in the graph: another entry beside the first
    plain = OpenVinoRunner(path, RunnerOptions(preprocess=fmt, graph_preprocess=False, openvino_cache=cache))
    assert not plain.takes_bgr8
    assert len(_entries(cache)) == 4 and set(names) < set(_entries(cache))
    for a, b in zip(expected, plain.run(_feed(plain, image, fmt)), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-3 * max(1.0, float(np.abs(a).max())))


def test_the_newest_entries_of_a_model_file_are_kept(models_dir: Path, tmp_path: Path) -> None:
    """Up to KEEP entries per model file (two models on one file with other settings do not
    evict each other); the oldest go, with their evidence."""
    require_backend("openvino")
    path, fmt = _blazeface(models_dir, tmp_path)
    cache = tmp_path / "openvino"
    stems = []
    for threads in (1, 2, 3, 4):
        OpenVinoRunner(path, RunnerOptions(preprocess=fmt, threads=threads, openvino_cache=cache))
        stems.append(max(cache.glob("*.json"), key=lambda p: p.stat().st_mtime_ns).stem)
        if threads == 1:
            (cache / f"{stems[0]}.blob.corrupt").write_bytes(b"evidence of an older failure")
    assert len(set(stems)) == 4
    assert _entries(cache) == sorted(f"{stem}.{ext}" for stem in stems[1:] for ext in ("blob", "json"))


# (case, what is done to the kept files, phrase of the warning, the file set aside)
BROKEN = [
    (
        "blob-garbage",
        lambda blob, meta: blob.write_bytes(b"not a compiled model" * 100),
        "size or sha256",
        "blob",
    ),
    ("blob-one-byte-changed", lambda blob, meta: _flip_a_byte(blob), "size or sha256 differ", "blob"),
    ("blob-empty", lambda blob, meta: blob.write_bytes(b""), "size or sha256", "blob"),
    (
        "blob-garbage-described-as-kept",  # the .json agrees: OpenVINO itself refuses it
        lambda blob, meta: (
            blob.write_bytes(b"x" * 64),
            _edit_meta(meta, blob_bytes=64, blob_sha256=hashlib.sha256(b"x" * 64).hexdigest()),
        ),
        "OpenVINO cannot import it",
        "blob",
    ),
    ("meta-not-json", lambda blob, meta: meta.write_text("{"), "not readable JSON", "json"),
    (
        "meta-other-facts",
        lambda blob, meta: meta.write_text(json.dumps({"facts": {}, "takes_bgr8": True})),
        "does not describe this model",
        "json",
    ),
    (
        "meta-without-takes-bgr8",
        lambda blob, meta: _edit_meta(meta, takes_bgr8=None),
        "lacks takes_bgr8",
        "json",
    ),
    ("meta-without-sha256", lambda blob, meta: _edit_meta(meta, blob_sha256=None), "blob_sha256", "json"),
]


@pytest.mark.parametrize(("case", "damage", "phrase", "culprit"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_entry_is_kept_aside_and_the_model_compiled_again(
    case: str,
    damage: Callable[[Path, Path], object],
    phrase: str,
    culprit: str,
    models_dir: Path,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    require_backend("openvino")
    path, fmt = _blazeface(models_dir, tmp_path)
    cache = tmp_path / "openvino"
    options = RunnerOptions(preprocess=fmt, openvino_cache=cache)
    image = _frame(fmt)
    reference = OpenVinoRunner(path, options)
    expected = reference.run(_feed(reference, image, fmt))
    blob = next(cache.glob("*.blob"))
    damage(blob, blob.with_suffix(".json"))
    caplog.set_level(logging.INFO, logger="edge.runners")

    again = OpenVinoRunner(path, options)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and phrase in warnings[0] and str(path) in warnings[0], warnings
    evidence = [p.name for p in cache.glob("*.corrupt")]
    assert evidence == [f"{blob.stem}.{culprit}.corrupt"]  # the file at fault, set aside
    for a, b in zip(expected, again.run(_feed(again, image, fmt)), strict=True):
        np.testing.assert_array_equal(a, b)
    assert blob.exists() and blob.with_suffix(".json").exists()  # kept anew
    caplog.clear()
    OpenVinoRunner(path, options)
    assert any("imported from" in r.getMessage() for r in caplog.records)
    damage(blob, blob.with_suffix(".json"))  # broken again: still one piece of evidence
    OpenVinoRunner(path, options)
    assert [p.name for p in cache.glob("*.corrupt")] == evidence


def test_a_cache_that_cannot_be_written_only_costs_speed(
    models_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The cache folder's place is taken by a file (as root, permissions would not stop it)."""
    require_backend("openvino")
    path, fmt = _blazeface(models_dir, tmp_path)
    blocker = tmp_path / "openvino"
    blocker.write_text("a file where the folder should be")
    runner = OpenVinoRunner(path, RunnerOptions(preprocess=fmt, openvino_cache=blocker))
    assert runner.run(_feed(runner, _frame(fmt), fmt))
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "cannot keep the compiled model" in warnings[0]
    assert "compiled at every start" in warnings[0]


@pytest.mark.parametrize(
    ("state_dir", "expected"),
    [(None, None), (Path("/var/lib/edge"), Path("/var/lib/edge/openvino"))],
)
def test_the_daemon_keeps_compiled_models_in_its_state_dir(
    state_dir: Path | None, expected: Path | None
) -> None:
    options = runner_options(ModelConfig(path="m.onnx"), state_dir=state_dir)
    assert options.openvino_cache == expected
