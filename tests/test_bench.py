"""`edge bench` runs all three measurements and reports ratios (values are printed, never
asserted: speed is measured, not tested). It writes nothing into the working folder, and shows
progress bars only on a terminal, never mixed into a log line."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import require_backend

from edge.bench import _Progress
from edge.logs import setup_logging

REPO = Path(__file__).resolve().parent.parent


def bench(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "edge", "bench", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def test_bench_json_has_every_measurement(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    require_backend("openvino")
    out = bench(tmp_path, "--model", "blazeface", "--video", str(demo_clip), "--runner", "openvino",
                "--frames", "20", "--bare-runs", "10", "--json", "--log-level", "warning")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["runner"] == "openvino" and report["async_jobs"] >= 2
    for key in ("bare_sync", "bare_async", "naive", "pipeline"):
        assert report[key]["fps"] > 0 and report[key]["frames"] > 0
    assert report["pipeline"]["frames"] >= 20 and report["naive"]["frames"] == 20
    assert set(report["ratios"]) == {"pipeline / bare best", "pipeline / bare sync", "pipeline / naive loop"}
    assert {"read", "preprocess", "infer", "decode"} == set(report["naive"]["stage_ms"])
    assert report["peak_rss_mb"] > 0
    assert list(tmp_path.iterdir()) == []


def test_frames_beyond_the_clip_loop_it(models_dir: Path, astronaut: np.ndarray, tmp_path: Path) -> None:
    """A 10-frame clip and --frames 25: the naive loop and the pipeline both read 25 frames,
    from the clip's start again each time it ends (real video written by OpenCV)."""
    clip = tmp_path / "short.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10, (320, 240))
    for i in range(10):
        writer.write(np.roll(cv2.resize(astronaut, (320, 240)), 8 * i, axis=1))
    writer.release()
    work = tmp_path / "work"
    work.mkdir()
    out = bench(work, "--model", "blazeface", "--video", str(clip), "--runner", "litert",
                "--frames", "25", "--bare-runs", "3", "--json", "--log-level", "warning")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["naive"]["frames"] == 25
    assert report["pipeline"]["frames"] == 25


def test_bench_writes_nothing_in_the_working_folder_and_no_bar_off_a_terminal(
    models_dir: Path, demo_clip: Path, tmp_path: Path
) -> None:
    out = bench(tmp_path, "--model", "blazeface", "--video", str(demo_clip), "--runner", "litert",
                "--frames", "5", "--bare-runs", "3")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert list(tmp_path.iterdir()) == []  # no state/, no cache, no config
    assert "(c) pipeline" in out.stdout
    assert "\r" not in out.stderr and "[###" not in out.stderr  # stderr is a pipe here
    assert "INFO edge" in out.stderr  # log lines still come, each on its own line


def test_a_log_line_ends_the_progress_line_first(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", list(root.handlers))  # restored afterwards, with the level
    monkeypatch.setattr(root, "level", root.level)
    for name in ("OPENCV_LOG_LEVEL", "OPENCV_FFMPEG_LOGLEVEL"):  # setup_logging sets them
        monkeypatch.setenv(name, os.environ.get(name, ""))
    setup_logging("info")
    bar = _Progress("naive", 4, enabled=True)
    bar.update(1)
    logging.getLogger("edge.test").info("camera opened")
    bar.update(4)
    logging.getLogger("edge.test").info("done")
    lines = capsys.readouterr().err.split("\n")
    assert lines[0].startswith("\rnaive") and lines[0].endswith("1/4")
    assert lines[1] == "INFO edge.test: camera opened"
    assert lines[2].startswith("\rnaive") and lines[2].endswith("4/4")
    assert lines[3:] == ["INFO edge.test: done", ""]
