"""The ``edge`` command line end to end, as the README uses it, and its argument parser: every
argument documented, log options on either side of the subcommand, values checked by argparse."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import cv2
import pytest

from edge.cli import parser
from edge.fetch import PINNED

REPO = Path(__file__).resolve().parent.parent


def run(
    *args: str, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """``python -m edge ARGS`` with this checkout first on the path."""
    env = {**(os.environ if env is None else env), "PYTHONPATH": str(REPO)}
    return subprocess.run(
        [sys.executable, "-m", "edge", *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300
    )


def test_infer_json_lines_and_annotated_images(
    models_dir: Path, image_files: dict[str, Path], tmp_path: Path
) -> None:
    out = run(
        "infer",
        "--model",
        "blazeface",
        "--json",
        "--save-annotated",
        str(tmp_path / "ann"),
        str(image_files["astronaut"]),
        str(image_files["coffee"]),
    )
    assert out.returncode == 0, out.stderr
    records = [json.loads(line) for line in out.stdout.splitlines()]
    assert len(records) == 2
    rec, empty = records
    assert empty == {"image": str(image_files["coffee"]), "detections": 0}  # no face: still one line
    assert rec["image"] == str(image_files["astronaut"]) and rec["label"] == "face" and rec["score"] >= 0.9
    assert len(rec["box"]) == 4 and len(rec["keypoints"]) == 6
    annotated = cv2.imread(str(tmp_path / "ann" / "astronaut.jpg"))
    original = cv2.imread(str(image_files["astronaut"]))
    assert annotated is not None and annotated.shape == original.shape
    assert cv2.absdiff(annotated, original).max() > 100  # something was drawn


def test_infer_reports_unreadable_image_and_continues(
    models_dir: Path, image_files: dict[str, Path], tmp_path: Path
) -> None:
    bogus = tmp_path / "bogus.png"
    bogus.write_text("not an image")
    out = run("infer", "--model", "blazepose", str(bogus), str(image_files["astronaut"]))
    assert out.returncode == 1
    assert f"{bogus}: cannot read as an image" in out.stderr
    assert "1 detection(s)" in out.stdout and "person" in out.stdout


def test_infer_unknown_model_is_a_clear_error() -> None:
    out = run("infer", "--model", "yolo8n", "x.png")
    assert out.stderr.count("\n") == 1
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


def test_models_fetch_into_a_broken_cache_link_is_one_line(tmp_path: Path) -> None:
    cache = tmp_path / "wheels"
    cache.symlink_to(tmp_path / "gone")  # e.g. a cache folder that was removed under a link
    out = run("models", "fetch", "--dest", str(tmp_path / "models"), "--cache", str(cache), "blazeface")
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        f"edge: error: {cache}: cannot use this folder as the wheel cache: it is a broken link or a file"
    ]


def walk(p: argparse.ArgumentParser, prog: str = "edge") -> Iterator[tuple[str, argparse.Action]]:
    """Every argument of ``p`` and its subcommands, and each subcommand's own entry."""
    for action in p._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield prog, action
            for choice in action._choices_actions:
                yield prog, choice
            for name, sub in action.choices.items():
                yield from walk(sub, f"{prog} {name}")
        elif not isinstance(action, argparse._HelpAction):
            yield prog, action


ARGUMENTS = [(f"{prog} {'/'.join(a.option_strings) or a.dest}", a) for prog, a in walk(parser())]


@pytest.mark.parametrize(("where", "action"), ARGUMENTS, ids=[w for w, _ in ARGUMENTS])
def test_every_argument_has_help(where: str, action: argparse.Action) -> None:
    assert action.help and action.help.strip() and action.help != argparse.SUPPRESS, where


@pytest.mark.parametrize(
    "name", ["edge probe", "edge infer", "edge check-config", "edge run", "edge bench", "edge outbox", "edge schema",
             "edge models", "edge models fetch", "edge models list", "edge probe --model", "edge infer --runner",
             "edge infer --json", "edge infer inputs", "edge run config", "edge run --set", "edge run --log-format",
             "edge outbox action", "edge outbox state_dir", "edge outbox --limit", "edge infer --every"],
)  # fmt: skip
def test_the_walk_reaches(name: str) -> None:
    assert name in {w for w, _ in ARGUMENTS}


@pytest.mark.parametrize(
    ("argv", "log_format", "log_level"),
    [
        (["run", "c.yaml"], None, None),
        (["--log-format", "json", "run", "c.yaml"], "json", None),
        (["run", "c.yaml", "--log-format", "json"], "json", None),
        (["run", "--log-level", "debug", "c.yaml"], None, "debug"),
        (["--log-format", "text", "run", "c.yaml", "--log-format", "json"], "json", None),  # the later wins
        (["--log-level", "error", "run", "c.yaml", "--log-level", "info"], None, "info"),
        (["--log-level", "warning", "run", "c.yaml"], None, "warning"),  # kept: none after
        (["models", "list", "--log-level", "debug"], None, "debug"),
        (["check-config", "c.yaml", "--log-format", "json"], "json", None),
        (["outbox", "stats", "s", "--log-level", "error"], None, "error"),
    ],
)
def test_log_options_before_or_after_the_subcommand(
    argv: list[str], log_format: str | None, log_level: str | None
) -> None:
    args = parser().parse_args(argv)
    assert (args.log_format, args.log_level) == (log_format, log_level)


