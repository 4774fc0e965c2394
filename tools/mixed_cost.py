"""Still cameras beside moving ones on one model, motion gating on (``python tools/bench.py
mixed``): how often each kind of camera is looked at, and how late.

Every camera plays its clip in real time and loops (``source.realtime``), capped at
``--fps``. The still cameras show the demo's scene without the person (made by
``tools/make_demo_video.py --still``; the clock in its corner is masked for motion), the
moving ones the demo clip. After ``warmup`` seconds, over ``window`` seconds: frames processed
per second and per camera (gated ones included: a still camera's are mostly gated), gated
frames per second, and the median latency from a frame's decoding to the end of its rules.
"""

from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from preview_cost import REPO

from edge.config import parse_config
from edge.daemon.app import Application

CLOCK_MASK = "[[[0.0, 0.0], [0.2, 0.0], [0.2, 0.1], [0.0, 0.1]]]"  # as in configs/demo.yaml


@dataclass(frozen=True)
class MixedCost:
    kind: str  # "still" or "moving"
    cameras: int
    processed_fps: float  # per camera: frames finished, gated or inferred
    gated_fps: float  # per camera
    latency_p50_ms: float


def _config(
    still: Path, moving: Path, counts: tuple[int, int], model: str, runner: str, fps: float, state: str,
    input_size: tuple[int, int] | None,
) -> str:  # fmt: skip
    cams = []
    for kind, clip, count in (("s", still, counts[0]), ("m", moving, counts[1])):
        source = f"{{type: file, path: {json.dumps(str(clip))}, loop: true, realtime: true}}"
        motion = f"{{enabled: true, masks: {CLOCK_MASK}}}"
        for i in range(count):
            cams.append(f"  {kind}{i:02d}: {{source: {source}, model: m, fps: {fps:g}, motion: {motion}}}")
    size = f", input_size: [{input_size[0]}, {input_size[1]}]" if input_size else ""
    return f"""
state_dir: {json.dumps(state)}
status_interval: 1h
models: {{m: {{path: {json.dumps(model)}, runner: {runner}{size}}}}}
cameras:
{chr(10).join(cams)}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""


def bench_mixed(
    demo: Path,
    model: str,
    runner: str,
    still: int,
    moving: int,
    fps: float,
    warmup: float,
    window: float,
    input_size: tuple[int, int] | None = None,
) -> list[MixedCost]:
    """``input_size``: (width, height) the model runs at (``models.<name>.input_size``)."""  # fmt: skip
    sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import make

    with tempfile.TemporaryDirectory(prefix="edge-mixed-") as folder:
        still_clip = make(Path(folder) / "still.mp4", still=True)
        state = str(Path(folder) / "state")
        text = _config(still_clip, demo, (still, moving), model, runner, fps, state, input_size)
        app = Application(parse_config(text, "mixed.yaml"))
        app.start()
        try:
            time.sleep(warmup)
            channels = app.channels
            before = {n: (c.processed, c.gated) for n, c in channels.items()}
            for c in channels.values():
                c.latencies.clear()
            time.sleep(window)
            after = {n: (c.processed, c.gated) for n, c in channels.items()}
            latencies = {n: list(c.latencies) for n, c in channels.items()}
        finally:
            app.stop()
    rows = []
    for kind, prefix, count in (("still", "s", still), ("moving", "m", moving)):
        names = [n for n in after if n.startswith(prefix)]
        if not names:
            continue
        done = sum(after[n][0] - before[n][0] for n in names) / window / count
        gated = sum(after[n][1] - before[n][1] for n in names) / window / count
        lat = [x for n in names for x in latencies[n]]
        p50 = 1000 * statistics.median(lat) if lat else 0.0
        rows.append(MixedCost(kind, count, round(done, 2), round(gated, 2), round(p50, 1)))
    return rows


def format_mixed(results: list[MixedCost], fps: float, window: float) -> str:
    lines = [f"cameras at {fps:g} fps, motion gating on, over {window:g} s (per camera)"]
    for r in results:
        lines.append(
            f"  {r.cameras:>3} {r.kind:<6}  processed {r.processed_fps:5.2f} fps  "
            f"gated {r.gated_fps:5.2f} fps  p50 latency {r.latency_p50_ms:6.1f} ms"
        )
    return "\n".join(lines)
