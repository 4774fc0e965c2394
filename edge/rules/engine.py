"""Rules v1: labels, score, zone, size, masks, cooldown -> ``Event``s.

Each (rule, camera) pair is a small state machine on *frame time*, so a file gives the same
events however fast it is processed:

* idle -> active when a frame has a matching detection and the cooldown since the last
  ``new`` event has passed: emits ``new`` with the best match;
* active stays active while matches keep coming;
* active -> idle after ``clear_after`` seconds without a match: emits ``end``.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge.config.schema import CameraConfig, RuleConfig
from edge.rules.zones import AnchorPoint, PolygonZone, anchor_points
from edge.types import Detections

EventType = Literal["new", "end"]


@dataclass(frozen=True)
class FrameInfo:
    """Which frame detections came from: camera, sequence number, times, size."""

    camera: str
    seq: int
    t_frame: float  # seconds on the source's timeline (file position, or wall clock for live)
    t_wall: float  # UNIX time of the frame
    width: int
    height: int


@dataclass(frozen=True)
class Event:
    """One rule transition. ``id`` is unique and stays the same through every retry."""

    id: str
    type: EventType
    camera: str
    rule: str
    label: str
    score: float
    box: tuple[float, float, float, float]
    count: int
    frame_seq: int
    t_frame: float
    t_wall: float
    frame_wh: tuple[int, int]
    started_t_frame: float


@dataclass
class _RuleState:
    active: bool = False
    last_new: float | None = None
    last_match: float = 0.0
    started: float = 0.0
    best: tuple[str, float, tuple[float, float, float, float]] | None = None


@dataclass(frozen=True)
class CompiledRule:
    name: str
    labels: frozenset[str]
    min_score: float
    zone: PolygonZone | None
    anchor: AnchorPoint
    min_area: float
    cooldown: float
    clear_after: float

    @staticmethod
    def from_config(name: str, cfg: RuleConfig) -> CompiledRule:
        return CompiledRule(
            name=name,
            labels=frozenset(cfg.labels),
            min_score=cfg.min_score,
            zone=PolygonZone(cfg.zone) if cfg.zone else None,
            anchor=cfg.point,
            min_area=cfg.min_area,
            cooldown=cfg.cooldown,
            clear_after=cfg.clear_after,
        )

    def matches(self, dets: Detections, labels: Sequence[str], frame_wh: tuple[int, int]) -> np.ndarray:
        keep = dets.score >= self.min_score
        if self.labels:
            names = np.array([labels[c] if 0 <= c < len(labels) else str(c) for c in dets.class_id])
            keep &= np.isin(names, list(self.labels)) if len(names) else keep
        if self.min_area > 0:
            keep &= dets.area >= self.min_area * frame_wh[0] * frame_wh[1]
        if self.zone is not None and len(dets):
            keep &= self.zone.contains(anchor_points(dets, frame_wh, self.anchor))
        return keep


@dataclass
class RuleEngine:
    """Evaluates every rule of a camera on each processed frame. Not thread-safe: one per worker."""

    rules: Mapping[str, RuleConfig]
    cameras: Mapping[str, CameraConfig]
    _by_camera: dict[str, list[CompiledRule]] = field(init=False)
    _masks: dict[str, list[PolygonZone]] = field(init=False)
    _state: dict[tuple[str, str], _RuleState] = field(init=False, default_factory=dict)

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
        evaluates; every other pair that is active gets its ``end`` (at the camera's last frame),
        so a reload never leaves a rule dangling ``on``."""
        mine = {(r.name, cam) for cam, rules in self._by_camera.items() for r in rules}
        events = []
        for (rule, camera), state in list(old._state.items()):
            if (rule, camera) in mine and keep(rule, camera):
                self._state[(rule, camera)] = state
                continue
            frame = last_frames.get(camera)
            if state.active and frame is not None:
                state.active = False
                events.append(self._event("end", rule, frame, state, 0))
        return events

    def unmasked(self, camera: str, dets: Detections, frame_wh: tuple[int, int]) -> Detections:
        """Detections whose centre lies in none of the camera's masks."""
        masks = self._masks.get(camera, [])
        if not masks or not len(dets):
            return dets
        points = anchor_points(dets, frame_wh, "center")
        hidden = np.zeros(len(dets), dtype=bool)
        for mask in masks:
            hidden |= mask.contains(points)
        return dets[~hidden]

    def evaluate(self, frame: FrameInfo, dets: Detections, labels: Sequence[str]) -> list[Event]:
        wh = (frame.width, frame.height)
        dets = self.unmasked(frame.camera, dets, wh)
        events: list[Event] = []
        for rule in self._by_camera.get(frame.camera, []):
            state = self._state.setdefault((rule.name, frame.camera), _RuleState())
            hit = rule.matches(dets, labels, wh)
            if hit.any():
                matched = dets[hit]
                best = int(np.argmax(matched.score))
                cid = int(matched.class_id[best])
                label = labels[cid] if 0 <= cid < len(labels) else str(cid)
                box = tuple(round(float(v), 1) for v in matched.xyxy[best])
                state.last_match = frame.t_frame
                state.best = (label, float(matched.score[best]), box)  # type: ignore[assignment]
                if not state.active and (
                    state.last_new is None or frame.t_frame - state.last_new >= rule.cooldown
                ):
                    state.active, state.last_new, state.started = True, frame.t_frame, frame.t_frame
                    events.append(self._event("new", rule.name, frame, state, int(hit.sum())))
            elif state.active and frame.t_frame - state.last_match >= rule.clear_after:
                state.active = False
                events.append(self._event("end", rule.name, frame, state, 0))
        return events

    def finish(self, camera: str, frame: FrameInfo | None) -> list[Event]:
        """``end`` events for every active rule of a camera whose source has ended."""
        if frame is None:
            return []
        out = []
        for rule in self._by_camera.get(camera, []):
            state = self._state.get((rule.name, camera))
            if state is not None and state.active:
                state.active = False
                out.append(self._event("end", rule.name, frame, state, 0))
        return out

    @staticmethod
    def _event(kind: EventType, rule: str, frame: FrameInfo, state: _RuleState, count: int) -> Event:
        assert state.best is not None
        label, score, box = state.best
        return Event(
            id=uuid.uuid4().hex,
            type=kind,
            camera=frame.camera,
            rule=rule,
            label=label,
            score=round(score, 4),
            box=box,
            count=count,
            frame_seq=frame.seq,
            t_frame=round(frame.t_frame, 3),
            t_wall=frame.t_wall,
            frame_wh=(frame.width, frame.height),
            started_t_frame=round(state.started, 3),
        )
