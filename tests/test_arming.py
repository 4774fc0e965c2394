"""Arming and disarming rules at run time: the persisted table (``ArmingStore``) on real files,
and the MQTT control (``ArmControl``) through a real Mosquitto broker."""

from __future__ import annotations

import json
import logging
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import Broker, Subscriber
from conftest import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edge.alerts.arming import ArmControl, parse_command, shown
from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.config.schema import MqttConfig, RuleConfig
from edge.rules.arming import ArmingStore, arming_defaults

DEFAULTS = {("gate", "person"): True, ("gate", "car"): False, ("yard", "person"): True}


def warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "edge.arming" and r.levelno == logging.WARNING]


# -- the store -----------------------------------------------------------------------------


def test_defaults_come_from_each_rules_armed_field(tmp_path: Path) -> None:
    rules = {
        "person": RuleConfig.model_validate({"cameras": ["gate", "yard", "off_cam"]}),
        "car": RuleConfig.model_validate({"cameras": ["gate"], "armed": False}),
    }
    defaults = arming_defaults(rules, {"gate", "yard"})  # off_cam is not enabled
    assert defaults == DEFAULTS
    store = ArmingStore(tmp_path / "armed.json", defaults)
    assert store.snapshot() == DEFAULTS
    assert store.armed("gate", "car") is False
    assert store.armed("gate", "person") is True
    assert not (tmp_path / "armed.json").exists()  # nothing set, nothing written


def test_set_persists_across_a_new_store_on_the_same_file(tmp_path: Path) -> None:
    path = tmp_path / "state" / "armed.json"
    store = ArmingStore(path, DEFAULTS)
    assert store.set("gate", "person", False) is True
    assert store.set("gate", "person", False) is False  # no change
    assert store.set("gate", "car", True) is True
    assert store.armed("gate", "person") is False
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert sorted(p.name for p in path.parent.iterdir()) == ["armed.json"]  # no temporary file left
    again = ArmingStore(path, DEFAULTS)
    assert again.snapshot() == {("gate", "person"): False, ("gate", "car"): True, ("yard", "person"): True}
    assert json.loads(path.read_text()) == {"schema": 1, "armed": {"gate": {"car": True, "person": False}}}


def test_a_value_set_wins_over_the_config_later_an_unset_one_follows_it(tmp_path: Path) -> None:
    path = tmp_path / "armed.json"
    store = ArmingStore(path, DEFAULTS)
    assert store.set("gate", "person", True) is False  # same as the default, but a deliberate command
    # Next start: the config now says armed: false for every rule.
    changed = {p: False for p in DEFAULTS}
    again = ArmingStore(path, changed)
    assert again.armed("gate", "person") is True  # the command wins
    assert again.armed("yard", "person") is False  # nobody set it: the config decides


def test_saved_pairs_no_longer_configured_are_dropped_at_the_next_save(tmp_path: Path) -> None:
    path = tmp_path / "armed.json"
    ArmingStore(path, DEFAULTS).set("gate", "car", True)
    fewer = {("gate", "person"): True}  # the car rule was deleted
    store = ArmingStore(path, fewer)
    assert store.snapshot() == fewer
    assert json.loads(path.read_text())["armed"] == {"gate": {"car": True}}  # untouched until a save
    store.set("gate", "person", False)
    assert json.loads(path.read_text())["armed"] == {"gate": {"person": False}}


def test_unknown_pair_cannot_be_set_and_reads_as_armed(tmp_path: Path) -> None:
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    with pytest.raises(KeyError):
        store.set("gate", "dog", False)
    assert store.armed("gate", "dog") is True
    assert not (tmp_path / "armed.json").exists()


def test_reconfigure_keeps_values_of_pairs_that_remain(tmp_path: Path) -> None:
    path = tmp_path / "armed.json"
    store = ArmingStore(path, DEFAULTS)
    store.set("gate", "person", False)
    store.set("gate", "car", True)
    before = store.snapshot()
    store.reconfigure({("gate", "person"): True, ("yard", "car"): False})
    assert before == {("gate", "person"): False, ("gate", "car"): True, ("yard", "person"): True}  # a copy
    assert store.snapshot() == {("gate", "person"): False, ("yard", "car"): False}
    with pytest.raises(KeyError):
        store.set("gate", "car", True)
    store.reconfigure({("gate", "person"): True, ("gate", "car"): False})  # car comes back: its default
    assert store.snapshot() == {("gate", "person"): False, ("gate", "car"): False}
    store.set("gate", "person", True)
    assert json.loads(path.read_text())["armed"] == {"gate": {"person": True}}


