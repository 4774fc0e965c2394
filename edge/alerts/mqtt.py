"""MQTT publisher (paho-mqtt 2) with the durable outbox behind it.

Topics under ``<prefix>/<device>/``: ``available`` (retained; LWT ``offline``, ``online`` on
every connect, ``stopped`` on clean shutdown), ``<camera>/status`` and ``<camera>/<rule>/state``
(retained, latest value, re-sent on every connect), ``stats`` (periodic) and ``events``
(QoS 1, from the outbox).

One sender thread is the only caller of ``client.publish``. It takes events from the outbox in
order, keeps at most ``max_in_flight`` unacknowledged, and deletes each from the outbox when
its PUBACK arrives. Message ids are registered right after ``publish`` returns, and PUBACKs
reach the sender through a queue, so an early acknowledgement can never be missed or credited
to another message. While the broker is away nothing is published: events wait on disk. After
a reconnect paho re-sends what was in flight; anything still unacknowledged after
``resend_after`` seconds is sent again from the outbox (same id: at-least-once).
"""

from __future__ import annotations

import logging
import queue
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import Alert
from edge.config.schema import MqttConfig

log = logging.getLogger("edge.mqtt")


@dataclass(frozen=True)
class _Latest:
    topic: str
    payload: bytes
    retain: bool


