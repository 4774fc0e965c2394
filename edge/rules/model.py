"""The values the rule engine takes and gives: a frame's identity and detections in, events and
rule states out. Events and states are frozen: they cross from the inference worker to the
actions thread."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge.types import Detections

EventType = Literal["new", "update", "end", "cross"]
EndReason = Literal["left", "lost", "cleared", "offline", "disarmed", "schedule", "reload"]
"""Why an episode ended: the object left the rule (``left``), its track was lost (``lost``), a
count or absence condition stopped holding (``cleared``), the camera went away (``offline``),
the rule was disarmed, its schedule window closed, or a reload removed it."""
RuleState = Literal["on", "off", "idle", "disarmed"]
Box = tuple[float, float, float, float]


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
    """One rule event. ``id`` is unique and stays the same through every retry; ``episode`` is
    shared by the ``new``, ``update`` and ``end`` events of one object (or one activation of a
    count or absence rule)."""

    id: str
    episode: str
    type: EventType
    kind: str
    camera: str
    rule: str
    label: str | None
    score: float
    top_score: float
    box: Box | None
    count: int
    frame_seq: int
    t_frame: float
    t_wall: float
    frame_wh: tuple[int, int]
    started_t_frame: float
    first_seen_wall: float
    track_id: int | None = None
    zones: tuple[str, ...] = ()
    stationary: bool | None = None
    direction: Literal["in", "out"] | None = None
    counters: tuple[tuple[str, int], ...] | None = None
    reason: EndReason | None = None

    @property
    def duration(self) -> float:
        return round(max(0.0, self.t_frame - self.started_t_frame), 3)

    @staticmethod
    def make(
        type: EventType,
        kind: str,
        rule: str,
        frame: FrameInfo,
        episode: str,
        *,
        started: float,
        started_wall: float | None = None,
        label: str | None,
        score: float,
        top_score: float,
        box: Box | None,
        count: int,
        track_id: int | None = None,
        zones: tuple[str, ...] = (),
        stationary: bool | None = None,
        direction: Literal["in", "out"] | None = None,
        counters: tuple[tuple[str, int], ...] | None = None,
        reason: EndReason | None = None,
    ) -> Event:
        """An event of ``rule`` at ``frame``; ``started`` is the frame time its episode began and
        ``started_wall`` the wall-clock time of that frame (derived from ``frame`` when None)."""
        return Event(
            id=new_id(),
            episode=episode,
            type=type,
            kind=kind,
            camera=frame.camera,
            rule=rule,
            label=label,
            score=round(score, 4),
            top_score=round(top_score, 4),
            box=box,
            count=count,
            frame_seq=frame.seq,
            t_frame=round(frame.t_frame, 3),
            t_wall=frame.t_wall,
            frame_wh=(frame.width, frame.height),
            started_t_frame=round(started, 3),
            first_seen_wall=(
                frame.t_wall - max(0.0, frame.t_frame - started) if started_wall is None else started_wall
            ),
            track_id=track_id,
            zones=zones,
            stationary=stationary,
            direction=direction,
            counters=counters,
            reason=reason,
        )


@dataclass(frozen=True)
class RuleStatus:
    """What a (rule, camera) pair is doing now: the retained state topic's content."""

    camera: str
    rule: str
    kind: str
    state: RuleState
    count: int
    since_wall: float
    event_id: str | None
    armed: bool
    scheduled: bool
    counters: tuple[tuple[str, int], ...] | None = None
    counters_by_label: tuple[tuple[str, str, int], ...] | None = None

    def same_as(self, other: RuleStatus | None) -> bool:
        """Equal apart from ``since_wall`` and ``event_id`` (nothing a subscriber needs anew)."""
        return other is not None and (
            self.state,
            self.count,
            self.armed,
            self.scheduled,
            self.counters,
            self.counters_by_label,
        ) == (
            other.state,
            other.count,
            other.armed,
            other.scheduled,
            other.counters,
            other.counters_by_label,
        )


@dataclass(frozen=True)
class Scene:
    """One frame as the rules see it: the detections outside the camera's masks, which of them
    stand still, the tracks that ended with this frame, and the zones each detection is in."""

    frame: FrameInfo
    dets: Detections
    stationary: npt.NDArray[np.bool_]
    labels: tuple[str, ...]
    ended: frozenset[int] = frozenset()
    in_zones: dict[str, npt.NDArray[np.bool_]] = field(default_factory=dict)
    track_zones: Mapping[int, tuple[str, ...]] = field(default_factory=dict)

    @property
    def tracked(self) -> bool:
        return self.dets.tracker_id is not None

    def label(self, i: int) -> str:
        cid = int(self.dets.class_id[i])
        return self.labels[cid] if 0 <= cid < len(self.labels) else str(cid)

    def track(self, i: int) -> int | None:
        tid = self.dets.tracker_id
        return int(tid[i]) if tid is not None and tid[i] >= 0 else None

    def zones_of(self, i: int) -> tuple[str, ...]:
        """The zones (named by their rules) detection ``i``'s object has been in: over its
        track's life when tracked, else in this frame."""
        tid = self.track(i)
        if tid is not None:
            return self.track_zones.get(tid, ())
        return tuple(name for name, inside in self.in_zones.items() if inside[i])

    def box(self, i: int) -> Box:
        x1, y1, x2, y2 = (round(float(v), 1) for v in self.dets.xyxy[i])
        return (x1, y1, x2, y2)


def new_id() -> str:
    return uuid.uuid4().hex