CORRUPT = [
    ("not JSON", b'{"schema": 1, "armed": {', "not JSON"),
    ("empty file", b"", "not JSON"),
    ("not UTF-8", b"\xff\xfe\x00garbage", "utf-8"),
    ("wrong schema", b'{"schema": 7, "armed": {}}', '"schema": 1'),
    ("a list", b"[1, 2]", '"schema": 1'),
    ("armed not a mapping", b'{"schema": 1, "armed": ["gate"]}', '"armed": {camera'),
    ("rules not a mapping", b'{"schema": 1, "armed": {"gate": true}}', '"armed"."gate"'),
    ("a value not a bool", b'{"schema": 1, "armed": {"gate": {"car": "yes"}}}', '"armed"."gate"."car"'),
]


@pytest.mark.parametrize(("case", "content", "reason"), CORRUPT, ids=[c[0] for c in CORRUPT])
def test_corrupt_file_warns_once_uses_defaults_and_keeps_the_evidence(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, case: str, content: bytes, reason: str
) -> None:
    path = tmp_path / "armed.json"
    path.write_bytes(content)
    caplog.set_level(logging.WARNING, "edge.arming")
    store = ArmingStore(path, DEFAULTS)
    assert store.snapshot() == DEFAULTS
    [line] = warnings(caplog)
    assert str(path) in line and reason in line and "armed.json.corrupt" in line
    assert "\n" not in line
    assert (tmp_path / "armed.json.corrupt").read_bytes() == content
    assert not path.exists()
    store.set("gate", "car", True)  # a good file again
    assert ArmingStore(path, DEFAULTS).armed("gate", "car") is True


def test_a_second_corrupt_file_does_not_overwrite_the_first(tmp_path: Path) -> None:
    path = tmp_path / "armed.json"
    path.write_text("first")
    ArmingStore(path, DEFAULTS)
    path.write_text("second")
    ArmingStore(path, DEFAULTS)
    assert (tmp_path / "armed.json.corrupt").read_text() == "first"
    assert (tmp_path / "armed.json.corrupt.1").read_text() == "second"


def test_a_file_that_cannot_be_read_is_moved_aside(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A folder where the file should be: reading fails with an OSError (as a bad disk would)."""
    path = tmp_path / "armed.json"
    path.mkdir()
    caplog.set_level(logging.WARNING, "edge.arming")
    store = ArmingStore(path, DEFAULTS)
    assert store.snapshot() == DEFAULTS
    [line] = warnings(caplog)
    assert str(path) in line and "directory" in line
    assert (tmp_path / "armed.json.corrupt").is_dir()
    assert store.set("gate", "car", True) is True
    assert ArmingStore(path, DEFAULTS).armed("gate", "car") is True


def test_a_save_that_fails_warns_once_and_the_value_still_applies(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The state folder is a file (as on a broken install): every save fails."""
    blocker = tmp_path / "state"
    blocker.write_text("not a folder")
    caplog.set_level(logging.INFO, "edge.arming")
    store = ArmingStore(blocker / "armed.json", DEFAULTS)
    assert store.set("gate", "person", False) is True
    assert store.set("gate", "car", True) is True
    assert store.armed("gate", "person") is False and store.armed("gate", "car") is True
    [line] = warnings(caplog)
    assert str(blocker / "armed.json") in line and "cannot save" in line and "Not a directory" in line


# -- the MQTT control, through a real broker -------------------------------------------------


@pytest.fixture
def publisher(broker: Broker, tmp_path: Path) -> Iterator[MqttPublisher]:
    cfg = MqttConfig.model_validate({"host": "127.0.0.1", "port": broker.port, "device": "yard"})
    pub = MqttPublisher(cfg, OutboxStore(tmp_path / "outbox"))
    pub.start()
    wait_until(pub.connected.is_set, 10, "the publisher to connect")
    yield pub
    pub.close(2)


@pytest.fixture
def commander(broker: Broker) -> Iterator[mqtt.Client]:
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"commander-{time.monotonic_ns()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    yield client
    client.loop_stop()
    client.disconnect()


def send(client: mqtt.Client, topic: str, payload: bytes, retain: bool = False) -> None:
    client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)


