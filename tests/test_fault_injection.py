"""Everything at once, as on a site nobody watches: a running edge (real model, a looping clip
and a real RTSP camera, a real broker, state on a small tmpfs) while the broker is stopped and
restarted, the RTSP server hangs (SIGSTOP) and resumes, a capture thread raises, the outbox is
locked by another process, the disk under state_dir fills and is freed, and 50 SIGHUPs
alternate two configs. At the end every event made was delivered (by id), no rule is muted,
no `new` dangles, one MQTT client was connected at a time, and threads and fds are flat."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from broker import Broker, Subscriber, free_port
from conftest import restore_signal_handlers, wait_until
from disks import fill, small_tmpfs
from test_rtsp_reconnect import RtspServer, require_gst_rtsp

from edge.alerts.actions import ActionDispatcher, EventEnvelope
from edge.alerts.outbox import OutboxStore
from edge.capture.sources import OpenCvSource
from edge.capture.thread import CameraState
from edge.config import load_config
from edge.daemon.app import Application
from edge.daemon.notify import Notifier
from edge.daemon.supervisor import Supervisor

ZONE = "[[0.55, 0.25], [0.95, 0.25], [0.95, 1.0], [0.55, 1.0]]"


def site_config(state: Path, clip: Path, broker_port: int, rtsp_port: int, variant: int) -> str:
    # The two variants differ in a rule (its state resets), in the live camera (restarted) and
    # in mqtt (a new connection each time).
    return f"""
state_dir: {state}
models: {{p: {{path: blazepose, runner: litert}}}}
cameras:
  c: {{source: {{type: file, path: "{clip}", loop: true}}, model: p}}
  live:
    source: {{type: rtsp, url: "rtsp://127.0.0.1:{rtsp_port}/cam", read_timeout: 2s, open_timeout: 3s}}
    model: p
    fps: {4 + variant}
    reconnect: {{initial: 0.5s, max: 2s}}
rules:
  zone: {{cameras: [c], labels: [person], min_score: {0.6 + variant / 100}, zone: {ZONE}, cooldown: 1s, clear_after: 1s}}
metrics: {{enabled: true, port: 0}}
mqtt:
  host: 127.0.0.1
  port: {broker_port}
  device: site
  keepalive: {5 + variant}
  reconnect: {{initial: 0.5s, max: 2s}}
