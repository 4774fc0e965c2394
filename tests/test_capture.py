"""Capture threads on real sources (files and a missing file). There is no /dev/video or
v4l2loopback in these containers, so the V4L2 path is exercised through the same
OpenCvSource/CaptureThread code with files and RTSP (see test_rtsp_reconnect.py)."""

from __future__ import annotations

import logging
import random
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from conftest import read_to_end

from edge.alerts.actions import ActionDispatcher, EventEnvelope, EventLogAction, SnapshotAction
from edge.buffer.preprocess import InputFormat, LetterboxPreprocessor
from edge.buffer.ring import FrameRing
from edge.capture.redact import RedactingFilter, mask_url
from edge.capture.sources import OpenCvSource
from edge.capture.thread import Backoff, CameraState, CaptureThread
from edge.config import parse_config
from edge.config.schema import FileSource
from edge.daemon.app import Application
from edge.types import TensorSpec


def capture_for(path: str, ring_policy: str = "lossless", **kw: object) -> CaptureThread:
    spec = TensorSpec("x", (1, 3, 32, 32), np.dtype(np.float32), "NCHW")
    pre = LetterboxPreprocessor(InputFormat(32, 32), spec)
    ring = FrameRing(3, pre.new_tensor, ring_policy)  # type: ignore[arg-type]
    return CaptureThread("cam", OpenCvSource(FileSource(type="file", path=path)), ring, pre, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("attempt", "low", "high"), [(0, 0.5, 1.0), (1, 1.0, 2.0), (3, 4.0, 8.0), (10, 15.0, 30.0), (60, 15.0, 30.0)])
def test_backoff_is_exponential_jittered_and_capped(attempt: int, low: float, high: float) -> None:
    rng = random.Random(7)
    delays = [Backoff(1.0, 30.0).delay(attempt, rng) for _ in range(200)]
    assert low <= min(delays) and max(delays) <= high
    assert len({round(d, 6) for d in delays}) > 100  # jittered


def test_missing_file_retries_with_backoff_and_stops_at_once(tmp_path: Path) -> None:
    states: list[str] = []
    cap = capture_for(str(tmp_path / "nope.mp4"), backoff=Backoff(30.0, 60.0), on_state=lambda _c, s: states.append(s.value))
    cap.start()
    deadline = time.monotonic() + 5
    while cap.state is not CameraState.RECONNECTING and time.monotonic() < deadline:
        time.sleep(0.01)
    assert cap.state is CameraState.RECONNECTING and "video file not found" in (cap.last_error or "")
    t0 = time.monotonic()
    cap.stop()
    cap.join(5)
    assert not cap.is_alive() and time.monotonic() - t0 < 1.0  # waits on the stop event, not a sleep
    assert states == ["reconnecting", "stopped"]


def test_illegal_transition_raises(demo_clip: Path) -> None:
    cap = capture_for(str(demo_clip))
    cap._set_state(CameraState.STOPPED)
    with pytest.raises(RuntimeError, match="illegal transition stopped -> streaming"):
        cap._set_state(CameraState.STREAMING)


def test_file_is_read_to_the_end_with_frame_times(demo_clip: Path) -> None:
    cap = capture_for(str(demo_clip))
    seen = read_to_end(cap, lambda slot: (slot.seq, slot.t_frame))
    assert cap.exhausted and len(seen) == 500
    assert [s for s, _ in seen] == list(range(500))
    assert seen[-1][1] == pytest.approx(499 / 25)


