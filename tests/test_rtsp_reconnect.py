"""RTSP: a real GStreamer RTSP server on loopback is killed mid-stream and restarted, or hung
(SIGSTOP) and resumed. The camera goes `reconnecting` (published on MQTT) — for a hung server
within its read timeout — frames flow again without restarting edge, credentials never reach
the log, and no thread is left behind."""

from __future__ import annotations

import logging
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, Subscriber, free_port
from conftest import wait_until

from edge.capture.thread import CameraState
from edge.config import parse_config
from edge.daemon.app import Application

SYSTEM_PYTHON = "/usr/bin/python3"
SERVER = Path(__file__).with_name("rtsp_server.py")


def gst_rtsp_available() -> bool:
    probe = "import gi; gi.require_version('GstRtspServer', '1.0'); from gi.repository import GstRtspServer"
    return os.path.exists(SYSTEM_PYTHON) and subprocess.run([SYSTEM_PYTHON, "-c", probe], capture_output=True).returncode == 0


def require_gst_rtsp() -> None:
    """Skip without GStreamer's RTSP server here; under CI (which installs it) fail instead."""
    if not gst_rtsp_available():
        if os.environ.get("CI"):
            pytest.fail("GStreamer RTSP server must be installed in CI (tools/test.sh installs it)")
        pytest.skip("python3-gi / gir1.2-gst-rtsp-server-1.0 not installed")


class RtspServer:
    def __init__(self, port: int) -> None:
        self.port = port
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen([SYSTEM_PYTHON, str(SERVER), str(self.port)], stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None and self.proc.stdout.readline().strip() == "ready"
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)

    def pause(self) -> None:
        """Hang the server (SIGSTOP): connections stay open, nothing is sent or answered."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    require_gst_rtsp()
    server = RtspServer(free_port())
    server.start()
    yield server
    server.kill()


def test_rtsp_server_killed_and_restarted(
    rtsp_server: RtspServer, broker: Broker, subscriber: Subscriber, models_dir: Path, tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    text = f"""
state_dir: {tmp_path}/state
models: {{face: {{path: blazeface}}}}
cameras:
  gate:
    source: {{type: rtsp, url: "rtsp://viewer:s3cr3t@127.0.0.1:{rtsp_server.port}/cam", open_timeout: 5s, read_timeout: 2s}}
    model: face
    reconnect: {{initial: 0.2s, max: 1s}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, device: rtsptest}}
"""
    app = Application(parse_config(text, "rtsp.yaml"))
    baseline_threads = {t.name for t in threading.enumerate()}
    app.start()
    try:
        capture, channel = app.captures["gate"], app.channels["gate"]
        wait_until(lambda: channel.processed >= 10, 30, "frames from the RTSP server")
        reconnects = capture.reconnects

        rtsp_server.kill()
        wait_until(lambda: capture.state.value in ("reconnecting", "connecting"), 15, "the camera to notice")
        wait_until(lambda: b"reconnecting" in subscriber.on("edge/rtsptest/gate/status"), 10, "status on MQTT")
        time.sleep(1.0)  # a few failed attempts while the server is gone
        processed_during_outage = channel.processed

        rtsp_server.start()
        wait_until(lambda: channel.processed >= processed_during_outage + 10, 30, "frames after the restart")
        assert capture.state.value == "streaming" and capture.is_alive()
        assert capture.reconnects > reconnects
        statuses = subscriber.on("edge/rtsptest/gate/status")
        assert statuses[-1] == b"online" and b"reconnecting" in statuses
    finally:
        app.stop()
    time.sleep(0.2)
    leaked = {t.name for t in threading.enumerate()} - baseline_threads
    assert not {n for n in leaked if n.startswith(("capture-", "infer-", "actions"))}
    assert "s3cr3t" not in caplog.text
    assert "rtsp://***@127.0.0.1" in caplog.text


def test_hung_rtsp_server_is_noticed_within_the_read_timeout(
    rtsp_server: RtspServer, broker: Broker, subscriber: Subscriber, models_dir: Path, tmp_path: Path
) -> None:
    """On a hung server OpenCV's FFmpeg backend returns the frames its decoder still holds, one
    per read timeout, as good frames; the first read that takes the whole timeout must count
    as a failure instead, so the camera leaves `online` after one read timeout, not three."""
    read_timeout = 3
    text = f"""
