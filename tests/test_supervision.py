"""Faults that used to stop edge doing its job silently: threads that die and stay dead, a
reload that mutes or dangles rules, retained state that lies. Faults are injected through the
code's own seams (a source read that raises, an outbox read that fails, a model that does
not load); models, video and the broker are real. LiteRT is pinned where speed matters."""

from __future__ import annotations

import itertools
import json
import shutil
import signal
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, Subscriber
from conftest import wait_until

from edge.alerts.outbox import OutboxStore
from edge.capture.sources import OpenCvSource
from edge.config import load_config
from edge.config.loader import parse_config
from edge.daemon.app import Application
from edge.daemon.notify import Notifier
from edge.daemon.reload import plan_reload
from edge.daemon.supervisor import Supervisor

ZONE = "[[0.55, 0.25], [0.95, 0.25], [0.95, 1.0], [0.55, 1.0]]"


def config(tmp_path: Path, clip: Path, port: int | None, *, extra_rules: str = "", camera_extra: str = "",
           loop: bool = True, mqtt_extra: str = "") -> str:
    mqtt = f"{{host: 127.0.0.1, port: {port}, device: sup{mqtt_extra}}}" if port else "{enabled: false}"
    return f"""
state_dir: {tmp_path}/state
models: {{p: {{path: blazepose, runner: litert}}}}
cameras:
  c: {{source: {{type: file, path: "{clip}", loop: {str(loop).lower()}}}, model: p{camera_extra}}}
rules:
  zone: {{cameras: [c], labels: [person], min_score: 0.6, zone: {ZONE}, cooldown: 1s, clear_after: 1s}}
{extra_rules}
mqtt: {mqtt}
"""


class Running:
    """An Application on its main loop in a thread, stopped (SIGTERM path) at the end."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.path = tmp_path / "edge.yaml"
        self.path.write_text(text)
        self.app = Application(load_config(self.path), notifier=Notifier({}), supervisor=Supervisor(initial=0.2))
        self.app.start()
        self.thread = threading.Thread(target=self.app.run)
        self.thread.start()

    def reload(self, text: str) -> None:
        self.path.write_text(text)
        self.app._signals.put(signal.SIGHUP)

    def events(self) -> list[dict[str, object]]:
        log = self.app.state_dir / "events.jsonl"
        return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []

    def stop(self) -> None:
        self.app._signals.put(signal.SIGTERM)
        self.thread.join(60)
        assert not self.thread.is_alive()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[list[Running]]:
    made: list[Running] = []
    yield made
    for r in made:
        if r.thread.is_alive():
            r.stop()


# -- threads that die -------------------------------------------------------------------------


def test_a_capture_thread_that_raises_is_restarted(models_dir: Path, demo_clip: Path, tmp_path: Path,
                                                   running: list[Running], monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 1: e.g. a camera delivering frames the preprocessor rejects; before, the thread
    stayed dead and the watchdog stayed fed."""
    real_read = OpenCvSource.read
    calls = {"n": 0}

    def read_then_raise(self: OpenCvSource, into: object) -> object:
        calls["n"] += 1
        if calls["n"] == 30:
            raise ValueError("injected: unexpected frame format")
        return real_read(self, into)  # type: ignore[arg-type]

    monkeypatch.setattr(OpenCvSource, "read", read_then_raise)
    r = Running(tmp_path, config(tmp_path, demo_clip, None))
    running.append(r)
    first = r.app.captures["c"]
    wait_until(lambda: r.app.captures["c"] is not first and r.app.captures["c"].is_alive(), 60, "a new capture")
    threads = {(t.kind, t.name): t for t in r.app.figures().threads}
    assert threads[("capture", "c")].restarts == 1
    assert "injected" in (threads[("capture", "c")].last_error or "")
    processed = r.app.channels["c"].processed
    wait_until(lambda: r.app.channels["c"].processed > processed + 20, 60, "frames after the restart")
    assert r.app.healthy()
    assert any("capture c" in p for p in r.app.problems())


