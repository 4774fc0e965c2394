"""Home Assistant MQTT discovery (opt-in).

Per (rule, camera): a ``binary_sensor`` (on while the rule is active) and a ``sensor`` (the
number of matching detections), both reading the retained ``<camera>/<rule>/state`` topic and
sharing one device. Configs are retained under ``<prefix>/<component>/<device>/<object>/config``
and published again whenever Home Assistant announces ``online`` on ``<prefix>/status``. The
topics published are remembered in the state directory, so entities of rules that were deleted
from the config are removed (an empty retained payload) at the next start.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from edge import __version__
from edge.alerts.retained import sync_retained

log = logging.getLogger("edge.homeassistant")

REMEMBERED = "homeassistant_topics.json"


def object_id(camera: str, rule: str, kind: str) -> str:
    """The entity's part of its discovery topic (``<prefix>/<component>/<device>/<object_id>``)."""
    return f"{camera}_{rule}_{kind}".replace("-", "_")


def entity_id(component: str, device: str, oid: str) -> str:
    """The entity id Home Assistant is asked to give the entity (``default_entity_id``, which
    replaced the payload key ``object_id``, deprecated in 2025.10 and gone in 2026.4): lower case."""
    return f"{component}.edge_{device}_{oid}".replace("-", "_").lower()


def discovery_messages(
    prefix: str, base: str, device: str, pairs: Iterable[tuple[str, str]]
) -> dict[str, dict[str, Any]]:
    """``{config topic: config payload}`` for every (camera, rule) pair."""
    dev = {
        "identifiers": [f"edge_{device}"],
        "name": f"edge {device}",
        "manufacturer": "edge",
        "model": "edge-runtime",
        "sw_version": __version__,
    }
    availability = [
        {
            "topic": f"{base}/available",
            "value_template": "{{ 'online' if value == 'online' else 'offline' }}",
        }
    ]
    out: dict[str, dict[str, Any]] = {}
    occupancy = {
        "value_template": "{{ value_json.state }}",
        "payload_on": "on",
        "payload_off": "off",
        "device_class": "occupancy",
    }
    count = {"value_template": "{{ value_json.count }}", "state_class": "measurement"}
    entities = (("binary_sensor", "active", "", occupancy), ("sensor", "count", " count", count))
    for camera, rule in pairs:
        for component, kind, suffix, specific in entities:
            oid = object_id(camera, rule, kind)
            out[f"{prefix}/{component}/{device}/{oid}/config"] = {
                "name": f"{camera} {rule}{suffix}",
                "unique_id": f"edge_{device}_{oid}",
                "default_entity_id": entity_id(component, device, oid),
                "state_topic": f"{base}/{camera}/{rule}/state",
                "availability": availability,
                "device": dev,
                **specific,
            }
    return out


class Discovery:
    """Publishes discovery configs through the publisher's latest-value channel."""

    def __init__(
        self, publisher: Any, prefix: str, device: str, pairs: list[tuple[str, str]], state_dir: Path
    ):
        self.publisher = publisher
        self.prefix = prefix
        self.messages = discovery_messages(prefix, publisher.base, device, pairs)
        self.remembered = state_dir / REMEMBERED

    def start(self) -> list[str]:
        """Publish every config, remove entities no longer configured; returns removed topics."""
        removed = sync_retained(self.publisher, self.remembered, set(self.messages))
        self.publish_all()  # revives topics of entities that come back
        self.publisher.subscribe(f"{self.prefix}/status", self._on_status)
        return removed

    def publish_all(self) -> None:
        for topic, payload in self.messages.items():
            self.publisher.set_latest(topic, json.dumps(payload, sort_keys=True), retain=True, revive=True)

    def _on_status(self, _topic: str, payload: bytes) -> None:
        if payload.strip() == b"online":
            log.info("Home Assistant came online: publishing discovery again")
            self.publish_all()
