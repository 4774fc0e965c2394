"""Zones and the rule engine that turns tracked detections into events and rule states."""

from edge.rules.engine import Event, FrameInfo, RuleEngine, RuleStatus
from edge.rules.zones import PolygonZone, anchor_points

__all__ = ["Event", "FrameInfo", "PolygonZone", "RuleEngine", "RuleStatus", "anchor_points"]