def test_a_worker_that_raises_is_restarted(models_dir: Path, demo_clip: Path, tmp_path: Path,
                                           running: list[Running]) -> None:
    r = Running(tmp_path, config(tmp_path, demo_clip, None))
    running.append(r)
    worker = r.app.workers["p"]
    wait_until(lambda: worker.processed >= 10, 60, "frames")
    run_tensor = worker.model.run_tensor

    def boom(tensor):  # type: ignore[no-untyped-def]
        worker.model.run_tensor = run_tensor  # type: ignore[method-assign]
        raise RuntimeError("injected inference failure")

    worker.model.run_tensor = boom  # type: ignore[method-assign]
    wait_until(lambda: r.app.workers["p"] is not worker and r.app.workers["p"].is_alive(), 60, "a new worker")
    new = r.app.workers["p"]
    done = new.processed
    wait_until(lambda: new.processed > done + 20, 60, "frames after the restart")
    assert r.app.supervisor.restarts("worker", "p") == 1


def test_mqtt_sender_survives_a_failing_outbox(models_dir: Path, demo_clip: Path, tmp_path: Path, broker: Broker,
                                               running: list[Running], monkeypatch: pytest.MonkeyPatch) -> None:
    """Item 2: `database is locked` (an operator's `edge outbox purge`) used to kill the sender."""
    real = OutboxStore.pending
    failures = {"n": 0}

    def flaky(self: OutboxStore, limit: int, after_seq: int = 0) -> object:
        if failures["n"] < 3:
            failures["n"] += 1
            raise sqlite3.OperationalError("database is locked")
        return real(self, limit, after_seq)

    monkeypatch.setattr(OutboxStore, "pending", flaky)
    sub = Subscriber(broker.port, "edge/sup/events")
    try:
        r = Running(tmp_path, config(tmp_path, demo_clip, broker.port))
        running.append(r)
        wait_until(lambda: failures["n"] >= 3, 60, "the injected failures")
        wait_until(lambda: sub.on("edge/sup/events"), 120, "an event on MQTT")
        assert r.app.publisher is not None and r.app.publisher.sender_errors >= 1
        assert r.app.publisher.sender_alive
    finally:
        sub.close()


# -- reload as a plan -------------------------------------------------------------------------

BASE = """
state_dir: /tmp/x
models: {p: {path: blazepose}, q: {path: blazeface}}
cameras:
  live: {source: {type: rtsp, url: "rtsp://127.0.0.1:1/x"}, model: p}
  file: {source: {type: file, path: /tmp/a.mp4}, model: p}
  face: {source: {type: file, path: /tmp/a.mp4}, model: q}
rules:
  r1: {cameras: [live, file], labels: [person]}
  r2: {cameras: [face], labels: [face]}
"""


