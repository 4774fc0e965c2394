"""Capture faults, each through the capture code's own seams: a fake camera behind the
``FrameSource`` protocol, an injected clock, rng and ``wait`` (so backoff waits are recorded,
not slept), and real files that OpenCV cannot read.

There is no /dev/video or v4l2loopback in these containers: ``FakeCamera`` stands in for a
V4L2 camera that delivers GREY, Y16 or BGRA frames, decoding into the buffer it is given when
that fits, as OpenCV does. The capture threads here run synchronously (``run()`` in the test
thread) on a ``latest`` ring, so nothing blocks and every wait is observable.
"""

from __future__ import annotations

import random
import shutil
import subprocess
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.buffer.preprocess import BgrConverter, InputFormat, LetterboxPreprocessor
from edge.buffer.ring import FrameRing, SlotState
from edge.capture.sources import FrameSource, OpenCvSource, SourceError, timeout_ms
from edge.capture.thread import Backoff, CameraState, CaptureThread
from edge.config import parse_config
from edge.config.schema import FileSource, StreamSource
from edge.types import TensorSpec

H, W = 48, 64


def scene() -> np.ndarray:
    """A BGR test picture with different channels, so a wrong conversion shows."""
    y, x = np.mgrid[0:H, 0:W]
    return np.dstack([(x * 4) % 256, (y * 5) % 256, ((x + y) * 3) % 256]).astype(np.uint8)