"""


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    with small_tmpfs(tmp_path / "disk", "24m") as mount:
        yield mount


def open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.slow
def test_everything_at_once(models_dir: Path, demo_clip: Path, tmp_path: Path, small_disk: Path,
                            monkeypatch: pytest.MonkeyPatch) -> None:
    require_gst_rtsp()
    made: list[dict[str, object]] = []
    made_lock = threading.Lock()
    submit = ActionDispatcher.submit

    def recording_submit(self: ActionDispatcher, env: EventEnvelope, *a: object, **k: object) -> object:
        with made_lock:
            made.append(env.payload)
        return submit(self, env, *a, **k)  # type: ignore[arg-type]

    monkeypatch.setattr(ActionDispatcher, "submit", recording_submit)
    reads = {"n": 0, "raise_at": -1}
    real_read = OpenCvSource.read

    def read(self: OpenCvSource, into: object) -> object:
        reads["n"] += 1
        if reads["n"] == reads["raise_at"]:
            raise ValueError("injected: a frame the preprocessor cannot take")
        return real_read(self, into)  # type: ignore[arg-type]

    monkeypatch.setattr(OpenCvSource, "read", read)

    broker = Broker(tmp_path / "broker", persistent=True)
    (tmp_path / "broker").mkdir()
    broker.start()
    rtsp = RtspServer(free_port())
    rtsp.start()
    sub = Subscriber(broker.port, "edge/site/#", persistent_id="fault-injection-sub")
    state = small_disk / "state"
    cfg_path = tmp_path / "edge.yaml"
    configs = [site_config(state, demo_clip, broker.port, rtsp.port, v) for v in (0, 1)]
    cfg_path.write_text(configs[0])
    app = Application(load_config(cfg_path), notifier=Notifier({}), supervisor=Supervisor(initial=0.2))
    app.install_signal_handlers()
    app.start()
    runner = threading.Thread(target=app.run)
    runner.start()

    def news() -> int:
        with made_lock:
            return sum(p["type"] == "new" for p in made)

    try:
        wait_until(lambda: news() >= 1, 180, "a first event")
        # 1. A capture thread raises.
        reads["raise_at"] = reads["n"] + 20
        wait_until(lambda: app.supervisor.restarts("capture", "c") + app.supervisor.restarts("capture", "live") >= 1,
                   60, "a capture restarted")
        # 2. The broker goes away while events are made, then comes back.
        broker.stop(signal.SIGTERM)
        n = news()
        wait_until(lambda: news() >= n + 1, 120, "an event while the broker is away")
        broker.start()
        # 3. The RTSP server hangs, then resumes.
        rtsp.pause()
        wait_until(lambda: app.captures["live"].state is not CameraState.STREAMING, 30, "the hang noticed")
        rtsp.resume()
        wait_until(lambda: app.captures["live"].state is CameraState.STREAMING, 60, "the camera back")
        # 4. Another process holds the outbox's write lock for a while.
        lock = sqlite3.connect(state / OutboxStore.FILENAME, isolation_level=None, timeout=10)
        lock.execute("BEGIN EXCLUSIVE")
        n = news()
        wait_until(lambda: news() >= n + 1, 120, "an event while the outbox is locked")
        lock.execute("ROLLBACK")
        lock.close()
        # 5. The disk under state_dir fills, then is freed.
        filler = fill(small_disk)
        n = news()
        wait_until(lambda: news() >= n + 1, 120, "an event while the disk is full")
        filler.unlink()
        # 6. 50 reloads alternating two configs.
        time.sleep(1.0)
        threads_before, fds_before = threading.active_count(), open_fds()
        available_before = len(sub.on("edge/site/available"))
        scrapes = {"ok": 0, "failed": 0}
        scraping = threading.Event()

        def scrape() -> None:  # /metrics read all through the reloads: no dict changes size mid-read
            assert app.metrics is not None
            while not scraping.is_set():
                try:
                    urllib.request.urlopen(f"http://127.0.0.1:{app.metrics.port}/metrics", timeout=10).read()
                    scrapes["ok"] += 1
                except OSError:
                    scrapes["failed"] += 1

        scraper = threading.Thread(target=scrape)
        scraper.start()
        for i in range(50):
            cfg_path.write_text(configs[(i + 1) % 2])
            os.kill(os.getpid(), signal.SIGHUP)
            wait_until(app._signals.empty, 30, "the SIGHUP taken")
            time.sleep(0.05)
        scraping.set()
        scraper.join(30)
        assert scrapes["failed"] == 0 and scrapes["ok"] > 0, scrapes
        wait_until(lambda: app.captures.get("live") is not None and app.captures["live"].state is CameraState.STREAMING,
                   60, "the live camera streaming after the reloads")
        # No rule muted: events keep coming after the storm.
        n = news()
        wait_until(lambda: news() >= n + 2, 180, "new events after the reloads")
        time.sleep(2.0)
        threads_after, fds_after = threading.active_count(), open_fds()
        during_reloads = sub.on("edge/site/available")[available_before:]
        # Everything made is delivered before we stop.
        wait_until(lambda: app.outbox is not None and app.outbox.depth == 0, 120, "the outbox drained")
    finally:
        app._signals.put(signal.SIGTERM)
        runner.join(60)
        restore_signal_handlers()
        rtsp.kill()
    try:
        made_ids = {str(p["id"]) for p in made}
        wait_until(lambda: made_ids <= {json.loads(p)["id"] for p in sub.on("edge/site/events")}, 60,
                   "every event on MQTT")
        # No dangling `new`: per (camera, rule) events alternate and the last one is an `end`.
        by_pair: dict[tuple[str, str], list[str]] = {}
        for p in made:
            by_pair.setdefault((str(p["camera"]), str(p["rule"])), []).append(str(p["type"]))
        for pair, types in by_pair.items():
            assert all(a != b for a, b in itertools.pairwise(types)), (pair, types)
            assert types[0] == "new" and types[-1] == "end", (pair, types)
        # One client at a time: a second client with our id would have kicked the first, and the
        # broker would have published its will (`offline`); the old one says nothing at a reload.
        assert b"offline" not in during_reloads and b"stopped" not in during_reloads, during_reloads
        # No leak: not more than before (threads or fds of earlier tests may end meanwhile).
        assert threads_after <= threads_before + 2, (threads_before, threads_after)
        assert fds_after <= fds_before + 4, (fds_before, fds_after)
        print(f"events made {len(made)}, delivered all; threads {threads_before}->{threads_after}, "
              f"fds {fds_before}->{fds_after}")
    finally:
        sub.close()
        broker.stop()