state_dir: {tmp_path}/state
models: {{face: {{path: blazeface}}}}
cameras:
  gate:
    source: {{type: rtsp, url: "rtsp://127.0.0.1:{rtsp_server.port}/cam", open_timeout: 3s, read_timeout: {read_timeout}s}}
    model: face
    reconnect: {{initial: 0.2s, max: 1s}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, device: rtsphung}}
"""
    topic = "edge/rtsphung/gate/status"
    app = Application(parse_config(text, "rtsp.yaml"))
    app.start()
    try:
        capture, channel = app.captures["gate"], app.channels["gate"]
        wait_until(lambda: channel.processed >= 10, 30, "frames from the RTSP server")
        wait_until(lambda: subscriber.on(topic)[-1:] == [b"online"], 10, "status online on MQTT")
        seen_online = len(subscriber.on(topic))

        states: list[str] = []
        publish = capture.on_state
        assert publish is not None

        def record(camera: str, state: CameraState) -> None:
            states.append(state.value)
            publish(camera, state)

        capture.on_state = record
        rtsp_server.pause()
        wait_until(lambda: capture.state.value != "streaming", read_timeout + 4, "the camera to notice the hung server")
        frames_noticed = capture.frames_read
        assert f"no frame within {read_timeout} s (stream stalled)" in (capture.last_error or "")
        wait_until(lambda: b"reconnecting" in subscriber.on(topic)[seen_online:], 10, "reconnecting on MQTT")
        wait_until(lambda: len(states) >= 3, 20, "a failed reopen while the server hangs")
        assert states[:3] == ["reconnecting", "connecting", "reconnecting"]
        assert "cannot open" in (capture.last_error or "")
        assert capture.frames_read == frames_noticed  # no stale frame was taken for a live one
        assert "streaming" not in states and b"online" not in subscriber.on(topic)[seen_online:]

        rtsp_server.resume()
        processed = channel.processed
        wait_until(lambda: channel.processed >= processed + 10, 30, "frames after SIGCONT")
        assert states[-1] == "streaming" and capture.is_alive() and capture.reconnects >= 1
        wait_until(lambda: subscriber.on(topic)[-1:] == [b"online"], 10, "status online again")
    finally:
        app.stop()


def test_reload_with_a_changed_rule_does_not_reconnect_the_rtsp_camera(
    rtsp_server: RtspServer, broker: Broker, subscriber: Subscriber, models_dir: Path, tmp_path: Path
) -> None:
    from edge.config import load_config

    base = f"""
state_dir: {tmp_path}/state
models: {{face: {{path: blazeface}}}}
cameras:
  gate:
    source: {{type: rtsp, url: "rtsp://127.0.0.1:{rtsp_server.port}/cam"}}
    model: face
rules:
  faces: {{cameras: [gate], labels: [face], min_score: 0.5}}
mqtt: {{host: 127.0.0.1, port: {broker.port}, device: rtspreload}}
"""
    path = tmp_path / "edge.yaml"
    path.write_text(base)
    app = Application(load_config(path))
    app.start()
    try:
        capture, channel = app.captures["gate"], app.channels["gate"]
        wait_until(lambda: channel.processed >= 10, 30, "frames")
        statuses_before = len(subscriber.on("edge/rtspreload/gate/status"))
        path.write_text(base.replace("min_score: 0.5}", "min_score: 0.8}\n  more_faces: {cameras: [gate], min_score: 0.3}"))
        assert app.reload()
        assert set(app.workers["face"].engine.rules) == {"faces", "more_faces"}
        assert app.workers["face"].engine.rules["faces"].min_score == 0.8
        processed = channel.processed
        wait_until(lambda: channel.processed >= processed + 10, 30, "frames after the reload")
        assert app.captures["gate"] is capture and capture.reconnects == 0 and capture.state.value == "streaming"
        time.sleep(0.3)
        after = subscriber.on("edge/rtspreload/gate/status")
        assert len(after) == statuses_before  # no connecting/online flap: the camera was not touched
    finally:
        app.stop()
