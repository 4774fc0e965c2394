"""Rules v1, table-driven: labels, score, zone (anchor point), size, masks, cooldown, end."""

from __future__ import annotations

import numpy as np
import pytest

from edge.config.schema import CameraConfig, RuleConfig
from edge.rules import FrameInfo, PolygonZone, RuleEngine
from edge.types import Detections

LABELS = ("person", "car")
W, H = 1000, 500
CAM = CameraConfig.model_validate({"source": {"type": "file", "path": "x.mp4"}, "model": "m"})
LEFT_HALF = [(0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)]


def dets(*rows: tuple[float, float, float, float, float, int]) -> Detections:
    a = np.array(rows, np.float32).reshape(-1, 6)
    return Detections(a[:, :4], a[:, 4], a[:, 5].astype(np.int32))


def frame(t: float, seq: int = 0) -> FrameInfo:
    return FrameInfo("cam", seq, t, 1_700_000_000 + t, W, H)


PERSON_LEFT = (100, 100, 200, 400, 0.9, 0)  # bottom centre (150, 400) -> (0.15, 0.8)
PERSON_RIGHT = (700, 100, 800, 400, 0.9, 0)
CAR_LEFT = (100, 100, 200, 400, 0.9, 1)
WEAK_PERSON_LEFT = (100, 100, 200, 400, 0.3, 0)
TINY_PERSON_LEFT = (100, 390, 110, 400, 0.9, 0)
# Box spans the zone border: centre is outside (x=0.55) but the bottom centre... also 0.55.
STRADDLE = (400, 100, 700, 400, 0.9, 0)

CASES = [
    # (id, rule overrides, detections, expect a "new" event)
    ("person in zone", {}, [PERSON_LEFT], True),
    ("person outside zone", {}, [PERSON_RIGHT], False),
    ("wrong label", {}, [CAR_LEFT], False),
    ("any label", {"labels": []}, [CAR_LEFT], True),
    ("below min score", {}, [WEAK_PERSON_LEFT], False),
    ("below min area", {"min_area": 0.01}, [TINY_PERSON_LEFT], False),
    ("above min area", {"min_area": 0.01}, [PERSON_LEFT], True),
    ("no zone means whole frame", {"zone": None}, [PERSON_RIGHT], True),
    ("centre anchor outside", {"point": "center"}, [STRADDLE], False),
    ("top centre anchor", {"point": "top_center", "zone": [(0, 0), (1, 0), (1, 0.25), (0, 0.25)]}, [PERSON_LEFT], True),
]


def rule(**over: object) -> RuleConfig:
    base = {"cameras": ["cam"], "labels": ["person"], "min_score": 0.5, "zone": LEFT_HALF, "cooldown": 10, "clear_after": 2}
    base.update(over)
    return RuleConfig.model_validate(base)


@pytest.mark.parametrize(("over", "rows", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_rule_table(over: dict[str, object], rows: list[tuple[float, ...]], expected: bool) -> None:
    engine = RuleEngine({"r": rule(**over)}, {"cam": CAM})
    events = engine.evaluate(frame(0.0), dets(*rows), LABELS)  # type: ignore[arg-type]
    assert [e.type for e in events] == (["new"] if expected else [])
    if expected:
        e = events[0]
        assert (e.camera, e.rule, e.label, e.count) == ("cam", "r", LABELS[int(rows[0][5])], 1)
        assert e.box == tuple(float(v) for v in rows[0][:4])


def test_mask_hides_detections_from_every_rule() -> None:
    masked = CAM.model_copy(update={"masks": [[(0.0, 0.0), (0.3, 0.0), (0.3, 1.0), (0.0, 1.0)]]})
    engine = RuleEngine({"r": rule(zone=None)}, {"cam": masked})
    assert engine.evaluate(frame(0), dets(PERSON_LEFT), LABELS) == []
    assert [e.type for e in engine.evaluate(frame(1), dets(PERSON_RIGHT), LABELS)] == ["new"]


def test_cooldown_and_end_run_on_frame_time() -> None:
    engine = RuleEngine({"r": rule()}, {"cam": CAM})
    timeline = [
        (0.0, [PERSON_LEFT], ["new"]),
        (1.0, [PERSON_LEFT], []),  # still active
        (2.5, [], []),  # 1.5 s without a match < clear_after
        (3.1, [], ["end"]),  # 2.1 s without a match
        (5.0, [PERSON_LEFT], []),  # within the 10 s cooldown since the first "new"
        (7.0, [], []),
        (10.5, [PERSON_LEFT], ["new"]),  # cooldown over
    ]
    for t, rows, expected in timeline:
        got = [e.type for e in engine.evaluate(frame(t), dets(*rows), LABELS)]  # type: ignore[arg-type]
        assert got == expected, (t, got)


def test_finish_ends_active_rules() -> None:
    engine = RuleEngine({"r": rule()}, {"cam": CAM})
    engine.evaluate(frame(0), dets(PERSON_LEFT), LABELS)
    assert [e.type for e in engine.finish("cam", frame(1))] == ["end"]
    assert engine.finish("cam", frame(2)) == []


@pytest.mark.parametrize("shift", range(4))
def test_zone_membership_is_invariant_under_vertex_rotation(shift: int) -> None:
    verts = [(0.1, 0.1), (0.9, 0.2), (0.7, 0.9), (0.2, 0.8)]
    pts = np.random.default_rng(1).random((200, 2)).astype(np.float32)
    base = PolygonZone(verts).contains(pts)
    rotated = PolygonZone(verts[shift:] + verts[:shift]).contains(pts)
    assert (base == rotated).all() and base.any() and not base.all()
    assert PolygonZone(verts).contains(np.array([[0.5, 0.15]], np.float32))[0]  # on the edge counts in


@pytest.mark.parametrize(
    "verts",
    [
        [(0.2, 0.1), (0.7, 0.1), (0.7, 0.9), (0.2, 0.9)],  # rectangle: the bounding-box fast path
        [(0.7, 0.9), (0.2, 0.9), (0.2, 0.1), (0.7, 0.1)],  # the same, listed the other way round
        [(0.1, 0.1), (0.9, 0.1), (0.9, 0.5), (0.5, 0.5), (0.5, 0.9), (0.1, 0.9)],  # concave L
        [(0.5, 0.05), (0.95, 0.5), (0.5, 0.95), (0.05, 0.5)],  # diamond: 4 points, not a rectangle
    ],
    ids=["rectangle", "rectangle-reversed", "concave", "diamond"],
)
def test_zone_fast_paths_agree_with_the_full_polygon_test(verts: list[tuple[float, float]]) -> None:
    rng = np.random.default_rng(7)
    grid = np.array([(x, y) for x in np.linspace(0, 1, 21) for y in np.linspace(0, 1, 21)])  # edges too
    pts = np.concatenate([rng.uniform(0, 1, (500, 2)), grid])
    zone = PolygonZone(verts)
    assert (zone.contains(pts) == zone._polygon_contains(pts)).all()