@pytest.mark.parametrize(
    ("change", "expect"),
    [
        ("", dict(cameras_start=set(), keep_pairs={("r1", "live"), ("r1", "file"), ("r2", "face")}, workers_stop=set(), actions_changed=False, gone_pairs=set())),
        (("live: {source", "live: {fps: 2, source"),
         dict(cameras_start={"live"}, workers_stop=set(), keep_pairs={("r1", "live"), ("r1", "file"), ("r2", "face")})),
        (("file: {source", "file: {fps: 2, source"),  # a file restarts at t=0: its state is reset
         dict(cameras_start={"file"}, keep_pairs={("r1", "live"), ("r2", "face")})),
        (("q: {path: blazeface}", "q: {path: blazeface, threads: 1}"),
         dict(cameras_start={"face"}, workers_stop={"q"}, models_load={"q"}, keep_pairs={("r1", "live"), ("r1", "file")})),
        (("r1: {cameras: [live, file], labels: [person]}", "r1: {cameras: [live], labels: [person]}"),
         dict(gone_pairs={("r1", "file")}, keep_pairs={("r2", "face")})),
        (("r2: {cameras: [face], labels: [face]}", "r3: {cameras: [face], labels: [face]}"),
         dict(gone_pairs={("r2", "face")}, new_pairs={("r3", "face")}, keep_pairs={("r1", "live"), ("r1", "file")})),
        (("rules:", "mqtt: {port: 1884}\nrules:"), dict(mqtt_changed=True, actions_changed=True)),
        # What a rule does with its events is not its state: episodes and line counters stay.
        (("r1: {cameras: [live, file], labels: [person]}", "r1: {cameras: [live, file], labels: [person], command: {argv: [x]}}"),
         dict(actions_changed=True, keep_pairs={("r1", "live"), ("r1", "file"), ("r2", "face")})),
        (("r1: {cameras: [live, file], labels: [person]}", "r1: {cameras: [live, file], labels: [person], armed: false, actions: [mqtt]}"),
         dict(actions_changed=True, keep_pairs={("r1", "live"), ("r1", "file"), ("r2", "face")})),
        (("r1: {cameras: [live, file], labels: [person]}", "r1: {cameras: [live, file], labels: [person], schedule: {windows: [{from: '08:00', to: '18:00'}]}}"),
         dict(actions_changed=False, keep_pairs={("r1", "live"), ("r1", "file"), ("r2", "face")})),
        # ... but what decides matches and timing is: that rule starts afresh.
        (("r1: {cameras: [live, file], labels: [person]}", "r1: {cameras: [live, file], labels: [person], clear_after: 5s}"),
         dict(actions_changed=False, keep_pairs={("r2", "face")})),
    ],
)
def test_plan_reload(change: object, expect: dict[str, object]) -> None:
    old = parse_config(BASE).config
    text = BASE.replace(*change) if change else BASE  # type: ignore[misc]
    plan = plan_reload(old, parse_config(text).config)
    for key, value in expect.items():
        got = getattr(plan, key)
        assert (set(got) if isinstance(got, frozenset) else got) == value, key


def test_reload_with_a_model_that_fails_to_load_keeps_the_old_config(
    models_dir: Path, demo_clip: Path, tmp_path: Path, running: list[Running]
) -> None:
    """Item 6: this used to raise out of the main loop (exit 1, restarted into the same failure)."""
    r = Running(tmp_path, config(tmp_path, demo_clip, None))
    running.append(r)
    wait_until(lambda: r.app.frames_processed() > 10, 60, "frames")
    bad = tmp_path / "bad.tflite"
    bad.write_bytes(b"\x1c\x00\x00\x00TFL3" + b"\x00" * 64)  # the right magic, nothing inside
    text = config(tmp_path, demo_clip, None).replace(
        "models: {p: {path: blazepose, runner: litert}}",
        f'models: {{p: {{path: blazepose, runner: litert}}, b: {{path: "{bad}", runner: litert}}}}',
    ).replace("cameras:\n", f'cameras:\n  d: {{source: {{type: file, path: "{demo_clip}", loop: true}}, model: b}}\n')
    r.reload(text)
    wait_until(lambda: r.app.notifier is not None and r.thread.is_alive() and "b" not in r.app.models
               and r.app._signals.empty(), 30, "the reload to be handled")
    done = r.app.frames_processed()
    wait_until(lambda: r.app.frames_processed() > done + 10, 60, "frames after the failed reload")
    assert set(r.app.loaded.config.models) == {"p"} and r.thread.is_alive()


def test_reload_of_a_restarted_camera_does_not_mute_its_rule(
    models_dir: Path, demo_clip: Path, tmp_path: Path, running: list[Running]
) -> None:
    """Item 5: the rule's state was in the old capture's clock, so the restarted camera's
    rule stayed silent for as long as the old one had run."""
    r = Running(tmp_path, config(tmp_path, demo_clip, None))
    running.append(r)
    wait_until(lambda: any(e["type"] == "new" for e in r.events()), 120, "a first new")
    wait_until(lambda: sum(e["type"] == "new" for e in r.events()) >= 3, 240, "a few passes of the clip")
    r.reload(config(tmp_path, demo_clip, None, camera_extra=", fps: 20"))
    wait_until(lambda: getattr(r.app.captures.get("c"), "fps_cap", None) == 20, 30, "the camera restarted")
    before = len(r.events())
    wait_until(lambda: any(e["type"] == "new" for e in r.events()[before:]), 240, "a new event after the reload")
    types = [e["type"] for e in r.events()]
    assert all(a != b for a, b in itertools.pairwise(types)), types  # new/end alternate: nothing dangles