def retained(broker: Broker, topic: str) -> dict[str, bytes]:
    """The retained messages a newcomer sees. They arrive right after the subscription, before
    anything published later, so a marker published afterwards says all have arrived."""
    sub = Subscriber(broker.port, "edge/#")
    marker = f"edge/marker/{time.monotonic_ns()}"
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"marker-{time.monotonic_ns()}")
    client.connect("127.0.0.1", broker.port)
    client.loop_start()
    send(client, marker, b"")
    wait_until(lambda: sub.on(marker), 10, "the marker after the retained messages")
    client.loop_stop()
    client.disconnect()
    sub.close()
    return {t: p for t, p, r in sub.messages if r and p and mqtt.topic_matches_sub(topic, t)}


def start_control(broker: Broker, publisher: MqttPublisher, store: ArmingStore) -> ArmControl:
    """Start the control and wait until the broker holds every pair's retained ``armed``. The
    publisher subscribes before it publishes, on one connection the broker serves in order, so
    from then on the subscription is in place and a command cannot be missed."""
    control = ArmControl(publisher, store)
    control.start(store.snapshot())
    want = {f"edge/yard/{c}/{r}/armed": b"ON" if on else b"OFF" for (c, r), on in store.snapshot().items()}
    wait_until(lambda: retained(broker, "edge/yard/+/+/armed") == want, 10, "every pair's retained armed")
    return control


@pytest.mark.parametrize(
    ("payload", "armed"),
    [
        (b"ON", True),
        (b"on", True),
        (b"  On \n", True),
        (b"true", True),
        (b"TRUE", True),
        (b"1", True),
        (b"OFF", False),
        (b"off", False),
        (b"\toff ", False),
        (b"false", False),
        (b"0", False),
        (b"", None),
        (b"yes", None),
        (b"ONN", None),
        (b"2", None),
        (b"\xff\xfeON", None),
        (b'{"state": "ON"}', None),
    ],
)
def test_parse_command(payload: bytes, armed: bool | None) -> None:
    assert parse_command(payload) is armed


@pytest.mark.parametrize(
    ("payload", "armed"),
    [
        (b"OFF", False),
        (b" off\r\n", False),
        (b"0", False),
        (b"false", False),
        (b"ON", True),  # gate/person is armed already: the value stays and is confirmed
        (b"maybe", None),
        (b"\x1b[31mred\x00" + b"x" * 200, None),
        (b"\xff\xfe", None),
    ],
)
def test_set_command_through_the_broker(
    broker: Broker,
    publisher: MqttPublisher,
    commander: mqtt.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    payload: bytes,
    armed: bool | None,
) -> None:
    caplog.set_level(logging.WARNING, "edge.arming")
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    control = start_control(broker, publisher, store)
    watcher = Subscriber(broker.port, "edge/yard/gate/person/armed")
    wait_until(lambda: watcher.on("edge/yard/gate/person/armed") == [b"ON"], 10, "the retained armed ON")
    send(commander, "edge/yard/gate/person/set", payload)
    if armed is None:
        # the count goes up just before the warning is logged, on the MQTT thread: wait for both
        wait_until(lambda: control.rejected == 1 and warnings(caplog), 10, "the bad payload to be rejected")
        assert store.armed("gate", "person") is True
        [line] = warnings(caplog)
        assert "edge/yard/gate/person/set" in line and "expected ON or OFF" in line
        assert line.isprintable() and len(line) < 200
        assert shown(payload) in line
    else:
        want = b"ON" if armed else b"OFF"
        wait_until(lambda: len(watcher.on("edge/yard/gate/person/armed")) == 2, 10, "the armed confirmation")
        assert watcher.on("edge/yard/gate/person/armed")[-1] == want
        assert store.armed("gate", "person") is armed
        assert ArmingStore(tmp_path / "armed.json", DEFAULTS).armed("gate", "person") is armed
        assert control.applied == 1 and not warnings(caplog)
    watcher.close()


