"""One capture thread per camera: open, read, preprocess into the ring, reconnect with backoff.

Lifecycle (illegal transitions raise): connecting -> streaming -> reconnecting -> connecting
... -> stopped. Waits are on the stop event (or an injected ``wait``), so shutdown is immediate.

How a thread ends, as ``stats()`` shows it (state ``stopped`` in every case):

* ``exhausted``: a file without ``loop`` was read to its end;
* ``failed``: a file without ``loop`` that exists but gives no frame (not a video, 0 bytes, an
  MP4 without its index...) failed ``give_up_after`` attempts in a row; ``error`` says why;
* ``crashed``: an unexpected exception (a bug); ``error`` holds it, the log its traceback;
* none of these: ``stop()`` was called.

Backoff: every failed attempt (an open that fails, a stream that ends or stalls) waits one
step longer; the steps go back to the first only once a stream has delivered frames steadily
for ``steady_after`` seconds, so a camera that opens and then fails at once is not retried
every second forever.

A looping file reopens at its end without leaving ``streaming``: no ``connecting``/``online``
flap on the status topic, no reconnect counted, and its steadiness runs on across the passes.
A reopen that fails is a failure like any other (``reconnecting``, backoff).

Frame times: ``t_frame`` is the position on the source's timeline. Files run on their own
timeline (frame index / fps; each pass adds its length); live sources use one process-wide
origin (``LIVE_ORIGIN``), so a camera restarted by a reload or a supervisor continues the same
clock and rule state carried over is not left in the future. ``t_wall`` is the wall-clock time
(``time.time()``) at which the frame was decoded, for every source: never ahead of the clock,
even for a file read faster than real time (its position stays in ``t_frame``).

Real-time files (``source.realtime``): a ``FramePacer`` plays the file at its own frame rate,
so a looped file stands in for a camera (give it a ``latest`` ring: ``ring_policy``).
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

import numpy as np

from edge.buffer.preprocess import BgrConverter, LetterboxPreprocessor
from edge.buffer.ring import FrameRing, Slot
from edge.capture.motion import MotionGate
from edge.capture.sources import FrameSource, SourceError

log = logging.getLogger("edge.capture")

LIVE_ORIGIN = time.monotonic()  # t_frame 0 for every live camera in this process
_MAX_DELAY = min(threading.TIMEOUT_MAX, 86400.0)  # what a wait can take, whatever the config


class CameraState(Enum):
    CONNECTING = "connecting"
    STREAMING = "streaming"
    RECONNECTING = "reconnecting"
    STOPPED = "stopped"


_ALLOWED = {
    CameraState.CONNECTING: {CameraState.STREAMING, CameraState.RECONNECTING, CameraState.STOPPED},
    CameraState.STREAMING: {CameraState.RECONNECTING, CameraState.STOPPED, CameraState.CONNECTING},
    CameraState.RECONNECTING: {CameraState.CONNECTING, CameraState.STOPPED},
    CameraState.STOPPED: set(),
}


@dataclass(frozen=True)
class Backoff:
    """Exponential backoff with full jitter, capped: delay n is uniform in [base*2^n/2, base*2^n].

    Non-finite or huge settings are held to a day, so a wait never overflows."""

    initial: float = 1.0
    maximum: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(attempt, 30)))
        ceiling = ceiling if 0.0 <= ceiling <= _MAX_DELAY else (0.0 if ceiling < 0 else _MAX_DELAY)
        return rng.uniform(ceiling / 2, ceiling)


class FramePacer:
    """Plays a file at its own frame rate on the monotonic ``clock``.

    Frame k is due at ``start + k / fps``: the schedule, not the last wake-up, sets each wait,
    so waits that overshoot never add up to drift. A frame already due is read at once; one
    more than ``max_late`` frames late moves the schedule to now (playback slips and ``slips``
    counts it), so after a stall at most ``max_late`` frames are read back to back to catch up,
    never a burst. The schedule runs on across a looping file's passes (its first frame is due
    one interval after the last) and starts over when the frame rate changes. ``wait`` is the
    capture thread's stop-event wait: it returns True, at once, when stop is requested.
    """

    def __init__(self, clock: Callable[[], float], wait: Callable[[float], bool], max_late: int = 2) -> None:
        self._clock = clock
        self._wait = wait
        self.max_late = max_late
        self.slips = 0
        self._start: float | None = None
        self._fps = 0.0
        self._k = 0  # frames scheduled since start

    def wait_turn(self, fps: float) -> bool:
        """Wait until the next frame is due; True when stop was requested meanwhile."""
        now = self._clock()
        if self._start is None or fps != self._fps:
            self._start, self._fps, self._k = now, fps, 0
        due = self._start + self._k / fps
        if now < due:
            if self._wait(due - now):
                return True
        elif now - due > self.max_late / fps:
            self._start = now - self._k / fps
            self.slips += 1
        self._k += 1
        return False

    def give_back(self) -> None:
        """The turn just waited for brought no frame (end of a pass): the next frame, the first
        of the next pass, takes it."""
        self._k = max(0, self._k - 1)


@dataclass(frozen=True)
class CaptureStats:
    """A snapshot of a camera's counters (crosses threads)."""

    camera: str
    state: str
    frames_read: int
    frames_skipped: int  # dropped by the fps cap, before preprocessing
    frames_dropped: int  # overwritten in the ring (latest policy)
    reconnects: int
    last_frame_age: float | None
    exhausted: bool
    error: str | None
    failed: bool = False  # gave up on a file that cannot be read (error says why)
    crashed: bool = False  # ended by an unexpected exception (error holds it)
    frames_gated: int = 0  # no inference, the scene stood still: handed on without a tensor, or only decoded


