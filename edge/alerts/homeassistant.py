"""Home Assistant MQTT discovery (opt-in).

Per (camera, rule), all on one device:

* a ``switch`` "<camera> <rule> armed": commands on ``<camera>/<rule>/set``, state from the
  retained ``<camera>/<rule>/armed`` (``ON``/``OFF``, see ``edge.alerts.arming``);
* rules of kind presence, dwell, count and absence: a ``binary_sensor`` (on while the rule is
  active; ``idle`` and ``disarmed`` read as off; device class ``occupancy``, ``problem`` for
  absence) and a ``sensor`` with the live count;
* rules of kind line: two ``sensor``s, the ``in`` and ``out`` crossings (``total_increasing``).

The sensors read the retained ``<camera>/<rule>/state`` topic (JSON: ``state``, ``count``,
``counters`` for line rules). Configs are retained under
``<prefix>/<component>/<device>/<object>/config`` and published again whenever Home Assistant
announces ``online`` on ``<prefix>/status``. The topics published are remembered in the state
directory, so entities of rules that were deleted from the config (or that a rule's new kind
no longer has) are removed (an empty retained payload) at the next start or reload.
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


def device_block(device: str) -> dict[str, Any]:
    return {
        "identifiers": [f"edge_{device}"],
        "name": f"edge {device}",
        "manufacturer": "edge",
        "model": "edge-runtime",
        "sw_version": __version__,
    }


# What each kind of rule shows besides its switch: (component, object kind, name suffix, keys).
ACTIVE = {
    "value_template": "{{ 'on' if value_json.state == 'on' else 'off' }}",  # idle, disarmed: off
    "payload_on": "on",
    "payload_off": "off",
}
COUNT = {"value_template": "{{ value_json.count }}", "state_class": "measurement"}
LINE_IN = {"value_template": "{{ value_json.counters.in }}", "state_class": "total_increasing"}
LINE_OUT = {"value_template": "{{ value_json.counters.out }}", "state_class": "total_increasing"}
Entity = tuple[str, str, str, dict[str, Any]]


def state_entities(kind: str) -> tuple[Entity, ...]:
    """The entities reading a rule's ``state`` topic, by the rule's kind."""
    if kind == "line":
        return (("sensor", "in", " in", LINE_IN), ("sensor", "out", " out", LINE_OUT))
    device_class = "problem" if kind == "absence" else "occupancy"
    return (
        ("binary_sensor", "active", "", {**ACTIVE, "device_class": device_class}),
        ("sensor", "count", " count", COUNT),
    )


def discovery_messages(
    prefix: str, base: str, device: str, rules: Iterable[tuple[str, str, str]], images: bool = False
) -> dict[str, dict[str, Any]]:
    """``{config topic: config payload}`` for every (camera, rule, kind); ``images``: also an
    ``image`` entity showing the rule's last snapshot (``actions.snapshots.mqtt``)."""
    dev = device_block(device)
    availability = [
        {
            "topic": f"{base}/available",
            "value_template": "{{ 'online' if value == 'online' else 'offline' }}",
        }
    ]
    out: dict[str, dict[str, Any]] = {}
    for camera, rule, kind in rules:
        topics = f"{base}/{camera}/{rule}"
        switch = {
            "command_topic": f"{topics}/set",
            "state_topic": f"{topics}/armed",
            "payload_on": "ON",
            "payload_off": "OFF",
            "state_on": "ON",
            "state_off": "OFF",
        }
        entities = (("switch", "armed", " armed", switch),) + tuple(
            (component, oid_kind, suffix, {"state_topic": f"{topics}/state", **specific})
            for component, oid_kind, suffix, specific in state_entities(kind)
        )
        if images:
            picture = {"image_topic": f"{topics}/snapshot", "content_type": "image/jpeg"}
            entities += (("image", "snapshot", " snapshot", picture),)
        for component, oid_kind, suffix, specific in entities:
            oid = object_id(camera, rule, oid_kind)
            out[f"{prefix}/{component}/{device}/{oid}/config"] = {
                "name": f"{camera} {rule}{suffix}",
                "unique_id": f"edge_{device}_{oid}",
                "default_entity_id": entity_id(component, device, oid),
                "availability": availability,
                "device": dev,
                **specific,
            }
    return out


class Discovery:
    """Publishes discovery configs through the publisher's latest-value channel."""

    def __init__(
        self,
        publisher: Any,
        prefix: str,
        device: str,
        rules: Iterable[tuple[str, str, str]],
        state_dir: Path,
        images: bool = False,
    ):
        """``rules``: (camera, rule, kind) for every rule on every enabled camera."""
        self.publisher = publisher
        self.prefix = prefix
        self.messages = discovery_messages(prefix, publisher.base, device, rules, images)
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
