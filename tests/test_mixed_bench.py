"""``tools/bench.py mixed``: one still camera beside one moving one, real video and a real model
(BlazePose on LiteRT), motion gating on: the still camera's frames are mostly gated, the moving
one's inferred, and both are reported with their read rate and a latency. The measuring
window opens once the still camera has gated a frame."""

from __future__ import annotations

import sys
from pathlib import Path

from conftest import require_backend

REPO = Path(__file__).resolve().parents[1]


def test_mixed_bench_reports_still_and_moving_cameras(models_dir: Path, demo_clip: Path) -> None:
    require_backend("litert")
    sys.path.insert(0, str(REPO / "tools"))
    from mixed_cost import bench_mixed, format_mixed

    rows = bench_mixed(demo_clip, "blazepose", "litert", 1, 1, 5.0, warmup=4.0, window=6.0)
    by_kind = {r.kind: r for r in rows}
    assert set(by_kind) == {"still", "moving"}
    still, moving = by_kind["still"], by_kind["moving"]
    assert still.processed_fps > 0 and moving.processed_fps > 0
    assert still.read_fps > 0 and moving.read_fps > 0
    assert still.inferred_fps < 0.5 * still.processed_fps  # a still scene is mostly gated
    assert moving.inferred_fps > 0.5 * moving.processed_fps  # the person walks: mostly inferred
    assert still.latency_p50_ms > 0 and moving.latency_p50_ms > 0
    text = format_mixed(rows, 5.0, 6.0)
    assert "1 still" in text and "1 moving" in text