def test_fps_cap_drops_frames_before_preprocessing(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    text = f"""
state_dir: {tmp_path}
models: {{p: {{path: blazepose}}}}
cameras: {{c: {{source: {{type: file, path: "{demo_clip}"}}, model: p, fps: 5}}}}
mqtt: {{enabled: false}}
"""
    app = Application(parse_config(text, "x.yaml"))
    app.start()
    result = app.run()
    stats = app.captures["c"].stats()
    assert result.frames == 100 and stats.frames_read == 500 and stats.frames_skipped == 400


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("rtsp://admin:hunter2@10.0.0.5:554/s1", "rtsp://***@10.0.0.5:554/s1"),
        ("open rtsp://u@cam/x and http://a:b@h/y", "open rtsp://***@cam/x and http://***@h/y"),
        ("rtsp://10.0.0.5/stream", "rtsp://10.0.0.5/stream"),
        ("file /videos/a@b.mp4", "file /videos/a@b.mp4"),
    ],
)
def test_mask_url(text: str, expected: str) -> None:
    assert mask_url(text) == expected


def test_redacting_filter_masks_formatted_messages(caplog: pytest.LogCaptureFixture) -> None:
    log = logging.getLogger("edge.test.redact")
    log.addFilter(RedactingFilter())
    with caplog.at_level(logging.INFO, logger="edge.test.redact"):
        log.info("cannot open %s", "rtsp://admin:hunter2@10.0.0.5/s1")
    assert "hunter2" not in caplog.text and "rtsp://***@10.0.0.5/s1" in caplog.text


