"""What a person sees drawn over a camera's frame besides detections: rule zones, lines (an
arrow from the line's first point to its second, "in" marked on the side objects cross to) and
masks.

The preview page and event snapshots draw the same shapes in the same colours: each rule has a
stable colour (from its name), masks are shaded grey. Coordinates are normalised to the frame,
as the config writes them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import cv2
import numpy as np

from edge.config.schema import CameraConfig, RuleConfig

ShapeKind = Literal["zone", "mask", "line"]
Colour = tuple[int, int, int]  # BGR, as OpenCV draws

MASK_COLOUR: Colour = (128, 128, 128)
_RULE_PALETTE: tuple[Colour, ...] = (
    (0, 200, 255),  # amber
    (255, 160, 0),  # azure
    (80, 220, 80),  # green
    (200, 80, 255),  # magenta
    (0, 120, 255),  # orange
    (255, 255, 0),  # cyan
    (160, 100, 255),  # pink
    (60, 255, 200),  # lime
)


def rule_colour(name: str) -> Colour:
    """The rule's colour, the same in every process and on every page."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return _RULE_PALETTE[digest[0] % len(_RULE_PALETTE)]


def css_colour(colour: Colour) -> str:
    b, g, r = colour
    return f"#{r:02x}{g:02x}{b:02x}"


@dataclass(frozen=True)
class Shape:
    """A zone or a line (of the rule ``name``) or a mask, in normalised frame coordinates."""

    kind: ShapeKind
    name: str
    points: tuple[tuple[float, float], ...]
    colour: Colour


def camera_shapes(
    camera: str,
    rules: Mapping[str, RuleConfig],
    cameras: Mapping[str, CameraConfig],
    only_rule: str | None = None,
) -> tuple[Shape, ...]:
    """The camera's masks, then the zones and lines of its rules (or of ``only_rule``)."""
    shapes: list[Shape] = []
    cam = cameras.get(camera)
    if cam is not None:
        for i, mask in enumerate(cam.masks, 1):
            shapes.append(Shape("mask", f"mask {i}", tuple(mask), MASK_COLOUR))
    for name, rule in rules.items():
        if camera not in rule.cameras or (only_rule is not None and name != only_rule):
            continue
        if rule.zone is not None:
            shapes.append(Shape("zone", name, tuple(rule.zone), rule_colour(name)))
        if rule.line is not None:
            shapes.append(Shape("line", name, tuple(rule.line), rule_colour(name)))
    return tuple(shapes)


def draw_shapes(image: np.ndarray, shapes: Sequence[Shape]) -> None:
    """Draw ``shapes`` on ``image`` in place: masks shaded, zones outlined with their rule's name."""
    if not shapes:
        return
    h, w = image.shape[:2]
    thickness = max(1, round(min(h, w) / 300))
    for s in shapes:
        if s.kind == "mask":  # shaded: blended over the mask's bounding box only
            pts = _pixels(s.points, w, h)
            x0, y0 = pts.min(axis=0)
            x1, y1 = pts.max(axis=0) + 1
            roi = image[y0:y1, x0:x1]
            shaded = roi.copy()
            cv2.fillPoly(shaded, [pts - (x0, y0)], s.colour)
            cv2.addWeighted(shaded, 0.45, roi, 0.55, 0, dst=roi)
    scale = max(0.4, min(h, w) / 900)
    labels: dict[tuple[int, int], int] = {}  # where a zone's name went -> where the next may go
    for s in shapes:
        pts = _pixels(s.points, w, h)
        if s.kind == "line":
            _draw_line(image, pts, s, thickness, scale)
            continue
        cv2.polylines(image, [pts], True, s.colour, thickness, cv2.LINE_AA)
        if s.kind == "zone":
            x, y = int(pts[:, 0].min()), int(pts[:, 1].min())
            (tw, th), base = cv2.getTextSize(s.name, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            y = max(y, th + base + 2)
            while (x, y) in labels:  # zones that share a corner: their names side by side
                x = labels[(x, y)]
            labels[(x, y)] = x + tw + 8
            cv2.rectangle(image, (x, y - th - base - 2), (x + tw + 4, y), s.colour, -1)
            cv2.putText(
                image, s.name, (x + 2, y - base), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
            )


def _draw_line(image: np.ndarray, pts: np.ndarray, s: Shape, thickness: int, scale: float) -> None:
    """An arrow along the line, its rule's name at the start, and "in" on the side an object
    crosses to when it counts as ``in`` (looking along the arrow: the right)."""
    (x1, y1), (x2, y2) = pts.tolist()
    cv2.arrowedLine(image, (x1, y1), (x2, y2), s.colour, thickness + 1, cv2.LINE_AA, tipLength=0.04)
    length = max(1.0, float(np.hypot(x2 - x1, y2 - y1)))
    nx, ny = -(y2 - y1) / length, (x2 - x1) / length  # the right-hand side in image coordinates
    mx, my = (x1 + x2) / 2, (y1 + y2) / 2
    offset = 30 * scale + 10
    font = cv2.FONT_HERSHEY_SIMPLEX
    for text, side in (("in", 1.0), ("out", -1.0)):
        (tw, th), _ = cv2.getTextSize(text, font, scale, 1)
        org = (round(mx + side * nx * offset - tw / 2), round(my + side * ny * offset + th / 2))
        cv2.putText(image, text, org, font, scale, s.colour, max(1, thickness), cv2.LINE_AA)
    (tw, th), _ = cv2.getTextSize(s.name, font, scale, 1)
    h, w = image.shape[:2]
    org = (min(max(x2 + 8, 0), w - tw - 2), min(max(y2 + th // 2, th + 2), h - 4))  # beside the tip
    cv2.putText(image, s.name, org, font, scale, s.colour, 1, cv2.LINE_AA)


def _pixels(points: Sequence[tuple[float, float]], w: int, h: int) -> np.ndarray:
    return np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in points], dtype=np.int32)
