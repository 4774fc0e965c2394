"""File sources and time: real-time playback (``source.realtime``), looping without a status
flap, and what ``t_wall``/``ts`` and ``t_frame`` mean for a file read faster than real time.

Pacing is checked through the capture thread's seams: an injected monotonic clock and ``wait``
(a wait moves the clock on by what it was asked, as if it had slept, and records the amount),
so the tests assert the waits asked for, never how long anything took. Videos are real, written
by ``cv2.VideoWriter`` into ``tmp_path``.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_to_end, wait_until

from edge.alerts.actions import EventEnvelope
from edge.buffer.preprocess import InputFormat, LetterboxPreprocessor
from edge.buffer.ring import FrameRing, Policy
from edge.capture.sources import FrameSource, OpenCvSource, ring_policy
from edge.capture.thread import Backoff, CameraState, CaptureThread, FramePacer
from edge.config import parse_config
from edge.config.schema import FileSource, StreamSource
from edge.daemon.app import Application
from edge.types import TensorSpec

H, W = 48, 64


def make_clip(path: Path, frames: int, fps: float) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (W, H))
    assert writer.isOpened()
    for i in range(frames):
        writer.write(np.full((H, W, 3), (i * 7) % 256, np.uint8))
    writer.release()
    return path


def file_source(path: Path, loop: bool = False, realtime: bool = False) -> OpenCvSource:
    return OpenCvSource(FileSource(type="file", path=str(path), loop=loop, realtime=realtime))


class Seams:
    """The injected monotonic clock and ``wait``: a wait moves ``now`` on by its delay and
    records it; it asks to stop when ``stop(delays)`` says so. ``on_wait`` runs before."""

    def __init__(
        self,
        stop: Callable[[list[float]], bool],
        on_wait: Callable[[list[float]], None] | None = None,
        now: float = 1000.0,
    ) -> None:
        self.now = now
        self.delays: list[float] = []
        self._stop = stop
        self._on_wait = on_wait

    def clock(self) -> float:
        return self.now

    def wait(self, delay: float) -> bool:
        self.delays.append(delay)
        if self._on_wait is not None:
            self._on_wait(self.delays)
        self.now += delay
        return self._stop(self.delays)


def capture(source: FrameSource, policy: Policy = "latest", **kw: object) -> CaptureThread:
    spec = TensorSpec("x", (1, 3, 32, 32), np.dtype(np.float32), "NCHW")
    pre = LetterboxPreprocessor(InputFormat(32, 32), spec)
    ring = FrameRing(3, pre.new_tensor, policy)
    kw.setdefault("rng", random.Random(3))
    return CaptureThread("cam", source, ring, pre, **kw)  # type: ignore[arg-type]


# -- 1. the pacer: frame k at start + k/fps, late frames at once, no catch-up burst -------------

# Per frame: how far the clock moves before the pacer is asked (decoding, a stall) and how far a
# wait oversleeps. Expected: the wait asked before each frame (0: none) and the slips.
FPS = 25.0
T = 1.0 / FPS
PACING: list[tuple[str, list[float], float, list[float], int]] = [
    ("instant reads", [0.0] * 5, 0.0, [0, T, T, T, T], 0),
    ("decode takes half a frame", [T / 2] * 5, 0.0, [0, T / 2, T / 2, T / 2, T / 2], 0),
    # Waits that overshoot by 5 ms are taken off the next wait: no drift accumulates.
    ("oversleeping waits", [0.0] * 5, 0.005, [0, T, T - 0.005, T - 0.005, T - 0.005], 0),
    # 1.5 frames late: that frame and the next are read at once, then the schedule is kept.
    ("late by 1.5 frames", [0.0, 0.0, 2.5 * T, 0.0, 0.0], 0.0, [0, T, 0, 0, T / 2], 0),
    # 10 frames late: the schedule moves to now (one slip); no burst of 10 frames follows.
    ("stalled 10 frames", [0.0, 0.0, 11 * T, 0.0, 0.0], 0.0, [0, T, 0, T, T], 1),
]


@pytest.mark.parametrize(
    ("name", "before", "overshoot", "expected", "slips"), PACING, ids=[p[0] for p in PACING]
)
def test_pacer_waits_on_the_files_schedule(
    name: str, before: list[float], overshoot: float, expected: list[float], slips: int
) -> None:
    now = [500.0]
    asked: list[float] = []

    def wait(delay: float) -> bool:
        asked[-1] = delay
        now[0] += delay + overshoot
        return False

    pacer = FramePacer(lambda: now[0], wait)
    for advance in before:
        now[0] += advance
        asked.append(0.0)
        assert pacer.wait_turn(FPS) is False
    assert asked == pytest.approx(expected, abs=1e-9)
    assert pacer.slips == slips


def test_pacer_returns_at_once_when_stop_is_requested() -> None:
    pacer = FramePacer(lambda: 0.0, lambda _delay: True)
    assert pacer.wait_turn(FPS) is False  # the first frame is due now: no wait
    assert pacer.wait_turn(FPS) is True


@pytest.mark.parametrize(
    ("file_fps", "interval"),
    [(10.0, 0.1), (30.0, 1 / 30), (2000.0, 1 / 25)],  # an absurd frame rate: 25 fps
    ids=["10fps", "30fps", "absurd"],
)
def test_a_realtime_file_is_read_at_its_own_frame_rate(
    tmp_path: Path, file_fps: float, interval: float
) -> None:
    """Through the capture thread on a real file: one wait of 1/fps before every frame but the
    first, and the schedule runs on across a looping file's passes: the turn waited for at the
    end of a pass goes to the next pass's first frame (reopening costs nothing on this clock)."""
    clip = make_clip(tmp_path / "clip.mp4", 8, file_fps)
    seams = Seams(stop=lambda d: len(d) >= 20)
    cap = capture(file_source(clip, loop=True, realtime=True), loop=True, clock=seams.clock, wait=seams.wait)
    assert cap.pacer is not None
    cap.run()
    assert seams.delays == pytest.approx([interval] * 20)
    stats = cap.stats()
    assert stats.frames_read == 20 and stats.reconnects == 0 and not stats.crashed
    assert cap.ring.committed == 20 and cap.pacer.slips == 0