class MqttPublisher:
    def __init__(
        self,
        cfg: MqttConfig,
        outbox: OutboxStore,
        max_in_flight: int = 20,
        resend_after: float = 15.0,
    ) -> None:
        self.cfg = cfg
        self.outbox = outbox
        self.base = f"{cfg.prefix}/{cfg.device}"
        self.max_in_flight = max_in_flight
        self.resend_after = resend_after
        self.connected = threading.Event()
        self.status = "connecting"
        self.last_error: str | None = None
        self.sent = 0
        self.acked = 0
        self.resent = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._acks: queue.SimpleQueue[int] = queue.SimpleQueue()
        self._latest: dict[str, _Latest] = {}
        self._latest_dirty: set[str] = set()
        self._latest_lock = threading.Lock()
        self._announce = threading.Event()
        self._subscriptions: dict[str, Any] = {}
        self._inflight: dict[int, tuple[int, str, float]] = {}  # mid -> (outbox seq, id, sent at)
        self._connect_epoch = 0
        self._subs_lock = threading.Lock()
        self._last_seq = 0  # highest outbox seq handed to paho in this process
        self._epoch = 0  # the connection the sender last saw
        self._generation = outbox.generation
        self.sender_errors = 0
        self.sender_error: str | None = None
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)

        self._tombstones: set[str] = set()  # deleted retained topics: not re-created by late events
        self.client = self._make_client(cfg)

    def _make_client(self, cfg: MqttConfig) -> mqtt.Client:
        protocol = mqtt.MQTTv5 if cfg.protocol == "5" else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"edge-{cfg.device}", protocol=protocol)
        client.will_set(f"{self.base}/available", "offline", qos=1, retain=True)
        if cfg.username:
            client.username_pw_set(cfg.username, cfg.resolved_password())
        if cfg.tls is not None:
            client.tls_set(
                ca_certs=str(cfg.tls.ca_file) if cfg.tls.ca_file else None,
                certfile=str(cfg.tls.cert_file) if cfg.tls.cert_file else None,
                keyfile=str(cfg.tls.key_file) if cfg.tls.key_file else None,
                cert_reqs=ssl.CERT_REQUIRED,
            )
            client.tls_insecure_set(cfg.tls.insecure)
        client.max_inflight_messages_set(self.max_in_flight)
        client.reconnect_delay_set(cfg.reconnect.initial, cfg.reconnect.max)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_connect_fail = self._on_connect_fail
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    # -- lifecycle -------------------------------------------------------------------------

    def reconfigure(self, cfg: MqttConfig) -> None:
        """A reload that changes ``mqtt:``: the old connection ends first (cleanly, without
        ``stopped``), then a client with the new settings connects, so two clients with one id
        never fight. Latest values and the outbox carry over; events in flight are sent again
        from the outbox (same ids)."""
        self._stop.set()
        self._wake.set()
        self._thread.join(5)
        self._disconnect_cleanly()
        self.connected.clear()
        self._inflight.clear()
        while not self._acks.empty():
            self._acks.get_nowait()
        self._last_seq = 0
        base = f"{cfg.prefix}/{cfg.device}"
        if base != self.base:
            with self._latest_lock:
                self._latest.clear()
                self._latest_dirty.clear()
        self.cfg, self.base = cfg, base
        self.status = "connecting"
        self.client = self._make_client(cfg)
        self._stop.clear()
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self.start()

    def start(self) -> None:
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive)
        self.client.loop_start()
        self._thread.start()

    @property
    def sender_alive(self) -> bool:
        return self._thread.is_alive() or self._stop.is_set()

    def restart_sender(self) -> None:
        """The supervisor's call when the sender thread died: start a new one."""
        if self._thread.is_alive() or self._stop.is_set():
            return
        self._thread = threading.Thread(target=self._run, name="mqtt-sender", daemon=True)
        self._thread.start()

    def close(self, timeout: float = 5.0) -> int:
        """Send what the broker takes within ``timeout``, say ``stopped``, disconnect. Returns
        the number of events left in the outbox (sent on the next start)."""
        deadline = time.monotonic() + timeout
        while self.connected.is_set() and self.outbox.depth and time.monotonic() < deadline:
            if not self._thread.is_alive():
                break
            self._wake.set()
            time.sleep(0.02)
        self._stop.set()
        self._wake.set()
        self._thread.join(max(0.1, deadline - time.monotonic()) + 1)
        if self.connected.is_set():
            info = self.client.publish(f"{self.base}/available", "stopped", qos=1, retain=True)
            try:
                info.wait_for_publish(max(0.2, deadline - time.monotonic()))
            except (RuntimeError, ValueError):
                pass
        self._disconnect_cleanly()
        left = self.outbox.depth
        if left:
            log.warning("MQTT: %d event(s) kept in the outbox for the next start", left)
        return left

    def _disconnect_cleanly(self, timeout: float = 3.0) -> None:
        """Send DISCONNECT and let the network thread deliver it before stopping that thread:
        a connection dropped without it makes the broker publish the will (`offline`), which
        would land after a new client's `online` or a clean `stopped`."""
        was_connected = self.connected.is_set()
        self.client.disconnect()
        deadline = time.monotonic() + timeout
        while was_connected and self.connected.is_set() and time.monotonic() < deadline:
            time.sleep(0.01)
        self.client.loop_stop()

    # -- what other threads call -------------------------------------------------------------

    def enqueue(self, alert: Alert) -> None:
        """Durably store an event; the sender publishes it when it can."""
        self.outbox.put(alert)
        self._wake.set()

    def set_latest(self, topic: str, payload: str | bytes, retain: bool = True, revive: bool = False) -> None:
        """A latest-value message (status, state, stats): published now if connected, and the
        latest value of every retained topic again on each reconnect. A topic deleted with
        ``clear_retained`` stays deleted unless ``revive`` (a rule added back by a reload)."""
        data = payload.encode() if isinstance(payload, str) else payload
        with self._latest_lock:
            if topic in self._tombstones:
                if not revive:
                    return
                self._tombstones.discard(topic)
            self._latest[topic] = _Latest(topic, data, retain)
            self._latest_dirty.add(topic)
        self._wake.set()

    def clear_retained(self, topic: str) -> None:
        """Delete a retained topic from the broker (an empty retained message); later values
        for it (an ``end`` still on its way) are ignored."""
        self.set_latest(topic, b"", revive=True)
        with self._latest_lock:
            self._tombstones.add(topic)

    def set_status(self, camera: str, status: str) -> None:
        self.set_latest(f"{self.base}/{camera}/status", status)

    def subscribe(self, topic: str, handler: Any) -> None:
        """``handler(topic, payload)`` is called from paho's thread; (re)subscribed on connect."""
        with self._subs_lock:
            self._subscriptions[topic] = handler
        if self.connected.is_set():
            self.client.subscribe(topic, qos=1)

    def events_topic(self) -> str:
        return f"{self.base}/events"

    # -- paho callbacks (network thread): record and wake the sender ---------------------

    def _on_connect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        if reason.is_failure:
            self.last_error = str(reason)
            log.error(
                "MQTT %s:%s refused the connection: %s (events stay in the outbox)",
                self.cfg.host, self.cfg.port, reason,
            )  # fmt: skip
            self.status = f"refused: {reason}"  # after the log line: watchers see both
            return
        self.status = "connected"
        self.last_error = None
        log.info("MQTT connected to %s:%s", self.cfg.host, self.cfg.port)
        with self._subs_lock:
            topics = list(self._subscriptions)
        for topic in topics:
            client.subscribe(topic, qos=1)
        self._connect_epoch += 1
        self.connected.set()
        self._announce.set()
        self._wake.set()

    def _on_connect_fail(self, client: mqtt.Client, userdata: Any) -> None:
        if self.status != "unreachable":  # paho does not say why; find out once per failure streak
            self.last_error = diagnose_connection(self.cfg)
            log.warning(
                "MQTT cannot connect to %s:%s: %s; retrying, events stay in the outbox",
                self.cfg.host, self.cfg.port, self.last_error,
            )  # fmt: skip
        self.status = "unreachable"  # after the cause is known and logged

    def _on_disconnect(
        self, client: mqtt.Client, userdata: Any, flags: Any, reason: ReasonCode, props: Properties | None
    ) -> None:
        was = self.connected.is_set()
        self.connected.clear()
        if was and reason.value != 0:
            self.status = "disconnected"
            log.warning("MQTT lost %s:%s: %s; reconnecting", self.cfg.host, self.cfg.port, reason)

    def _on_publish(
        self, client: mqtt.Client, userdata: Any, mid: int, reason: ReasonCode, props: Properties | None
    ) -> None:
        self._acks.put(mid)
        self._wake.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        with self._subs_lock:
            handlers = list(self._subscriptions.items())
        for pattern, handler in handlers:
            if mqtt.topic_matches_sub(pattern, msg.topic):
                try:
                    handler(msg.topic, msg.payload)
                except Exception:
                    log.exception("handler for %s failed", msg.topic)

    # -- the sender thread ---------------------------------------------------------------

    def _run(self) -> None:
        """The sender loop; an error (a failing disk, a bug) is logged once per streak and the
        loop goes on, so events are never left waiting behind a dead thread."""
        failing = False
        while not self._stop.is_set():
            self._wake.wait(0.5)
            self._wake.clear()
            try:
                self._step()
            except Exception as exc:
                self.sender_errors += 1
                self.sender_error = f"{type(exc).__name__}: {exc}"
                if not failing:
                    log.exception("MQTT sender: %s; retrying (events stay in the outbox)", self.sender_error)
                failing = True
                self._stop.wait(1.0)
            else:
                if failing:
                    log.warning("MQTT sender: working again")
                failing = False
                self.sender_error = None

    def _step(self) -> None:
        self._drain_acks()
        if not self.connected.is_set():
            return
        if self._announce.is_set():
            self._announce.clear()
            # Retained values first (a rule left `on` by a crash is reset to `off` before
            # subscribers see `online`), then the availability.
            with self._latest_lock:
                self._latest_dirty = {t for t, m in self._latest.items() if m.retain}
            self._publish_latest()
            self._publish_other(f"{self.base}/available", b"online", retain=True)
        if self._generation != self.outbox.generation:  # rows renumbered: read from the start
            self._generation = self.outbox.generation
            self._last_seq = 0
        if self._epoch != self._connect_epoch:
            self._epoch = self._connect_epoch
            reconnected_at = time.monotonic()
            # paho re-sends what was in flight; give it `resend_after`, then resend ourselves.
            self._inflight = {m: (s, i, reconnected_at) for m, (s, i, _t) in self._inflight.items()}
        self._publish_latest()
        self._last_seq = self._resend_stale(self._last_seq)
        room = self.max_in_flight - len(self._inflight)
        if room <= 0:
            return
        rows = self.outbox.pending(room, after_seq=self._last_seq)
        for row in rows:
            if not self.connected.is_set():
                break
            info = self.client.publish(
                row.alert.topic, row.alert.payload, qos=row.alert.qos, retain=row.alert.retain
            )
            self._inflight[info.mid] = (row.seq, row.alert.id, time.monotonic())
            self.sent += 1
            self._last_seq = row.seq
        if rows:
            self._wake.set()  # more may be waiting
        self._drain_acks()

    def _drain_acks(self) -> None:
        while True:
            try:
                mid = self._acks.get_nowait()
            except queue.Empty:
                return
            entry = self._inflight.pop(mid, None)
            if entry is not None:  # other ids are status/state/stats messages: nothing to do
                self.outbox.ack(entry[0], entry[1])
                self.acked += 1

    def _resend_stale(self, last_seq: int) -> int:
        now = time.monotonic()
        stale = [m for m, (_s, _i, t) in self._inflight.items() if now - t > self.resend_after]
        if not stale:
            return last_seq
        seqs = sorted(self._inflight[m][0] for m in stale)
        for m in stale:
            del self._inflight[m]
        self.resent += len(seqs)
        log.warning(
            "MQTT: %d event(s) unacknowledged for %.0f s; sending them again", len(seqs), self.resend_after
        )
        return min(last_seq, seqs[0] - 1)

    def _publish_other(self, topic: str, payload: bytes, retain: bool) -> None:
        self.client.publish(topic, payload, qos=1, retain=retain)

    def _publish_latest(self) -> None:
        with self._latest_lock:
            dirty = [self._latest[t] for t in self._latest_dirty]
            self._latest_dirty.clear()
        for msg in dirty:
            self._publish_other(msg.topic, msg.payload, msg.retain)
        cleared = [m.topic for m in dirty if m.retain and not m.payload]
        if cleared:  # an empty retained message deletes the topic: once is enough
            with self._latest_lock:
                for topic in cleared:
                    if not self._latest[topic].payload and topic not in self._latest_dirty:
                        del self._latest[topic]


def diagnose_connection(cfg: MqttConfig, timeout: float = 3.0) -> str:
    """Why a connection fails: a TCP connect and, with TLS, a handshake using the same settings."""
    try:
        raw = socket.create_connection((cfg.host, cfg.port), timeout=timeout)
    except OSError as exc:
        return f"network: {exc.strerror or exc}"
    with raw:
        if cfg.tls is None:
            return "the broker closed the connection"
        try:
            context = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
            if cfg.tls.cert_file:
                context.load_cert_chain(
                    str(cfg.tls.cert_file), str(cfg.tls.key_file) if cfg.tls.key_file else None
                )
            if cfg.tls.insecure:
                context.check_hostname = False
            with context.wrap_socket(raw, server_hostname=cfg.host):
                return "TLS handshake succeeds now; the broker refused or dropped the MQTT session"
        except ssl.SSLCertVerificationError as exc:
            return f"certificate rejected: {exc.verify_message} (check tls.ca_file and the broker's name)"
        except (ssl.SSLError, OSError) as exc:
            return f"TLS failed: {exc}"
