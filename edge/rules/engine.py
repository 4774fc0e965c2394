"""The rule engine: each camera's detections -> the events and states of its rules.

Per frame and camera it drops what the camera's masks hide, works out which zones each
detection is in (and, per track, which zones the object has been in), and steps every rule of
the camera whose gate is open: armed (``…/<rule>/set`` over MQTT) and inside its schedule. A
rule whose gate closes ends what it had going (``reason`` disarmed / schedule) and starts
afresh when it opens. What each kind does is in its module: ``episodes`` (presence, dwell),
``line``, ``aggregate`` (count, absence). States (``RuleStatus``) are collected when they change
and taken by the worker with ``statuses()``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from edge.config.schema import CameraConfig, RuleConfig
from edge.rules.aggregate import AbsenceEpisode, CountEpisode
from edge.rules.episodes import ObjectEpisodes
from edge.rules.line import LineCrossing
from edge.rules.matching import CompiledRule
from edge.rules.model import EndReason, Event, FrameInfo, RuleState, RuleStatus, Scene
from edge.rules.schedule import Schedule
from edge.rules.zones import AnchorPoint, PolygonZone, anchor_points
from edge.types import Detections

__all__ = ["CompiledRule", "Event", "FrameInfo", "RuleEngine", "RuleStatus", "initial_status"]


class Evaluator(Protocol):
    """One (rule, camera) pair's state machine."""

    @property
    def state(self) -> RuleState: ...

    @property
    def count(self) -> int: ...

    def step(self, scene: Scene, hit: npt.NDArray[np.bool_]) -> list[Event]: ...

    def stop(self, frame: FrameInfo, reason: EndReason) -> list[Event]: ...


class ScheduleLike(Protocol):
    def active(self, t_wall: float) -> bool: ...


def new_evaluator(rule: CompiledRule) -> Evaluator:
    cfg = rule.config
    if cfg.kind == "line":
        return LineCrossing(rule)
    if cfg.kind == "count":
        return CountEpisode(rule)
    if cfg.kind == "absence":
        return AbsenceEpisode(rule)
    return ObjectEpisodes(rule, min_time=cfg.dwell or 0.0)


def initial_status(cfg: RuleConfig, rule: str, camera: str, now: float, armed: bool) -> RuleStatus:
    """The state a rule's topic shows before its camera's first frame."""
    scheduled = cfg.schedule is None or Schedule.from_config(cfg.schedule).active(now)
    state: RuleState = "disarmed" if not armed else "off" if scheduled else "idle"
    zero = (("in", 0), ("out", 0)) if cfg.kind == "line" else None
    by_label = () if zero else None
    return RuleStatus(camera, rule, cfg.kind, state, 0, now, None, armed, scheduled, zero, by_label)


def always_armed(camera: str, rule: str) -> bool:
    return True


@dataclass
class _Pair:
    rule: CompiledRule
    evaluator: Evaluator
    gate: RuleState | None = None  # None: open; "idle" / "disarmed": closed
    armed: bool = True
    scheduled: bool = True
    status: RuleStatus | None = None
    last_event: str | None = None