def test_reload_keeps_active_rules_on_and_ends_removed_ones(
    models_dir: Path, demo_clip: Path, tmp_path: Path, broker: Broker, running: list[Running]
) -> None:
    """Items 7 and 8: a reload used to publish `off` for every rule (even active ones), a rule
    removed while active never got its `end`, and an `mqtt:` change ran two clients with one id."""
    sub = Subscriber(broker.port, "edge/sup/#")
    try:
        extra = f"  other: {{cameras: [c], labels: [person], min_score: 0.6, zone: {ZONE}, clear_after: 30s}}"
        r = Running(tmp_path, config(tmp_path, demo_clip, broker.port, extra_rules=extra))
        running.append(r)
        state = "edge/sup/c/zone/state"
        wait_until(lambda: any(json.loads(p)["state"] == "on" for p in sub.on(state) if p), 120, "zone on")
        wait_until(lambda: any(json.loads(p)["state"] == "on" for p in sub.on("edge/sup/c/other/state") if p),
                   60, "other on")
        seen = len(sub.on(state))
        # Remove `other` (active: clear_after 30 s) and change mqtt (a new client).
        r.reload(config(tmp_path, demo_clip, broker.port, mqtt_extra=", stats_interval: 7s"))
        wait_until(lambda: "other" not in r.app.loaded.config.rules, 30, "the reload")
        wait_until(lambda: any(e["rule"] == "other" and e["type"] == "end" for e in r.events()), 30, "end of other")
        wait_until(lambda: sub.on("edge/sup/c/other/state")[-1:] == [b""], 30, "other's retained state deleted")
        after = [json.loads(p) for p in sub.on(state)[seen:] if p]
        # The zone rule's state changes only with the scene: an `off` here must follow an end event.
        offs = [p for p in after if p["state"] == "off"]
        ends = [e for e in r.events() if e["rule"] == "zone" and e["type"] == "end"]
        assert all(o["event"] in {e["id"] for e in ends} for o in offs), (offs, ends)
        assert b"stopped" not in sub.on("edge/sup/available")  # the old client said nothing
        assert sub.on("edge/sup/available")[-1] == b"online"
    finally:
        sub.close()


# -- state that lies --------------------------------------------------------------------------


def test_camera_going_offline_ends_its_rules(models_dir: Path, demo_clip: Path, tmp_path: Path,
                                             running: list[Running]) -> None:
    """Item 10: the video disappears while a person is in the zone; before, the rule stayed
    active (and Home Assistant's sensor `on`) forever, as no frame came to end it."""
    clip = tmp_path / "clip.mp4"
    shutil.copy(demo_clip, clip)
    # Untracked, so the rule's one episode outlives the person leaving (with tracking, the
    # person's episode would end when its track is lost).
    text = config(tmp_path, clip, None, camera_extra=", tracking: {enabled: false}")
    r = Running(tmp_path, text.replace("clear_after: 1s", "clear_after: 1h"))
    running.append(r)
    wait_until(lambda: any(e["type"] == "new" for e in r.events()), 120, "a new event")
    clip.unlink()  # at the end of this pass the camera cannot reopen its source
    wait_until(lambda: any(e["type"] == "end" for e in r.events()), 120, "the rule to end")
    assert [(e["type"], e["reason"]) for e in r.events()] == [("new", None), ("end", "offline")]
    assert r.app.captures["c"].state.value in ("reconnecting", "connecting", "stopped")


