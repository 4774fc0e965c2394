"""What motion gating saves: CPU of a running ``edge run`` on a still scene and on the demo
clip, with gating off and on (``python tools/bench.py motion``).

Both clips play in real time and loop (``source.realtime``), so the daemon does the work per
second a camera would give it. The still clip is the demo's scene without the person (made by
``tools/make_demo_video.py --still``: only the clock in the corner changes, and the demo config
masks it for motion). CPU is the process's user + system time over the same window in each
mode, as a percentage of one core (``preview_cost.cpu_seconds``).
"""

from __future__ import annotations

import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from preview_cost import REPO, cpu_of_edge_run


@dataclass(frozen=True)
class MotionCost:
    clip: str
    gating: bool
    cpu_percent: float  # of one core, over the window


def measure(clip: Path, gating: bool, runner: str, warmup: float, window: float) -> float:
    with tempfile.TemporaryDirectory(prefix="edge-motion-cost-") as state:
        sets = {
            "state_dir": state,
            "cameras.entrance.source.path": str(clip),
            "cameras.entrance.source.loop": "true",
            "cameras.entrance.source.realtime": "true",
            "cameras.entrance.motion.enabled": str(gating).lower(),
            "models.person.runner": runner,
            "mqtt.enabled": "false",
            "actions.event_log": "false",
            "actions.snapshots.enabled": "false",
        }
        return cpu_of_edge_run(sets, warmup, window)


def bench_motion(demo: Path, runner: str, warmup: float, window: float) -> list[MotionCost]:
    sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import make

    with tempfile.TemporaryDirectory(prefix="edge-still-") as folder:
        still = make(Path(folder) / "still.mp4", still=True)
        return [
            MotionCost(name, gating, measure(clip, gating, runner, warmup, window))
            for name, clip in (("still scene", still), ("demo clip", demo))
            for gating in (False, True)
        ]


def format_motion(results: list[MotionCost], window: float) -> str:
    lines = [f"edge run in real time (25 fps), CPU over {window:g} s, % of one core"]
    for off, on in zip(results[::2], results[1::2], strict=True):
        ratio = on.cpu_percent / off.cpu_percent if off.cpu_percent else float("nan")
        lines.append(
            f"  {off.clip:<12} gating off {off.cpu_percent:6.1f} %   on {on.cpu_percent:6.1f} %   "
            f"on/off {ratio:.2f}"
        )
    return "\n".join(lines)
