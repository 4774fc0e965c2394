"""`edge bench` runs all three measurements and reports ratios (values are printed, never
asserted: speed is measured, not tested)."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path


def test_bench_json_has_every_measurement(models_dir: Path, demo_clip: Path) -> None:
    out = subprocess.run(
        ["edge", "--log-level", "warning", "bench", "--model", "blazeface", "--video", str(demo_clip),
         "--runner", "openvino", "--frames", "20", "--bare-runs", "10", "--json"],
        capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["runner"] == "openvino" and report["async_jobs"] >= 2
    for key in ("bare_sync", "bare_async", "naive", "pipeline"):
        assert report[key]["fps"] > 0 and report[key]["frames"] > 0
    assert report["pipeline"]["frames"] >= 20 and report["naive"]["frames"] == 20
    assert set(report["ratios"]) == {"pipeline / bare best", "pipeline / bare sync", "pipeline / naive loop"}
    assert {"read", "preprocess", "infer", "decode"} == set(report["naive"]["stage_ms"])
    assert report["peak_rss_mb"] > 0