class FakeClock:
    def __init__(self, now: float = 0.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class Waits:
    """The injected ``wait``: records each backoff delay; asks to stop after ``limit`` waits."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.delays: list[float] = []

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        return len(self.delays) >= self.limit


class FakeCamera:
    """A fake V4L2/RTSP camera: every ``open()`` starts a session of ``frames_per_session``
    frames (then ``read`` returns None: the stream broke), ``seconds_per_frame`` apart on
    ``clock``. It decodes into ``into`` when that fits and counts how often it did not."""

    description = "fake camera"

    def __init__(
        self,
        frame: np.ndarray,
        frames_per_session: int,
        clock: FakeClock | None = None,
        seconds_per_frame: float = 0.04,
        live: bool = True,
        read_error: Exception | None = None,
    ) -> None:
        self.frame = frame
        self.frames_per_session = frames_per_session
        self.clock = clock
        self.seconds_per_frame = seconds_per_frame
        self.live = live
        self.read_error = read_error
        self.opens = 0
        self.reads = 0
        self.unfit_buffers = 0
        self._left = 0

    def open(self) -> None:
        self.opens += 1
        self._left = self.frames_per_session

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        if self.read_error is not None:
            raise self.read_error
        if self._left == 0:
            return None
        self._left -= 1
        self.reads += 1
        if self.clock is not None:
            self.clock.now += self.seconds_per_frame
        if into is not None and into.shape == self.frame.shape and into.dtype == self.frame.dtype:
            np.copyto(into, self.frame)
            return into
        self.unfit_buffers += 1
        fresh: np.ndarray = self.frame.copy()  # what OpenCV does when ``into`` does not fit
        return fresh

    def position_seconds(self) -> float | None:
        return None

    def fps(self) -> float:
        return 25.0

    def close(self) -> None:
        pass


def preprocessor() -> LetterboxPreprocessor:
    spec = TensorSpec("x", (1, 3, 32, 32), np.dtype(np.float32), "NCHW")
    return LetterboxPreprocessor(InputFormat(32, 32), spec)


def capture(source: FrameSource, waits: Waits, **kw: object) -> CaptureThread:
    pre = preprocessor()
    ring = FrameRing(3, pre.new_tensor, "latest")
    kw.setdefault("rng", random.Random(1))
    return CaptureThread("cam", source, ring, pre, wait=waits, **kw)  # type: ignore[arg-type]


# -- 1. grey, BGRA and 16-bit frames ------------------------------------------------------

BGR = scene()
GREY = cv2.cvtColor(BGR, cv2.COLOR_BGR2GRAY)
BGRA = cv2.cvtColor(BGR, cv2.COLOR_BGR2BGRA)

FRAMES: list[tuple[str, np.ndarray, np.ndarray, AbstractContextManager[object]]] = [
    ("bgr", BGR, BGR, nullcontext()),
    ("grey", GREY, np.dstack([GREY] * 3), nullcontext()),
    ("grey (H, W, 1)", GREY[..., None], np.dstack([GREY] * 3), nullcontext()),
    ("bgra", BGRA, BGR, nullcontext()),
    ("grey 16-bit", GREY.astype(np.uint16) * 257, np.dstack([GREY] * 3), nullcontext()),
    ("bgr 16-bit", BGR.astype(np.uint16) * 257, BGR, nullcontext()),
    ("bgra 16-bit", BGRA.astype(np.uint16) * 257, BGR, nullcontext()),
    (
        "two channels",
        np.zeros((H, W, 2), np.uint8),
        BGR,
        pytest.raises(ValueError, match=r"got shape \(48, 64, 2\)"),
    ),
    ("float", BGR.astype(np.float32), BGR, pytest.raises(ValueError, match="float32")),
    ("one row", BGR[0, :, 0], BGR, pytest.raises(ValueError, match="grey, BGR or BGRA")),
]


@pytest.mark.parametrize(("name", "frame", "as_bgr", "raises"), FRAMES, ids=[f[0] for f in FRAMES])
def test_preprocessor_takes_what_v4l2_cameras_deliver(
    name: str, frame: np.ndarray, as_bgr: np.ndarray, raises: AbstractContextManager[object]
) -> None:
    pre, reference = preprocessor(), preprocessor()
    out, expected = pre.new_tensor(), reference.new_tensor()
    with raises:
        box = pre(frame, out)
        assert box == reference(np.ascontiguousarray(as_bgr), expected)
        np.testing.assert_array_equal(out, expected)


@pytest.mark.parametrize("frame", [GREY, BGRA, GREY.astype(np.uint16) * 257], ids=["grey", "bgra", "grey16"])
def test_converter_writes_into_the_given_or_its_own_buffer(frame: np.ndarray) -> None:
    convert = BgrConverter()
    given = np.empty((H, W, 3), np.uint8)
    assert convert(frame, given) is given
    own = convert(frame)
    assert own is not given and convert(frame) is own  # kept for the next frame
    assert convert(BGR, given) is BGR  # BGR passes through untouched


@pytest.mark.parametrize("frame", [GREY, BGRA, GREY.astype(np.uint16) * 257], ids=["grey", "bgra", "grey16"])
def test_capture_thread_on_a_grey_or_bgra_v4l2_camera(frame: np.ndarray) -> None:
    camera = FakeCamera(frame, frames_per_session=12)
    cap = capture(camera, Waits(limit=1))
    cap.run()
    stats = cap.stats()
    assert stats.state == "stopped" and not stats.crashed and stats.error == "fake camera: stream ended"
    assert stats.frames_read == 12 and cap.ring.committed == 12
    # One decode buffer per slot at first, then each read decodes into the slot's own buffer.
    assert camera.unfit_buffers == len(cap.ring.slots)
    slot = cap.ring.take()
    assert slot is not None and slot.frame is not None
    assert slot.frame.shape == (H, W, 3) and slot.frame.dtype == np.uint8
    reference = preprocessor()
    expected = reference.new_tensor()
    reference(BgrConverter()(frame), expected)
    np.testing.assert_array_equal(slot.tensor, expected)


# -- 2. backoff grows until a stream has been steady --------------------------------------


def ceilings(n: int, initial: float = 1.0, maximum: float = 30.0) -> list[float]:
    return [min(maximum, initial * 2**i) for i in range(n)]


@pytest.mark.parametrize(
    ("frames_per_session", "seconds_per_frame", "expected_ceilings"),
    [
        (0, 0.04, ceilings(8)),  # opens, then fails at once: 1, 2, 4, ... 30 s
        (5, 0.04, ceilings(8)),  # a few frames are not a recovery
        (40, 0.5, ceilings(8)),  # 20 s of frames: not yet steady
        (40, 1.0, [1.0] * 8),  # 40 s of frames: steady, so each failure starts over
    ],
    ids=["fails-at-once", "few-frames", "not-steady", "steady"],
)
def test_backoff_resets_only_after_a_steady_stream(
    frames_per_session: int, seconds_per_frame: float, expected_ceilings: list[float]
) -> None:
    clock = FakeClock(1000.0)
    camera = FakeCamera(BGR, frames_per_session, clock, seconds_per_frame)
    waits = Waits(limit=len(expected_ceilings))
    cap = capture(camera, waits, clock=clock, backoff=Backoff(1.0, 30.0), steady_after=30.0)
    cap.run()
    assert camera.opens == len(expected_ceilings)
    for delay, ceiling in zip(waits.delays, expected_ceilings, strict=True):
        assert ceiling / 2 <= delay <= ceiling
    assert cap.stats().reconnects == len(expected_ceilings) and not cap.stats().crashed


@pytest.mark.parametrize(
    ("backoff", "low", "high"),
    [(Backoff(float("inf"), float("inf")), 43200.0, 86400.0), (Backoff(1e300, 1e300), 43200.0, 86400.0),
     (Backoff(float("nan"), 30.0), 15.0, 30.0), (Backoff(-1.0, 30.0), 0.0, 0.0)],
)  # fmt: skip
def test_backoff_never_returns_a_wait_that_overflows(backoff: Backoff, low: float, high: float) -> None:
    delay = backoff.delay(3, random.Random(2))
    assert low <= delay <= high


# -- 4. a file that can never be read ends the capture, saying why ------------------------


def _ffmpeg(*args: str) -> None:
    if shutil.which("ffmpeg") is None:
        pytest.skip("ffmpeg not installed (tools/test.sh installs it)")
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", *args], check=True)


def _clip(path: Path) -> bytes:
    """A 10-frame MP4 written by OpenCV: its moov (index) box comes last."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10, (W, H))
    for i in range(10):
        writer.write(np.full((H, W, 3), i * 20, np.uint8))
    writer.release()
    return path.read_bytes()


def _zero(d: Path) -> str:
    (d / "empty.mp4").touch()
    return str(d / "empty.mp4")


def _text(d: Path) -> str:
    (d / "notes.mp4").write_text("cameras:\n  gate: {}\n")
    return str(d / "notes.mp4")


def _truncated_before_index(d: Path) -> str:
    data = _clip(d / "full.mp4")
    assert data.find(b"moov") > 300
    (d / "cut.mp4").write_bytes(data[:300])
    return str(d / "cut.mp4")


def _audio_only(d: Path) -> str:
    _ffmpeg("-f", "lavfi", "-i", "sine=duration=1", "-c:a", "aac", str(d / "audio.m4a"))
    return str(d / "audio.m4a")


def _index_but_no_frames(d: Path) -> str:
    """moov first (faststart), media data cut off: opens, but no frame decodes."""
    _ffmpeg("-f", "lavfi", "-i", f"testsrc=size={W}x{H}:rate=10", "-t", "2", "-c:v", "libx264",
            "-pix_fmt", "yuv420p", "-movflags", "+faststart", str(d / "fast.mp4"))  # fmt: skip
    data = (d / "fast.mp4").read_bytes()
    (d / "nodata.mp4").write_bytes(data[: data.find(b"mdat") + 20])
    return str(d / "nodata.mp4")


def _directory(d: Path) -> str:
    return str(d)


def _name_too_long(d: Path) -> str:
    return str(d / ("x" * 300 + ".mp4"))


def _missing(d: Path) -> str:
    return str(d / "not-yet.mp4")


def _good(d: Path) -> str:
    _clip(d / "good.mp4")
    return str(d / "good.mp4")


# (file maker, loop, end: failed | exhausted | retrying, words in last_error, waits)
BAD_FILES: list[tuple[Callable[[Path], str], bool, str, str, int]] = [
    (_zero, False, "failed", "0 bytes", 2),
    (_text, False, "failed", "looks like text", 2),
    (_truncated_before_index, False, "failed", "moov atom not found", 2),
    (_audio_only, False, "failed", "no video stream", 2),
    (_index_but_no_frames, False, "failed", "no frame could be decoded", 2),
    (_directory, False, "failed", "a directory", 2),
    (_name_too_long, False, "failed", "File name too long", 2),
    (_missing, False, "retrying", "video file not found", 6),  # may yet appear: keep trying
    (_zero, True, "retrying", "0 bytes", 6),  # a looping file is a stand-in camera: keep trying
    (_good, False, "exhausted", "", 0),
]


@pytest.mark.parametrize(
    ("make", "loop", "end", "reason", "waits"), BAD_FILES,
    ids=[f"{m.__name__.strip('_')}{'-loop' if lp else ''}" for m, lp, *_ in BAD_FILES],
)  # fmt: skip
def test_a_file_that_cannot_be_read_fails_after_three_attempts(
    tmp_path: Path, make: Callable[[Path], str], loop: bool, end: str, reason: str, waits: int
) -> None:
    path = make(tmp_path)
    source = OpenCvSource(FileSource.model_construct(type="file", path=path, loop=loop))
    recorded = Waits(limit=6)
    states: list[str] = []
    cap = capture(source, recorded, loop=loop, on_state=lambda _c, s: states.append(s.value))
    cap.run()
    stats = cap.stats()
    assert stats.state == "stopped" and not stats.crashed
    assert (stats.failed, stats.exhausted) == (end == "failed", end == "exhausted")
    assert len(recorded.delays) == waits
    if end == "exhausted":
        assert stats.error is None and stats.frames_read == 10
        return
    assert stats.error is not None and path in stats.error and reason in stats.error
    assert "\n" not in stats.error
    assert states[:2] == ["reconnecting", "connecting"] and states[-1] == "stopped"
    assert "streaming" not in states or reason == "no frame could be decoded"


@pytest.mark.parametrize(("loop", "failed", "waits"), [(False, True, 2), (True, False, 6)])
def test_a_file_source_that_opens_but_gives_no_frame_is_unreadable(
    loop: bool, failed: bool, waits: int
) -> None:
    camera = FakeCamera(BGR, frames_per_session=0, live=False)
    recorded = Waits(limit=6)
    cap = capture(camera, recorded, loop=loop)
    cap.run()  # a looping one backs off instead of reopening in a busy loop
    assert (
        cap.stats().failed is failed
        and cap.stats().error == "cannot read fake camera: no frame could be decoded"
    )
    assert len(recorded.delays) == waits and camera.opens == waits + (1 if failed else 0)


def test_edge_run_ends_when_its_only_file_cannot_be_read(models_dir: Path, tmp_path: Path) -> None:
    from edge.daemon.app import Application

    (tmp_path / "empty.mp4").touch()
    text = f"""
state_dir: {tmp_path}/state
models: {{face: {{path: blazeface}}}}
cameras: {{door: {{source: {{type: file, path: "{tmp_path}/empty.mp4"}}, model: face,
                  reconnect: {{initial: 0.01s, max: 0.02s}}}}}}
mqtt: {{enabled: false}}
"""
    app = Application(parse_config(text, "x.yaml"))
    app.start()
    result = app.run()
    stats = app.captures["door"].stats()
    assert result.frames == 0 and stats.failed and not stats.crashed and stats.state == "stopped"
    assert stats.error == f"cannot read video file {tmp_path}/empty.mp4: 0 bytes"


# -- 5. timeouts OpenCV cannot take, paths the OS rejects ---------------------------------


@pytest.mark.parametrize(
    ("seconds", "ms"),
    [(5.0, 5000), (0.0001, 1), (0.0, 1), (-3.0, 1), (2147483.647, 2147483647), (1e15, 2147483647),
     (1e300, 2147483647), (float("inf"), 2147483647), (float("nan"), 2147483647)],
)  # fmt: skip
def test_timeouts_are_clamped_to_int32_milliseconds(seconds: float, ms: int) -> None:
    assert timeout_ms(seconds) == ms


@pytest.mark.parametrize(
    ("open_timeout", "read_timeout"),
    [(float("inf"), 5.0), (1e300, 5.0), (5.0, 1e15), (float("nan"), float("inf"))],
)
def test_a_stream_with_huge_timeouts_fails_as_a_source_error(
    open_timeout: float, read_timeout: float
) -> None:
    from broker import free_port

    url = f"rtsp://127.0.0.1:{free_port()}/cam"  # nothing listens: refused at once
    cfg = StreamSource.model_construct(
        type="rtsp", url=url, open_timeout=open_timeout, read_timeout=read_timeout
    )
    with pytest.raises(SourceError, match="cannot open rtsp"):
        OpenCvSource(cfg).open()


# -- 6. one clock for live cameras --------------------------------------------------------


def test_a_restarted_live_camera_continues_the_same_frame_clock() -> None:
    clock = FakeClock(5000.0)
    times: list[float] = []
    for _restart in range(2):
        cap = capture(FakeCamera(BGR, 3, clock, seconds_per_frame=1.0), Waits(limit=1), clock=clock)
        cap.run()
        slot = cap.ring.take()
        assert slot is not None
        times.append(slot.t_frame)
        clock.now += 100.0  # the reload happens later
    assert times[1] - times[0] == pytest.approx(103.0)


# -- 7. a crash is told apart from a clean end --------------------------------------------


class Boom(Exception):
    pass


@pytest.mark.parametrize(
    ("read_error", "waits", "crashed", "error"),
    [
        (Boom("decoder exploded"), 1, True, "Boom: decoder exploded"),
        (SourceError("fake camera: no frame within 5 s (stream stalled)"), 1, False,
         "fake camera: no frame within 5 s (stream stalled)"),
        (None, 1, False, "fake camera: stream ended"),
    ],
    ids=["crash", "stall", "stopped"],
)  # fmt: skip
def test_stats_tell_a_crash_from_a_clean_end(
    read_error: Exception | None, waits: int, crashed: bool, error: str, caplog: pytest.LogCaptureFixture
) -> None:
    camera = FakeCamera(BGR, 2, read_error=read_error)
    recorded = Waits(limit=waits)
    cap = capture(camera, recorded)
    cap.run()
    stats = cap.stats()
    assert stats.state == "stopped" and stats.crashed is crashed and stats.error == error
    assert not stats.failed and not stats.exhausted
    assert len(recorded.delays) == (0 if crashed else waits)
    assert ("Traceback" in caplog.text) is crashed
    # Nothing is left held: a supervisor can start a new thread on the same ring.
    assert all(s.state in (SlotState.FREE, SlotState.READY) for s in cap.ring.slots)
    again = CaptureThread("cam", FakeCamera(BGR, 4), cap.ring, cap.preprocessor, wait=Waits(limit=1))
    again.run()
    assert again.stats().frames_read == 4 and not again.stats().crashed


def test_a_failing_state_listener_does_not_stop_the_capture() -> None:
    def listener(_camera: str, _state: CameraState) -> None:
        raise RuntimeError("broker gone")

    cap = capture(FakeCamera(BGR, 5), Waits(limit=1), on_state=listener)
    cap.run()
    assert cap.stats().frames_read == 5 and not cap.stats().crashed