def test_one_failing_action_does_not_stop_the_others(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the snapshot folder should be")
    log_action = EventLogAction(tmp_path / "events.jsonl")
    dispatcher = ActionDispatcher([SnapshotAction(blocker, crop=False, quality=80), log_action])
    dispatcher.start()
    payload = {"id": "a" * 32, "type": "new", "camera": "c", "rule": "r", "label": "x", "score": 0.9,
               "box": [0, 0, 10, 10], "ts": "2026-01-01T00:00:00.000Z"}
    for _ in range(3):
        dispatcher.submit(EventEnvelope(payload, np.zeros((20, 20, 3), np.uint8)))
    dispatcher.close()
    assert dispatcher.failures == {"snapshot": 3, "event_log": 0}
    assert len((tmp_path / "events.jsonl").read_text().splitlines()) == 3


class CountingSource:
    """The real file source, counting how each frame was taken: ``read`` (decoded and
    converted to BGR) or ``skip`` (decoded only). A seam, not a mock: every call reaches OpenCV."""

    def __init__(self, path: str) -> None:
        self.inner = OpenCvSource(FileSource(type="file", path=path))
        self.live = False
        self.description = self.inner.description
        self.reads = 0
        self.skips = 0

    def open(self) -> None:
        self.inner.open()

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        frame = self.inner.read(into)
        self.reads += frame is not None
        return frame

    def skip(self) -> bool:
        ok = self.inner.skip()
        self.skips += ok
        return ok

    def position_seconds(self) -> float | None:
        return self.inner.position_seconds()

    def fps(self) -> float:
        return self.inner.fps()

    def close(self) -> None:
        self.inner.close()


@pytest.mark.parametrize(
    ("fps_cap", "reads", "skips"),
    [
        (None, 500, 0),  # no cap: every frame is read in full
        (25.0, 500, 0),  # a cap at the file's own rate drops nothing
        (12.5, 250, 250),
        (5.0, 100, 400),
        (1.0, 20, 480),
    ],
)
def test_fps_cap_without_motion_gating_skips_dropped_frames(
    demo_clip: Path, fps_cap: float | None, reads: int, skips: int
) -> None:
    """Frames the cap drops are only decoded (``skip``: grab without retrieve), never converted,
    motion gating or not; each is counted once in ``frames_skipped``."""
    source = CountingSource(str(demo_clip))
    spec = TensorSpec("x", (1, 3, 32, 32), np.dtype(np.float32), "NCHW")
    pre = LetterboxPreprocessor(InputFormat(32, 32), spec)
    cap = CaptureThread("cam", source, FrameRing(3, pre.new_tensor, "lossless"), pre, fps_cap=fps_cap)
    seen = read_to_end(cap, lambda slot: slot.seq)
    stats = cap.stats()
    assert (source.reads, source.skips) == (reads, skips)
    assert len(seen) == reads and stats.frames_read == 500 and stats.frames_skipped == skips


@pytest.mark.parametrize(
    ("configured", "passed", "expected"),
    [(None, None, None), (None, 1, 1), (3, 1, 3), (2, None, 2)],
    ids=["ffmpeg-default", "daemon-asks-one", "config-wins", "config-only"],
)
def test_decode_threads_reach_ffmpeg(
    configured: int | None, passed: int | None, expected: int | None, demo_clip: Path
) -> None:
    """The config's decode_threads, else what the daemon passes (1 when cameras outnumber
    cores), reaches FFmpeg's decoder; neither leaves FFmpeg's own choice."""
    cfg = FileSource(type="file", path=str(demo_clip), decode_threads=configured)
    source = OpenCvSource(cfg, decode_threads=passed)
    source.open()
    try:
        threads = int(source._cap.get(cv2.CAP_PROP_N_THREADS))  # type: ignore[union-attr]
        assert source.read(None) is not None
    finally:
        source.close()
    if expected is None:
        assert threads >= 1
    else:
        assert threads == expected


FILE = "{type: file, path: CLIP}"
REALTIME = "{type: file, path: CLIP, realtime: true}"
STREAM = "{type: rtsp, url: rtsp://127.0.0.1:9/none}"


# (id, cameras, their source, decoding threads the daemon passes)
DECODE_THREADS = [
    ("one file read as fast as it goes: FFmpeg's choice", 1, FILE, None),
    ("two files on two cores", 2, FILE, 1),
    ("five files on two cores", 5, FILE, 1),
    ("one file played in real time", 1, REALTIME, 1),
    ("one stream", 1, STREAM, 1),
]


@pytest.mark.parametrize(
    ("cameras", "source", "expected"), [c[1:] for c in DECODE_THREADS], ids=[c[0] for c in DECODE_THREADS]
)
def test_the_daemon_decodes_paced_sources_and_full_cores_on_one_thread(
    cameras: int,
    source: str,
    expected: int | None,
    demo_clip: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from edge.config import parse_config
    from edge.daemon import app as app_module
    from edge.daemon.app import Application

    monkeypatch.setattr(app_module, "usable_cores", lambda: 2)
    src = source.replace("CLIP", repr(str(demo_clip)))
    cams = "\n".join(f"  c{i}: {{source: {src}, model: m}}" for i in range(cameras))
    text = f"state_dir: {str(tmp_path)!r}\nmodels: {{m: {{path: blazeface}}}}\ncameras:\n{cams}\nmqtt: {{enabled: false}}\n"
    app = Application(parse_config(text, "x.yaml"))
    assert app._decode_threads(app.loaded.config.cameras["c0"].source) == expected


@pytest.mark.parametrize(("fps", "warned"), [(500.0, True), (25.0, False)], ids=["500-fps", "25-fps"])
def test_a_stream_whose_reads_cannot_keep_up_is_warned_about_once(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fps: float, warned: bool
) -> None:
    """A 1080p file played in real time at 500 fps: reading a frame (decoding, converting)
    takes more than the millisecond it may, on any CPU; at 25 fps it does not. This
    thread's CPU is measured, not the wall clock, so a busy machine does not change it."""
    path = tmp_path / "clip.mp4"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, (1920, 1080))
    rng = np.random.default_rng(0)
    for _ in range(80):
        writer.write(rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8))
    writer.release()
    caplog.set_level(logging.WARNING, logger="edge.capture")
    cap = capture_for(str(path), realtime=True)
    read_to_end(cap, lambda slot: slot.seq)
    found = [r.getMessage() for r in caplog.records if "reading a frame takes" in r.getMessage()]
    assert len(found) == (1 if warned else 0), found
    if warned:
        assert found[0].startswith("camera cam: reading a frame takes ")
        assert "of every 2 ms between frames" in found[0]
