"""Zones and the rule engine that turns detections into events."""

from edge.rules.engine import Event, FrameInfo, RuleEngine
from edge.rules.zones import PolygonZone, anchor_points

__all__ = ["Event", "FrameInfo", "PolygonZone", "RuleEngine", "anchor_points"]
