"""Alert payloads: what subscribers receive. Versioned; schemas in ``schemas/event.v2.json`` and
``schemas/state.v2.json``.

The times in an event:

* ``ts``: the wall-clock time (UTC, ISO 8601, milliseconds) at which the event's frame was
  captured, i.e. decoded by the capture thread. For live streams and real-time files
  (``source.realtime``) that is when the frame arrived; for a file read as fast as the pipeline
  goes, when the frame was read. Either way it is never later than the moment the event was
  made and never runs ahead of the clock, however fast a file is processed; stamps of one
  camera do not go back (unless the system clock is set back). A file's position is not in ``ts``.
* ``t_frame``: seconds on the source's timeline, the one the rules run on. For a file, the
  frame's position: frame index / the file's frame rate (a looping file adds each pass's
  length, so it keeps growing); for a live source, seconds since the daemon's start.
* ``started_t_frame``: the ``t_frame`` at which the rule started matching.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from edge.rules.model import Event, RuleStatus

SCHEMA_VERSION = 2


@dataclass(frozen=True)
class ModelIdentity:
    name: str
    sha256: str


@dataclass(frozen=True)
class Alert:
    """One MQTT message. ``id`` is the event id (stable across retries)."""

    id: str
    topic: str
    payload: bytes
    qos: int = 1
    retain: bool = False


def iso_utc(t: float) -> str:
    return (
        datetime.fromtimestamp(t, tz=timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    )


def event_payload(event: Event, device: str, model: ModelIdentity) -> dict[str, Any]:
    return {
        "schema": SCHEMA_VERSION,
        "id": event.id,
        "episode": event.episode,
        "type": event.type,
        "kind": event.kind,
        "reason": event.reason,
        "device": device,
        "camera": event.camera,
        "rule": event.rule,
        "label": event.label,
        "score": event.score,
        "top_score": event.top_score,
        "box": list(event.box) if event.box is not None else None,
        "count": event.count,
        "track_id": event.track_id,
        "zones": list(event.zones),
        "stationary": event.stationary,
        "direction": event.direction,
        "counters": dict(event.counters) if event.counters is not None else None,
        "ts": iso_utc(event.t_wall),  # when the frame was captured: never in the future
        "first_seen": iso_utc(event.first_seen_wall),
        "duration": event.duration,
        "t_frame": event.t_frame,
        "started_t_frame": event.started_t_frame,
        "frame": {"seq": event.frame_seq, "width": event.frame_wh[0], "height": event.frame_wh[1]},
        "model": {"name": model.name, "sha256": model.sha256},
    }


def state_payload(status: RuleStatus) -> bytes:
    """The retained ``<camera>/<rule>/state`` message for a rule's status."""
    out: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": status.kind,
        "state": status.state,
        "count": status.count,
        "since": iso_utc(status.since_wall),
        "event": status.event_id,
        "armed": status.armed,
        "scheduled": status.scheduled,
    }
    if status.counters is not None:
        out["counters"] = dict(status.counters)
    if status.counters_by_label is not None:
        by_label: dict[str, dict[str, int]] = {}
        for label, direction, n in status.counters_by_label:
            by_label.setdefault(label, {})[direction] = n
        out["by_label"] = by_label
    return json.dumps(out, sort_keys=True).encode()


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":"), sort_keys=True).encode("utf-8")
