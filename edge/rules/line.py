"""Line rules: tracked objects crossing a directed segment, counted per direction.

Looking from the line's first point towards its second, ``in`` is a crossing from the left side
to the right side, ``out`` the other way (on the image as you see it: y grows downwards). An
object's side is only decided once its anchor point is more than ``margin`` (a fraction of the
frame) away from the line; inside that band it keeps the side it had, so someone hovering on
the line, or a box that jitters across it, does not count again and again. A change of side
counts when the path between the two decided positions passes through the segment itself (not
its extension; a margin's tolerance at its ends). A track's side is forgotten when the track
ends or has not been seen for ``FORGET_AFTER``. Needs track ids: untracked detections never cross.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge.rules.matching import CompiledRule
from edge.rules.model import EndReason, Event, FrameInfo, RuleState, Scene, new_id
from edge.rules.zones import anchor_points

FORGET_AFTER = 60.0  # seconds of frame time after which an unseen track's side is forgotten
MAX_REMEMBERED = 10_000


@dataclass
class _Side:
    side: int  # -1 left, +1 right
    x: float
    y: float
    last_t: float


@dataclass
class LineCrossing:
    """The crossings of one (line rule, camera) pair. Counters live as long as the rule does
    (a reload keeps them, a restart starts again at 0). Not thread-safe."""

    rule: CompiledRule
    sides: dict[int, _Side] = field(default_factory=dict)
    counters: Counter[tuple[str, str]] = field(default_factory=Counter)  # (direction, label) -> n

    def __post_init__(self) -> None:
        line = self.rule.config.line
        assert line is not None
        (ax, ay), (bx, by) = line
        self._a = (ax, ay)
        self._d = (bx - ax, by - ay)
        self._length = float(np.hypot(bx - ax, by - ay))
        self._margin = self.rule.config.line_margin
        self._directions = frozenset(self.rule.config.directions)

    state: RuleState = "off"

    @property
    def count(self) -> int:
        return sum(self.counters.values())

    def totals(self) -> tuple[tuple[str, int], ...]:
        return tuple((d, sum(n for (dd, _), n in self.counters.items() if dd == d)) for d in ("in", "out"))

    def by_label(self) -> tuple[tuple[str, str, int], ...]:
        return tuple(sorted((label, d, n) for (d, label), n in self.counters.items()))

    def step(self, scene: Scene, hit: npt.NDArray[np.bool_]) -> list[Event]:
        t, events = scene.frame.t_frame, []
        idx = np.flatnonzero(hit)
        tids = scene.dets.tracker_id
        if tids is not None and len(idx):
            wh = (scene.frame.width, scene.frame.height)
            points = anchor_points(scene.dets[idx], wh, self.rule.anchor)
            for i, (px, py) in zip(idx, points.tolist(), strict=True):
                event = self._follow(scene, int(i), int(tids[i]), px, py, t)
                if event is not None:
                    events.append(event)
        self._prune(t, scene.ended)
        return events

    def stop(self, frame: FrameInfo, reason: EndReason) -> list[Event]:
        """Forget which side objects were on; crossings have no episode to end."""
        self.sides.clear()
        return []

    def _signed_distance(self, px: float, py: float) -> float:
        dx, dy = self._d
        return (dx * (py - self._a[1]) - dy * (px - self._a[0])) / self._length

    def _through_segment(self, old: _Side, px: float, py: float) -> bool:
        """Does the path from the old position to (px, py) cross the segment (a margin's
        tolerance at its ends)?"""
        dx, dy = self._d
        ex, ey = px - old.x, py - old.y
        wx, wy = old.x - self._a[0], old.y - self._a[1]
        denom = dx * ey - dy * ex  # d x e
        if abs(denom) < 1e-12:
            return False
        # old + s * e == a + u * d; crossing both sides with e: u = (w x e) / (d x e), w = old - a.
        # u runs along the segment: 0 at its first point, 1 at its second.
        u = (wx * ey - wy * ex) / denom
        slack = self._margin / self._length
        return -slack <= u <= 1 + slack

    def _follow(self, scene: Scene, i: int, tid: int, px: float, py: float, t: float) -> Event | None:
        d = self._signed_distance(px, py)
        side = 1 if d > self._margin else -1 if d < -self._margin else 0
        old = self.sides.get(tid)
        if old is not None and t - old.last_t > FORGET_AFTER:  # unseen too long: side unknown
            del self.sides[tid]
            old = None
        if side == 0:
            if old is not None:
                old.last_t = t
            return None
        if old is None:
            self.sides[tid] = _Side(side, px, py, t)
            return None
        crossed = side != old.side and self._through_segment(old, px, py)
        self.sides[tid] = _Side(side, px, py, t)
        if not crossed:
            return None
        direction: Literal["in", "out"] = "in" if old.side < 0 else "out"
        label = scene.label(i)
        self.counters[(direction, label)] += 1
        if direction not in self._directions:
            return None
        score = float(scene.dets.score[i])
        return Event.make(
            "cross",
            self.rule.kind,
            self.rule.name,
            scene.frame,
            new_id(),
            started=t,
            label=label,
            score=score,
            top_score=score,
            box=scene.box(i),
            count=sum(n for (dd, _), n in self.counters.items() if dd == direction),
            track_id=tid,
            zones=scene.zones_of(i),
            stationary=bool(scene.stationary[i]),
            direction=direction,
            counters=self.totals(),
        )

    def _prune(self, t: float, ended: frozenset[int]) -> None:
        for tid in [k for k, s in self.sides.items() if k in ended or t - s.last_t > FORGET_AFTER]:
            del self.sides[tid]
        while len(self.sides) > MAX_REMEMBERED:
            oldest = min(self.sides, key=lambda k: self.sides[k].last_t)
            del self.sides[oldest]
