"""Still cameras beside moving ones on one model, motion gating on (``python tools/bench.py
mixed``): how often each kind of camera is looked at, and how late.

Every camera plays its clip in real time and loops (``source.realtime``), capped at
``--fps``. The still cameras show the demo's scene without the person (made by
``tools/make_demo_video.py --still``; the clock in its corner is masked for motion), the
moving ones the demo clip. After at least ``warmup`` seconds, and once every still camera has
gated a frame, over ``window`` seconds, per camera and second: frames read from the source,
frames the ring dropped (the worker was behind), frames looked at (finished: gated or
inferred), of which inferred; and the median latency from a frame's decoding to the end of its
rules.
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
    read_fps: float  # per camera: frames read (decoded) from the source
    dropped_fps: float  # per camera: frames the ring dropped before the worker took them
    processed_fps: float  # per camera: frames looked at (finished), gated or inferred
    inferred_fps: float  # per camera
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
    """``input_size``: (width, height) the model runs at (``models.<name>.input_size``)."""
    if str(REPO / "tools") not in sys.path:
        sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import make

    with tempfile.TemporaryDirectory(prefix="edge-mixed-") as folder:
        still_clip = make(Path(folder) / "still.mp4", still=True)
        state = str(Path(folder) / "state")
        text = _config(still_clip, demo, (still, moving), model, runner, fps, state, input_size)
        app = Application(parse_config(text, "mixed.yaml"))
        try:
            app.start()
            _settle(app, warmup)
            before, t0 = _counters(app), time.perf_counter()
            for c in app.channels.values():
                c.latencies.clear()
            time.sleep(window)
            after, elapsed = _counters(app), time.perf_counter() - t0
            latencies = {n: list(c.latencies) for n, c in app.channels.items()}
        finally:
            app.stop()
    rows = []
    for kind, prefix, count in (("still", "s", still), ("moving", "m", moving)):
        names = [n for n in after if n.startswith(prefix)]
        if not names:
            continue

        def rate(i: int, names: list[str] = names, count: int = count) -> float:
            return round(sum(after[n][i] - before[n][i] for n in names) / elapsed / count, 2)

        lat = [x for n in names for x in latencies[n]]
        p50 = round(1000 * statistics.median(lat), 1) if lat else 0.0
        looked = rate(2)
        rows.append(MixedCost(kind, count, rate(0), rate(1), looked, round(looked - rate(3), 2), p50))
    return rows


def _counters(app: Application) -> dict[str, tuple[int, int, int, int]]:
    """Per camera: frames read, dropped by the ring, looked at, gated."""
    caps = app.captures
    return {n: (caps[n].frames_read, c.ring.dropped, c.processed, c.gated) for n, c in app.channels.items()}


def _settle(app: Application, warmup: float) -> None:
    """``warmup`` seconds, then until every still camera has gated a frame (motion gating holds
    inference for its first seconds), at most a minute more."""
    time.sleep(warmup)
    deadline = time.monotonic() + 60
    still = [c for n, c in app.channels.items() if n.startswith("s")]
    while any(c.gated == 0 for c in still) and time.monotonic() < deadline:
        time.sleep(0.2)


def format_mixed(results: list[MixedCost], fps: float, window: float) -> str:
    lines = [f"cameras capped at {fps:g} fps, motion gating on, over {window:g} s (per camera)"]
    for r in results:
        lines.append(
            f"  {r.cameras:>3} {r.kind:<6}  read {r.read_fps:5.2f}  dropped {r.dropped_fps:5.2f}  "
            f"looked at {r.processed_fps:5.2f}  inferred {r.inferred_fps:5.2f} fps  "
            f"p50 latency {r.latency_p50_ms:6.1f} ms"
        )
    return "\n".join(lines)
