"""The daemon under a systemd-like supervisor: sd_notify to a datagram socket the test owns,
the watchdog (and its silence while a worker is stalled), SIGTERM, SIGHUP reloads, metrics."""

from __future__ import annotations

import itertools
import logging
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker
from conftest import restore_signal_handlers, wait_until
from prometheus_client.parser import text_string_to_metric_families

from edge.config import load_config
from edge.daemon.app import Application
from edge.daemon.notify import Notifier

REPO = Path(__file__).resolve().parent.parent


class NotifySocket:
    """What systemd listens on: a datagram socket; records (time, message) as they come."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.messages: list[tuple[float, str]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._recv, daemon=True)
        self._thread.start()

    def _recv(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(4096)
            except TimeoutError:
                continue
            for line in data.decode().splitlines():
                self.messages.append((time.monotonic(), line))

    def count(self, prefix: str, since: float = 0.0) -> int:
        return sum(1 for t, m in self.messages if m.startswith(prefix) and t >= since)

    def first(self, prefix: str) -> float | None:
        return next((t for t, m in self.messages if m.startswith(prefix)), None)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    ns = NotifySocket(tmp_path / "notify.sock")
    yield ns
    ns.close()


def demo_args(state: Path, clip: Path, *extra: str) -> list[str]:
    return ["edge", "run", "configs/demo.yaml", "--set", f"state_dir={state}", "--set", f"cameras.entrance.source.path={clip}",
            "--set", "cameras.entrance.source.loop=true", "--set", "mqtt.enabled=false", *extra]


def test_ready_watchdog_status_and_stopping(models_dir: Path, demo_clip: Path, notify_socket: NotifySocket, tmp_path: Path) -> None:
    env = {**os.environ, "NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "2000000"}
    started = time.monotonic()
    # MQTT points at a port nobody listens on: the events made before SIGTERM must stay on disk.
    # LiteRT is pinned: this test is about notify, not about which runner this CPU gets.
    args = [a if a != "mqtt.enabled=false" else "mqtt.port=1" for a in demo_args(tmp_path, demo_clip)]
    args += ["--set", "models.person.runner=litert"]
    proc = subprocess.Popen(args, cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
    events = tmp_path / "events.jsonl"
    try:
        wait_until(lambda: notify_socket.first("READY=1") is not None, 120, "READY=1")
        ready = notify_socket.first("READY=1")
        assert ready is not None
        # However slow this machine is, wait for the first event (about 6 s into the clip).
        wait_until(lambda: events.exists() and events.read_text().strip(), 180, "a first event")
        time.sleep(2.5)
        pings = [t for t, m in notify_socket.messages if m == "WATCHDOG=1" and t >= ready]
        # About every WATCHDOG_USEC / 2 = 1 s while frames flow; what matters is that no gap
        # reaches WATCHDOG_USEC (2 s), when systemd would kill the service.
        assert len(pings) >= 3
        assert all(b - a < 1.9 for a, b in itertools.pairwise(pings))
        wait_until(lambda: notify_socket.count("STATUS=1/1 camera(s) streaming") >= 1, 30, "a STATUS line")
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0, err
    assert notify_socket.count("STOPPING=1") == 1
    from edge.alerts.outbox import OutboxStore

    kept = OutboxStore(tmp_path).stats().depth
    assert kept >= 1 and f"{kept} event(s) kept in the outbox for the next start" in err
    print(f"start to READY: {ready - started:.2f} s (process start, imports, model load and warm-up, first frame)")


def app_for(config_text: str, tmp_path: Path, notifier: Notifier | None = None) -> Application:
    path = tmp_path / "edge.yaml"
    path.write_text(config_text)
    app = Application(load_config(path), notifier=notifier or Notifier({}))
    return app


def test_no_watchdog_while_a_worker_is_stalled(models_dir: Path, demo_clip: Path, notify_socket: NotifySocket, tmp_path: Path) -> None:
    """The stall is injected into the real model's inference call (a test-only hook: it blocks
    on an event), so frames are pending while the worker makes no progress."""
    # LiteRT pinned: on Intel, `auto` picks OpenVINO's async path, which never calls run_tensor.
    text = f"""
