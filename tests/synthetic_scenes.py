"""Detection-level scene simulator for tracker tests: ground truth and noisy detections.

A scene is a set of sprites (ground-truth objects) moving along piecewise-linear paths of
``(t, cx, cy)`` waypoints: they move, cross, stop (two waypoints at one place), occlude each
other (a nearer sprite, larger ``depth``, hides a farther one) and leave the frame. An object
that leaves and comes back is a *new* ground-truth id: a tracker without appearance features
cannot know it is the same one, and the evaluation should not pretend it can.

``simulate`` samples the scene at frame times and returns per frame the ground-truth boxes (the
objects a detector could see: at least ``Noise.visible_gt`` of the box visible and in frame) and
what a detector would output: boxes with Gaussian edge noise, missed detections, a low score
while an object is partly hidden, none while it is mostly hidden, and false positives. Every
random draw comes from one seeded generator in a fixed order, so a (scene, fps, seed) triple is
always the same sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from edge.types import Detections

PERSON, CAR = 0, 2


@dataclass(frozen=True)
class Sprite:
    """One ground-truth object: size (w, h) in pixels and ``(t, cx, cy)`` waypoints."""

    gt_id: int
    class_id: int
    size: tuple[float, float]
    path: tuple[tuple[float, float, float], ...]
    depth: float = 0.0

    def box_at(self, t: float) -> npt.NDArray[np.float64] | None:
        """Unclipped xyxy box at time ``t``, or None outside the path's time span."""
        ts = [p[0] for p in self.path]
        if t < ts[0] or t > ts[-1]:
            return None
        cx = float(np.interp(t, ts, [p[1] for p in self.path]))
        cy = float(np.interp(t, ts, [p[2] for p in self.path]))
        w, h = self.size
        return np.array([cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2])


@dataclass(frozen=True)
class Noise:
    """Detector imperfections. ``box``: edge noise std as a fraction of (w + h) / 2;
    ``miss``: chance a visible object is not detected; ``false_positives``: mean per frame;
    below ``visible_high`` visible the score is low (occluded), below ``visible_gt`` nothing."""

    box: float = 0.03
    miss: float = 0.05
    false_positives: float = 0.3
    visible_high: float = 0.6
    visible_gt: float = 0.3
    high: tuple[float, float] = (0.55, 0.95)
    low: tuple[float, float] = (0.15, 0.45)


@dataclass(frozen=True)
class Scene:
    name: str
    duration: float
    sprites: tuple[Sprite, ...]
    width: int = 1280
    height: int = 720
    noise: Noise = field(default_factory=Noise)


@dataclass(frozen=True)
class SceneFrame:
    t: float
    gt_ids: npt.NDArray[np.int64]
    gt_boxes: npt.NDArray[np.float64]  # (G, 4) xyxy, clipped to the frame
    detections: Detections


def frame_times(
    duration: float, fps: float, rng: np.random.Generator, jitter: float, drop: float
) -> list[float]:
    """Times of frames at ``fps`` over ``duration``; ``jitter`` shifts each by up to that fraction
    of a period, ``drop`` is the chance a frame is lost (an irregular stream)."""
    times = []
    for k in range(int(duration * fps) + 1):
        t = k / fps + (float(rng.uniform(0, jitter)) / fps if jitter else 0.0)
        if drop and k > 0 and rng.random() < drop:
            continue
        times.append(round(t, 6))
    return times


def _visible_fraction(
    box: npt.NDArray[np.float64], nearer: list[npt.NDArray[np.float64]], wh: tuple[int, int]
) -> float:
    """Fraction of ``box`` inside the frame and not covered by a nearer box (12 x 12 samples)."""
    xs = np.linspace(box[0], box[2], 12)
    ys = np.linspace(box[1], box[3], 12)
    gx, gy = np.meshgrid(xs, ys)
    seen = (gx >= 0) & (gx <= wh[0]) & (gy >= 0) & (gy <= wh[1])
    for other in nearer:
        seen &= ~((gx >= other[0]) & (gx <= other[2]) & (gy >= other[1]) & (gy <= other[3]))
    return float(seen.mean())


