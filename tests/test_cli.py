"""The ``edge`` console script end to end, as the README uses it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import cv2

from edge.fetch import PINNED


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["edge", *args], capture_output=True, text=True, env=env, timeout=300)


def test_infer_json_lines_and_annotated_images(models_dir: Path, image_files: dict[str, Path], tmp_path: Path) -> None:
    out = run("infer", "--model", "blazeface", "--json", "--save-annotated", str(tmp_path / "ann"),
              str(image_files["astronaut"]), str(image_files["coffee"]))
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 1
    rec = records[0]
    assert rec["image"] == str(image_files["astronaut"]) and rec["label"] == "face" and rec["score"] >= 0.9
    assert len(rec["box"]) == 4 and len(rec["keypoints"]) == 6
    annotated = cv2.imread(str(tmp_path / "ann" / "astronaut.jpg"))
    original = cv2.imread(str(image_files["astronaut"]))
    assert annotated is not None and annotated.shape == original.shape
    assert cv2.absdiff(annotated, original).max() > 100  # something was drawn


def test_infer_reports_unreadable_image_and_continues(models_dir: Path, image_files: dict[str, Path], tmp_path: Path) -> None:
    bogus = tmp_path / "bogus.png"
    bogus.write_text("not an image")
    out = run("infer", "--model", "blazepose", str(bogus), str(image_files["astronaut"]))
    assert out.returncode == 1
    assert f"{bogus}: cannot read as an image" in out.stderr
    assert "1 detection(s)" in out.stdout and "person" in out.stdout


def test_infer_unknown_model_is_a_clear_error() -> None:
    out = run("infer", "--model", "yolo8n", "x.png")
    assert out.returncode == 1
    assert "edge: error: model 'yolo8n' not found" in out.stderr
    assert "Traceback" not in out.stderr


def test_models_fetch_is_idempotent_and_offline_when_present(models_dir: Path) -> None:
    env = {**os.environ, "PIP_NO_INDEX": "1", "PIP_INDEX_URL": "http://127.0.0.1:9/none"}
    out = run("models", "fetch", env=env)
    assert out.returncode == 0, out.stderr
    assert f"{len(PINNED)} file(s) ready (0 extracted, {len(PINNED)} already present)" in out.stdout
    listing = run("models", "list")
    for name in ("blazeface", "blazepose", "ppocr_det"):
        assert any(line.startswith(name) and line.endswith("ok") for line in listing.stdout.splitlines())
