"""One capture thread per camera: open, read, preprocess into the ring, reconnect with backoff.

Lifecycle (illegal transitions raise): connecting -> streaming -> reconnecting -> connecting
... -> stopped. A file without ``loop`` ends in ``stopped`` with ``exhausted`` set. Waits are
on the stop event, so shutdown is immediate.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum

from edge.buffer.preprocess import LetterboxPreprocessor
from edge.buffer.ring import FrameRing
from edge.capture.sources import FrameSource, SourceError

log = logging.getLogger("edge.capture")


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
    """Exponential backoff with full jitter, capped: delay n is uniform in [base*2^n/2, base*2^n]."""

    initial: float = 1.0
    maximum: float = 30.0

    def delay(self, attempt: int, rng: random.Random) -> float:
        ceiling = min(self.maximum, self.initial * (2 ** min(attempt, 30)))
        return rng.uniform(ceiling / 2, ceiling)


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


class CaptureThread(threading.Thread):
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
    ) -> None:
        super().__init__(name=f"capture-{camera}", daemon=True)
        self.camera = camera
        self.source = source
        self.ring = ring
        self.preprocessor = preprocessor
        self.fps_cap = fps_cap
        self.loop = loop
        self.backoff = backoff
        self.on_state = on_state
        self.clock = clock
        self.stop_event = threading.Event()
        self.state = CameraState.CONNECTING
        self.exhausted = False
        self.frames_read = 0
        self.frames_skipped = 0
        self.reconnects = 0
        self.read_seconds = 0.0  # decode time, for `edge bench`
        self.preprocess_seconds = 0.0
        self.last_error: str | None = None
        self._last_frame_mono: float | None = None
        self._seq = 0
        # Frame time never runs backwards: files add each pass's length, live sources use one origin.
        self._t_offset = 0.0
        self._t0_wall = time.time()
        self._t0_mono = clock()
        self._rng = random.Random()
        self._lock = threading.Lock()

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
            self.on_state(self.camera, new)

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
        )

    def stop(self) -> None:
        self.stop_event.set()
        self.ring.close()

    # -- loop ----------------------------------------------------------------------------

    def run(self) -> None:
        attempt = 0
        try:
            while not self.stop_event.is_set():
                try:
                    self.source.open()
                except SourceError as exc:
                    self.last_error = str(exc)
                    delay = self.backoff.delay(attempt, self._rng)
                    log.warning("camera %s: %s; retrying in %.1f s", self.camera, exc, delay)
                    attempt += 1
                    self._set_state(CameraState.RECONNECTING)
                    if self.stop_event.wait(delay):
                        break
                    self._set_state(CameraState.CONNECTING)
                    continue
                attempt = 0
                self.last_error = None
                self._set_state(CameraState.STREAMING)
                ended = self._stream()
                self.source.close()
                if self.stop_event.is_set():
                    break
                if ended and not self.source.live:
                    if self.loop:
                        log.info("camera %s: end of file, looping", self.camera)
                        self._set_state(CameraState.CONNECTING)
                        continue
                    self.exhausted = True
                    break
                self.reconnects += 1
                self.last_error = "stream ended or stalled"
                log.warning(
                    "camera %s: %s (%s); reconnecting", self.camera, self.last_error, self.source.description
                )
                self._set_state(CameraState.RECONNECTING)
                delay = self.backoff.delay(0, self._rng)
                if self.stop_event.wait(delay):
                    break
                self._set_state(CameraState.CONNECTING)
        except Exception as exc:  # a bug must not vanish silently in a daemon thread
            self.last_error = f"{type(exc).__name__}: {exc}"
            log.exception("camera %s: capture failed", self.camera)
        finally:
            self.source.close()
            self._set_state(CameraState.STOPPED)
            self.ring.close()

    def _stream(self) -> bool:
        """Read until the source ends (True) or stop is requested (False)."""
        fps = self.source.fps() or 25.0
        interval = 1.0 / self.fps_cap if self.fps_cap else 0.0
        next_due = 0.0
        index = 0  # frame index in this file pass
        while not self.stop_event.is_set():
            slot = self.ring.acquire_write(timeout=0.5)
            if slot is None:
                if self.stop_event.is_set():
                    return False
                continue  # lossless ring full: the worker is behind; wait again
            t_read = time.perf_counter()
            frame = self.source.read(slot.frame)
            self.read_seconds += time.perf_counter() - t_read
            if frame is None:
                self.ring.abandon(slot)
                self._t_offset += index / fps
                return True
            now = self.clock()
            t_frame = self._t_offset + index / fps if not self.source.live else now - self._t0_mono
            index += 1
            self.frames_read += 1
            self._last_frame_mono = now
            if interval and t_frame < next_due:
                self.frames_skipped += 1
                self.ring.abandon(slot)
                continue
            next_due = max(next_due + interval, t_frame) if interval else 0.0
            slot.frame = frame
            t_pre = time.perf_counter()
            slot.letterbox = self.preprocessor(frame, slot.tensor)
            self.preprocess_seconds += time.perf_counter() - t_pre
            slot.seq = self._seq
            slot.t_frame = t_frame
            slot.t_wall = self._t0_wall + t_frame if not self.source.live else time.time()
            slot.t_mono_ns = time.monotonic_ns()
            self._seq += 1
            self.ring.commit(slot)
        return False