_EPS = 1e-6  # s: frame times summed in floats; a cap at the file's own rate must drop nothing
# Frames whose reads are timed at a session's start (the first, which opens the decoder, is
# left out) to tell whether decoding keeps up with the stream.
DECODE_SAMPLE = 51
_SKIPPED = np.zeros(0, np.uint8)  # stands for a frame decoded but not converted (motion gating)


@dataclass(frozen=True)
class _Session:
    """How one open stream went."""

    frames: int  # frames read in this session
    steady: bool  # delivered frames for steady_after seconds: the backoff starts over
    ended: bool  # the source ended or failed (False: stop was requested)
    error: str | None  # why a stream failed, when the source said


class CaptureThread(threading.Thread):
    """Reads one source into one ring until stopped, exhausted, failed for good, or crashed.

    A supervisor may start a new ``CaptureThread`` with the same arguments after this one ended
    (not after ``stop()``, which closes the ring): the ring is left open and no slot held.
    ``realtime``: pace a file at its own frame rate (``FramePacer``); None takes the source's
    ``realtime`` attribute (``OpenCvSource`` sets it from ``FileSource.realtime``), else False.
    Seams for tests: ``clock`` (monotonic: frame times, ages, steadiness, pacing), ``wait``
    (backoff and pacing waits; returns True when stop was requested), ``wall_clock`` (``t_wall``),
    ``rng`` (jitter), ``origin`` (live frame time 0).
    """

    def __init__(
        self,
        camera: str,
        source: FrameSource,
        ring: FrameRing,
        preprocessor: LetterboxPreprocessor,
        fps_cap: float | None = None,
        loop: bool = False,
        backoff: Backoff = Backoff(),
        on_state: Callable[[str, CameraState], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        *,
        wait: Callable[[float], bool] | None = None,
        rng: random.Random | None = None,
        origin: float = LIVE_ORIGIN,
        steady_after: float = 30.0,
        give_up_after: int = 3,
        realtime: bool | None = None,
        wall_clock: Callable[[], float] = time.time,
        motion: MotionGate | None = None,
    ) -> None:
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.motion = motion
        self.camera = camera
        self.source = source
        self.ring = ring
        self.preprocessor = preprocessor
        self.fps_cap = fps_cap
        self.loop = loop
        self.backoff = backoff
        self.on_state = on_state
        self.clock = clock
        self.steady_after = steady_after
        self.give_up_after = give_up_after
        self.stop_event = threading.Event()
        self._wait = wait if wait is not None else self.stop_event.wait
        self._wall_clock = wall_clock
        if realtime is None:
            realtime = bool(getattr(source, "realtime", False))
        self.pacer = FramePacer(clock, self._wait) if realtime and not source.live else None
        self.state = CameraState.CONNECTING
        self.exhausted = False
        self.failed = False
        self.crashed = False
        self.frames_read = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self.read_seconds = 0.0  # decode time, for `edge bench`
        self.preprocess_seconds = 0.0
        self.last_error: str | None = None
        self._last_frame_mono: float | None = None
        self._seq = 0
        # Frame time never runs backwards: files add each pass's length, live sources share
        # one origin across threads.
        self._t_offset = 0.0
        self._last_t_frame: float | None = None
        self._gap = 0.04  # live sources: moving average of the time between frames (s)
        self._origin = origin
        self._since: float | None = None  # clock() at the first frame since the stream opened
        self._rng = rng if rng is not None else random.Random()
        self._lock = threading.Lock()
        self._held: Slot | None = None  # the slot being written, given back if the loop dies
        self._to_bgr = BgrConverter()
        self._raw: dict[int, np.ndarray] = {}  # per slot: decode buffer of a non-BGR source
        self._decode_warned = False  # reads were too slow for the stream: said once

    # -- state ---------------------------------------------------------------------------

    def _set_state(self, new: CameraState) -> None:
        with self._lock:
            if new is self.state:
                return
            if new not in _ALLOWED[self.state]:
                raise RuntimeError(
                    f"camera {self.camera}: illegal transition {self.state.value} -> {new.value}"
                )
            self.state = new
        log.info("camera %s: %s", self.camera, new.value)
        if self.on_state is not None:
            try:
                self.on_state(self.camera, new)
            except Exception:  # a failing listener (MQTT) must not stop the capture
                log.exception("camera %s: state listener failed", self.camera)

    def stats(self) -> CaptureStats:
        age = None if self._last_frame_mono is None else self.clock() - self._last_frame_mono
        return CaptureStats(
            camera=self.camera,
            state=self.state.value,
            frames_read=self.frames_read,
            frames_skipped=self.frames_skipped,
            frames_dropped=self.ring.dropped,
            reconnects=self.reconnects,
            last_frame_age=age,
            exhausted=self.exhausted,
            error=self.last_error,
            failed=self.failed,
            crashed=self.crashed,
            frames_gated=self.motion.gated if self.motion is not None else 0,
        )

    def continue_after(self, t_frame: float, fps: float = 25.0) -> None:
        """A file restarted by the supervisor continues its predecessor's timeline instead of
        starting again at 0 (rule state is on that timeline). Call before ``start``."""
        self._t_offset = t_frame + 1.0 / fps

    def stop(self) -> None:
        self.stop_event.set()
        self.ring.close()

    # -- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        try:
            self._run()
        except Exception as exc:  # a bug must not vanish silently in a daemon thread
            self.last_error = f"{type(exc).__name__}: {exc}"
            self.crashed = True
            log.exception("camera %s: capture failed", self.camera)
        finally:
            if self._held is not None:
                self.ring.abandon(self._held)
                self._held = None
            try:
                self.source.close()
            except Exception:
                log.exception("camera %s: closing the source failed", self.camera)
            self._set_state(CameraState.STOPPED)

    def _run(self) -> None:
        attempt = 0  # backoff step
        failures = 0  # permanent failures in a row
        looping = False  # reopening a looping file at its end: still streaming
        while not self.stop_event.is_set():
            try:
                session = self._session(looping)
            except SourceError as exc:
                looping = False
                if exc.permanent:
                    failures += 1
                    if self._give_up(str(exc), failures):
                        return
                if not self._retry(str(exc), attempt):
                    return
                attempt += 1
                continue
            if not session.ended or self.stop_event.is_set():
                return
            if session.steady:
                attempt = 0
            if not self.source.live:
                failures = 0
                if not self.loop:
                    self.exhausted = True
                    return
                log.debug("camera %s: end of file, looping", self.camera)
                looping = True
                continue
            self.reconnects += 1
            if not self._retry(session.error or f"{self.source.description}: stream ended", attempt):
                return
            attempt += 1

    def _session(self, looping: bool = False) -> _Session:
        """Open, stream, close. A file that opens yet gives not one frame is as good as
        unreadable: a permanent SourceError. ``looping``: the next pass of a looping file, which
        stays ``streaming`` and keeps measuring steadiness from the first pass."""
        self.source.open()
        if not looping:
            self._since = None
        self._set_state(CameraState.STREAMING)
        session = self._stream(looping)
        self.source.close()
        if session.ended and session.frames == 0 and not self.source.live:
            reason = session.error or f"cannot read {self.source.description}: no frame could be decoded"
            raise SourceError(reason, permanent=True)
        return session

    def _give_up(self, reason: str, failures: int) -> bool:
        """For a file that does not loop: after ``give_up_after`` permanent failures in a row,
        end ``failed`` with the reason (True)."""
        self.last_error = reason
        if self.source.live or self.loop or failures < self.give_up_after:
            return False
        self.failed = True
        log.error("camera %s: %s; giving up after %d attempts", self.camera, reason, failures)
        return True

    def _retry(self, reason: str, attempt: int) -> bool:
        """Say why, wait backoff step ``attempt``; False when stop was requested meanwhile."""
        self.last_error = reason
        delay = self.backoff.delay(attempt, self._rng)
        log.warning("camera %s: %s; retrying in %.1f s", self.camera, reason, delay)
        self._set_state(CameraState.RECONNECTING)
        if self._wait(delay):
            return False
        self._set_state(CameraState.CONNECTING)
        return True

    def _stream(self, looping: bool = False) -> _Session:
        """Read until the source ends or fails, or stop is requested. ``looping``: the next
        pass of a looping file, which goes on with the scene (motion gating keeps its background:
        a cut from the file's end to its start shows as motion)."""
        fps = self.source.fps() or 25.0
        interval = 1.0 / self.fps_cap if self.fps_cap else 0.0
        next_due = 0.0
        index = 0  # frame index in this session (a file pass)
        decode_cpu = 0.0  # this thread's CPU in reads after the first, up to DECODE_SAMPLE frames
        steady = False
        self._gap = 1.0 / fps
        if self.motion is not None and not looping:
            self.motion.reset()  # a new stream: learn its scene again
        while not self.stop_event.is_set():
            if self.pacer is not None and self.pacer.wait_turn(fps):
                break
            slot = self._acquire()
            if slot is None:
                break
            self._held = slot
            cpu_read = time.thread_time() if 0 < index < DECODE_SAMPLE else 0.0
            frame, error = self._read(slot, self._skipper(index, fps, next_due if interval else None))
            wall = self._wall_clock()
            if 0 < index < DECODE_SAMPLE:
                decode_cpu += time.thread_time() - cpu_read
            if frame is None:
                self._release_held()
                if self.pacer is not None:
                    self.pacer.give_back()
                self._t_offset += index / fps
                return _Session(index, steady, True, error)
            now = self.clock()
            if self._since is None:
                self._since = now
                self.last_error = None
            steady = steady or now - self._since >= self.steady_after
            t_frame = self._frame_time(index, fps, now)
            index += 1
            if index == DECODE_SAMPLE:
                self._check_decoding(decode_cpu / (DECODE_SAMPLE - 1), fps)
            self.frames_read += 1
            self._last_frame_mono = now
            capped = bool(interval) and t_frame < next_due - _EPS
            if capped or frame is _SKIPPED:  # read in full only when the cap was guessed wrong
                self._pass_over(capped)
                continue
            next_due = max(next_due + interval, t_frame) if interval else 0.0
            self._fill(slot, frame, t_frame, wall)
        return _Session(index, steady, False, None)

    def _read(self, slot: Slot, skip: Callable[[], bool] | None) -> tuple[np.ndarray | None, str | None]:
        """The next frame into ``slot`` (``_SKIPPED`` when ``skip`` only decodes it: capped, or
        a still scene's), or None at the end, with why the stream failed when the source says."""
        t_read = time.perf_counter()
        try:
            if skip is not None:
                return (_SKIPPED if skip() else None), None
            return self.source.read(self._raw.get(slot.index, slot.frame)), None
        except SourceError as exc:
            return None, str(exc)
        finally:
            self.read_seconds += time.perf_counter() - t_read

    def _check_decoding(self, seconds: float, fps: float) -> None:
        """Warn once when a paced source's reads (decoding on this thread, and converting the
        frames used) take more than half of each frame's time: more decoding threads (or a
        substream) keep such a stream from falling behind."""
        paced = self.source.live or self.pacer is not None
        if self._decode_warned or not paced or seconds * fps <= 0.5:
            return
        self._decode_warned = True
        threads = getattr(self.source, "decode_threads", None)
        log.warning(
            "camera %s: reading a frame takes %.0f ms of this thread's CPU, of every %.0f ms "
            "between frames%s; the stream may fall behind (a substream, or more decode_threads)",
            self.camera, 1000.0 * seconds, 1000.0 / fps,
            f" (FFmpeg decodes on {threads} thread{'s' if threads != 1 else ''})" if threads else "",
        )  # fmt: skip

    def _frame_time(self, index: int, fps: float, now: float) -> float:
        """The frame's ``t_frame``: a file's position, or a live frame's time since the origin
        (which also feeds the moving average of the gap between live frames)."""
        if not self.source.live:
            t_frame = self._t_offset + index / fps
        else:
            t_frame = now - self._origin
            if index > 0 and self._last_t_frame is not None:
                self._gap += 0.1 * (min(t_frame - self._last_t_frame, 1.0) - self._gap)
        self._last_t_frame = t_frame
        return t_frame

    def _skipper(self, index: int, fps: float, next_due: float | None) -> Callable[[], bool] | None:
        """The source's ``skip`` (decode without converting) when the fps cap will drop the next
        frame anyway, or motion gating passes over it; else None (the frame is read in full).

        A file's next frame time is exact. A live source's is a guess: the last frame's time
        plus 1.5 observed gaps (a moving average of the time between its frames), so a frame
        that arrives a little late is still read when it may be due, not skipped."""
        skip: Callable[[], bool] | None = getattr(self.source, "skip", None)
        if skip is None or (self.motion is None and next_due is None):
            return None
        if self.source.live:  # the next frame comes about a frame after the last one
            last = self._last_t_frame
            t_next = (last + 1.5 * self._gap) if last is not None else self.clock() - self._origin
        else:
            t_next = self._t_offset + index / fps
        if next_due is not None and t_next < next_due - _EPS:
            return skip
        if self.motion is None:
            return None
        return None if self.motion.should_look(t_next) else skip

    def _pass_over(self, capped: bool) -> None:
        """A frame only decoded: counted as skipped by the fps cap, or else as gated (motion
        gating did not look at it); its slot given back. Without motion gating every such
        frame was the cap's (a live frame guessed early and found due counts there too)."""
        if capped or self.motion is None:
            self.frames_skipped += 1
        else:
            self.motion.skipped()
        self._release_held()

    def _acquire(self) -> Slot | None:
        """A slot to write, or None when stop was requested (a lossless ring that stays full
        means the worker is behind: keep waiting)."""
        while not self.stop_event.is_set():
            slot = self.ring.acquire_write(timeout=0.5)
            if slot is not None:
                return slot
        return None

    def _fill(self, slot: Slot, frame: np.ndarray, t_frame: float, t_wall: float) -> None:
        """Convert to BGR when needed, preprocess into the slot's tensor, commit."""
        bgr = self._to_bgr(frame, slot.frame)
        if bgr is frame:
            self._raw.pop(slot.index, None)
        else:  # decode into a buffer of its own next time; slot.frame keeps the BGR image
            self._raw[slot.index] = frame
        slot.frame = bgr
        t_pre = time.perf_counter()
        slot.gated = self.motion is not None and not self.motion.wants_inference(bgr, t_frame)
        if not slot.gated:
            slot.letterbox = self.preprocessor(bgr, slot.tensor)
        self.preprocess_seconds += time.perf_counter() - t_pre
        slot.seq = self._seq
        slot.t_frame = t_frame
        slot.t_wall = t_wall
        slot.t_mono_ns = time.monotonic_ns()
        self._seq += 1
        self._held = None
        self.ring.commit(slot)

    def _release_held(self) -> None:
        if self._held is not None:
            self.ring.abandon(self._held)
            self._held = None
