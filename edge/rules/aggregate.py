"""Rules about how many objects match, not which: ``count`` (at least N, e.g. a queue) and
``absence`` (none, e.g. an empty shelf or an unmanned gate). Each (rule, camera) pair has one
episode at a time, with separate delays to start and to end it so the state does not flap when
the detector flickers. On frame time. Objects are confirmed tracks when the camera tracks,
detections otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.rules.matching import CompiledRule, elapsed
from edge.rules.model import Box, EndReason, Event, EventType, FrameInfo, RuleState, Scene, new_id


def _objects(scene: Scene, hit: npt.NDArray[np.bool_]) -> int:
    tids = scene.dets.tracker_id
    if tids is None:
        return int(hit.sum())
    return len(set(tids[hit].tolist()))


@dataclass
class _Best:
    label: str | None = None
    score: float = 0.0
    box: Box | None = None

    @staticmethod
    def of(scene: Scene, hit: npt.NDArray[np.bool_]) -> _Best:
        idx = np.flatnonzero(hit)
        if not len(idx):
            return _Best()
        i = int(idx[np.argmax(scene.dets.score[idx])])
        return _Best(scene.label(i), float(scene.dets.score[i]), scene.box(i))


@dataclass
class _Episode:
    rule: CompiledRule
    active: bool = False
    episode: str = ""
    started: float = 0.0
    started_wall: float = 0.0
    top_score: float = 0.0
    peak: int = 0
    last_new: float | None = None
    last_emit: float = 0.0
    n: int = 0

    @property
    def state(self) -> RuleState:
        return "on" if self.active else "off"

    @property
    def count(self) -> int:
        return self.n

    def _may_start(self, t: float) -> bool:
        return self.last_new is None or elapsed(self.last_new, t, self.rule.cooldown)

    def _event(
        self, kind: EventType, frame: FrameInfo, best: _Best, reason: EndReason | None = None
    ) -> Event:
        self.last_emit, self.peak = frame.t_frame, max(self.peak, self.n)
        self.top_score = max(self.top_score, best.score)
        return Event.make(
            kind,
            self.rule.kind,
            self.rule.name,
            frame,
            self.episode,
            started=self.started,
            started_wall=self.started_wall,
            label=best.label,
            score=best.score,
            top_score=self.top_score,
            box=best.box,
            count=self.n,
            reason=reason,
        )

    def _start(self, frame: FrameInfo, started: float, best: _Best) -> Event:
        self.active, self.episode, self.started = True, new_id(), started
        self.started_wall = frame.t_wall - max(0.0, frame.t_frame - started)
        self.last_new, self.top_score, self.peak = frame.t_frame, 0.0, 0
        return self._event("new", frame, best)

    def stop(self, frame: FrameInfo, reason: EndReason) -> list[Event]:
        if not self.active:
            return []
        self.active = False
        return [self._event("end", frame, _Best(), reason)]


@dataclass
class CountEpisode(_Episode):
    """``new`` once at least ``min_count`` objects have matched for ``on_after``; ``update`` (at
    most every ``update_interval``) when the number reaches a new high in the episode; ``end``
    once fewer have matched for ``off_after``."""

    above_since: float | None = None
    below_since: float | None = None

    def step(self, scene: Scene, hit: npt.NDArray[np.bool_]) -> list[Event]:
        cfg, t = self.rule.config, scene.frame.t_frame
        self.n = _objects(scene, hit)
        if self.n >= cfg.min_count:
            self.below_since = None
            self.above_since = t if self.above_since is None else self.above_since
        else:
            self.above_since = None
            self.below_since = t if self.below_since is None else self.below_since
        if not self.active:
            if (
                self.above_since is not None
                and elapsed(self.above_since, t, cfg.on_after)
                and self._may_start(t)
            ):
                return [self._start(scene.frame, self.above_since, _Best.of(scene, hit))]
        elif self.below_since is not None and elapsed(self.below_since, t, cfg.off_after):
            self.active = False
            return [self._event("end", scene.frame, _Best.of(scene, hit), "cleared")]
        elif (
            self.n > self.peak
            and self.rule.update_interval > 0
            and elapsed(self.last_emit, t, self.rule.update_interval)
        ):
            return [self._event("update", scene.frame, _Best.of(scene, hit))]
        return []


@dataclass
class AbsenceEpisode(_Episode):
    """``new`` once nothing has matched for ``absent_after`` (counted from the rule's start when
    nothing ever matched); ``end`` once objects have matched for ``present_after``, gaps shorter
    than ``clear_after`` included (a flickering detector does not restart the wait)."""

    watch_since: float | None = None
    last_seen: float | None = None
    run_start: float | None = None

    def step(self, scene: Scene, hit: npt.NDArray[np.bool_]) -> list[Event]:
        cfg, t = self.rule.config, scene.frame.t_frame
        if self.watch_since is None:
            self.watch_since = t
        self.n = _objects(scene, hit)
        if self.n:
            if (
                self.run_start is None
                or self.last_seen is None
                or elapsed(self.last_seen, t, self.rule.clear_after)
            ):
                self.run_start = t
            self.last_seen = t
            if self.active and elapsed(self.run_start, t, cfg.present_after):
                self.active = False
                return [self._event("end", scene.frame, _Best.of(scene, hit), "cleared")]
            return []
        gone_since = self.watch_since if self.last_seen is None else self.last_seen
        if not self.active and elapsed(gone_since, t, cfg.absent_after) and self._may_start(t):
            return [self._start(scene.frame, gone_since, _Best())]
        return []