@pytest.mark.parametrize(
    ("source", "realtime", "paced"),
    [
        (FileSource(type="file", path="a.mp4", realtime=True), None, True),
        (FileSource(type="file", path="a.mp4"), None, False),
        (FileSource(type="file", path="a.mp4"), True, True),  # the constructor argument wins
        (FileSource(type="file", path="a.mp4", realtime=True), False, False),
        (StreamSource(type="rtsp", url="rtsp://127.0.0.1/x"), True, False),  # a camera paces itself
    ],
)
def test_which_captures_are_paced(
    source: FileSource | StreamSource, realtime: bool | None, paced: bool
) -> None:
    cap = capture(OpenCvSource(source), realtime=realtime)
    assert (cap.pacer is not None) is paced


@pytest.mark.parametrize(
    ("source", "policy"),
    [
        (FileSource(type="file", path="a.mp4"), "lossless"),
        (FileSource(type="file", path="a.mp4", loop=True), "lossless"),
        (FileSource(type="file", path="a.mp4", realtime=True), "latest"),
        (StreamSource(type="rtsp", url="rtsp://127.0.0.1/x"), "latest"),
    ],
)
def test_realtime_files_get_the_live_ring_policy(source: FileSource | StreamSource, policy: str) -> None:
    assert ring_policy(source) == policy


def test_a_realtime_file_on_a_latest_ring_never_waits_for_the_worker(tmp_path: Path) -> None:
    """Nobody takes frames: capture goes on at the file's rate, dropping and counting."""
    clip = make_clip(tmp_path / "clip.mp4", 10, 10.0)
    seams = Seams(stop=lambda d: len(d) >= 10)  # the 10th: the turn after the last frame
    cap = capture(file_source(clip, realtime=True), ring_policy(FileSource(type="file", path="x", realtime=True)),
                  clock=seams.clock, wait=seams.wait)  # fmt: skip
    cap.run()
    assert cap.ring.committed == 10 and cap.stats().frames_dropped == 10 - len(cap.ring.slots)


class SlowFile:
    """A file (not live) at 0.001 fps: the second frame is 1000 s away."""

    live = False
    realtime = True
    description = "slow file"

    def __init__(self) -> None:
        self.frame = np.zeros((H, W, 3), np.uint8)

    def open(self) -> None:
        pass

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        return self.frame

    def position_seconds(self) -> float | None:
        return None

    def fps(self) -> float:
        return 0.001

    def close(self) -> None:
        pass


