"""Presence and dwell: one episode per tracked object that matches the rule.

* ``new`` when a confirmed track has matched for ``min_time`` (0 for presence, ``dwell`` for
  dwell; gaps shorter than ``clear_after`` do not break the run) and its cooldown has passed;
* ``update`` at most every ``update_interval`` while something a subscriber cares about changed:
  a better score, a zone entered, standing still or moving again;
* ``end`` when it stops matching for ``clear_after`` (``left``), its track ends (``lost``), or the
  rule stops (camera offline, disarmed, schedule, reload).

Without track ids (tracking disabled) the rule has a single episode for "any match", as rules v1
did: ``new`` with the best match, ``end`` after ``clear_after`` without one.
All on frame time, so a file gives the same events however fast it is processed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.rules.matching import CompiledRule, elapsed
from edge.rules.model import Box, EndReason, Event, EventType, FrameInfo, RuleState, Scene, new_id

UNTRACKED = -1
SCORE_STEP = 0.05  # a score this much better than the last one reported is worth an update


@dataclass
class _Object:
    key: int
    first_t: float
    first_wall: float
    last_t: float
    label: str | None = None
    score: float = 0.0
    top_score: float = 0.0
    box: Box | None = None
    stationary: bool | None = None
    zones: tuple[str, ...] = ()
    active: bool = False
    episode: str = ""
    last_emit: float = 0.0
    reported: tuple[float, tuple[str, ...], bool | None] = (0.0, (), None)


@dataclass
class ObjectEpisodes:
    """The episodes of one (presence or dwell rule, camera) pair. Not thread-safe."""

    rule: CompiledRule
    min_time: float = 0.0
    objects: dict[int, _Object] = field(default_factory=dict)
    last_new: dict[int, float] = field(default_factory=dict)
    untracked_count: int = 0

    @property
    def state(self) -> RuleState:
        return "on" if any(o.active for o in self.objects.values()) else "off"

    @property
    def count(self) -> int:
        if UNTRACKED in self.objects:
            return self.untracked_count if self.objects[UNTRACKED].active else 0
        return sum(o.active for o in self.objects.values())

    def step(self, scene: Scene, hit: npt.NDArray[np.bool_]) -> list[Event]:
        t = scene.frame.t_frame
        idx = np.flatnonzero(hit)
        if scene.tracked:
            assert scene.dets.tracker_id is not None
            picks = {int(scene.dets.tracker_id[i]): int(i) for i in idx}
        else:
            picks = {UNTRACKED: int(idx[np.argmax(scene.dets.score[idx])])} if len(idx) else {}
            self.untracked_count = len(idx)
        events: list[Event] = []
        for key, i in picks.items():
            obj = self.objects.get(key)
            if obj is None or (not obj.active and elapsed(obj.last_t, t, self.rule.clear_after)):
                obj = self.objects[key] = _Object(key, t, scene.frame.t_wall, t)
            self._observe(obj, scene, i)
            if not obj.active:
                since = self.last_new.get(key)
                if elapsed(obj.first_t, t, self.min_time) and (
                    since is None or elapsed(since, t, self.rule.cooldown)
                ):
                    obj.active, obj.episode = True, new_id()
                    self.last_new[key] = t
                    events.append(self._event("new", obj, scene.frame))
            elif self._worth_update(obj, t):
                events.append(self._event("update", obj, scene.frame))
        for key, obj in list(self.objects.items()):
            if key in picks:
                continue
            lost = key in scene.ended
            if lost or elapsed(obj.last_t, t, self.rule.clear_after):
                del self.objects[key]
                if obj.active:
                    obj.active = False
                    events.append(self._event("end", obj, scene.frame, "lost" if lost else "left"))
        self._prune(t, scene.ended)
        return events

    def stop(self, frame: FrameInfo, reason: EndReason) -> list[Event]:
        """End every active episode (the rule stops looking); forget everything."""
        events = []
        for obj in self.objects.values():
            if obj.active:
                obj.active = False
                events.append(self._event("end", obj, frame, reason))
        self.objects.clear()
        self.last_new.clear()
        return events

    def _observe(self, obj: _Object, scene: Scene, i: int) -> None:
        obj.last_t = scene.frame.t_frame
        obj.label = scene.label(i)
        obj.score = float(scene.dets.score[i])
        obj.top_score = max(obj.top_score, obj.score)
        obj.box = scene.box(i)
        obj.stationary = bool(scene.stationary[i]) if scene.tracked else None
        obj.zones = scene.zones_of(i)

    def _worth_update(self, obj: _Object, t: float) -> bool:
        if self.rule.update_interval <= 0 or not elapsed(obj.last_emit, t, self.rule.update_interval):
            return False
        top, zones, stationary = obj.reported
        return obj.top_score >= top + SCORE_STEP or obj.zones != zones or obj.stationary != stationary

    def _prune(self, t: float, ended: frozenset[int]) -> None:
        """Cooldown memory only as long as it can matter, and never for tracks that ended."""
        stale = [k for k, when in self.last_new.items() if k in ended or elapsed(when, t, self.rule.cooldown)]
        for k in stale:
            if k not in self.objects:
                del self.last_new[k]

    def _event(
        self, kind: EventType, obj: _Object, frame: FrameInfo, reason: EndReason | None = None
    ) -> Event:
        obj.last_emit = frame.t_frame
        obj.reported = (obj.top_score, obj.zones, obj.stationary)
        untracked = obj.key == UNTRACKED
        count = self.count if not untracked else 0 if kind == "end" else self.untracked_count
        return Event.make(
            kind,
            self.rule.kind,
            self.rule.name,
            frame,
            obj.episode,
            started=obj.first_t,
            started_wall=obj.first_wall,
            label=obj.label,
            score=obj.score,
            top_score=obj.top_score,
            box=obj.box,
            count=count,
            track_id=None if untracked else obj.key,
            zones=obj.zones,
            stationary=obj.stationary,
            reason=reason,
        )
