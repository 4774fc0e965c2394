"""Which detections of a frame a rule looks at: label, score, size, zone, standing still.
One vectorised pass per rule and frame. And ``elapsed``, how every rule kind compares frame times
with its delays."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from edge.config.schema import RuleConfig
from edge.rules.model import Scene
from edge.rules.zones import AnchorPoint, PolygonZone

TIME_TOLERANCE = 1e-4
"""Seconds of rounding forgiven when a delay is compared with frame times: 0.7 - 0.2 is
0.49999999999999994 in floating point, and a 0.5 s dwell must hold on the 10 fps frame 0.5 s
after the first, not one frame later."""


def elapsed(since: float, now: float, delay: float) -> bool:
    """Has ``delay`` passed from frame time ``since`` to frame time ``now``?"""
    return now - since >= delay - TIME_TOLERANCE


@dataclass(frozen=True)
class CompiledRule:
    """A rule's config, ready to test detections against."""

    name: str
    kind: str
    labels: frozenset[str]
    min_score: float
    zone: PolygonZone | None
    anchor: AnchorPoint
    min_area: float
    stationary: str
    cooldown: float
    clear_after: float
    update_interval: float
    config: RuleConfig

    @staticmethod
    def from_config(name: str, cfg: RuleConfig) -> CompiledRule:
        return CompiledRule(
            name=name,
            kind=cfg.kind,
            labels=frozenset(cfg.labels),
            min_score=cfg.min_score,
            zone=PolygonZone(cfg.zone) if cfg.zone else None,
            anchor=cfg.point,
            min_area=cfg.min_area,
            stationary=cfg.stationary,
            cooldown=cfg.cooldown,
            clear_after=cfg.clear_after,
            update_interval=cfg.update_interval,
            config=cfg,
        )

    def candidates(self, scene: Scene) -> npt.NDArray[np.bool_]:
        """Detections of the rule's labels, score, size and stillness, wherever they are. When
        the detections are tracked, only those of confirmed tracks (the others are not yet
        known to be objects: a flicker of the detector must not start an episode)."""
        dets = scene.dets
        keep: npt.NDArray[np.bool_] = dets.score >= self.min_score
        if self.labels and len(dets):
            keep &= np.fromiter((scene.label(i) in self.labels for i in range(len(dets))), bool, len(dets))
        if self.min_area > 0:
            keep &= dets.area >= self.min_area * scene.frame.width * scene.frame.height
        if dets.tracker_id is not None:
            keep &= dets.tracker_id >= 0
        if self.stationary == "exclude":
            keep &= ~scene.stationary
        elif self.stationary == "only":
            keep &= scene.stationary
        return keep

    def matches(self, scene: Scene) -> npt.NDArray[np.bool_]:
        """``candidates`` whose anchor point is in the rule's zone (when it has one)."""
        keep = self.candidates(scene)
        if self.zone is not None:
            keep &= scene.in_zones[self.name]
        return keep
