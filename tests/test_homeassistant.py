"""Home Assistant discovery with a real broker: configs are retained and valid, re-published
when Home Assistant says `online`, and entities of a deleted rule are removed."""

from __future__ import annotations

import json
import time
from pathlib import Path

import jsonschema
import paho.mqtt.client as mqtt
from broker import Broker, Subscriber
from paho.mqtt.enums import CallbackAPIVersion

from edge.alerts.homeassistant import Discovery
from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.config.schema import MqttConfig

SCHEMAS = Path(__file__).resolve().parent.parent / "edge" / "alerts" / "schemas"


def start_publisher(broker: Broker, state: Path) -> MqttPublisher:
    cfg = MqttConfig.model_validate({"host": "127.0.0.1", "port": broker.port, "device": "yard"})
    pub = MqttPublisher(cfg, OutboxStore(state))
    pub.start()
    deadline = time.monotonic() + 10
    while not pub.connected.is_set() and time.monotonic() < deadline:
        time.sleep(0.05)
    return pub


def retained(broker: Broker, topic: str = "homeassistant/#", wait: float = 1.0) -> dict[str, bytes]:
    """What a newcomer sees: the retained messages (an empty payload deletes one)."""
    sub = Subscriber(broker.port, topic)
    time.sleep(wait)
    out = {t: p for t, p, r in sub.messages if r}
    sub.close()
    return out


def test_discovery_configs_validate_and_deleted_rules_are_removed(broker: Broker, tmp_path: Path) -> None:
    schema = json.loads((SCHEMAS / "homeassistant.v1.json").read_text())
    pub = start_publisher(broker, tmp_path)
    Discovery(pub, "homeassistant", "yard", [("gate", "person"), ("gate", "car")], tmp_path).start()
    time.sleep(0.5)
    configs = retained(broker)
    assert set(configs) == {
        "homeassistant/binary_sensor/yard/gate_person_active/config",
        "homeassistant/sensor/yard/gate_person_count/config",
        "homeassistant/binary_sensor/yard/gate_car_active/config",
        "homeassistant/sensor/yard/gate_car_count/config",
    }
    for topic, payload in configs.items():
        doc = json.loads(payload)
        jsonschema.validate(doc, schema)
        assert "object_id" not in doc  # deprecated by Home Assistant 2025.10, ignored from 2026.4
        assert doc["default_entity_id"] == f"{topic.split('/')[1]}.edge_yard_{topic.split('/')[3]}"
        assert doc["availability"][0]["topic"] == "edge/yard/available"
    assert json.loads(configs["homeassistant/binary_sensor/yard/gate_car_active/config"])["state_topic"] == "edge/yard/gate/car/state"

    # Home Assistant restarts: it announces online, discovery is published again.
    watcher = Subscriber(broker.port, "homeassistant/+/yard/#")
    ha = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="ha")
    ha.connect("127.0.0.1", broker.port)
    ha.loop_start()
    ha.publish("homeassistant/status", "online", qos=1).wait_for_publish(5)
    deadline = time.monotonic() + 5
    while len([m for m in watcher.messages if not m[2]]) < 4 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len([m for m in watcher.messages if not m[2]]) >= 4  # fresh (non-retained-replay) copies
    ha.loop_stop()
    watcher.close()
    pub.close(2)

    # Next start without the "car" rule: its two entities are removed.
    pub = start_publisher(broker, tmp_path)
    removed = Discovery(pub, "homeassistant", "yard", [("gate", "person")], tmp_path).start()
    assert removed == ["homeassistant/binary_sensor/yard/gate_car_active/config",
                       "homeassistant/sensor/yard/gate_car_count/config"]
    time.sleep(0.5)
    assert set(retained(broker)) == {
        "homeassistant/binary_sensor/yard/gate_person_active/config",
        "homeassistant/sensor/yard/gate_person_count/config",
    }
    pub.close(2)


def test_run_publishes_state_and_stats_that_match_their_schemas(models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path) -> None:
    import subprocess

    state_schema = json.loads((SCHEMAS / "state.v1.json").read_text())
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
    assert [s["state"] for s in states] == ["off", "on", "off", "on", "off"]
    for s in states:
        jsonschema.validate(s, state_schema)
    stats = [json.loads(p) for p in sub.on("edge/demo/stats")]
    assert stats
    for s in stats:
        jsonschema.validate(s, stats_schema)
    assert stats[-1]["outbox"]["depth"] == 0 and stats[-1]["cameras"]["entrance"]["processed"] == 500
    sub.close()
    assert retained(broker, "homeassistant/#")
