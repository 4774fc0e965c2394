"""Polygon zones in normalised frame coordinates, vectorised over detections."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge.types import Detections, FloatArray

AnchorPoint = Literal["bottom_center", "center", "top_center"]
ON_EDGE = 1e-6  # a point this close to an edge is on it (counts as inside)


class PolygonZone:
    """``contains(points)`` for (N, 2) normalised points -> (N,) bool (even-odd rule; edges count in)."""

    def __init__(self, vertices: Sequence[tuple[float, float]]) -> None:
        v = np.asarray(vertices, dtype=np.float64)
        if v.ndim != 2 or v.shape[1] != 2 or len(v) < 3:
            raise ValueError(f"a zone needs (K >= 3, 2) vertices, got shape {v.shape}")
        self.vertices = v
        self._a = v
        self._b = np.roll(v, -1, axis=0)
        low, high = v.min(axis=0), v.max(axis=0)
        # An axis-aligned rectangle (the common zone): its bounding box is the answer. The box
        # is widened by the distance within which a point counts as on an edge.
        corners = {(float(x), float(y)) for x in (low[0], high[0]) for y in (low[1], high[1])}
        self._rectangle = len(v) == 4 and {(float(x), float(y)) for x, y in v} == corners
        self._low, self._high = low - ON_EDGE, high + ON_EDGE

    def contains(self, points: FloatArray) -> npt.NDArray[np.bool_]:
        p = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        if len(p) == 0:
            return np.zeros(0, dtype=bool)
        in_box: npt.NDArray[np.bool_] = ((p >= self._low) & (p <= self._high)).all(axis=1)
        if self._rectangle or not in_box.any():
            return in_box
        out = np.zeros(len(p), dtype=bool)
        out[in_box] = self._polygon_contains(p[in_box])
        return out

    def _polygon_contains(self, p: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
        px, py = p[:, 0:1], p[:, 1:2]  # (N, 1) against (K,) edges
        ax, ay, bx, by = self._a[:, 0], self._a[:, 1], self._b[:, 0], self._b[:, 1]
        straddles = (ay > py) != (by > py)
        with np.errstate(divide="ignore", invalid="ignore"):
            x_cross = ax + (py - ay) * (bx - ax) / (by - ay)
        inside = np.logical_and(straddles, px < x_cross).sum(axis=1) % 2 == 1
        # Points on an edge count as inside (a box resting on the zone border is in it).
        ex, ey = bx - ax, by - ay
        length2 = ex * ex + ey * ey
        t = np.clip(((px - ax) * ex + (py - ay) * ey) / np.where(length2 > 0, length2, 1), 0, 1)
        dist2 = (ax + t * ex - px) ** 2 + (ay + t * ey - py) ** 2
        on_edge = (dist2 < ON_EDGE * ON_EDGE).any(axis=1)
        out: npt.NDArray[np.bool_] = inside | on_edge
        return out


def anchor_points(dets: Detections, frame_wh: tuple[int, int], anchor: AnchorPoint) -> FloatArray:
    """The point of each box tested against zones, normalised to the frame."""
    w, h = frame_wh
    x: np.ndarray = (dets.xyxy[:, 0] + dets.xyxy[:, 2]) / 2
    y: np.ndarray
    if anchor == "bottom_center":
        y = dets.xyxy[:, 3]
    elif anchor == "top_center":
        y = dets.xyxy[:, 1]
    else:
        y = (dets.xyxy[:, 1] + dets.xyxy[:, 3]) / 2
    out: FloatArray = np.stack([x / w, y / h], axis=1).astype(np.float32)
    return out
