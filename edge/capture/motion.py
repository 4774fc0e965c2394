"""Motion gating: skip inference while a camera's scene stands still.

Each frame is scaled down to ``width`` pixels, made grey and blurred, and compared with a
running average of the scene (the background). Pixels that differ by more than ``threshold``
grey levels, outside the motion masks, are grown together and their largest connected area is
compared with ``min_area`` (a fraction of the frame): noise and compression speckle stay below
it, anything that moves does not. The gate asks for inference while something moves, for
``hold`` seconds after that, and at least every ``refresh_after`` seconds on a still scene (so a
slowly appearing object is found all the same). A (re)started stream's first few frames are
inferred while the background forms, without a ``hold`` after them. Other frames are gated:
the worker reuses the last detections for them, so tracks stay alive and rules keep their time.

It runs on the capture thread, on frame time (deterministic on files), and costs a fraction of
a millisecond per frame at the default width.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np

from edge.config.schema import MotionConfig

# The background needs a few frames before it means anything: a (re)started stream's first
# frames are inferred, but start no `hold` (a still scene that restarts stays cheap).
WARMUP_FRAMES = 3
BACKGROUND_SECONDS = 1.0  # the running background forgets a change in about this long
EPSILON = 1e-6  # frame times are sums of float steps: 2.2 - 0.2 may fall short of 2.0
DILATE = np.ones((3, 3), np.uint8)  # grows nearby changed pixels into one area


class MotionGate:
    """One camera's motion detector and inference gate. Not thread-safe: the capture thread
    owns it."""

    def __init__(self, cfg: MotionConfig, masks: Sequence[Sequence[tuple[float, float]]] = ()) -> None:
        self.cfg = cfg
        self.masks = [*masks, *cfg.masks]
        self._background: np.ndarray | None = None
        self._mask: np.ndarray | None = None  # 255 where motion counts, at the scaled size
        self._size: tuple[int, int] | None = None
        self._frames = 0
        self._last_t: float | None = None
        self._last_motion: float | None = None
        self._last_inference: float | None = None
        self._last_look: float | None = None
        self._still = False  # the last frame looked at was gated: the scene stands still
        self.gated = 0  # frames for which inference was skipped
        self.last_area = 0.0  # largest moving area of the last frame, fraction of the frame

    def reset(self) -> None:
        """The stream restarted: learn the background again, infer at once."""
        self._background = None
        self._frames = 0
        self._last_t = self._last_motion = self._last_inference = self._last_look = None
        self._still = False

    def should_look(self, t: float) -> bool:
        """Must the frame at ``t`` be looked at (converted and compared)? While the scene stands
        still, only ``check_fps`` frames a second are, and the one an inference is due at; the
        others are decoded but not converted, and count as gated."""
        if not self._still or self._last_look is None or self._last_inference is None:
            return True
        if t < self._last_look or t - self._last_inference >= self.cfg.refresh_after - EPSILON:
            return True
        return t - self._last_look >= 1.0 / self.cfg.check_fps - EPSILON

    def skipped(self) -> None:
        """A frame ``should_look`` passed over."""
        self.gated += 1

    def wants_inference(self, frame: np.ndarray, t: float) -> bool:
        """Does this frame (BGR, at time ``t`` on the frame timeline) need inference?"""
        step = 0.0 if self._last_t is None or t < self._last_t else t - self._last_t
        self._last_t = t
        moving = self.moving(frame, step)
        if moving:
            self._last_motion = t
        due = (
            self._last_inference is None
            or moving
            or self._frames <= WARMUP_FRAMES
            or (self._last_motion is not None and t - self._last_motion < self.cfg.hold - EPSILON)
            or t - self._last_inference >= self.cfg.refresh_after - EPSILON
            or t < self._last_inference  # a file started again
        )
        if due:
            self._last_inference = t
        else:
            self.gated += 1
        self._last_look, self._still = t, not due
        return due

    def moving(self, frame: np.ndarray, step: float = 0.04) -> bool:
        """Did anything move since the background was learnt (updates the background)?
        ``step``: seconds since the previous frame, for how much of it the background takes.
        A stream's first frame is the background: nothing moved yet."""
        grey = self._small_grey(frame)
        if self._background is None or self._background.shape != grey.shape:
            self._background = grey.astype(np.float32)
            self._frames = 1
            self.last_area = 0.0
            return False
        diff = cv2.absdiff(grey, cv2.convertScaleAbs(self._background))
        rate = 1.0 - math.exp(-max(step, 0.0) / BACKGROUND_SECONDS) if step > 0 else 0.05
        cv2.accumulateWeighted(grey, self._background, rate)
        self._frames += 1
        _, changed = cv2.threshold(diff, self.cfg.threshold, 255, cv2.THRESH_BINARY)
        if self._mask is not None:
            changed = cv2.bitwise_and(changed, self._mask)
        changed = cv2.dilate(changed, DILATE, iterations=2)
        contours, _ = cv2.findContours(changed, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        h, w = grey.shape
        largest = max((cv2.contourArea(c) for c in contours), default=0.0)
        self.last_area = float(largest) / (w * h)
        return self.last_area >= self.cfg.min_area

    def _small_grey(self, frame: np.ndarray) -> np.ndarray:
        h, w = frame.shape[:2]
        width = min(self.cfg.width, w)
        size = (width, max(1, round(h * width / w)))
        if size != self._size:
            self._size = size
            self._mask = self._mask_image(size)
        small = cv2.resize(frame, size, interpolation=cv2.INTER_LINEAR)
        grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY) if small.ndim == 3 else small
        return cv2.GaussianBlur(grey, (5, 5), 0)

    def _mask_image(self, size: tuple[int, int]) -> np.ndarray | None:
        if not self.masks:
            return None
        w, h = size
        mask = np.full((h, w), 255, np.uint8)
        for polygon in self.masks:
            pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in polygon], np.int32)
            cv2.fillPoly(mask, [pts], 0)
        return mask