def test_stop_ends_a_pacing_wait_at_once() -> None:
    """The real stop event: a wait of 1000 s ends when ``stop()`` is called (if it did not,
    the join below would time out and the thread would still be alive)."""
    cap = capture(SlowFile())  # type: ignore[arg-type]
    cap.start()
    wait_until(lambda: cap.frames_read == 1, 10, "the first frame")
    cap.stop()
    cap.join(10)
    assert not cap.is_alive() and cap.frames_read == 1 and cap.state is CameraState.STOPPED


# -- 2. a looping file stays online -----------------------------------------------------------


@pytest.mark.parametrize("realtime", [False, True], ids=["as-fast-as-possible", "realtime"])
def test_a_looping_file_does_not_flap_its_status(tmp_path: Path, realtime: bool) -> None:
    clip = make_clip(tmp_path / "clip.mp4", 10, 10.0)
    states: list[CameraState] = []
    seams = Seams(stop=lambda d: len(d) >= 35)  # realtime: 3 passes (10 turns each), 5 frames
    kw: dict[str, object] = {"clock": seams.clock, "wait": seams.wait} if realtime else {}
    cap = capture(file_source(clip, loop=True, realtime=realtime), "lossless" if not realtime else "latest",
                  loop=True, on_state=lambda _c, s: states.append(s), **kw)  # fmt: skip
    times: list[float] = []
    if realtime:
        cap.run()
    else:  # read as fast as possible: a consumer takes every frame until 3 passes are done

        def consume() -> None:
            while len(times) < 35:
                slot = cap.ring.take()
                if slot is None:
                    time.sleep(0.001)
                    continue
                times.append(slot.t_frame)
                cap.ring.release(slot)
            cap.stop()

        consumer = threading.Thread(target=consume)
        consumer.start()
        cap.start()
        consumer.join(60)
        cap.join(10)
    everything = [CameraState.CONNECTING, *states]  # a thread starts in connecting
    assert everything == [CameraState.CONNECTING, CameraState.STREAMING, CameraState.STOPPED]
    stats = cap.stats()
    assert stats.frames_read >= 35 and stats.reconnects == 0 and stats.error is None
    if times:  # the timeline runs on across the passes
        assert times == pytest.approx([i / 10.0 for i in range(35)])


def test_a_looping_file_that_cannot_be_reopened_fails_as_before(tmp_path: Path) -> None:
    """The file goes away during the first pass: the reopen is a real failure (reconnecting,
    backoff), unlike the loops before it."""
    clip = make_clip(tmp_path / "clip.mp4", 10, 10.0)
    states: list[str] = []

    def remove(delays: list[float]) -> None:
        if len(delays) == 5:
            clip.unlink()  # FFmpeg keeps reading the open file

    seams = Seams(stop=lambda d: d[-1] >= 0.5, on_wait=remove)  # stop at the first backoff wait
    cap = capture(file_source(clip, loop=True, realtime=True), loop=True, clock=seams.clock, wait=seams.wait,
                  backoff=Backoff(1.0, 30.0), on_state=lambda _c, s: states.append(s.value))  # fmt: skip
    cap.run()
    assert states == ["streaming", "reconnecting", "stopped"]
    assert seams.delays[:10] == pytest.approx([0.1] * 10) and 0.5 <= seams.delays[10] <= 1.0
    assert len(seams.delays) == 11 and "video file not found" in (cap.stats().error or "")


@pytest.mark.parametrize(
    ("passes", "ceiling"),
    [(2, 2.0), (4, 1.0)],  # 2 s of frames: not steady yet; 4 s: steady, the backoff starts over
    ids=["not-steady", "steady-across-passes"],
)
def test_steadiness_runs_across_a_looping_files_passes(tmp_path: Path, passes: int, ceiling: float) -> None:
    """The file is missing at first (backoff step 0), appears, loops ``passes`` times (1 s each),
    then goes away: the next backoff step is 1 (ceiling 2 s) unless the passes together were
    steady (``steady_after`` 3 s), which starts the backoff over (ceiling 1 s)."""
    clip = tmp_path / "clip.mp4"
    backoffs: list[float] = []

    def script(delays: list[float]) -> None:
        if delays[-1] >= 0.5:
            backoffs.append(delays[-1])
            if len(backoffs) == 1:
                make_clip(clip, 10, 10.0)
        elif len(delays) - 1 == 10 * passes - 5:  # halfway through the last pass
            clip.unlink()

    seams = Seams(stop=lambda _d: len(backoffs) == 2, on_wait=script)
    cap = capture(file_source(clip, loop=True, realtime=True), loop=True, clock=seams.clock, wait=seams.wait,
                  backoff=Backoff(1.0, 30.0), steady_after=3.0)  # fmt: skip
    cap.run()
    assert cap.frames_read == 10 * passes and len(backoffs) == 2
    assert 0.5 <= backoffs[0] <= 1.0 and ceiling / 2 <= backoffs[1] <= ceiling


# -- 3. t_wall never ahead of the clock; the position stays in t_frame -------------------------


def test_a_file_read_faster_than_real_time_has_no_future_wall_times(tmp_path: Path) -> None:
    """A 10 s clip at 30 fps, read as fast as it decodes: every frame's ``t_wall`` is at most
    the wall clock when the frame is taken, they never go back, and ``t_frame`` is index / fps."""
    clip = make_clip(tmp_path / "ten-seconds.mp4", 300, 30.0)
    cap = capture(file_source(clip), "lossless")
    seen = read_to_end(cap, lambda slot: (slot.seq, slot.t_frame, slot.t_wall, time.time()))
    assert cap.exhausted and [s[0] for s in seen] == list(range(300))
    for seq, t_frame, t_wall, observed in seen:
        assert t_wall <= observed
        assert t_frame == pytest.approx(seq / 30.0)
    walls = [s[2] for s in seen]
    assert walls == sorted(walls)


class Observer:
    """An action that notes each event's payload and the wall clock when it arrives."""

    name = "observer"
    files_removed = 0

    def __init__(self) -> None:
        self.seen: list[tuple[dict[str, object], float]] = []

    def handle(self, env: EventEnvelope) -> bool:
        self.seen.append((env.payload, time.time()))
        return True

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass


def face_clip(path: Path, astronaut: np.ndarray, coffee: np.ndarray) -> Path:
    """10 s at 30 fps: no face for 3 s, the astronaut's face for 4 s, then none again."""
    face, empty = cv2.resize(astronaut, (256, 256)), cv2.resize(coffee, (256, 256))
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 30.0, (256, 256))
    for i in range(300):
        writer.write(face if 90 <= i < 210 else empty)
    writer.release()
    return path


def test_event_ts_is_not_in_the_future_for_a_file(
    models_dir: Path, astronaut: np.ndarray, coffee: np.ndarray, tmp_path: Path
) -> None:
    """BlazeFace on LiteRT (a few ms a frame) reads the 10 s clip much faster than real time:
    each event's ``ts`` is at most the wall clock when it reached the actions, the stamps never
    go back, and ``t_frame`` is the event's frame index / fps (3 s in, and 1 s after 7 s)."""
    clip = face_clip(tmp_path / "faces.mp4", astronaut, coffee)
    text = f"""
state_dir: {tmp_path}/state
models: {{f: {{path: blazeface, runner: litert}}}}
cameras: {{c: {{source: {{type: file, path: "{clip}"}}, model: f}}}}
rules: {{r: {{cameras: [c], labels: [face], min_score: 0.6, clear_after: 1s}}}}
mqtt: {{enabled: false}}
actions: {{event_log: false, snapshots: {{enabled: false}}}}
"""
    app = Application(parse_config(text, "x.yaml"))
    observer = Observer()
    app.start()
    assert app.dispatcher is not None
    app.dispatcher.replace_actions([observer])  # queued ahead of any event (the first is 90 frames in)
    app.run()
    assert [p["type"] for p, _ in observer.seen] == ["new", "end"]
    stamps = []
    for payload, observed in observer.seen:
        ts = datetime.fromisoformat(str(payload["ts"]).replace("Z", "+00:00")).timestamp()
        assert ts <= observed
        stamps.append(ts)
        frame = payload["frame"]
        assert isinstance(frame, dict)
        assert payload["t_frame"] == pytest.approx(frame["seq"] / 30.0, abs=1e-3)
    assert stamps == sorted(stamps)
    assert [p["t_frame"] for p, _ in observer.seen] == pytest.approx([3.0, 8.0], abs=0.1)