def test_restart_after_kill_resets_state_before_online(models_dir: Path, demo_clip: Path, tmp_path: Path,
                                                       broker: Broker) -> None:
    """Item 11: a retained `on` left by a crash must read `off` before subscribers see `online`;
    retained topics of a removed rule are deleted."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    pub = mqtt.Client(CallbackAPIVersion.VERSION2)
    pub.connect("127.0.0.1", broker.port)
    pub.loop_start()
    on = json.dumps({"schema": 1, "state": "on", "count": 1, "since": "2026-01-01T00:00:00Z", "event": "x"})
    for topic, payload in (("edge/sup/c/zone/state", on), ("edge/sup/c/gone/state", on),
                           ("edge/sup/available", "offline")):
        pub.publish(topic, payload, qos=1, retain=True).wait_for_publish(5)
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    # What an earlier run (with a rule `gone`) had published.
    (state_dir / "retained_topics.json").write_text(json.dumps(["edge/sup/c/gone/state", "edge/sup/c/zone/state"]))
    pub.loop_stop()
    pub.disconnect()
    sub = Subscriber(broker.port, "edge/sup/#")
    try:
        wait_until(lambda: sub.on("edge/sup/available"), 10, "the retained availability")
        start = len(sub.messages)
        r = Running(tmp_path, config(tmp_path, demo_clip, broker.port))
        try:
            wait_until(lambda: b"online" in sub.on("edge/sup/available"), 60, "online")
            wait_until(lambda: sub.on("edge/sup/c/gone/state")[-1:] == [b""], 30, "gone's state deleted")
            fresh = sub.messages[start:]
            order = [t for t, p, _ in fresh if t in ("edge/sup/c/zone/state", "edge/sup/available")]
            assert order.index("edge/sup/c/zone/state") < order.index("edge/sup/available")
            first_state = next(p for t, p, _ in fresh if t == "edge/sup/c/zone/state")
            assert json.loads(first_state)["state"] == "off"
        finally:
            r.stop()
    finally:
        sub.close()


def test_rings_have_room_for_the_frames_in_flight(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    """Item 14: OpenVINO async jobs (2-4) could hold every one of 3 slots."""
    pytest.importorskip("openvino")
    text = config(tmp_path, demo_clip, None).replace("runner: litert", "runner: openvino, async_jobs: 4")
    path = tmp_path / "edge.yaml"
    path.write_text(text)
    app = Application(load_config(path), notifier=Notifier({}))
    app.start()
    try:
        assert app.workers["p"].jobs == 4
        assert len(app.channels["c"].ring.slots) >= 6
    finally:
        app.stop()


@pytest.mark.parametrize(
    ("change", "what"),
    [
        (("runner: openvino, async_jobs: 2}", "runner: openvino, async_jobs: 2, threads: 1}"), "model changed"),
        (("min_score: 0.6,", "min_score: 0.61,"), "rule changed"),
    ],
)
def test_reload_on_the_async_path_ends_active_rules(
    models_dir: Path, demo_clip: Path, tmp_path: Path, running: list[Running], caplog: pytest.LogCaptureFixture,
    change: tuple[str, str], what: str,
) -> None:
    """OpenVINO async keeps frames in flight all the time: a reload's engine swap must still
    run between results, and a rule that is `on` when its model or its config changes ends."""
    pytest.importorskip("openvino")
    base = config(tmp_path, demo_clip, None).replace("runner: litert}", "runner: openvino, async_jobs: 2}")
    r = Running(tmp_path, base)
    running.append(r)
    wait_until(lambda: any(e["type"] == "new" for e in r.events()), 180, "a first new")
    wait_until(lambda: r.events()[-1]["type"] == "new", 120, "the rule on")
    r.reload(base.replace(*change))
    wait_until(r.app._signals.empty, 30, "the reload")
    wait_until(lambda: r.events()[-1]["type"] == "end", 60, f"the rule ended ({what})")
    before = len(r.events())
    wait_until(lambda: any(e["type"] == "new" for e in r.events()[before:]), 180, "a new event after the reload")
    assert "did not take the new rules" not in caplog.text
