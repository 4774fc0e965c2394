"""MQTT publisher (paho-mqtt 2): LWT, retained availability and camera status, QoS 1 events.

Topics under ``<prefix>/<device>/``: ``available`` (retained; LWT ``offline``, ``online`` on
every connect, ``stopped`` on clean shutdown), ``<camera>/status`` (retained), ``events``.
While the broker is away paho keeps QoS 1 messages in memory and sends them after reconnect;
the durable outbox (next layer) replaces that memory with disk.
"""

from __future__ import annotations

import logging
import ssl
import threading
import time
from typing import Any, Protocol

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.alerts.payload import Alert
from edge.config.schema import MqttConfig

log = logging.getLogger("edge.mqtt")


class AlertPublisher(Protocol):
    def publish(self, alert: Alert) -> None: ...

    def set_status(self, camera: str, status: str) -> None: ...

    def close(self, timeout: float) -> None: ...


class MqttPublisher:
    def __init__(self, cfg: MqttConfig) -> None:
        self.cfg = cfg
        self.base = f"{cfg.prefix}/{cfg.device}"
        self.connected = threading.Event()
        self._lock = threading.Lock()
        self._status: dict[str, str] = {}
        self._unacked: set[int] = set()
        self.published = 0
        self.acked = 0
        protocol = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{cfg.device}", protocol=protocol)
        client.will_set(f"{self.base}/available", "offline", qos=1, retain=True)
        if cfg.username:
            password = cfg.password.get_secret_value() if cfg.password else None
            client.username_pw_set(cfg.username, password)
        if cfg.tls is not None:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(cfg.tls.insecure)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.reconnect_delay_set(1, 30)
        self.client = client

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            log.error("MQTT %s:%s refused the connection: %s", self.cfg.host, self.cfg.port, reason)
            return
        log.info("MQTT connected to %s:%s", self.cfg.host, self.cfg.port)
        client.publish(f"{self.base}/available", "online", qos=1, retain=True)
        with self._lock:
            statuses = dict(self._status)
        for camera, status in statuses.items():
            client.publish(f"{self.base}/{camera}/status", status, qos=1, retain=True)
        self.connected.set()

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        self.connected.clear()
        if reason.value != 0:
            log.warning(
                "MQTT disconnected from %s:%s: %s; reconnecting", self.cfg.host, self.cfg.port, reason
            )

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        with self._lock:
            if mid in self._unacked:
                self._unacked.discard(mid)
                self.acked += 1

    def publish(self, alert: Alert) -> None:
        with self._lock:
            info = self.client.publish(alert.topic, alert.payload, qos=alert.qos, retain=alert.retain)
            if alert.qos > 0:
                self._unacked.add(info.mid)
            self.published += 1

    def events_topic(self) -> str:
        return f"{self.base}/events"

    def set_status(self, camera: str, status: str) -> None:
        with self._lock:
            self._status[camera] = status
        self.client.publish(f"{self.base}/{camera}/status", status, qos=1, retain=True)

    @property
    def unacked(self) -> int:
        with self._lock:
            return len(self._unacked)

    def close(self, timeout: float = 5.0) -> None:
        """Wait up to ``timeout`` for unacknowledged events, say ``stopped``, disconnect."""
        deadline = time.monotonic() + timeout
        while self.unacked and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.02)
        if self.unacked:
            log.warning("MQTT: %d event(s) not acknowledged at shutdown", self.unacked)
        if self.connected.is_set():
            info = self.client.publish(f"{self.base}/available", "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.1, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self.client.disconnect()
        self.client.loop_stop()
