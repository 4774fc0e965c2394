"""TLS and authentication against a real Mosquitto with a throwaway CA made by openssl: a
good setup delivers; a wrong password or an unknown CA is a clear status and log line, edge
keeps running, and the alerts stay in the outbox."""

from __future__ import annotations

import json
import logging
import os
import ssl
import subprocess
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from broker import Broker
from conftest import wait_until
from paho.mqtt.enums import CallbackAPIVersion

from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import Alert
from edge.config.schema import MqttConfig


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True)


def make_ca(folder: Path, name: str) -> tuple[Path, Path]:
    openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={name}",
            "-keyout", f"{name}.key", "-out", f"{name}.crt", cwd=folder)  # fmt: skip
    return folder / f"{name}.crt", folder / f"{name}.key"


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("pki")
    ca_crt, ca_key = make_ca(d, "test-ca")
    other_ca, _ = make_ca(d, "other-ca")
    (d / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=localhost", "-keyout", "server.key", "-out", "server.csr", cwd=d)
    openssl("x509", "-req", "-in", "server.csr", "-CA", str(ca_crt), "-CAkey", str(ca_key), "-CAcreateserial",
            "-days", "2", "-extfile", "san.cnf", "-out", "server.crt", cwd=d)  # fmt: skip
    os.chmod(d / "server.key", 0o600)
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(d / "passwd"), "edge", "right-password"], check=True)
    return {"ca": ca_crt, "other_ca": other_ca, "cert": d / "server.crt", "key": d / "server.key", "passwd": d / "passwd"}


@pytest.fixture
def tls_broker(pki: dict[str, Path], tmp_path: Path):  # type: ignore[no-untyped-def]
    extra = (f"cafile {pki['ca']}\ncertfile {pki['cert']}\nkeyfile {pki['key']}\n"
             f"password_file {pki['passwd']}\nallow_anonymous false")  # fmt: skip
    broker = Broker(tmp_path, extra=extra)
    broker.start()
    yield broker
    broker.stop()


def cfg(port: int, ca: Path, password: str, protocol: str = "5") -> MqttConfig:
    return MqttConfig.model_validate({
        "host": "127.0.0.1", "port": port, "device": "secure", "username": "edge", "password": password,
        "tls": {"ca_file": str(ca)}, "reconnect": {"initial": 0.2, "max": 1}, "protocol": protocol,
    })


def tls_subscriber(port: int, ca: Path) -> tuple[mqtt.Client, list[bytes]]:
    got: list[bytes] = []
    c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sec-sub-{time.monotonic_ns()}")
    c.username_pw_set("edge", "right-password")
    c.tls_set(ca_certs=str(ca), cert_reqs=ssl.CERT_REQUIRED)
    c.on_message = lambda _c, _u, m: got.append(m.payload)
    c.connect("127.0.0.1", port)
    c.subscribe("edge/secure/events", qos=1)
    c.loop_start()
    time.sleep(0.3)
    return c, got


def publish_one(pub: MqttPublisher, i: int = 1) -> Alert:
    a = Alert(f"{i:032x}", pub.events_topic(), json.dumps({"id": f"{i:032x}"}).encode())
    pub.enqueue(a)
    return a


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_tls_with_password_delivers(protocol: str, tls_broker: Broker, pki: dict[str, Path], tmp_path: Path) -> None:
    sub, got = tls_subscriber(tls_broker.port, pki["ca"])
    outbox = OutboxStore(tmp_path / "state")
    pub = MqttPublisher(cfg(tls_broker.port, pki["ca"], "right-password", protocol), outbox)
    pub.start()
    try:
        wait_until(pub.connected.is_set, 10, "the connection")
        a = publish_one(pub)
        wait_until(lambda: outbox.depth == 0 and len(got) == 1, 10, "the alert to arrive")
        assert json.loads(got[0])["id"] == a.id and pub.status == "connected"
    finally:
        pub.close(2)
        sub.loop_stop()


def rejected(port: int, ca: Path, password: str, tmp_path: Path) -> tuple[MqttPublisher, OutboxStore]:
    """A publisher with bad credentials or an untrusted CA, holding one alert."""
    outbox = OutboxStore(tmp_path / "state")
    pub = MqttPublisher(cfg(port, ca, password), outbox)
    pub.start()
    publish_one(pub)
    return pub, outbox


def test_wrong_password_is_a_clear_status_and_alerts_stay(
    tls_broker: Broker, pki: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pub, outbox = rejected(tls_broker.port, pki["ca"], "wrong-password", tmp_path)
    try:
        wait_until(lambda: pub.status.startswith("refused"), 10, "the refusal")
        assert "Not authorized" in pub.status or "Bad user name or password" in pub.status
        time.sleep(1.0)
        assert outbox.depth == 1 and not pub.connected.is_set()
        assert "refused the connection" in caplog.text and "events stay in the outbox" in caplog.text
        assert "wrong-password" not in caplog.text
    finally:
        pub.close(1)


def test_unknown_ca_is_a_clear_status_and_alerts_stay(
    tls_broker: Broker, pki: dict[str, Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    pub, outbox = rejected(tls_broker.port, pki["other_ca"], "right-password", tmp_path)
    try:
        wait_until(lambda: pub.status == "unreachable", 10, "the TLS failure")
        assert outbox.depth == 1 and not pub.connected.is_set()
        assert "certificate rejected: " in caplog.text and "check tls.ca_file" in caplog.text
        assert pub.last_error is not None and "certificate rejected" in pub.last_error
    finally:
        pub.close(1)
