"""Offline-first delivery against a real Mosquitto: the broker is killed (SIGKILL) or stopped
(SIGTERM) while alerts keep coming, then restarted; `edge run` is killed with SIGKILL during an
outage and started again. Every alert arrives, in order; duplicates are only re-sends of the
same id. The subscriber keeps a persistent session on a persistent broker, so what it receives
is what the broker accepted."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
from broker import Broker, Subscriber
from conftest import wait_until

from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import Alert
from edge.config.schema import MqttConfig

REPO = Path(__file__).resolve().parent.parent


def mqtt_cfg(port: int, device: str = "offline") -> MqttConfig:
    return MqttConfig.model_validate(
        {"host": "127.0.0.1", "port": port, "device": device, "reconnect": {"initial": 0.2, "max": 1.0}}
    )


def received_ids(sub: Subscriber, topic: str) -> list[str]:
    return [json.loads(p)["id"] for p in sub.on(topic)]


def first_occurrences(ids: list[str]) -> list[str]:
    seen: set[str] = set()
    return [i for i in ids if not (i in seen or seen.add(i))]  # type: ignore[func-returns-value]


@pytest.mark.parametrize("how", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_broker_outage_loses_nothing_and_keeps_order(how: int, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", persistent=True)
    broker.folder.mkdir()
    broker.start()
    sub = Subscriber(broker.port, "edge/offline/events", persistent_id="outage-sub")
    outbox = OutboxStore(tmp_path / "state")
    pub = MqttPublisher(mqtt_cfg(broker.port), outbox)
    pub.start()
    generated: list[str] = []
    max_depth = 0
    try:
        wait_until(pub.connected.is_set, 10, "the publisher to connect")
        time.sleep(1.5)  # the broker autosaves every second: let it save the subscriber's session
        for i in range(120):
            if i == 30:
                broker.stop(how)
            if i == 90:
                broker.start()
            a = Alert(f"{i:032x}", pub.events_topic(), json.dumps({"id": f"{i:032x}", "n": i}).encode())
            pub.enqueue(a)
            generated.append(a.id)
            max_depth = max(max_depth, outbox.depth)
            time.sleep(0.02)
        wait_until(lambda: outbox.depth == 0, 30, "the outbox to empty")
        try:
            wait_until(lambda: set(received_ids(sub, "edge/offline/events")) >= set(generated), 30, "every alert")
        except AssertionError:
            got = received_ids(sub, "edge/offline/events")
            missing = [generated.index(i) for i in generated if i not in set(got)]
            raise AssertionError(f"missing {len(missing)}: {missing[:20]}; got {len(got)}; pub {pub.sent} sent {pub.acked} acked") from None
    finally:
        pub.close(2)
        sub.close()
        broker.stop()
    got = received_ids(sub, "edge/offline/events")
    assert first_occurrences(got) == generated  # nothing lost, nothing invented, order kept
    assert max_depth >= 50  # the alerts made during the outage waited on disk
    print(f"outage {signal.Signals(how).name}: generated {len(generated)}, received {len(got)}, "
          f"duplicates {len(got) - len(set(got))}, max outbox depth {max_depth}")


def test_full_outbox_drops_oldest_and_says_so(tmp_path: Path) -> None:
    """The subscriber's persistent session exists before the outage, so the broker queues for it
    whatever arrives after the restart: it must get exactly the 10 newest alerts, in order."""
    broker = Broker(tmp_path / "broker", persistent=True)
    broker.folder.mkdir()
    broker.start()
    sub = Subscriber(broker.port, "edge/offline/events", persistent_id="bounded-sub")
    time.sleep(1.5)  # the broker autosaves every second: let it save the subscriber's session
    sub.close()
    broker.stop()  # SIGTERM: the session is saved
    outbox = OutboxStore(tmp_path / "state", max_messages=10)
    pub = MqttPublisher(mqtt_cfg(broker.port), outbox)  # nothing listens on the port now
    pub.start()
    ids = [f"{i:032x}" for i in range(30)]
    try:
        for i in ids:
            pub.enqueue(Alert(i, pub.events_topic(), json.dumps({"id": i}).encode()))
        assert outbox.depth == 10 and outbox.stats().dropped == 20
        broker.start()
        sub = Subscriber(broker.port, "edge/offline/events", persistent_id="bounded-sub")
        wait_until(lambda: outbox.depth == 0, 20, "the outbox to empty")
        wait_until(lambda: len(sub.on("edge/offline/events")) >= 10, 10, "the kept alerts")
        time.sleep(0.3)
        assert first_occurrences(received_ids(sub, "edge/offline/events")) == ids[20:]  # the newest 10, in order
        sub.close()
    finally:
        pub.close(2)
        broker.stop()


def run_edge(state: Path, port: int, clip: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        ["edge", "run", "configs/demo.yaml", "--set", f"mqtt.port={port}", "--set", f"state_dir={state}",
         "--set", f"cameras.entrance.source.path={clip}", "--set", "cameras.entrance.source.loop=true",
         "--set", "rules.person_in_zone.cooldown=0", "--set", "rules.person_in_zone.clear_after=0.2",
         "--set", "rules.anywhere.cameras=[entrance]", "--set", "rules.anywhere.clear_after=0.1",
         "--set", "rules.anywhere.cooldown=0", "--set", "mqtt.reconnect.initial=0.2", "--set", "mqtt.reconnect.max=1",
         "--set", "mqtt.stats_interval=1", "--set", "actions.snapshots.enabled=false"],
        cwd=REPO, stderr=subprocess.PIPE, text=True,
    )


def test_kill_9_during_an_outage_then_restart_delivers_everything(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    broker = Broker(tmp_path / "broker", persistent=True)
    broker.folder.mkdir()
    broker.start()
    sub = Subscriber(broker.port, "edge/demo/#", persistent_id="crash-sub")
    state = tmp_path / "state"
    first = run_edge(state, broker.port, demo_clip)
    try:
        wait_until(lambda: len(sub.on("edge/demo/events")) >= 2, 60, "events while the broker is up")
        broker.stop(signal.SIGKILL)
        store = OutboxStore(state)
        wait_until(lambda: store.stats().depth >= 4, 60, "events to pile up in the outbox")
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        pending = [r.alert.id for r in store.pending(10**6)]
        store.close()
        assert len(pending) >= 4

        broker.start()
        second = run_edge(state, broker.port, demo_clip)
        try:
            wait_until(lambda: set(pending) <= set(received_ids(sub, "edge/demo/events")), 60, "the pending events")
            wait_until(lambda: len(sub.on("edge/demo/stats")) >= 1, 10, "stats")
        finally:
            second.send_signal(signal.SIGTERM)
            _, err = second.communicate(timeout=30)
        assert second.returncode == 0, err
        assert "wait to be sent" in err
    finally:
        if first.poll() is None:
            first.kill()
        sub.close()
        broker.stop()
    got = received_ids(sub, "edge/demo/events")
    order = first_occurrences(got)
    positions = [order.index(i) for i in pending]
    assert positions == sorted(positions)  # the pending ones arrived in the order they were made
    stats = json.loads(sub.on("edge/demo/stats")[-1])
    assert stats["outbox"]["dropped"] == 0 and stats["mqtt"]["status"] == "connected"
    print(f"crash: pending at kill -9 {len(pending)}, received events {len(got)}, duplicates {len(got) - len(set(got))}")