@pytest.mark.parametrize(
    ("topic", "expected"),
    [
        ("edge/yard/gate/dog/set", "no rule 'dog' on camera 'gate'"),
        ("edge/yard/attic/person/set", "no rule 'person' on camera 'attic'"),
    ],
)
def test_set_for_an_unknown_pair_is_ignored(
    broker: Broker,
    publisher: MqttPublisher,
    commander: mqtt.Client,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    topic: str,
    expected: str,
) -> None:
    caplog.set_level(logging.WARNING, "edge.arming")
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    control = start_control(broker, publisher, store)
    send(commander, topic, b"OFF")
    # the count goes up just before the warning is logged, on the MQTT thread: wait for both
    wait_until(lambda: control.rejected == 1 and warnings(caplog), 10, "the command to be rejected")
    [line] = warnings(caplog)
    assert topic in line and expected in line
    assert store.snapshot() == DEFAULTS
    assert not (tmp_path / "armed.json").exists()


def test_retained_armed_topics_follow_start_commands_and_reloads(
    broker: Broker, publisher: MqttPublisher, commander: mqtt.Client, tmp_path: Path
) -> None:
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    control = start_control(broker, publisher, store)
    assert retained(broker, "edge/yard/+/+/armed") == {
        "edge/yard/gate/person/armed": b"ON",
        "edge/yard/gate/car/armed": b"OFF",
        "edge/yard/yard/person/armed": b"ON",
    }

    send(commander, "edge/yard/gate/car/set", b"ON")
    wait_until(lambda: store.armed("gate", "car"), 10, "the command to arm gate/car")
    wait_until(
        lambda: retained(broker, "edge/yard/+/+/armed")["edge/yard/gate/car/armed"] == b"ON",
        10,
        "the retained armed of gate/car ON",
    )

    # A reload: yard/person deleted, gate/dog added (disarmed by its config).
    new = {("gate", "person"): True, ("gate", "car"): False, ("gate", "dog"): False}
    store.reconfigure(new)
    control.update(new)
    after = {
        "edge/yard/gate/person/armed": b"ON",
        "edge/yard/gate/car/armed": b"ON",  # kept what was set
        "edge/yard/gate/dog/armed": b"OFF",
    }
    wait_until(lambda: retained(broker, "edge/yard/+/+/armed") == after, 10, "the armed topics after the reload")
    assert control.topics(new) == set(after)

    # yard/person comes back in a later reload: its topic is published again (not a tombstone).
    store.reconfigure(DEFAULTS | new)
    control.update(DEFAULTS | new)
    wait_until(
        lambda: retained(broker, "edge/yard/yard/person/armed") == {"edge/yard/yard/person/armed": b"ON"},
        10,
        "yard/person's armed back",
    )


def test_a_retained_set_command_is_applied_at_start(
    broker: Broker, publisher: MqttPublisher, commander: mqtt.Client, tmp_path: Path
) -> None:
    """Someone published a command with the retain flag: it arrives on subscribe and the last
    command wins (documented in edge.alerts.arming)."""
    send(commander, "edge/yard/gate/person/set", b"OFF", retain=True)
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    control = ArmControl(publisher, store)
    control.start(DEFAULTS)
    wait_until(lambda: control.applied == 1, 10, "the retained command to be applied")
    assert store.armed("gate", "person") is False
    wait_until(
        lambda: retained(broker, "edge/yard/gate/person/armed") == {"edge/yard/gate/person/armed": b"OFF"},
        10,
        "the armed topic OFF",
    )


def test_the_read_path_sees_a_whole_table(tmp_path: Path) -> None:
    """``armed`` reads a mapping that is replaced, never changed: a reader holding the old one
    keeps a consistent view while ``set`` builds the next."""
    store = ArmingStore(tmp_path / "armed.json", DEFAULTS)
    old = store._table
    store.set("gate", "car", True)
    assert old == DEFAULTS
    assert store._table is not old and store.armed("gate", "car") is True
    assert os.listdir(tmp_path) == ["armed.json"]
