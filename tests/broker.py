"""A real Mosquitto broker for tests (Debian package ``mosquitto``), and a subscriber that
records what it receives."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Broker:
    """``persistent``: sessions and queued messages are saved (every second and on SIGTERM), so a
    subscriber with a persistent session misses nothing across a broker restart."""

    folder: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None
    persistent: bool = False
    extra: str = ""

    def start(self) -> Broker:
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        conf = self.folder / "mosquitto.conf"
        lines = [f"listener {self.port} 127.0.0.1"]
        if os.geteuid() == 0:
            lines.append("user root")  # else it drops to 'mosquitto' and cannot write our tmp files
        if self.extra:
            lines.append(self.extra)
        else:
            lines.append("allow_anonymous true")
        if self.persistent:
            lines += ["persistence true", f"persistence_location {self.folder}/", "autosave_interval 1"]
        else:
            lines.append("persistence false")
        conf.write_text("\n".join(lines) + "\n")
        self.proc = subprocess.Popen([binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(sig)
            self.proc.wait(10)
            self.proc = None


class Subscriber:
    """Subscribes to ``topic`` and keeps (topic, payload, retain) in arrival order."""

    def __init__(self, port: int, topic: str = "#", persistent_id: str | None = None) -> None:
        self.messages: list[tuple[str, bytes, bool]] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        if persistent_id:  # a persistent session: the broker queues QoS 1 messages while we are away
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=persistent_id, clean_session=False)
        else:
            self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-{time.monotonic_ns()}")
        self.client.reconnect_delay_set(1, 1)
        self.client.on_connect = lambda c, *_: (c.subscribe(topic, qos=1), None)[1]
        self.client.on_subscribe = lambda *_: self._ready.set()
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        if not self._ready.wait(10):
            raise RuntimeError("subscriber did not subscribe")

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((msg.topic, msg.payload, bool(msg.retain)))

    def on(self, topic: str) -> list[bytes]:
        with self._lock:
            return [p for t, p, _ in self.messages if t == topic]

    def wait_for(self, topic: str, count: int, timeout: float = 30.0) -> list[bytes]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            got = self.on(topic)
            if len(got) >= count:
                return got
            time.sleep(0.05)
        return self.on(topic)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()
