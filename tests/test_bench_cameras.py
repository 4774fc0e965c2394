"""``edge bench --cameras N``: the report's figures from counters (a pure function, table-driven)
and one short real run through the CLI on the demo clip (speeds are printed, never asserted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_bench import bench

from edge.bench_cameras import Counters, bench_config, summarise
from edge.config import parse_config

REPO = Path(__file__).resolve().parent.parent


def counters(t: float, read: int, inferred: list[int]) -> Counters:
    names = [f"c{i}" for i in range(len(inferred))]
    return Counters(
        t=t, cpu=0.0, read=dict.fromkeys(names, read), inferred=dict(zip(names, inferred, strict=True)),
        dropped=dict.fromkeys(names, 0), skipped=dict.fromkeys(names, read // 2),
        read_s=dict.fromkeys(names, 0.0), pre_s=dict.fromkeys(names, 0.0), infer_s=0.0, inferences=sum(inferred),
    )  # fmt: skip


@pytest.mark.parametrize(
    ("inferred", "target", "ratios", "within"),
    [
        ([50, 50], 5.0, (1.0, 1.0), 2),  # 50 frames in 10 s: on target
        ([46, 54], 5.0, (0.92, 1.08), 2),  # within 10 %
        ([44, 50, 56], 5.0, (0.88, 1.12), 1),  # one low, one high: out
        ([10, 10], 5.0, (0.2, 0.2), 0),  # overloaded but fair: every camera the same share
        ([0], 5.0, (0.0, 0.0), 0),  # a camera that never ran
    ],
)
def test_fairness_figure(
    inferred: list[int], target: float, ratios: tuple[float, float], within: int
) -> None:
    a = counters(0.0, 0, [0] * len(inferred))
    b = counters(10.0, 250, inferred)
    rows, fairness = summarise(a, b, {}, target)
    assert (fairness.min_ratio, fairness.max_ratio) == pytest.approx(ratios)
    assert fairness.within == within and fairness.cameras == len(inferred)
    assert all(r.decode_fps == 25.0 and r.skipped == 125 for r in rows)


@pytest.mark.parametrize(("cameras", "threads"), [(1, None), (3, 1), (16, 2)])
def test_config_has_real_time_looping_capped_cameras(
    tmp_path: Path, cameras: int, threads: int | None
) -> None:
    text = bench_config("m.onnx", "auto", tmp_path / "v.mp4", cameras, 2.5, tmp_path, threads)
    cfg = parse_config(text, "x").config
    assert len(cfg.cameras) == cameras and cfg.models["m"].threads == threads
    urls = [f"rtsp://127.0.0.1:8554/cam{i:02d}" for i in range(1, cameras + 1)]
    live = parse_config(
        bench_config("m.onnx", "auto", tmp_path / "v.mp4", cameras, 2.5, tmp_path, None, urls), "x"
    )
    assert [c.source.url for c in live.config.cameras.values()] == urls  # type: ignore[union-attr]
    for cam in cfg.cameras.values():
        assert cam.fps == 2.5 and cam.source.type == "file"
        assert cam.source.realtime and cam.source.loop


def test_cameras_bench_reports_every_camera(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    out = bench(tmp_path, "--model", "blazeface", "--runner", "litert", "--video", str(demo_clip), "--cameras", "2",
              "--detect-fps", "5", "--seconds", "2", "--warmup", "1", "--json", "--log-level", "warning")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["cameras"] == 2 and report["target_fps"] == 5.0 and report["runner"] == "litert"
    assert report["source"] == "file"
    assert [c["name"] for c in report["per_camera"]] == ["cam01", "cam02"]
    for cam in report["per_camera"]:
        assert cam["decode_fps"] > 0 and cam["detect_fps"] > 0 and cam["skipped"] > 0
        assert cam["latency_p99_ms"] >= cam["latency_p50_ms"] > 0
    assert report["fairness"]["cameras"] == 2 and report["peak_rss_mb"] > 0
    assert list(tmp_path.iterdir()) == []  # nothing written in the working folder


def test_cameras_bench_over_rtsp(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    """``--rtsp``: the clip served as N streams by a local GStreamer RTSP server."""
    from test_rtsp_reconnect import require_gst_rtsp

    require_gst_rtsp()
    out = bench(tmp_path, "--model", "blazeface", "--runner", "litert", "--video", str(demo_clip), "--cameras", "2",
              "--seconds", "2", "--warmup", "2", "--rtsp", "--json", "--log-level", "warning")  # fmt: skip
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["source"] == "rtsp" and len(report["per_camera"]) == 2
    assert all(cam["decode_fps"] > 0 and cam["detect_fps"] > 0 for cam in report["per_camera"])
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--video", "missing.mp4", "--cameras", "2"], "missing.mp4: no such video file (--video)"),
        (["--video", "x.mp4", "--cameras", "0"], "must be"),
        (
            ["--video", "x.mp4", "--cameras", "2", "--detect-fps", "0"],
            "must be more than 0 frames per second",
        ),
        (
            ["--video", "x.mp4", "--cameras", "2", "--detect-fps", "nan"],
            "must be more than 0 frames per second",
        ),
    ],
)
def test_bad_arguments_are_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    out = bench(tmp_path, "--model", "blazeface", *args)
    assert out.returncode != 0 and message in out.stderr
    assert "Traceback" not in out.stderr