@dataclass
class RuleEngine:
    """Evaluates every rule of a camera on each processed frame. Not thread-safe: one per worker.

    ``armed(camera, rule)`` is read on every frame (a dict lookup); ``schedules`` maps a rule
    name to its schedule (rules without one are always in schedule)."""

    rules: Mapping[str, RuleConfig]
    cameras: Mapping[str, CameraConfig]
    armed: Callable[[str, str], bool] = always_armed
    schedules: Mapping[str, ScheduleLike] = field(default_factory=dict)
    _by_camera: dict[str, list[CompiledRule]] = field(init=False)
    _masks: dict[str, list[PolygonZone]] = field(init=False)
    _pairs: dict[tuple[str, str], _Pair] = field(init=False, default_factory=dict)
    _track_zones: dict[str, dict[int, tuple[str, ...]]] = field(init=False, default_factory=dict)
    _statuses: list[RuleStatus] = field(init=False, default_factory=list)

    def __post_init__(self) -> None:
        self._by_camera = {name: [] for name in self.cameras}
        for name, cfg in self.rules.items():
            compiled = CompiledRule.from_config(name, cfg)
            for cam in cfg.cameras:
                self._by_camera.setdefault(cam, []).append(compiled)
        self._masks = {name: [PolygonZone(m) for m in cam.masks] for name, cam in self.cameras.items()}

    def take_over(
        self, old: RuleEngine, keep: Callable[[str, str], bool], last_frames: Mapping[str, FrameInfo | None]
    ) -> list[Event]:
        """Carry over the state of the (rule, camera) pairs ``keep`` accepts and this engine
        evaluates; every other pair that has an episode going gets its ``end`` (reason
        ``reload``, at the camera's last frame), so a reload never leaves a rule dangling ``on``."""
        mine = {(r.name, cam): r for cam, rules in self._by_camera.items() for r in rules}
        events = []
        for key, pair in old._pairs.items():
            if key in mine and keep(*key):
                pair.status = None  # said again at the next frame (a new broker or prefix needs it)
                self._pairs[key] = pair
                continue
            frame = last_frames.get(key[1])
            if frame is not None:
                events += pair.evaluator.stop(frame, "reload")
        self._track_zones = old._track_zones
        return events

    def _visible(self, camera: str, dets: Detections, frame_wh: tuple[int, int]) -> npt.NDArray[np.bool_]:
        visible = np.ones(len(dets), dtype=bool)
        masks = self._masks.get(camera, [])
        if masks and len(dets):
            points = anchor_points(dets, frame_wh, "center")
            for mask in masks:
                visible &= ~mask.contains(points)
        return visible

    def evaluate(
        self,
        frame: FrameInfo,
        dets: Detections,
        labels: Sequence[str],
        stationary: npt.NDArray[np.bool_] | None = None,
        ended: Sequence[int] = (),
    ) -> list[Event]:
        """Step the camera's rules on one frame. ``stationary`` (bool per detection) and
        ``ended`` (ids of tracks that ended with this frame) come from the camera's tracker."""
        rules = self._by_camera.get(frame.camera, [])
        wh = (frame.width, frame.height)
        visible = self._visible(frame.camera, dets, wh)
        still = np.zeros(len(dets), bool) if stationary is None else np.asarray(stationary, bool)
        dets, still = dets[visible], still[visible]
        in_zones = self._zones(rules, dets, wh)
        scene = Scene(
            frame,
            dets,
            still,
            tuple(labels),
            frozenset(ended),
            in_zones,
            self._follow_zones(frame.camera, dets, in_zones, frozenset(ended)),
        )
        events: list[Event] = []
        for rule in rules:
            pair = self._pair(rule, frame.camera)
            gate = self._gate(pair, frame)
            if gate != pair.gate:
                if gate is not None:  # closing: end what was going, start afresh when it opens
                    events += self._note(
                        pair, pair.evaluator.stop(frame, "disarmed" if gate == "disarmed" else "schedule")
                    )
                    if rule.kind != "line":  # line counters live as long as the rule
                        pair.evaluator = new_evaluator(rule)
                pair.gate = gate
            if gate is None:
                events += self._note(pair, pair.evaluator.step(scene, rule.matches(scene)))
            self._report(pair, frame)
        return events

    def finish(self, camera: str, frame: FrameInfo | None) -> list[Event]:
        """``end`` every episode of a camera whose source has ended or gone offline."""
        self._track_zones.pop(camera, None)
        if frame is None:
            return []
        events: list[Event] = []
        for rule in self._by_camera.get(camera, []):
            pair = self._pairs.get((rule.name, camera))
            if pair is not None:
                events += self._note(pair, pair.evaluator.stop(frame, "offline"))
                if rule.kind != "line":
                    pair.evaluator = new_evaluator(rule)
                self._report(pair, frame)
        return events

    def statuses(self) -> list[RuleStatus]:
        """The states that changed since the last call (oldest first)."""
        out, self._statuses = self._statuses, []
        return out

    def _pair(self, rule: CompiledRule, camera: str) -> _Pair:
        pair = self._pairs.get((rule.name, camera))
        if pair is None:
            pair = self._pairs[(rule.name, camera)] = _Pair(rule, new_evaluator(rule))
        return pair

    def _gate(self, pair: _Pair, frame: FrameInfo) -> RuleState | None:
        """None when the rule runs; else why not (``disarmed`` first, then ``idle``)."""
        schedule = self.schedules.get(pair.rule.name)
        pair.armed = self.armed(frame.camera, pair.rule.name)
        pair.scheduled = schedule is None or schedule.active(frame.t_wall)
        return "disarmed" if not pair.armed else None if pair.scheduled else "idle"

    @staticmethod
    def _note(pair: _Pair, events: list[Event]) -> list[Event]:
        if events:
            pair.last_event = events[-1].id
        return events

    def _report(self, pair: _Pair, frame: FrameInfo) -> None:
        ev = pair.evaluator
        line = ev if isinstance(ev, LineCrossing) else None
        status = RuleStatus(
            camera=frame.camera,
            rule=pair.rule.name,
            kind=pair.rule.kind,
            state=pair.gate or ev.state,
            count=ev.count,
            since_wall=frame.t_wall,
            event_id=pair.last_event,
            armed=pair.armed,
            scheduled=pair.scheduled,
            counters=line.totals() if line else None,
            counters_by_label=line.by_label() if line else None,
        )
        old = pair.status
        if status.same_as(old):
            return
        if old is not None and old.state == status.state:
            status = RuleStatus(**{**status.__dict__, "since_wall": old.since_wall})
        pair.status = status
        self._statuses.append(status)

    def _zones(
        self, rules: list[CompiledRule], dets: Detections, wh: tuple[int, int]
    ) -> dict[str, npt.NDArray[np.bool_]]:
        points: dict[AnchorPoint, np.ndarray] = {}
        out = {}
        for rule in rules:
            if rule.zone is None:
                continue
            if rule.anchor not in points:
                points[rule.anchor] = anchor_points(dets, wh, rule.anchor)
            out[rule.name] = rule.zone.contains(points[rule.anchor])
        return out

    def _follow_zones(
        self, camera: str, dets: Detections, in_zones: dict[str, npt.NDArray[np.bool_]], ended: frozenset[int]
    ) -> dict[int, tuple[str, ...]]:
        """Per track, the zones its object has been in so far, in the order it entered them."""
        seen = self._track_zones.setdefault(camera, {})
        tids = dets.tracker_id
        if tids is not None:
            for i, tid in enumerate(tids.tolist()):
                if tid < 0:
                    continue
                zones = seen.get(tid, ())
                for name, inside in in_zones.items():
                    if inside[i] and name not in zones:
                        zones = (*zones, name)
                seen[tid] = zones
        for tid in ended:
            seen.pop(tid, None)
        if tids is not None and len(seen) > 2 * len(tids) + 64:  # ids of a replaced tracker
            live = set(tids.tolist())
            for tid in [t for t in seen if t not in live]:
                del seen[tid]
        return seen
