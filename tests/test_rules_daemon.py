"""Rules v2 in a running edge, on the demo clip with BlazePose on LiteRT and a real Mosquitto:
arming and disarming a rule over MQTT while it is active, the retained state and armed topics,
the choice kept in state_dir, a rule's command run on its events, and snapshots on MQTT."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import paho.mqtt.publish as publish

from tests.broker import Broker, Subscriber
from tests.conftest import wait_until

REPO = Path(__file__).resolve().parent.parent
BASE = "edge/demo/entrance"


def start_edge(broker: Broker, state: Path, clip: Path, *extra: str) -> subprocess.Popen[str]:
    sets = [
        f"mqtt.port={broker.port}",
        f"state_dir={state}",
        f"cameras.entrance.source.path={clip}",
        "cameras.entrance.source.realtime=true",
        "cameras.entrance.source.loop=true",
        "models.person.runner=litert",
        "actions.snapshots.enabled=false",
        *extra,
    ]
    argv = [sys.executable, "-m", "edge", "run", "configs/demo.yaml", *(a for s in sets for a in ("--set", s))]
    return subprocess.Popen(argv, cwd=REPO, stderr=subprocess.PIPE, text=True)


def stop_edge(proc: subprocess.Popen[str]) -> str:
    proc.terminate()
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    return err


def states(sub: Subscriber, rule: str) -> list[dict[str, object]]:
    return [json.loads(p) for p in sub.on(f"{BASE}/{rule}/state")]


def events(sub: Subscriber, rule: str) -> list[dict[str, object]]:
    return [e for e in map(json.loads, sub.on("edge/demo/events")) if e["rule"] == rule]


def test_disarm_while_active_ends_the_episode_and_is_kept_across_restarts(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path
) -> None:
    sub = Subscriber(broker.port, "edge/demo/#")
    state = tmp_path / "state"
    proc = start_edge(broker, state, demo_clip, "rules.person_in_zone.armed=false")
    try:
        # Disarmed by the config at the first start: retained OFF, state says so, no events.
        wait_until(lambda: sub.on(f"{BASE}/person_in_zone/armed")[-1:] == [b"OFF"], 60, "armed OFF")
        wait_until(
            lambda: any(s["state"] == "disarmed" for s in states(sub, "person_in_zone")), 60, "state disarmed"
        )
        wait_until(lambda: events(sub, "walkway"), 90, "a walkway crossing (that rule is armed)")
        assert events(sub, "person_in_zone") == []

        publish.single(f"{BASE}/person_in_zone/set", "on", hostname="127.0.0.1", port=broker.port, qos=1)
        wait_until(lambda: sub.on(f"{BASE}/person_in_zone/armed")[-1:] == [b"ON"], 30, "armed ON")
        wait_until(lambda: states(sub, "person_in_zone")[-1]["state"] == "on", 90, "the person in the zone")
        live = states(sub, "person_in_zone")[-1]
        assert live["armed"] is True and live["count"] == 1

        # The person stays in the zone about 7 s: OFF now ends the episode with reason disarmed.
        publish.single(f"{BASE}/person_in_zone/set", "OFF", hostname="127.0.0.1", port=broker.port, qos=1)
        wait_until(lambda: states(sub, "person_in_zone")[-1]["state"] == "disarmed", 30, "state disarmed")
        mine = events(sub, "person_in_zone")
        assert [(e["type"], e["reason"]) for e in mine] == [("new", None), ("end", "disarmed")]
        assert mine[0]["episode"] == mine[1]["episode"] and mine[1]["track_id"] == mine[0]["track_id"]
    finally:
        stop_edge(proc)
        sub.close()
    assert json.loads((state / "armed.json").read_text())["armed"]["entrance"]["person_in_zone"] is False

    # Restarted: the OFF sent over MQTT wins over the config (which now says armed).
    sub = Subscriber(broker.port, "edge/demo/#")
    proc = start_edge(broker, state, demo_clip)
    try:
        # edge publishes the retained values before `online`; the broker sent the old ones first
        wait_until(lambda: b"online" in sub.on("edge/demo/available"), 60, "edge online")
        assert sub.on(f"{BASE}/person_in_zone/armed") == [b"OFF", b"OFF"]
        assert sub.on(f"{BASE}/walkway/armed") == [b"ON", b"ON"]
    finally:
        stop_edge(proc)
        sub.close()


def test_a_rule_runs_its_command_with_the_event_in_its_environment(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path
) -> None:
    """The walkway rule runs a program on its crossings; only the walkway rule (actions: [command])."""
    out = tmp_path / "crossings"
    out.mkdir()
    script = tmp_path / "record.py"
    script.write_text(
        "import os, pathlib, sys\n"
        "name = os.environ['EDGE_EVENT_ID']\n"
        "keys = ['EDGE_EVENT_TYPE', 'EDGE_RULE', 'EDGE_DIRECTION', 'EDGE_TRACK_ID', 'EDGE_LABEL', 'MARK']\n"
        "pathlib.Path(sys.argv[1], name).write_text(' '.join(os.environ.get(k, '-') for k in keys))\n"
    )
    argv = json.dumps([sys.executable, str(script), str(out)])
    proc = start_edge(
        broker,
        tmp_path / "state",
        demo_clip,
        f"rules.walkway.command={{argv: {argv}, env: {{MARK: seen}}}}",
        "rules.walkway.actions=[command]",
    )
    sub = Subscriber(broker.port, "edge/demo/#")
    try:
        wait_until(lambda: len(list(out.iterdir())) >= 2, 120, "two crossings recorded by the command")
    finally:
        err = stop_edge(proc)
        sub.close()
    lines = [p.read_text() for p in sorted(out.iterdir(), key=lambda p: p.stat().st_mtime_ns)]
    assert lines[:2] == ["cross walkway in 1 person seen", "cross walkway out 2 person seen"], err
    assert events(sub, "person_in_zone")  # the other rules' events did arrive on MQTT ...
    assert events(sub, "walkway") == []  # ... this one's not: actions: [command] only


def test_snapshots_also_go_to_mqtt_retained_per_rule(
    models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path
) -> None:
    """``actions.snapshots.mqtt``: each rule's last snapshot is retained on its snapshot topic,
    the same JPEG as the file (a newcomer, such as Home Assistant's image entity, gets it)."""
    state = tmp_path / "state"
    sets = [f"mqtt.port={broker.port}", f"state_dir={state}", f"cameras.entrance.source.path={demo_clip}",
            "actions.snapshots.mqtt=true", "models.person.runner=litert"]  # fmt: skip
    argv = [sys.executable, "-m", "edge", "run", "configs/demo.yaml", *(a for s in sets for a in ("--set", s))]
    out = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    sub = Subscriber(broker.port, f"{BASE}/+/snapshot")  # after the run: only what is retained
    try:
        wait_until(lambda: len({t for t, _p, _r in sub.messages}) == 3, 30, "three retained snapshots")
        got = {t: p for t, p, retained in sub.messages if retained}
    finally:
        sub.close()
    files = sorted((state / "snapshots" / "entrance").glob("*.jpg"))
    for rule in ("person_in_zone", "walkway", "loitering"):
        jpeg = got[f"{BASE}/{rule}/snapshot"]
        assert jpeg == [f for f in files if f"_{rule}_" in f.name][-1].read_bytes()
        assert cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR).shape == (720, 1280, 3)
