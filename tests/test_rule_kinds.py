"""Rule kinds v2, table-driven on recorded detection streams.

A stream is a list of frames ``(t, rows)`` or ``(t, rows, ended)``; a row is
``(track_id, x1, y1, x2, y2, score, class_id, stationary)`` in pixels of a 1000 x 1000 frame
(``track_id`` None: the camera does not track; -1: an unconfirmed track). ``Player`` feeds it
through a real ``RuleEngine`` on frame time and records every event and state; each case
asserts the exact sequence of ``(t, type, track_id, direction, reason, count)``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from edge.config.schema import CameraConfig, RuleConfig
from edge.rules import Event, FrameInfo, RuleEngine, RuleStatus
from edge.rules.schedule import Schedule
from edge.types import Detections

LABELS = ("person", "car")
W = H = 1000
CAM = CameraConfig.model_validate({"source": {"type": "file", "path": "x.mp4"}, "model": "m"})
WALL0 = 1_780_000_000.0  # 2026-05-28, a Thursday

Row = tuple[int | None, float, float, float, float, float, int, bool]
Frame = tuple[float, list[Row]] | tuple[float, list[Row], tuple[int, ...]]
Rec = tuple[float, str, int | None, str | None, str | None, int]


# --- the recorded-stream helper -------------------------------------------------------------


def at(tid: int | None, x: float, y: float, score: float = 0.9, cls: int = 0, still: bool = False) -> Row:
    """An object whose bottom centre (the default anchor) is at (x, y), fractions of the frame."""
    return (tid, x * W - 10, y * H - 40, x * W + 10, y * H, score, cls, still)


def hold(t0: float, t1: float, rows: list[Row], step: float = 1.0) -> list[Frame]:
    """The same rows in every frame from ``t0`` to ``t1`` (inclusive), ``step`` apart."""
    n = round((t1 - t0) / step)
    return [(round(t0 + k * step, 6), list(rows)) for k in range(n + 1)]


def path(tid: int, points: Sequence[tuple[float, float]], t0: float = 0.0, cls: int = 0) -> list[Frame]:
    """One object at each point in turn, one frame per second."""
    return [(t0 + k, [at(tid, x, y, cls=cls)]) for k, (x, y) in enumerate(points)]


def crowd(counts: Sequence[int], times: Sequence[float] | None = None, tid0: int = 1) -> list[Frame]:
    """``counts[k]`` distinct tracked people in frame k (at ``times[k]``, default k seconds)."""
    ts = list(times) if times is not None else [float(k) for k in range(len(counts))]
    return [
        (t, [at(tid0 + j, 0.1 + 0.08 * j, 0.5) for j in range(n)]) for t, n in zip(ts, counts, strict=True)
    ]


def detections(rows: list[Row], tracked: bool) -> tuple[Detections, npt.NDArray[np.bool_]]:
    a = np.array([r[1:7] for r in rows], np.float32).reshape(-1, 6)
    tids = np.array([r[0] for r in rows], np.int32) if tracked else None
    still = np.array([r[7] for r in rows], bool)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int32), tracker_id=tids), still


def record(e: Event) -> Rec:
    return (e.t_frame, e.type, e.track_id, e.direction, e.reason, e.count)


@dataclass
class Player:
    """Plays streams through one ``RuleEngine``; ``disarmed`` lists [from, to) frame times."""

    rules: dict[str, RuleConfig]
    disarmed: Sequence[tuple[float, float]] = ()
    wall0: float = WALL0
    engine: RuleEngine = field(init=False)
    events: list[Event] = field(default_factory=list)
    statuses: list[RuleStatus] = field(default_factory=list)
    last: FrameInfo | None = None
    now: float = 0.0
    seq: int = 0

    def __post_init__(self) -> None:
        schedules = {n: Schedule.from_config(c.schedule) for n, c in self.rules.items() if c.schedule}
        self.engine = RuleEngine(self.rules, {"cam": CAM}, armed=self._armed, schedules=schedules)

    def _armed(self, camera: str, rule: str) -> bool:
        assert camera == "cam" and rule in self.rules
        return not any(a <= self.now < b for a, b in self.disarmed)

    def info(self, t: float) -> FrameInfo:
        self.seq += 1
        return FrameInfo("cam", self.seq, t, self.wall0 + t, W, H)

    def play(self, frames: Iterable[Frame]) -> list[Event]:
        frames = list(frames)
        tracked = all(r[0] is not None for f in frames for r in f[1])
        out: list[Event] = []
        for f in frames:
            t, rows = f[0], f[1]
            ended = f[2] if len(f) == 3 else ()
            self.now = t
            self.last = self.info(t)
            dets, still = detections(rows, tracked)
            out += self.engine.evaluate(self.last, dets, LABELS, still, ended)
            self.statuses += self.engine.statuses()
        self.events += out
        return out

    def finish(self, t: float) -> list[Event]:
        out = self.engine.finish("cam", self.info(t))
        self.events += out
        self.statuses += self.engine.statuses()
        return out

    def recs(self, rule: str | None = None) -> list[Rec]:
        return [record(e) for e in self.events if rule is None or e.rule == rule]

    def states(self) -> list[tuple[str, int]]:
        return [(s.state, s.count) for s in self.statuses]


def assert_episodes(events: list[Event]) -> None:
    """Every ``update`` and ``end`` carries the episode its object's last ``new`` opened; every
    ``new`` opens an episode of its own."""
    current: dict[int | None, str] = {}
    seen: set[str] = set()
    for e in events:
        if e.type == "new":
            assert e.episode not in seen and e.duration >= 0, record(e)
            current[e.track_id] = e.episode
            seen.add(e.episode)
        elif e.type != "cross":
            opened = current.pop(e.track_id) if e.type == "end" else current[e.track_id]
            assert e.episode == opened, record(e)


def make_rule(base: dict[str, Any], over: dict[str, Any]) -> RuleConfig:
    return RuleConfig.model_validate({**base, **over})


def t_of(iso: str, wall0: float) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp() - wall0


# --- presence -------------------------------------------------------------------------------

PRESENCE = {
    "cameras": ["cam"],
    "labels": ["person"],
    "min_score": 0.5,
    "clear_after": 2,
    "cooldown": 0,
    "update_interval": 0,
}
P1 = at(1, 0.3, 0.5)
P2 = at(2, 0.6, 0.5)


def _score_stream() -> list[Frame]:
    scores = [0.6, 0.7, 0.7, 0.72, 0.9, 0.9]
    return [(float(t), [at(1, 0.3, 0.5, score=s)]) for t, s in enumerate(scores)]


PRESENCE_CASES = [
    pytest.param(
        {},
        hold(0, 3, [P1]) + hold(4, 6, []),
        [(0, "new", 1, None, None, 1), (5, "end", 1, None, "left", 0)],
        [("on", 1), ("off", 0)],
        id="one object in and out (left after clear_after)",
    ),
    pytest.param(
        {},
        hold(0, 2, [P1]) + [(3.0, [], (1,))] + hold(4, 6, []),
        [(0, "new", 1, None, None, 1), (3, "end", 1, None, "lost", 0)],
        [("on", 1), ("off", 0)],
        id="track ended -> lost at once",
    ),
    pytest.param(
        {},
        [(float(t), [r for r, on in ((P1, t <= 5), (P2, 2 <= t <= 8)) if on]) for t in range(11)],
        [
            (0, "new", 1, None, None, 1),
            (2, "new", 2, None, None, 2),
            (7, "end", 1, None, "left", 1),
            (10, "end", 2, None, "left", 0),
        ],
        [("on", 1), ("on", 2), ("on", 1), ("off", 0)],
        id="two objects -> two episodes, live count 2",
    ),
    pytest.param(
        {},
        hold(0, 5, [at(-1, 0.3, 0.5)]),
        [],
        [("off", 0)],
        id="unconfirmed track (-1) ignored",
    ),
    pytest.param(
        {"labels": ["car"]},
        hold(0, 3, [P1]),
        [],
        [("off", 0)],
        id="wrong label ignored",
    ),
    pytest.param(
        {"update_interval": 2},
        _score_stream(),
        [(0, "new", 1, None, None, 1), (2, "update", 1, None, None, 1), (4, "update", 1, None, None, 1)],
        [("on", 1)],
        id="score improves -> updates at most every update_interval",
    ),
    pytest.param(
        {"update_interval": 0},
        _score_stream(),
        [(0, "new", 1, None, None, 1)],
        [("on", 1)],
        id="update_interval 0 -> no updates",
    ),
    pytest.param(
        {},
        hold(0, 1, [P1]) + hold(2, 4, []) + hold(5, 6, [P1]),
        [(0, "new", 1, None, None, 1), (3, "end", 1, None, "left", 0), (5, "new", 1, None, None, 1)],
        [("on", 1), ("off", 0), ("on", 1)],
        id="back after it left: a new episode",
    ),
    pytest.param(
        {},
        hold(0, 1, [P1]) + [(2.0, []), (3.5, [P1])] + hold(4, 7, []),
        [(0, "new", 1, None, None, 1), (6, "end", 1, None, "left", 0)],
        [("on", 1), ("off", 0)],
        id="a gap shorter than clear_after keeps the episode",
    ),
    pytest.param(
        {"cooldown": 10},
        hold(0, 1, [P1]) + hold(2, 4, []) + hold(5, 10, [P1, P2]),
        [
            (0, "new", 1, None, None, 1),
            (3, "end", 1, None, "left", 0),
            (5, "new", 2, None, None, 1),  # another track is not held back by track 1's cooldown
            (10, "new", 1, None, None, 2),  # track 1 again once its cooldown has passed
        ],
        [("on", 1), ("off", 0), ("on", 1), ("on", 2)],
        id="cooldown per track",
    ),
    pytest.param(
        {},
        [(0.0, [at(None, 0.3, 0.5), at(None, 0.6, 0.5)]), (1.0, [at(None, 0.3, 0.5)]), (2.0, []), (3.0, [])],
        [(0, "new", None, None, None, 2), (3, "end", None, None, "left", 0)],
        [("on", 2), ("on", 1), ("on", 0), ("off", 0)],
        id="untracked: one rule-level episode (v1)",
    ),
    pytest.param(
        {"cooldown": 10},
        hold(0, 1, [at(None, 0.3, 0.5)]) + hold(2, 4, []) + hold(5, 10, [at(None, 0.3, 0.5)]),
        [
            (0, "new", None, None, None, 1),
            (3, "end", None, None, "left", 0),
            (10, "new", None, None, None, 1),
        ],
        [("on", 1), ("on", 0), ("off", 0), ("on", 1)],
        id="untracked: cooldown for the rule",
    ),
]

STILL_STREAM = hold(0, 2, [at(1, 0.3, 0.5)]) + hold(3, 8, [at(1, 0.3, 0.5, still=True)]) + hold(9, 11, [])

STATIONARY_CASES = [
    pytest.param(
        {"stationary": "include"},
        STILL_STREAM,
        [(0, "new", 1, None, None, 1), (10, "end", 1, None, "left", 0)],
        [("on", 1), ("off", 0)],
        id="include",
    ),
    pytest.param(
        {"stationary": "include", "update_interval": 1},
        STILL_STREAM,
        [(0, "new", 1, None, None, 1), (3, "update", 1, None, None, 1), (10, "end", 1, None, "left", 0)],
        [("on", 1), ("off", 0)],
        id="include: standing still is an update",
    ),
    pytest.param(
        {"stationary": "exclude"},
        STILL_STREAM,
        [(0, "new", 1, None, None, 1), (4, "end", 1, None, "left", 0)],
        [("on", 1), ("off", 0)],
        id="exclude",
    ),
    pytest.param(
        {"stationary": "only"},
        STILL_STREAM,
        [(3, "new", 1, None, None, 1), (10, "end", 1, None, "left", 0)],
        [("off", 0), ("on", 1), ("off", 0)],
        id="only",
    ),
]


@pytest.mark.parametrize(("over", "frames", "expected", "states"), PRESENCE_CASES + STATIONARY_CASES)
def test_presence(
    over: dict[str, Any], frames: list[Frame], expected: list[Rec], states: list[tuple[str, int]]
) -> None:
    player = Player({"r": make_rule(PRESENCE, over)})
    player.play(frames)
    assert player.recs() == expected
    assert player.states() == states
    assert_episodes(player.events)
    for e in player.events:
        assert e.stationary == (None if e.track_id is None else bool(e.stationary)), record(e)


def test_presence_event_fields_follow_the_object() -> None:
    player = Player({"r": make_rule(PRESENCE, {"update_interval": 2})})
    player.play(_score_stream() + hold(6, 8, []))
    new, up1, up2, end = player.events
    assert [(e.score, e.top_score) for e in player.events] == [(0.6, 0.6), (0.7, 0.7), (0.9, 0.9), (0.9, 0.9)]
    assert (up1.started_t_frame, up2.duration, end.duration) == (0.0, 4.0, 7.0)
    assert new.first_seen_wall == end.first_seen_wall == WALL0
    assert new.box == (290.0, 460.0, 310.0, 500.0) and new.label == "person"
    assert [e.stationary for e in player.events] == [False, False, False, False]


def test_zones_list_the_zones_in_the_order_the_object_entered_them() -> None:
    """Two presence rules with zones on one camera; zones carry the rules' names. The door rule
    comes first in the config, but the object enters the yard first."""
    base = {**PRESENCE, "update_interval": 1}
    rules = {
        "door": make_rule(base, {"zone": [(0, 0), (0.3, 0), (0.3, 1), (0, 1)]}),
        "yard": make_rule(base, {"zone": [(0, 0), (0.7, 0), (0.7, 1), (0, 1)]}),
    }
    xs = [0.6, 0.5, 0.2, 0.2, 0.6, 0.9, 0.9]
    player = Player(rules)
    player.play([(float(t), [at(1, x, 0.5)]) for t, x in enumerate(xs)] + hold(7, 9, []))
    both = ("yard", "door")
    got = {rule: [(e.t_frame, e.type, e.zones) for e in player.events if e.rule == rule] for rule in rules}
    assert got == {
        "yard": [(0, "new", ("yard",)), (2, "update", both), (6, "end", both)],
        "door": [(2, "new", both), (5, "end", both)],
    }


# --- line -----------------------------------------------------------------------------------

LINE = {"kind": "line", "cameras": ["cam"], "labels": ["person"], "line": [(0.2, 0.5), (0.8, 0.5)]}


def _down(*ys: float, x: float = 0.5) -> list[Frame]:
    return path(1, [(x, y) for y in ys])


LINE_CASES = [
    pytest.param(
        {},
        _down(0.3, 0.4, 0.6, 0.7),
        [(2, "cross", 1, "in", None, 1)],
        (1, 0),
        id="in: from the left of the line (above, for a line drawn left to right) to its right",
    ),
    pytest.param(
        {},
        _down(0.7, 0.6, 0.4, 0.3),
        [(2, "cross", 1, "out", None, 1)],
        (0, 1),
        id="out",
    ),
    pytest.param(
        {"line": [(0.5, 0.2), (0.5, 0.8)]},
        path(1, [(0.7, 0.5), (0.6, 0.5), (0.4, 0.5), (0.3, 0.5)]),
        [(2, "cross", 1, "in", None, 1)],
        (1, 0),
        id="in for a line drawn downwards is from right to left on the image",
    ),
    pytest.param(
        {},
        _down(0.1, 0.9),
        [(1, "cross", 1, "in", None, 1)],
        (1, 0),
        id="a jump across in one frame counts",
    ),
    pytest.param(
        {},
        _down(0.3, 0.49, 0.51, 0.49, 0.51, 0.495, 0.49, 0.3),
        [],
        (0, 0),
        id="hovering inside the margin never counts",
    ),
    pytest.param(
        {},
        _down(0.3, 0.49, 0.51, 0.6, 0.51, 0.49, 0.51, 0.6, 0.55),
        [(3, "cross", 1, "in", None, 1)],
        (1, 0),
        id="jitter across the line once past it counts once",
    ),
    pytest.param(
        {},
        _down(0.3, 0.7, x=0.9),
        [],
        (0, 0),
        id="crossing the extension beyond the second point does not count",
    ),
    pytest.param(
        {},
        path(1, [(0.05, 0.3), (0.15, 0.7)]),
        [],
        (0, 0),
        id="crossing the extension before the first point does not count",
    ),
    pytest.param(
        {},
        path(1, [(0.9, 0.3), (0.6, 0.7)]),
        [(1, "cross", 1, "in", None, 1)],
        (1, 0),
        id="a diagonal path through the segment counts",
    ),
    pytest.param(
        {"line_margin": 0.1},
        _down(0.45, 0.55, 0.45, 0.55, 0.3, 0.7),
        [(5, "cross", 1, "in", None, 1)],
        (1, 0),
        id="a wider line_margin: only a move past it counts",
    ),
    pytest.param(
        {"directions": ["out"]},
        _down(0.3, 0.7, 0.3),
        [(2, "cross", 1, "out", None, 1)],
        (1, 1),
        id="directions [out]",
    ),
    pytest.param(
        {},
        _down(0.3, 0.7, 0.3),
        [(1, "cross", 1, "in", None, 1), (2, "cross", 1, "out", None, 1)],
        (1, 1),
        id="back and forth: in then out",
    ),
    pytest.param(
        {"directions": ["in"]},
        _down(0.3, 0.7, 0.3, 0.7),
        [(1, "cross", 1, "in", None, 1), (3, "cross", 1, "in", None, 2)],
        (2, 1),
        id="directions [in]: no out events, out still counted",
    ),
    pytest.param(
        {},
        [(float(t), [at(-1, 0.5, y)]) for t, y in enumerate((0.3, 0.7, 0.3))],
        [],
        (0, 0),
        id="unconfirmed track (-1) never crosses",
    ),
    pytest.param(
        {},
        [(float(t), [at(None, 0.5, y)]) for t, y in enumerate((0.3, 0.7, 0.3))],
        [],
        (0, 0),
        id="untracked detections never cross",
    ),
    pytest.param(
        {},
        [(0.0, [at(1, 0.5, 0.3)]), (1.0, [], (1,)), (2.0, [at(1, 0.5, 0.7)])],
        [],
        (0, 0),
        id="an ended track's side is forgotten",
    ),
    pytest.param(
        {},
        [(0.0, [at(1, 0.5, 0.3)]), (100.0, [at(1, 0.5, 0.7)])],
        [],
        (0, 0),
        id="a side unseen for longer than FORGET_AFTER is forgotten",
    ),
]


@pytest.mark.parametrize(("over", "frames", "expected", "totals"), LINE_CASES)
def test_line(
    over: dict[str, Any], frames: list[Frame], expected: list[Rec], totals: tuple[int, int]
) -> None:
    player = Player({"r": make_rule(LINE, over)})
    player.play(frames)
    assert player.recs() == expected
    final = player.statuses[-1]
    counters = (("in", totals[0]), ("out", totals[1]))
    assert (final.state, final.count, final.counters) == ("off", sum(totals), counters)
    assert all(e.counters is not None and e.episode for e in player.events)
    if player.events:
        assert player.events[-1].counters == counters


def test_line_counters_by_label() -> None:
    player = Player({"r": make_rule(LINE, {"labels": []})})
    player.play(
        [
            (0.0, [at(1, 0.3, 0.3), at(2, 0.5, 0.3, cls=1), at(3, 0.7, 0.7)]),
            (1.0, [at(1, 0.3, 0.7), at(2, 0.5, 0.7, cls=1), at(3, 0.7, 0.3)]),
        ]
    )
    assert [(e.track_id, e.label, e.direction, e.count) for e in player.events] == [
        (1, "person", "in", 1),
        (2, "car", "in", 2),
        (3, "person", "out", 1),
    ]
    final = player.statuses[-1]
    assert final.counters == (("in", 2), ("out", 1))
    assert final.counters_by_label == (("car", "in", 1), ("person", "in", 1), ("person", "out", 1))
    assert [s.counters for s in player.statuses] == [(("in", 0), ("out", 0)), (("in", 2), ("out", 1))]


# --- dwell ----------------------------------------------------------------------------------

DWELL = {**PRESENCE, "kind": "dwell", "dwell": 5}

DWELL_CASES = [
    pytest.param({}, hold(0, 4.5, [P1], 0.5) + hold(5, 8, []), [], id="just under T: nothing"),
    pytest.param(
        {},
        hold(0, 5, [P1], 0.5) + hold(5.5, 8, [], 0.5),
        [(5, "new", 1, None, None, 1), (7, "end", 1, None, "left", 0)],
        id="just over T: new, then left",
    ),
    pytest.param(
        {},
        hold(0, 2, [P1], 0.5) + [(3.0, [])] + hold(3.5, 6, [P1], 0.5) + hold(7, 9, []),
        [(5, "new", 1, None, None, 1), (8, "end", 1, None, "left", 0)],
        id="a gap shorter than clear_after does not reset the dwell",
    ),
    pytest.param(
        {},
        hold(0, 2, [P1], 0.5) + [(3.0, []), (4.0, [])] + hold(4.5, 10, [P1], 0.5),
        [(9.5, "new", 1, None, None, 1)],
        id="a gap of clear_after resets the dwell",
    ),
    pytest.param(
        {},
        hold(0, 3, [P1]) + [(4.0, [], (1,))] + hold(4.5, 8, [P1], 0.5),
        [],
        id="a lost track resets the dwell",
    ),
    pytest.param(
        {"dwell": 0.5},
        [(k / 10, [P1]) for k in range(2, 9)],
        [(0.7, "new", 1, None, None, 1)],  # 0.7 - 0.2 == 0.49999999999999994 in floating point
        id="exact at frame granularity (10 fps)",
    ),
]


@pytest.mark.parametrize(("over", "frames", "expected"), DWELL_CASES)
def test_dwell(over: dict[str, Any], frames: list[Frame], expected: list[Rec]) -> None:
    cfg = make_rule(DWELL, over)
    player = Player({"r": cfg})
    player.play(frames)
    assert player.recs() == expected
    assert cfg.dwell is not None
    for e in player.events:
        assert e.duration >= cfg.dwell, record(e)


# --- count ----------------------------------------------------------------------------------

COUNT = {**PRESENCE, "kind": "count", "min_count": 2, "on_after": 2, "off_after": 3}


def _n(t: float, kind: str, count: int, reason: str | None = None) -> Rec:
    return (t, kind, None, None, reason, count)


COUNT_CASES = [
    pytest.param(
        {}, crowd([2, 2, 2]), [_n(2, "new", 2)], [("off", 2), ("on", 2)], id="starts after on_after"
    ),
    pytest.param({}, crowd([2, 2, 1, 2, 2, 1, 0]), [], None, id="spikes shorter than on_after do not start"),
    pytest.param(
        {},
        crowd([2, 2, 2, 1, 1, 1, 1]),
        [_n(2, "new", 2), _n(6, "end", 1, "cleared")],
        [("off", 2), ("on", 2), ("on", 1), ("off", 1)],
        id="ends after off_after",
    ),
    pytest.param(
        {},
        crowd([2, 2, 2, 1, 1, 2, 1, 1, 1, 2, 2]),
        [_n(2, "new", 2)],
        None,
        id="flicker below for less than off_after does not end",
    ),
    pytest.param(
        {"update_interval": 1},
        crowd([2, 2, 2, 3, 2, 3, 4, 5, 5], times=[0, 1, 2, 3, 4, 5, 6, 6.5, 7]),
        [_n(2, "new", 2), _n(3, "update", 3), _n(6, "update", 4), _n(7, "update", 5)],
        None,
        id="update only on a new high, at most every update_interval",
    ),
    pytest.param(
        {"update_interval": 0},
        crowd([2, 2, 2, 3, 2, 3, 4, 5, 5], times=[0, 1, 2, 3, 4, 5, 6, 6.5, 7]),
        [_n(2, "new", 2)],
        None,
        id="update_interval 0: no updates",
    ),
    pytest.param(
        {"on_after": 0.2, "off_after": 0.3},
        crowd([0, 2, 2, 2, 1, 1, 1, 1, 1], times=[k / 10 for k in range(9)]),
        [_n(0.3, "new", 2), _n(0.7, "end", 1, "cleared")],
        None,
        id="on and off delays exact at frame granularity (10 fps)",
    ),
    pytest.param(
        {"cooldown": 5, "on_after": 0, "off_after": 0},
        crowd([2, 1, 2, 2, 2, 2, 2]),
        [_n(0, "new", 2), _n(1, "end", 1, "cleared"), _n(5, "new", 2)],
        None,
        id="cooldown between two activations",
    ),
    pytest.param(
        {},
        [(float(t), [at(-1, 0.3, 0.5), at(-1, 0.6, 0.5)]) for t in range(4)],
        [],
        [("off", 0)],
        id="unconfirmed tracks are not counted",
    ),
    pytest.param(
        {},
        [(float(t), [at(None, 0.3, 0.5), at(None, 0.6, 0.5)]) for t in range(4)],
        [_n(2, "new", 2)],
        [("off", 2), ("on", 2)],
        id="untracked: detections are counted",
    ),
]


@pytest.mark.parametrize(("over", "frames", "expected", "states"), COUNT_CASES)
def test_count(
    over: dict[str, Any], frames: list[Frame], expected: list[Rec], states: list[tuple[str, int]] | None
) -> None:
    player = Player({"r": make_rule(COUNT, over)})
    player.play(frames)
    assert player.recs() == expected
    if states is not None:
        assert player.states() == states
    assert_episodes(player.events)


# --- absence --------------------------------------------------------------------------------

ABSENCE = {**PRESENCE, "kind": "absence", "absent_after": 5, "present_after": 3}

ABSENCE_CASES = [
    pytest.param(
        hold(100, 106, []),
        [_n(105, "new", 0)],
        100.0,
        id="nothing ever seen: counted from the rule's first frame",
    ),
    pytest.param(hold(0, 2, [P1]) + hold(3, 8, []), [_n(7, "new", 0)], 2.0, id="seen, then gone"),
    pytest.param(
        [(k / 2, [P1] if k % 3 == 0 else []) for k in range(41)],
        [],
        None,
        id="a flickering detector (misses of 1 s) never starts it",
    ),
    pytest.param(
        hold(0, 6, []) + [(7.0, [P1])] + hold(8, 12, []) + hold(13, 16, [P1]),
        [_n(5, "new", 0), _n(16, "end", 1, "cleared")],
        0.0,
        id="a single spurious detection does not end it; present_after does",
    ),
    pytest.param(
        hold(0, 5, []) + [(6.0, [P1]), (7.0, [P1]), (7.5, []), (8.0, []), (8.5, [P1]), (9.0, [P1])],
        [_n(5, "new", 0), _n(9, "end", 1, "cleared")],
        0.0,
        id="misses shorter than clear_after do not restart present_after",
    ),
    pytest.param(
        hold(0, 5, []) + [(6.0, [P1]), (7.0, [P1]), (8.0, []), (9.0, [])] + hold(10, 13, [P1]),
        [_n(5, "new", 0), _n(13, "end", 1, "cleared")],
        0.0,
        id="a miss of clear_after restarts present_after",
    ),
    pytest.param(
        hold(0, 5, []) + hold(6, 9, [P1]) + hold(10, 14, []),
        [_n(5, "new", 0), _n(9, "end", 1, "cleared"), _n(14, "new", 0)],
        0.0,
        id="absent again after it ended: a new episode",
    ),
    pytest.param(
        hold(0, 5, [at(-1, 0.3, 0.5)]),
        [_n(5, "new", 0)],
        0.0,
        id="unconfirmed tracks are not objects",
    ),
]


@pytest.mark.parametrize(("frames", "expected", "started"), ABSENCE_CASES)
def test_absence(frames: list[Frame], expected: list[Rec], started: float | None) -> None:
    player = Player({"r": make_rule(ABSENCE, {})})
    player.play(frames)
    assert player.recs() == expected
    assert_episodes(player.events)
    if started is not None:
        assert player.events[0].started_t_frame == started
        assert player.events[0].first_seen_wall == WALL0 + started


# --- schedules ------------------------------------------------------------------------------


def _sched(timezone: str, days: list[str], start: str, end: str) -> dict[str, Any]:
    return {"schedule": {"timezone": timezone, "windows": [{"days": days, "from": start, "to": end}]}}


ALL_DAYS = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]

SCHEDULE_CASES = [
    pytest.param(
        _sched("UTC", ALL_DAYS, "08:00", "18:00"),
        ["2026-06-01T07:59:58Z", "2026-06-01T07:59:59Z", "2026-06-01T08:00:00Z"],
        [("2026-06-01T08:00:00Z", "new", None)],
        [("idle", False), ("on", True)],
        id="idle outside its window, starts when it opens",
    ),
    pytest.param(
        _sched("UTC", ALL_DAYS, "08:00", "18:00"),
        ["2026-06-01T17:59:59Z", "2026-06-01T18:00:00Z", "2026-06-02T07:59:59Z", "2026-06-02T08:00:00Z"],
        [
            ("2026-06-01T17:59:59Z", "new", None),
            ("2026-06-01T18:00:00Z", "end", "schedule"),
            ("2026-06-02T08:00:00Z", "new", None),
        ],
        [("on", True), ("idle", False), ("on", True)],
        id="the window closing ends the episode (schedule); the next one starts afresh",
    ),
    pytest.param(
        _sched("UTC", ["mon"], "22:00", "06:00"),
        [
            "2026-05-31T23:00:00Z",  # Sunday night: Monday's window has not begun
            "2026-06-01T21:59:59Z",
            "2026-06-01T22:00:00Z",
            "2026-06-02T00:00:00Z",
            "2026-06-02T05:59:59Z",
            "2026-06-02T06:00:00Z",
            "2026-06-02T22:00:00Z",  # Tuesday: no window
        ],
        [("2026-06-01T22:00:00Z", "new", None), ("2026-06-02T06:00:00Z", "end", "schedule")],
        [("idle", False), ("on", True), ("idle", False)],
        id="a window across midnight",
    ),
    pytest.param(
        _sched("Europe/Berlin", ["sun"], "01:30", "02:30"),
        [
            "2026-03-29T00:29:59Z",  # 01:29:59 CET
            "2026-03-29T00:30:00Z",  # 01:30 CET
            "2026-03-29T00:59:59Z",  # 01:59:59 CET
            "2026-03-29T01:00:00Z",  # 03:00 CEST: 02:00-02:59 never happened
        ],
        [("2026-03-29T00:30:00Z", "new", None), ("2026-03-29T01:00:00Z", "end", "schedule")],
        [("idle", False), ("on", True), ("idle", False)],
        id="DST spring forward (Europe/Berlin): the window ends at the jump",
    ),
    pytest.param(
        _sched("Europe/Berlin", ["sun"], "02:00", "03:00"),
        [
            "2026-10-24T23:59:59Z",  # 01:59:59 CEST
            "2026-10-25T00:00:00Z",  # 02:00 CEST
            "2026-10-25T00:59:59Z",  # 02:59:59 CEST
            "2026-10-25T01:00:00Z",  # 02:00 CET, the hour again
            "2026-10-25T01:59:59Z",  # 02:59:59 CET
            "2026-10-25T02:00:00Z",  # 03:00 CET
        ],
        [("2026-10-25T00:00:00Z", "new", None), ("2026-10-25T02:00:00Z", "end", "schedule")],
        [("idle", False), ("on", True), ("idle", False)],
        id="DST fall back (Europe/Berlin): active through both passes of the hour",
    ),
]


@pytest.mark.parametrize(("over", "walls", "expected", "states"), SCHEDULE_CASES)
def test_schedule(
    over: dict[str, Any], walls: list[str], expected: list[tuple[str, str, str | None]], states: list[Any]
) -> None:
    wall0 = datetime.fromisoformat(walls[0].replace("Z", "+00:00")).timestamp()
    player = Player({"r": make_rule(PRESENCE, over)}, wall0=wall0)
    player.play([(t_of(w, wall0), [P1]) for w in walls])
    want = [(t_of(w, wall0), kind, reason) for w, kind, reason in expected]
    assert [(e.t_frame, e.type, e.reason) for e in player.events] == want
    assert [(s.state, s.scheduled) for s in player.statuses] == states
    assert all(s.armed for s in player.statuses)
    assert_episodes(player.events)


# --- arming ---------------------------------------------------------------------------------

ARMING_CASES = [
    pytest.param(
        PRESENCE,
        hold(0, 8, [P1]),
        [(0, "new", 1, None, None, 1), (3, "end", 1, None, "disarmed", 0), (6, "new", 1, None, None, 1)],
        [("on", 1, True), ("disarmed", 0, False), ("on", 1, True)],
        id="presence",
    ),
    pytest.param(
        {**DWELL, "dwell": 2},
        hold(0, 8, [P1]),
        [(2, "new", 1, None, None, 1), (3, "end", 1, None, "disarmed", 0), (8, "new", 1, None, None, 1)],
        [("off", 0, True), ("on", 1, True), ("disarmed", 0, False), ("off", 0, True), ("on", 1, True)],
        id="dwell starts its wait again",
    ),
    pytest.param(
        {**COUNT, "min_count": 1, "on_after": 1},
        hold(0, 8, [P1]),
        [_n(1, "new", 1), _n(3, "end", 1, "disarmed"), _n(7, "new", 1)],
        [("off", 1, True), ("on", 1, True), ("disarmed", 0, False), ("off", 1, True), ("on", 1, True)],
        id="count",
    ),
    pytest.param(
        {**ABSENCE, "absent_after": 2},
        hold(0, 8, []),
        [_n(2, "new", 0), _n(3, "end", 0, "disarmed"), _n(8, "new", 0)],
        [("off", 0, True), ("on", 0, True), ("disarmed", 0, False), ("off", 0, True), ("on", 0, True)],
        id="absence counts from re-arming",
    ),
]


@pytest.mark.parametrize(("base", "frames", "expected", "states"), ARMING_CASES)
def test_disarm_while_active_ends_and_rearm_starts_afresh(
    base: dict[str, Any], frames: list[Frame], expected: list[Rec], states: list[tuple[str, int, bool]]
) -> None:
    player = Player({"r": make_rule(base, {})}, disarmed=[(3, 6)])
    player.play(frames)
    assert player.recs() == expected
    assert [(s.state, s.count, s.armed) for s in player.statuses] == states
    assert_episodes(player.events)
    first, _, again = player.events
    assert first.episode != again.episode and again.started_t_frame >= 6


def test_disarmed_line_counts_nothing() -> None:
    player = Player({"r": make_rule(LINE, {})}, disarmed=[(1, 3)])
    player.play(_down(0.3, 0.7, 0.3, 0.3, 0.7))
    assert player.recs() == [(4, "cross", 1, "in", None, 1)]
    assert [(s.state, s.counters) for s in player.statuses] == [
        ("off", (("in", 0), ("out", 0))),
        ("disarmed", (("in", 0), ("out", 0))),
        ("off", (("in", 0), ("out", 0))),
        ("off", (("in", 1), ("out", 0))),
    ]


def test_disarmed_and_out_of_schedule_says_both() -> None:
    """``armed`` and ``scheduled`` are reported each on its own: a disarmed rule outside its
    window says scheduled false, and the schedule changing while disarmed is reported."""
    walls = ["2026-06-01T07:00:00Z", "2026-06-01T09:00:00Z", "2026-06-01T10:00:00Z", "2026-06-01T19:00:00Z"]
    wall0 = datetime.fromisoformat(walls[0].replace("Z", "+00:00")).timestamp()
    times = [t_of(w, wall0) for w in walls]
    player = Player(
        {"r": make_rule(PRESENCE, _sched("UTC", ["mon"], "08:00", "18:00"))},
        wall0=wall0,
        disarmed=[(0, times[2])],
    )
    player.play([(t, [P1]) for t in times])
    assert [(s.state, s.armed, s.scheduled) for s in player.statuses] == [
        ("disarmed", False, False),
        ("disarmed", False, True),
        ("on", True, True),
        ("idle", True, False),
    ]
    assert [(e.type, e.reason) for e in player.events] == [("new", None), ("end", "schedule")]


# --- finish and reload ----------------------------------------------------------------------

FINISH_CASES = [
    pytest.param(
        PRESENCE,
        hold(0, 2, [P1, P2]),
        [(3, "end", 1, None, "offline", 1), (3, "end", 2, None, "offline", 0)],
        id="presence",
    ),
    pytest.param({**DWELL, "dwell": 1}, hold(0, 2, [P1]), [(3, "end", 1, None, "offline", 0)], id="dwell"),
    pytest.param({**COUNT, "on_after": 0}, hold(0, 2, [P1, P2]), [_n(3, "end", 2, "offline")], id="count"),
    pytest.param({**ABSENCE, "absent_after": 1}, hold(0, 2, []), [_n(3, "end", 0, "offline")], id="absence"),
    pytest.param(LINE, _down(0.3, 0.7), [], id="line: nothing to end"),
]


@pytest.mark.parametrize(("base", "frames", "ends"), FINISH_CASES)
def test_finish_ends_with_reason_offline(base: dict[str, Any], frames: list[Frame], ends: list[Rec]) -> None:
    player = Player({"r": make_rule(base, {})})
    player.play(frames)
    before = len(player.events)
    assert [record(e) for e in player.finish(3.0)] == ends
    assert player.recs()[before:] == ends
    final = player.statuses[-1]
    assert final.state == "off"
    assert player.finish(4.0) == []
    if base.get("kind") == "line":
        assert final.counters == (("in", 1), ("out", 0))  # counters outlive the camera going away


def test_finish_line_keeps_counters_across_offline() -> None:
    player = Player({"r": make_rule(LINE, {})})
    player.play(_down(0.3, 0.7))
    assert player.finish(2.0) == []
    player.play(path(2, [(0.5, 0.3), (0.5, 0.7)], t0=3.0))
    assert player.recs() == [(1, "cross", 1, "in", None, 1), (4, "cross", 2, "in", None, 2)]
    assert player.statuses[-1].counters == (("in", 2), ("out", 0))


def test_take_over_keeps_kept_rules_and_ends_removed_ones() -> None:
    rules = {
        "kept": make_rule(PRESENCE, {}),
        "line": make_rule(LINE, {}),
        "gone": make_rule(PRESENCE, {}),
        "changed": make_rule(PRESENCE, {}),
    }
    old = Player(rules)
    old.play(path(1, [(0.5, 0.3), (0.5, 0.7)]))
    assert old.recs() == [
        (0, "new", 1, None, None, 1),
        (0, "new", 1, None, None, 1),
        (0, "new", 1, None, None, 1),
        (1, "cross", 1, "in", None, 1),
    ]
    new = Player({k: v for k, v in rules.items() if k != "gone"})
    ended = new.engine.take_over(old.engine, lambda rule, cam: rule != "changed", {"cam": old.last})
    assert sorted((e.rule, e.t_frame, e.type, e.reason, e.track_id) for e in ended) == [
        ("changed", 1, "end", "reload", 1),
        ("gone", 1, "end", "reload", 1),
    ]
    new.seq = old.seq
    new.play(path(1, [(0.5, 0.3), (0.5, 0.7)], t0=2) + hold(4, 6, []))
    kept_new = next(e for e in old.events if e.rule == "kept")
    assert [(record(e), e.episode) for e in new.events if e.rule == "kept"] == [
        ((5, "end", 1, None, "left", 0), kept_new.episode)  # the same episode carries on
    ]
    assert new.recs("line") == [(2, "cross", 1, "out", None, 1), (3, "cross", 1, "in", None, 2)]
    assert [s.counters for s in new.statuses if s.rule == "line"][-1] == (("in", 2), ("out", 1))
    assert [r[1] for r in new.recs("changed")] == ["new", "end"]  # a changed rule starts afresh
