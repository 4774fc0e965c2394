"""Motion gating: the detector on synthetic frames (table-driven), and edge on real video: the
demo clip gives the same events gated and ungated, and a still clip is mostly gated."""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.capture.motion import WARMUP_FRAMES, MotionGate
from edge.config.schema import MotionConfig

REPO = Path(__file__).resolve().parent.parent
W, H, FPS = 640, 360, 10


def scene(seed: int = 0) -> np.ndarray:
    """A textured still background (a photograph would do as well)."""
    rng = np.random.default_rng(seed)
    base = rng.integers(40, 200, (H // 8, W // 8, 3), dtype=np.uint8)
    return cv2.resize(base, (W, H), interpolation=cv2.INTER_CUBIC)


def with_square(frame: np.ndarray, x: int, y: int = 150, size: int = 60) -> np.ndarray:
    out = frame.copy()
    cv2.rectangle(out, (x, y), (x + size, y + size), (255, 255, 255), -1)
    return out


def noisy(frame: np.ndarray, rng: np.random.Generator, sigma: float = 4.0) -> np.ndarray:
    """Sensor noise and compression speckle: small changes everywhere."""
    return np.clip(frame + rng.normal(0, sigma, frame.shape), 0, 255).astype(np.uint8)


def run(gate: MotionGate, frames: list[np.ndarray]) -> list[bool]:
    return [gate.wants_inference(f, i / FPS) for i, f in enumerate(frames)]


BG = scene()
RNG = np.random.default_rng(1)
STILL = [BG] * 100  # 10 s
NOISE = [noisy(BG, RNG) for _ in range(100)]
MOVING = [with_square(BG, 20 + 5 * i) for i in range(100)]
# moves for 2 s, then stands still (a car that parks)
PARKS = [with_square(BG, 20 + 10 * min(i, 20)) for i in range(100)]
# a square moving in the top-left corner only, which the mask hides (a clock, a tree)
MASKED = [with_square(BG, 10 + (i % 10) * 5, y=10, size=40) for i in range(100)]
TOP_LEFT = [[0.0, 0.0], [0.3, 0.0], [0.3, 0.3], [0.0, 0.3]]


def inferred_at(wants: list[bool]) -> list[float]:
    return [round(i / FPS, 1) for i, w in enumerate(wants) if w]


CASES = [
    # (frames, config, expected seconds at which inference runs)
    # still: the warm-up (3 frames, no `hold` after it), then every `refresh_after` (5 s)
    ("still", STILL, {}, [0.0, 0.1, 0.2, 5.2]),
    ("still, refresh 1 s", STILL, {"refresh_after": 1}, [0.0, 0.1, 0.2] + [i + 0.2 for i in range(1, 10)]),
    ("still, no hold", STILL, {"hold": 0}, [0.0, 0.1, 0.2, 5.2]),
    ("sensor noise is not motion", NOISE, {"hold": 0}, [0.0, 0.1, 0.2, 5.2]),
    ("moving: every frame", MOVING, {}, [i / 10 for i in range(100)]),
    # the background forgets the parked square in about 1.6 s; then `hold` (2 s)
    ("parks at 2 s: hold, then refresh", PARKS, {}, [i / 10 for i in range(57)]),
    ("masked motion is ignored", MASKED, {"hold": 0, "masks": [TOP_LEFT]}, [0.0, 0.1, 0.2, 5.2]),
    ("unmasked, the same motion counts", MASKED, {"hold": 0}, [i / 10 for i in range(100)]),
]


@pytest.mark.parametrize(("name", "frames", "over", "expected"), CASES, ids=[c[0] for c in CASES])
def test_gate(name: str, frames: list[np.ndarray], over: dict[str, object], expected: list[float]) -> None:
    gate = MotionGate(MotionConfig.model_validate({"enabled": True, **over}))
    wants = run(gate, frames)
    assert inferred_at(wants) == [round(t, 1) for t in expected]
    assert gate.gated == len(frames) - len(expected)


def test_a_still_scene_is_only_looked_at_check_fps_times_a_second() -> None:
    """As the capture thread does: frames ``should_look`` passes over are only decoded."""
    gate = MotionGate(MotionConfig(enabled=True, hold=0, check_fps=2, refresh_after=5))
    looked, inferred = [], []
    for i, frame in enumerate(STILL):
        t = i / FPS
        if not gate.should_look(t):
            gate.skipped()
            continue
        looked.append(round(t, 1))
        if gate.wants_inference(frame, t):
            inferred.append(round(t, 1))
    # warm-up, then one frame in five (2 a second) and the refresh at 5.2 s
    assert inferred == [0.0, 0.1, 0.2, 5.2]
    assert looked[:5] == [0.0, 0.1, 0.2, 0.3, 0.8] and 5.2 in looked
    steady = [b - a for a, b in itertools.pairwise(looked[3:]) if 5.2 not in (a, b)]
    assert steady and all(abs(gap - 0.5) < 1e-9 for gap in steady), looked
    assert gate.gated == len(STILL) - len(inferred)


def test_camera_masks_hide_motion_too() -> None:
    gate = MotionGate(MotionConfig(enabled=True, hold=0), masks=[[(x, y) for x, y in TOP_LEFT]])
    assert inferred_at(run(gate, MASKED)) == [0.0, 0.1, 0.2, 5.2]


def test_a_new_stream_learns_its_scene_again() -> None:
    gate = MotionGate(MotionConfig(enabled=True, hold=0))
    run(gate, STILL[:30])
    gate.reset()
    other = scene(seed=5)  # the camera now shows something else
    wants = [gate.wants_inference(other, 3.0 + i / FPS) for i in range(10)]
    assert wants[:WARMUP_FRAMES] == [True] * WARMUP_FRAMES and not any(wants[WARMUP_FRAMES:])


def test_a_file_that_starts_again_is_inferred_at_once() -> None:
    gate = MotionGate(MotionConfig(enabled=True, hold=0))
    run(gate, STILL[:50])
    assert gate.wants_inference(BG, 0.0)  # frame time went back: a looped file's next pass


# -- on real video ------------------------------------------------------------------------------


def edge_run(
    clip: Path, state: Path, *sets: str, max_frames: int | None = None
) -> tuple[str, list[tuple[object, ...]]]:
    args = [sys.executable, "-m", "edge", "run", "configs/demo.yaml", "--set", f"state_dir={state}",
            "--set", f"cameras.entrance.source.path={clip}", "--set", "mqtt.enabled=false",
            "--set", "actions.snapshots.enabled=false", "--set", "models.person.runner=litert",
            "--set", "status_interval=1h"]  # fmt: skip
    for s in sets:
        args += ["--set", s]
    if max_frames is not None:
        args += ["--max-frames", str(max_frames)]
    out = subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    import json

    log = state / "events.jsonl"
    events = [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
    return out.stderr, [(e["type"], e["rule"], e["track_id"], e["direction"], e["t_frame"]) for e in events]


def gated_frames(log: str) -> int:
    found = re.findall(r"camera entrance: stopped, .*?gated (\d+)", log)
    assert found, log[-2000:]
    return int(found[-1])


def test_the_demo_gives_the_same_events_gated_and_ungated(
    models_dir: Path, demo_clip: Path, tmp_path: Path
) -> None:
    """Gated frames reuse the last detections: every event is the same as without gating
    (the astronaut's 3 s standing still are covered by `hold` and the background's memory;
    the clip's last second, empty, is gated)."""
    _, ungated = edge_run(demo_clip, tmp_path / "off", "cameras.entrance.motion.enabled=false")
    log_on, gated = edge_run(demo_clip, tmp_path / "on", "cameras.entrance.motion.enabled=true")
    assert gated == ungated and len(gated) == 8
    assert gated_frames(log_on) >= 1  # the last second: the person has gone, nothing moves


def test_a_still_clip_is_mostly_gated(models_dir: Path, tmp_path: Path) -> None:
    sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import FPS as CLIP_FPS
    from make_demo_video import SECONDS, make

    clip = make(tmp_path / "still.mp4", still=True)
    log, events = edge_run(clip, tmp_path / "state", "cameras.entrance.motion.enabled=true")
    frames = CLIP_FPS * SECONDS
    assert re.search(rf"camera entrance: stopped, read {frames} ", log), log[-2000:]
    # inferred: the warm-up (3 frames, no hold after it), then one frame every 5 s (6 in all);
    # of the others, 5 a second are looked at and the rest only decoded: all count as gated
    gated = gated_frames(log)
    assert frames - 8 <= gated < frames, log[-2000:]
    processed = int(re.findall(r"stopped \(finished\): (\d+) frame\(s\) processed", log)[-1])
    assert processed < gated / 2  # most frames were never handed on to the worker
    assert events == []  # nobody there


def test_an_fps_cap_and_gating_together(models_dir: Path, tmp_path: Path) -> None:
    """Frames the cap drops are only decoded (and counted as skipped, not gated); of the 2 a
    second the cap keeps, a still scene runs inference on few."""
    sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import FPS as CLIP_FPS
    from make_demo_video import SECONDS, make

    clip = make(tmp_path / "still.mp4", still=True)
    log, _ = edge_run(clip, tmp_path / "state", "cameras.entrance.motion.enabled=true", "cameras.entrance.fps=2")
    line = re.findall(r"camera entrance: stopped, read (\d+) .*?processed (\d+) .*?gated (\d+), skipped (\d+)", log)
    assert line, log[-2000:]
    read, processed, gated, skipped = map(int, line[-1])
    kept = 2 * SECONDS  # by the cap
    assert read == CLIP_FPS * SECONDS and skipped == read - kept
    # the kept frames are looked at (check_fps 5 > 2) and go on to the rules; on a still scene
    # only the warm-up (3 frames) and the refreshes every 5 s run inference
    assert processed == kept and kept - 8 <= gated < kept


def test_a_looping_still_clip_is_not_warmed_up_again_at_each_pass(models_dir: Path, tmp_path: Path) -> None:
    """A looping file's next pass goes on with the scene: motion gating keeps its background,
    so only the first pass starts with the warm-up (3 inferred frames); after it, a still scene
    is inferred every `refresh_after` (5 s) of frame time, across the loop (frame time runs on)."""
    sys.path.insert(0, str(REPO / "tools"))
    from make_demo_video import FPS as CLIP_FPS
    from make_demo_video import SECONDS, make

    clip = make(tmp_path / "still.mp4", still=True)
    log, _ = edge_run(
        clip, tmp_path / "state", "cameras.entrance.motion.enabled=true", "cameras.entrance.source.loop=true",
        max_frames=150,
    )  # fmt: skip
    line = re.findall(r"camera entrance: stopped, read (\d+) .*?gated (\d+)", log)
    assert line, log[-2000:]
    read, gated = map(int, line[-1])
    assert read > CLIP_FPS * SECONDS + 5 * CLIP_FPS, log[-2000:]  # well into the second pass
    t_last = (read - 1) / CLIP_FPS
    refreshes = int((t_last - 2 / CLIP_FPS) // 5.0 + 1e-9)  # after the warm-up's last frame
    assert read - gated == WARMUP_FRAMES + refreshes, log[-2000:]