state_dir: {tmp_path}/state
models: {{p: {{path: blazepose, runner: litert}}}}
cameras: {{c: {{source: {{type: file, path: "{demo_clip}", loop: true}}, model: p}}}}
mqtt: {{enabled: false}}
"""
    app = app_for(text, tmp_path, Notifier({"NOTIFY_SOCKET": str(notify_socket.path), "WATCHDOG_USEC": "1000000"}))
    app.start()
    worker = app.workers["p"]
    release = threading.Event()
    run_tensor = worker.model.run_tensor

    def stalling(tensor):  # type: ignore[no-untyped-def]
        if worker.processed >= 20:
            release.wait(60)
        return run_tensor(tensor)

    worker.model.run_tensor = stalling  # type: ignore[method-assign]
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        wait_until(lambda: worker.processed >= 20, 120, "20 frames processed")
        time.sleep(1.5)  # longer than the watchdog interval: the stall is now visible
        stalled_at = time.monotonic()
        time.sleep(3.0)
        assert notify_socket.count("WATCHDOG=1", since=stalled_at) == 0
        assert app.channels["c"].ring.pending > 0  # frames are waiting: not an idle worker
        release.set()
        wait_until(lambda: notify_socket.count("WATCHDOG=1", since=stalled_at + 3.0) >= 2, 30, "pings again")
    finally:
        release.set()
        app._signals.put(signal.SIGTERM)
        runner.join(30)


def test_sighup_reload(models_dir: Path, demo_clip: Path, broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A valid change to a rule takes effect without touching the unchanged cameras; a changed
    camera is restarted; an invalid config keeps the old one running and says where it is wrong.
    (The RTSP variant of 'unchanged camera not reconnected' is in test_rtsp_reconnect.py.)"""
    caplog.set_level(logging.INFO)
    base = f"""
state_dir: {tmp_path}/state
models: {{p: {{path: blazepose}}}}
cameras:
  a: {{source: {{type: file, path: "{demo_clip}", loop: true}}, model: p}}
  b: {{source: {{type: file, path: "{demo_clip}", loop: true}}, model: p}}
rules:
  r1: {{cameras: [a, b], labels: [person], min_score: 0.5}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, device: reload}}
"""
    app = app_for(base, tmp_path)
    app.install_signal_handlers()
    app.start()
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        time.sleep(1.0)
        cap_a, cap_b = app.captures["a"], app.captures["b"]
        changed = base.replace("min_score: 0.5}", "min_score: 0.7}\n  r2: {cameras: [a], labels: [person]}").replace(
            "b: {source: {type: file,", "b: {fps: 5, source: {type: file,")
        (tmp_path / "edge.yaml").write_text(changed)
        os.kill(os.getpid(), signal.SIGHUP)
        wait_until(lambda: "restarted camera(s) ['b']" in caplog.text, 60, "the reload's log line")
        engine = app.workers["p"].engine
        assert set(engine.rules) == {"r1", "r2"} and engine.rules["r1"].min_score == 0.7
        assert app.captures["a"] is cap_a and cap_a.is_alive() and cap_a.reconnects == 0  # untouched
        assert app.captures["b"] is not cap_b and not cap_b.is_alive() and app.captures["b"].fps_cap == 5
        assert "restarted camera(s) ['b']" in caplog.text

        (tmp_path / "edge.yaml").write_text(changed.replace("min_score: 0.7}", "min_score: high}"))
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + 10
        while "still running the old one" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        assert f"{tmp_path / 'edge.yaml'}:8: rules.r1.min_score" in caplog.text
        assert app.workers["p"].engine.rules["r1"].min_score == 0.7 and runner.is_alive()
        processed = app.frames_processed()
        time.sleep(0.5)
        assert app.frames_processed() > processed  # still working
    finally:
        app._signals.put(signal.SIGTERM)
        runner.join(30)
        restore_signal_handlers()


def test_metrics_endpoint_is_valid_prometheus_text(models_dir: Path, demo_clip: Path, tmp_path: Path) -> None:
    text = f"""
state_dir: {tmp_path}/state
models: {{p: {{path: blazepose, runner: litert}}}}
cameras: {{gate: {{source: {{type: file, path: "{demo_clip}", loop: true}}, model: p}}}}
rules: {{zone: {{cameras: [gate], labels: [person], zone: [[0.55, 0.25], [0.95, 0.25], [0.95, 1], [0.55, 1]]}}}}
mqtt: {{host: 127.0.0.1, port: 1, device: m}}
metrics: {{enabled: true, port: 0}}
"""
    app = app_for(text, tmp_path)
    app.start()
    runner = threading.Thread(target=app.run)
    runner.start()
    try:
        # The person enters the zone at about 6 s of video, however long that takes here.
        wait_until(lambda: app.channels["gate"].events >= 1 and app.channels["gate"].processed > 50, 180, "an event")
        # The event reaches the outbox through the actions thread: wait for it there too.
        wait_until(lambda: app.outbox is not None and app.outbox.depth >= 1, 60, "the event in the outbox")
        assert app.metrics is not None
        body = urllib.request.urlopen(f"http://127.0.0.1:{app.metrics.port}/metrics", timeout=5).read().decode()
    finally:
        app._signals.put(signal.SIGTERM)
        runner.join(30)
    families = {f.name: f for f in text_string_to_metric_families(body)}
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    assert samples[("edge_camera_frames_read_total", (("camera", "gate"),))] > 50
    assert samples[("edge_camera_state", (("camera", "gate"), ("state", "streaming")))] == 1
    assert samples[("edge_inference_seconds_count", (("model", "p"),))] > 50
    assert families["edge_inference_seconds"].type == "histogram"
    assert samples[("edge_rule_events_total", (("camera", "gate"), ("rule", "zone"), ("type", "new")))] >= 1
    assert samples[("edge_outbox_depth", ())] >= 1  # nothing listens on port 1: the events wait
    assert samples[("edge_mqtt_connected", ())] == 0