def simulate(scene: Scene, fps: float, seed: int, jitter: float = 0.0, drop: float = 0.0) -> list[SceneFrame]:
    """Sample ``scene`` at ``fps`` (see the module docstring); deterministic for a seed."""
    rng = np.random.default_rng(seed)
    noise = scene.noise
    frames = []
    classes = sorted({s.class_id for s in scene.sprites})
    for t in frame_times(scene.duration, fps, rng, jitter, drop):
        live = [(s, b) for s in scene.sprites if (b := s.box_at(t)) is not None]
        gt_ids, gt_boxes, boxes, scores, cls = [], [], [], [], []
        for sprite, box in live:
            nearer = [b for s, b in live if s.depth > sprite.depth]
            visible = _visible_fraction(box, nearer, (scene.width, scene.height))
            clipped = np.clip(box, 0, [scene.width, scene.height, scene.width, scene.height])
            missed = rng.random() < noise.miss
            jitter_px = rng.normal(0.0, noise.box * (sprite.size[0] + sprite.size[1]) / 2, 4)
            score = rng.uniform(*noise.high) if visible >= noise.visible_high else rng.uniform(*noise.low)
            if visible < noise.visible_gt:
                continue
            gt_ids.append(sprite.gt_id)
            gt_boxes.append(clipped)
            if not missed:
                boxes.append(clipped + jitter_px)
                scores.append(score)
                cls.append(sprite.class_id)
        for _ in range(int(rng.poisson(noise.false_positives))):
            w, h = rng.uniform(20, 90, 2)
            x, y = rng.uniform(0, scene.width - w), rng.uniform(0, scene.height - h)
            boxes.append(np.array([x, y, x + w, y + h]))
            scores.append(rng.uniform(0.1, 0.7))
            cls.append(classes[int(rng.integers(len(classes)))])
        dets = Detections(
            np.array(boxes, dtype=np.float32).reshape(-1, 4),
            np.array(scores, dtype=np.float32),
            np.array(cls, dtype=np.int32),
        )
        frames.append(
            SceneFrame(t, np.array(gt_ids, dtype=np.int64), np.array(gt_boxes).reshape(-1, 4), dets)
        )
    return frames


def _walk(gt_id: int, y: float, x0: float, x1: float, t0: float, t1: float, depth: float = 0.0) -> Sprite:
    return Sprite(gt_id, PERSON, (60, 150), ((t0, x0, y), (t1, x1, y)), depth)


def _random_walkers(seed: int, count: int, duration: float) -> tuple[Sprite, ...]:
    """People on straight lines between random points, entering and leaving at random times."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(count):
        t0 = float(rng.uniform(0, duration / 3))
        t1 = float(rng.uniform(t0 + duration / 3, duration))
        a = rng.uniform([100, 120], [1180, 600])
        b = rng.uniform([100, 120], [1180, 600])
        scale = float(rng.uniform(0.6, 1.2))
        out.append(
            Sprite(i + 1, PERSON, (60 * scale, 150 * scale), ((t0, *a), (t1, *b)), depth=float(a[1] + b[1]))
        )
    return tuple(out)


def busy_scene(count: int, duration: float = 20.0, seed: int = 0) -> Scene:
    """``count`` people on random straight paths, all present for the whole scene (benchmarks)."""
    rng = np.random.default_rng(seed)
    sprites = []
    for i in range(count):
        a = rng.uniform([100, 120], [1180, 600])
        b = rng.uniform([100, 120], [1180, 600])
        scale = float(rng.uniform(0.4, 1.0))
        sprites.append(
            Sprite(
                i + 1, PERSON, (60 * scale, 150 * scale), ((0, *a), (duration, *b)), depth=float(a[1] + b[1])
            )
        )
    return Scene(f"busy{count}", duration, tuple(sprites))


SCENES: dict[str, Scene] = {
    # Two people walking towards each other; the nearer one hides the other for about a second.
    "crossing": Scene(
        "crossing",
        8.0,
        (_walk(1, 330, 150, 1130, 0, 8, depth=0), _walk(2, 350, 1130, 150, 0, 8, depth=1)),
    ),
    # A person overtakes a slower one walking in front of them: about a second of partial
    # occlusion (low scores) with a moment fully hidden in the middle.
    "overtake": Scene(
        "overtake",
        10.0,
        (_walk(1, 330, 300, 700, 0, 10, depth=0), _walk(2, 345, 100, 900, 0, 10, depth=1)),
    ),
    # A car and a person crossing with large overlap: only class-aware matching keeps both ids.
    "person_car": Scene(
        "person_car",
        8.0,
        (
            Sprite(1, CAR, (220, 110), ((0, 150, 420), (8, 1130, 420)), depth=0),
            Sprite(2, PERSON, (60, 150), ((0, 1100, 400), (8, 200, 400)), depth=1),
        ),
        noise=Noise(visible_high=0.0),  # both stay well detected: this scene is about classes
    ),
    # A parked car; a person walks in, stops in front of it (partly hiding it) for 12 s, walks on.
    "parked": Scene(
        "parked",
        30.0,
        (
            Sprite(1, CAR, (240, 120), ((0, 500, 450), (30, 500, 450)), depth=0),
            Sprite(
                2, PERSON, (60, 150), ((2, 40, 470), (8, 430, 470), (20, 430, 470), (28, 1240, 470)), depth=1
            ),
        ),
    ),
    # People entering and leaving at the edges; number 4 is number 1 coming back (a new id).
    "enter_leave": Scene(
        "enter_leave",
        16.0,
        (
            _walk(1, 200, -40, 1320, 0, 6),
            _walk(2, 420, 1320, -40, 2, 9),
            Sprite(3, CAR, (200, 100), ((4, -100, 600), (12, 1380, 600))),
            _walk(4, 200, 1320, -40, 9, 16),
        ),
    ),
    # Eight people on random straight paths: crossings and occlusions everywhere (harder).
    "crowd": Scene("crowd", 20.0, _random_walkers(7, 8, 20.0)),
}
