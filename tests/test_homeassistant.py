"""Home Assistant discovery with a real broker: per rule an `armed` switch and the sensors its
kind needs; configs are retained, valid (our schema and Home Assistant's documented keys),
re-published when Home Assistant says `online`, and entities of a deleted rule (or of a kind a
rule no longer has) are removed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
import pytest
from broker import Broker, Subscriber
from conftest import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edge.alerts.homeassistant import Discovery, discovery_messages
from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.config.schema import MqttConfig

SCHEMAS = Path(__file__).resolve().parent.parent / "edge" / "alerts" / "schemas"

# The discovery keys Home Assistant's MQTT integration documents for each component
# (home-assistant.io/integrations/{switch,sensor,binary_sensor}.mqtt/, read for 2025.10+).
# `object_id` is left out on purpose: deprecated in 2025.10, ignored from 2026.4.
COMMON = {
    "availability", "availability_mode", "availability_template", "availability_topic",
    "default_entity_id", "device", "enabled_by_default", "encoding", "entity_category",
    "entity_picture", "icon", "json_attributes_template", "json_attributes_topic", "name",
    "payload_available", "payload_not_available", "platform", "qos", "unique_id",
}
ALLOWED = {
    "switch": COMMON | {
        "command_template", "command_topic", "device_class", "optimistic", "payload_off",
        "payload_on", "retain", "state_off", "state_on", "state_topic", "value_template",
    },
    "sensor": COMMON | {
        "device_class", "expire_after", "force_update", "last_reset_value_template", "options",
        "state_class", "state_topic", "suggested_display_precision", "unit_of_measurement",
        "value_template",
    },
    "binary_sensor": COMMON | {
        "device_class", "expire_after", "force_update", "off_delay", "payload_off", "payload_on",
        "state_topic", "value_template",
    },
    # home-assistant.io/integrations/image.mqtt/: image_topic needs content_type.
    "image": COMMON | {"content_type", "image_encoding", "image_topic", "url_template", "url_topic"},
}
# Rules of every shape: presence, line and absence on one camera.
RULES = [("gate", "person", "presence"), ("gate", "cars", "line"), ("gate", "guard", "absence")]
PERSON = {
    "homeassistant/switch/yard/gate_person_armed/config",
    "homeassistant/binary_sensor/yard/gate_person_active/config",
    "homeassistant/sensor/yard/gate_person_count/config",
}
CARS = {
    "homeassistant/switch/yard/gate_cars_armed/config",
    "homeassistant/sensor/yard/gate_cars_in/config",
    "homeassistant/sensor/yard/gate_cars_out/config",
}
GUARD = {
    "homeassistant/switch/yard/gate_guard_armed/config",
    "homeassistant/binary_sensor/yard/gate_guard_active/config",
    "homeassistant/sensor/yard/gate_guard_count/config",
}


def start_publisher(broker: Broker, state: Path) -> MqttPublisher:
    cfg = MqttConfig.model_validate({"host": "127.0.0.1", "port": broker.port, "device": "yard"})
    pub = MqttPublisher(cfg, OutboxStore(state))
    pub.start()
    wait_until(pub.connected.is_set, 10, "the publisher to connect")
    return pub


def retained(broker: Broker, topic: str = "homeassistant/#") -> dict[str, bytes]:
    """What a newcomer sees on ``topic`` (a filter): the retained messages (an empty payload
    deletes one). The broker sends them right after the subscription, before a message
    published later, so a marker published after subscribing says that all of them have
    arrived (no waiting on a clock)."""
    root = topic.split("/", maxsplit=1)[0]
    sub = Subscriber(broker.port, f"{root}/#")
    marker = f"{root}/marker/{time.monotonic_ns()}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"marker-{time.monotonic_ns()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    client.publish(marker, b"", qos=1).wait_for_publish(10)
    wait_until(lambda: sub.on(marker), 10, "the marker after the retained messages")
    client.loop_stop()
    client.disconnect()
    sub.close()
    return {t: p for t, p, r in sub.messages if r and p and mqtt.topic_matches_sub(topic, t)}


def test_discovery_messages_by_kind() -> None:
    msgs = discovery_messages("homeassistant", "edge/yard", "yard", RULES)
    assert set(msgs) == PERSON | CARS | GUARD
    switch = msgs["homeassistant/switch/yard/gate_cars_armed/config"]
    assert switch["name"] == "gate cars armed"
    assert switch["command_topic"] == "edge/yard/gate/cars/set"
    assert switch["state_topic"] == "edge/yard/gate/cars/armed"
    assert (switch["payload_on"], switch["payload_off"], switch["state_on"], switch["state_off"]) == ("ON", "OFF", "ON", "OFF")
    cars_in = msgs["homeassistant/sensor/yard/gate_cars_in/config"]
    assert cars_in["value_template"] == "{{ value_json.counters.in }}"
    assert cars_in["state_class"] == "total_increasing"
    assert msgs["homeassistant/sensor/yard/gate_cars_out/config"]["value_template"] == "{{ value_json.counters.out }}"
    active = msgs["homeassistant/binary_sensor/yard/gate_person_active/config"]
    assert active["value_template"] == "{{ 'on' if value_json.state == 'on' else 'off' }}"
    assert active["device_class"] == "occupancy"
    assert msgs["homeassistant/binary_sensor/yard/gate_guard_active/config"]["device_class"] == "problem"
    count = msgs["homeassistant/sensor/yard/gate_guard_count/config"]
    assert (count["value_template"], count["state_class"]) == ("{{ value_json.count }}", "measurement")


def test_snapshot_image_entities_when_snapshots_go_to_mqtt() -> None:
    schema = json.loads((SCHEMAS / "homeassistant.v1.json").read_text())
    msgs = discovery_messages("homeassistant", "edge/yard", "yard", RULES, images=True)
    images = {t for t in msgs if t.startswith("homeassistant/image/")}
    assert images == {f"homeassistant/image/yard/gate_{r}_snapshot/config" for r in ("person", "cars", "guard")}
    for topic, doc in msgs.items():
        jsonschema.validate(doc, schema)
        assert set(doc) <= ALLOWED[topic.split("/")[1]]
    image = msgs["homeassistant/image/yard/gate_cars_snapshot/config"]
    assert (image["image_topic"], image["content_type"]) == ("edge/yard/gate/cars/snapshot", "image/jpeg")
    assert image["default_entity_id"] == "image.edge_yard_gate_cars_snapshot"
    assert set(discovery_messages("homeassistant", "edge/yard", "yard", RULES)) == PERSON | CARS | GUARD


@pytest.mark.parametrize(
    ("state", "shown"),
    [
        ({"state": "on"}, "on"),
        ({"state": "off"}, "off"),
        ({"state": "idle"}, "off"),
        ({"state": "disarmed"}, "off"),
    ],
)
def test_binary_sensor_template_reads_idle_and_disarmed_as_off(state: dict[str, str], shown: str) -> None:
    """The value template rendered as Home Assistant does (Jinja2 on the JSON payload)."""
    import jinja2
    msgs = discovery_messages("homeassistant", "edge/yard", "yard", RULES)
    template = msgs["homeassistant/binary_sensor/yard/gate_person_active/config"]["value_template"]
    assert jinja2.Template(template).render(value_json=state) == shown


def test_discovery_configs_validate_and_deleted_rules_are_removed(broker: Broker, tmp_path: Path) -> None:
    schema = json.loads((SCHEMAS / "homeassistant.v1.json").read_text())
    pub = start_publisher(broker, tmp_path)
    Discovery(pub, "homeassistant", "yard", RULES, tmp_path).start()
    wait_until(lambda: set(retained(broker)) == PERSON | CARS | GUARD, 10, "every discovery config retained")
    configs = retained(broker)
    for topic, payload in configs.items():
        doc = json.loads(payload)
        jsonschema.validate(doc, schema)
        component = topic.split("/")[1]
        assert set(doc) <= ALLOWED[component], set(doc) - ALLOWED[component]
        assert "object_id" not in doc  # deprecated by Home Assistant 2025.10, ignored from 2026.4
        assert doc["default_entity_id"] == f"{component}.edge_yard_{topic.split('/')[3]}"
        assert doc["unique_id"] == f"edge_yard_{topic.split('/')[3]}"
        assert doc["availability"][0]["topic"] == "edge/yard/available"
        assert doc["device"]["identifiers"] == ["edge_yard"]
    assert json.loads(configs["homeassistant/binary_sensor/yard/gate_guard_active/config"])["state_topic"] == "edge/yard/gate/guard/state"

    # Home Assistant restarts: it announces online, discovery is published again.
    watcher = Subscriber(broker.port, "homeassistant/+/yard/#")
    ha = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha")
    ha.connect("127.0.0.1", broker.port)
    ha.loop_start()
    ha.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    fresh = lambda: {t for t, _p, r in watcher.messages if not r}  # noqa: E731
    wait_until(lambda: fresh() == PERSON | CARS | GUARD, 10, "fresh (non-retained) copies of every config")
    ha.loop_stop()
    ha.disconnect()
    watcher.close()
    pub.close(2)

    # Next start without the "cars" rule, and "guard" now a line rule: their gone entities
    # (switch included) are removed, the new ones appear.
    pub = start_publisher(broker, tmp_path)
    removed = Discovery(pub, "homeassistant", "yard", [RULES[0], ("gate", "guard", "line")], tmp_path).start()
    assert removed == sorted(
        CARS | {"homeassistant/binary_sensor/yard/gate_guard_active/config", "homeassistant/sensor/yard/gate_guard_count/config"}
    )
    after = PERSON | {
        "homeassistant/switch/yard/gate_guard_armed/config",
        "homeassistant/sensor/yard/gate_guard_in/config",
        "homeassistant/sensor/yard/gate_guard_out/config",
    }
    wait_until(lambda: set(retained(broker)) == after, 10, "the removed entities' configs deleted")
    pub.close(2)


def test_run_publishes_state_and_stats_that_match_their_schemas(models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path) -> None:
    import subprocess

    state_schema = json.loads((SCHEMAS / "state.v2.json").read_text())
    stats_schema = json.loads((SCHEMAS / "stats.v1.json").read_text())
    sub = Subscriber(broker.port, "edge/demo/#")
    out = subprocess.run(
        ["edge", "run", "configs/demo.yaml", "--set", f"mqtt.port={broker.port}", "--set", f"state_dir={tmp_path}",
         "--set", f"cameras.entrance.source.path={demo_clip}", "--set", "mqtt.stats_interval=1",
         "--set", "mqtt.homeassistant.enabled=true"],
        cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True, timeout=300,
    )
    assert out.returncode == 0, out.stderr
    time.sleep(0.3)
    states = [json.loads(p) for p in sub.on("edge/demo/entrance/person_in_zone/state")]
    changes = [s["state"] for i, s in enumerate(states) if i == 0 or s["state"] != states[i - 1]["state"]]
    assert changes == ["off", "on", "off", "on", "off"]  # published on every change (count too)
    for s in states:
        jsonschema.validate(s, state_schema)
    stats = [json.loads(p) for p in sub.on("edge/demo/stats")]
    assert stats
    for s in stats:
        jsonschema.validate(s, stats_schema)
    assert stats[-1]["outbox"]["depth"] == 0 and stats[-1]["cameras"]["entrance"]["processed"] == 500
    sub.close()
    configs = retained(broker, "homeassistant/#")
    assert "homeassistant/switch/demo/entrance_person_in_zone_armed/config" in configs
    assert "homeassistant/binary_sensor/demo/entrance_person_in_zone_active/config" in configs
    armed = retained(broker, "edge/demo/entrance/person_in_zone/armed")
    assert armed == {"edge/demo/entrance/person_in_zone/armed": b"ON"}, "app.py: ArmControl wired?"