@pytest.mark.parametrize(
    ("argv", "dest", "expected"),
    [
        (["run", "c.yaml", "--duration", "30s"], "duration", 30.0),
        (["run", "c.yaml", "--duration", "1m"], "duration", 60.0),
        (["run", "c.yaml", "--duration", "2.5"], "duration", 2.5),
        (["run", "c.yaml", "--duration", "500ms"], "duration", 0.5),
        (["run", "c.yaml", "--duration", "-5s"], "duration", "must be more than 0 seconds"),
        (["run", "c.yaml", "--duration", "-1"], "duration", "must be more than 0 seconds"),
        (["run", "c.yaml", "--duration", "0"], "duration", "must be more than 0 seconds"),
        (["run", "c.yaml", "--duration", "0s"], "duration", "must be more than 0 seconds"),
        (["run", "c.yaml", "--duration", "soon"], "duration", "not a duration: 'soon'"),
        (["run", "c.yaml", "--duration", "5d"], "duration", "not a duration"),
        (["run", "c.yaml", "--duration", "inf"], "duration", "not a duration"),
        (["run", "c.yaml", "--max-frames", "1"], "max_frames", 1),
        (["run", "c.yaml", "--max-frames", "0"], "max_frames", "must be at least 1, got 0"),
        (["run", "c.yaml", "--max-frames", "-3"], "max_frames", "must be at least 1"),
        (["run", "c.yaml", "--max-frames", "2.5"], "max_frames", "expected a whole number"),
        (["infer", "--model", "m", "--score", "0.25", "x.png"], "score", 0.25),
        (["infer", "--model", "m", "--score", "1", "x.png"], "score", 1.0),
        (["infer", "--model", "m", "--score", "2", "x.png"], "score", "must be from 0 to 1, got 2"),
        (["infer", "--model", "m", "--score", "-0.1", "x.png"], "score", "must be from 0 to 1"),
        (["infer", "--model", "m", "--score", "nan", "x.png"], "score", "must be from 0 to 1"),
        (["infer", "--model", "m", "--score", "high", "x.png"], "score", "expected a number from 0 to 1"),
        (["infer", "--model", "m", "--threads", "4", "x.png"], "threads", 4),
        (["infer", "--model", "m", "--threads", "0", "x.png"], "threads", "must be at least 1"),
        (["infer", "--model", "m", "--every", "5", "x.mp4"], "every", 5),
        (["infer", "--model", "m", "x.mp4"], "every", 1),
        (["infer", "--model", "m", "--every", "0", "x.mp4"], "every", "must be at least 1"),
        (["bench", "--model", "m", "--video", "v.mp4", "--frames", "0"], "frames", "must be at least 1"),
        (["bench", "--model", "m", "--video", "v.mp4", "--bare-runs", "-1"], "bare_runs", "must be at least 1"),
        (["outbox", "list", "s", "--limit", "0"], "limit", "must be at least 1"),
    ],
)  # fmt: skip
def test_argument_values(
    argv: list[str], dest: str, expected: object, capsys: pytest.CaptureFixture[str]
) -> None:
    if not isinstance(expected, str):
        assert getattr(parser().parse_args(argv), dest) == expected
        return
    with pytest.raises(SystemExit) as exc:
        parser().parse_args(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"edge {argv[0]}: error: argument --")
    assert expected in err and f"(see edge {argv[0]} --help)" in err


def test_infer_help_documents_the_json_shapes() -> None:
    out = run("infer", "--help")
    assert out.returncode == 0
    assert '"detections": 0' in out.stdout and '"frame": N, "t": SECONDS' in out.stdout


def test_run_logs_json_with_the_option_after_the_subcommand(
    models_dir: Path, demo_clip: Path, tmp_path: Path
) -> None:
    config = tmp_path / "c.yaml"
    config.write_text(
        f"state_dir: {tmp_path / 'state'}\nmodels: {{m: {{path: blazeface, runner: litert}}}}\n"
        f"cameras: {{c: {{source: {{type: file, path: {demo_clip}}}, model: m}}}}\nmqtt: {{enabled: false}}\n"
    )
    out = run("--log-format", "text", "run", str(config), "--log-format", "json", "--max-frames", "3")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if not line.startswith("INFO: Created TensorFlow Lite")]
    assert lines and all(json.loads(line)["level"] for line in lines)
