"""The preview's tap on the pipeline: the latest frame of each watched camera, and recent events.

Inference workers call ``wants(camera)`` for every processed frame; it is two dictionary reads
and is False unless somebody watched that camera in the last ``viewer_timeout`` seconds and the
frame-rate cap allows another frame. Only then does the worker copy the frame and its
detections (``offer``). Nothing is scaled, drawn or encoded on the worker: the HTTP threads do
that for the viewers, so a daemon nobody watches pays nothing per frame for the preview.

Events reach the page through ``PreviewEventsAction`` on the actions thread, which keeps the
last ``MAX_EVENTS`` with a small picture of each ``new`` event's frame (the frame the worker
copies for snapshots anyway).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.annotate import annotate, with_track
from edge.overlay import Shape, draw_shapes
from edge.types import Detections

VIEWER_TIMEOUT = 5.0  # seconds a camera counts as watched after a viewer last asked for it
MAX_EVENTS = 20


@dataclass(frozen=True)
class PreviewFrame:
    """One processed frame as the worker saw it (the image is a copy the tap owns)."""

    camera: str
    seq: int
    t_wall: float
    image: np.ndarray  # BGR, full size
    dets: Detections
    labels: tuple[str, ...]
    shapes: tuple[Shape, ...]


@dataclass(frozen=True)
class PreviewEvent:
    """A recent event and, for ``new`` events, a small picture of its frame."""

    payload: dict[str, Any]
    picture: np.ndarray | None  # BGR, at most THUMB_WIDTH wide, zone and box drawn
    jpeg: bytes | None = None


THUMB_WIDTH = 480


def scaled(image: np.ndarray, width: int) -> tuple[np.ndarray, float]:
    """``image`` scaled down to at most ``width`` pixels wide, and the factor used."""
    h, w = image.shape[:2]
    if w <= width:
        return image, 1.0
    f = width / w
    # Linear, not area: a third of the cost, and a preview frame is looked at, not measured.
    return cv2.resize(image, (width, max(1, round(h * f))), interpolation=cv2.INTER_LINEAR), f


def scaled_dets(dets: Detections, f: float) -> Detections:
    if f == 1.0:
        return dets
    kp = None if dets.keypoints is None else dets.keypoints * f
    return Detections(dets.xyxy * f, dets.score, dets.class_id, kp, dets.tracker_id)


def render(frame: PreviewFrame, width: int, shapes: bool = True) -> np.ndarray:
    """The frame scaled to ``width``, with zones and masks (unless ``shapes`` is False) and
    detections drawn."""
    image, f = scaled(frame.image, width)
    image = image.copy() if image is frame.image else image
    if shapes:
        draw_shapes(image, frame.shapes)
    return annotate(image, scaled_dets(frame.dets, f), frame.labels)


def encode_jpeg(image: np.ndarray, quality: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError("JPEG encoding failed")
    return bytes(buf.tobytes())


@dataclass
class PreviewTap:
    """Shared by the workers (writers) and the preview server (readers)."""

    fps: float = 5.0
    viewer_timeout: float = VIEWER_TIMEOUT
    clock: Callable[[], float] = time.monotonic
    _watched_until: dict[str, float] = field(default_factory=dict)
    _next_offer: dict[str, float] = field(default_factory=dict)
    _latest: dict[str, PreviewFrame] = field(default_factory=dict)
    _events: deque[PreviewEvent] = field(default_factory=lambda: deque(maxlen=MAX_EVENTS))
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _closing: bool = False
    offered: int = 0  # frames copied for viewers since start (the preview's only cost on workers)

    # -- worker side -------------------------------------------------------------------------

    def wants(self, camera: str) -> bool:
        """True when somebody watches ``camera`` and the frame-rate cap allows a frame now."""
        now = self.clock()
        return now < self._watched_until.get(camera, 0.0) and now >= self._next_offer.get(camera, 0.0)

    def offer(self, frame: PreviewFrame) -> None:
        self._next_offer[frame.camera] = self.clock() + 1.0 / self.fps
        with self._changed:
            self._latest[frame.camera] = frame
            self.offered += 1
            self._changed.notify_all()

    def add_event(self, payload: dict[str, Any], image: np.ndarray | None, shapes: Sequence[Shape]) -> None:
        """Remember an event; ``image`` (its frame, for ``new`` events) becomes a small picture
        with the rule's zone, the masks and the event's box drawn."""
        picture = None
        if image is not None and payload.get("box") is not None:
            small, f = scaled(image, THUMB_WIDTH)
            small = small.copy() if small is image else small
            draw_shapes(small, shapes)
            box = np.asarray([payload["box"]], np.float32) * f
            dets = Detections(box, np.asarray([payload["score"]], np.float32), np.zeros(1, np.int64))
            dets = with_track(dets, payload.get("track_id"))
            picture = annotate(small, dets, [str(payload.get("label", ""))])
        with self._changed:
            self._events.append(PreviewEvent(payload, picture))

    # -- server side -------------------------------------------------------------------------

    def watch(self, camera: str) -> None:
        """A viewer wants frames of ``camera`` (called at least every ``viewer_timeout`` s)."""
        self._watched_until[camera] = self.clock() + self.viewer_timeout

    def watching(self) -> list[str]:
        now = self.clock()
        return sorted(c for c, until in list(self._watched_until.items()) if until > now)

    def latest(self, camera: str) -> PreviewFrame | None:
        return self._latest.get(camera)

    def wait_frame(self, camera: str, after: PreviewFrame | None, timeout: float) -> PreviewFrame | None:
        """The camera's latest frame once it is not ``after``; None after ``timeout`` seconds."""
        with self._changed:
            self._changed.wait_for(
                lambda: self._closing or self._latest.get(camera) not in (None, after), timeout
            )
            frame = self._latest.get(camera)
        return None if frame is None or frame is after or self._closing else frame

    def close(self) -> None:
        """End every wait at once, and every later one (at shutdown)."""
        with self._changed:
            self._closing = True
            self._changed.notify_all()

    def forget(self, camera: str) -> None:
        """Drop what is kept of a camera a reload removed."""
        self._latest.pop(camera, None)
        self._watched_until.pop(camera, None)
        self._next_offer.pop(camera, None)

    def events(self) -> list[PreviewEvent]:
        with self._changed:
            return list(self._events)

    def event_jpeg(self, event_id: str, quality: int) -> bytes | None:
        """The event's picture as JPEG (encoded on first request, outside the lock, then kept)."""
        with self._changed:
            found = next((e for e in self._events if e.payload.get("id") == event_id), None)
        if found is None or found.picture is None:
            return None
        if found.jpeg is not None:
            return found.jpeg
        done = PreviewEvent(found.payload, found.picture, encode_jpeg(found.picture, quality))
        with self._changed:
            for i, ev in enumerate(self._events):
                if ev is found:
                    self._events[i] = done
        return done.jpeg


class PreviewEventsAction:
    """The action that shows events on the preview page (on the actions thread, like every
    action): it keeps each event, and a small picture of a ``new`` event's frame."""

    name = "preview"
    files_removed = 0

    def __init__(self, tap: PreviewTap) -> None:
        self.tap = tap

    def handle(self, env: Any) -> bool:
        self.tap.add_event(env.payload, env.image, env.shapes)
        return True

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass
