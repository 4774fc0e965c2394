"""Telemetry: one Figures snapshot, built by hand, rendered as the status line, the MQTT stats
payload (validated against stats.v1.json) and Prometheus text from a real running MetricsServer."""

from __future__ import annotations

import contextlib
import itertools
import json
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

import edge
from edge.errors import EdgeError
from edge.telemetry.figures import (
    LATENCY_BUCKETS,
    ActionFigures,
    CameraFigures,
    EventCount,
    Figures,
    ModelFigures,
    MqttFigures,
    OutboxFigures,
    ThreadFigures,
)
from edge.telemetry.metrics import MetricsServer
from edge.telemetry.render import stats_payload, status_line

SCHEMA = json.loads((Path(edge.__file__).parent / "alerts/schemas/stats.v1.json").read_text())
BIG = 1234567  # written as 1.23457e+06 by the old hand-made exposition


def camera(name: str = "door", **kw: Any) -> CameraFigures:
    base = CameraFigures(
        name=name, state="streaming", frames_read=BIG, frames_processed=1200, frames_skipped=3,
        frames_dropped=4, reconnects=1, restarts=0, last_frame_age=0.0421, events=2, error=None,
    )  # fmt: skip
    return replace(base, **kw)


def model(name: str = "p", counts: tuple[int, ...] = (0, 2, 5, 1, 0, 0, 0, 0, 0, 0, 0, 1)) -> ModelFigures:
    return ModelFigures(name, processed=1900, infer_ms_avg=4.25, latency_counts=counts,
                        latency_sum=3.5, restarts=0)  # fmt: skip


def figures(**kw: Any) -> Figures:
    base = Figures(
        device="dev1", version="9.8.7", ts=1_700_000_000.25, uptime=100.0,
        cameras=(camera("door"), camera("gate", state="reconnecting", last_frame_age=None, frames_read=7, frames_processed=700)),
        models=(model(),),
        events=(EventCount("door", "zone", "new", 0), EventCount("door", "zone", "end", 0),
                EventCount("gate", "zone", "new", 3), EventCount("gate", "zone", "end", 2)),
        outbox=OutboxFigures(depth=2, bytes=512, dropped=0, oldest_age=12.34, write_failures=1,
                             corrupt_recovered=0),
        mqtt=MqttFigures(status="connected", connected=True, sent=10, acked=9, resent=1),
        actions=ActionFigures(queue_depth=0, dropped=0, failures=(("snapshot", 2), ("mqtt", 0)),
                              files_removed=5),
        threads=(ThreadFigures("capture-door", "capture", True, 0, None),
                 ThreadFigures("worker-p", "worker", True, 1, "RuntimeError: boom")),
        healthy=True, problems=(),
    )  # fmt: skip
    return replace(base, **kw)


# -- construction ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("build", "raises"),
    [
        (lambda: camera(state="failed"), contextlib.nullcontext()),
        (lambda: camera(state="online"), pytest.raises(ValueError, match=r"door: state 'online', expected")),
        (lambda: model(counts=(0,) * (len(LATENCY_BUCKETS) + 1)), contextlib.nullcontext()),
        (lambda: model(counts=(1, 2)), pytest.raises(ValueError, match="has 2 buckets, expected 12")),
    ],
)
def test_figures_are_validated_on_construction(build: Any, raises: Any) -> None:
    with raises:
        build()


# -- status line -------------------------------------------------------------------------------

UNHEALTHY = (
    "camera door: capture thread died 3 times: ValueError: bad\nframe",
    "worker p: no progress for 40 s",
)


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({}, "1/2 camera(s) streaming, 19.0 fps processed, outbox 2"),
        ({"outbox": None, "mqtt": None}, "1/2 camera(s) streaming, 19.0 fps processed"),
        (
            {"cameras": (), "models": (), "uptime": 0.0},
            "0/0 camera(s) streaming, 0.0 fps processed, outbox 2",
        ),
        (
            {"healthy": False, "problems": UNHEALTHY},
            "1/2 camera(s) streaming, 19.0 fps processed, outbox 2; PROBLEM: camera door: capture thread died "
            "3 times: ValueError: bad frame; worker p: no progress for 40 s",
        ),
        (
            {"healthy": False, "problems": ()},
            "1/2 camera(s) streaming, 19.0 fps processed, outbox 2; PROBLEM: unhealthy",
        ),
        (
            {"healthy": False, "problems": ("a", "b", "c", "d", "e")},
            "1/2 camera(s) streaming, 19.0 fps processed, outbox 2; PROBLEM: a; b; c; (+2 more)",
        ),
        (
            {"healthy": False, "problems": ("x" * 500,)},
            "1/2 camera(s) streaming, 19.0 fps processed, outbox 2; PROBLEM: " + "x" * 119 + "…",
        ),
    ],
)
def test_status_line(changes: dict[str, Any], expected: str) -> None:
    assert status_line(figures(**changes)) == expected


# -- stats payload -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "changes",
    [
        {},
        {"outbox": None, "mqtt": None},
        {"cameras": (), "models": (), "events": (), "threads": (), "uptime": 0.0},
        {"healthy": False, "problems": UNHEALTHY},
        {
            "cameras": (
                camera(state="failed", error="capture thread died 3 times: ValueError: x", restarts=3),
            )
        },
        {"outbox": OutboxFigures(0, 0, 0, None, 0, 0)},
    ],
)
def test_stats_payload_validates_against_the_schema(changes: dict[str, Any]) -> None:
    payload = stats_payload(figures(**changes))
    jsonschema.validate(json.loads(json.dumps(payload)), SCHEMA)


def test_stats_payload_keeps_the_old_keys_and_adds_the_new() -> None:
    p = stats_payload(figures())
    assert p["schema"] == 1 and p["device"] == "dev1" and p["uptime"] == 100.0
    assert p["ts"] == "2023-11-14T22:13:20.250Z"
    assert p["cameras"]["door"] == {
        "state": "streaming", "frames_read": BIG, "processed": 1200, "fps_in": 12345.67, "fps_processed": 12.0,
        "skipped": 3, "gated": 0, "dropped": 4, "reconnects": 1, "restarts": 0, "last_frame_age": 0.042,
        "events": 2, "error": None,
    }  # fmt: skip
    assert p["cameras"]["gate"]["last_frame_age"] is None
    assert p["models"] == {"p": {"inference_ms": 4.25, "processed": 1900, "restarts": 0}}
    assert p["outbox"] == {"depth": 2, "bytes": 512, "dropped": 0, "oldest_age": 12.3, "write_failures": 1,
                           "corrupt_recovered": 0}  # fmt: skip
    assert p["mqtt"] == {"status": "connected", "connected": True, "sent": 10, "acked": 9, "resent": 1}
    assert p["actions"] == {
        "queue_depth": 0,
        "dropped": 0,
        "failures": {"snapshot": 2, "mqtt": 0},
        "files_removed": 5,
    }
    assert p["threads"][1] == {"name": "worker-p", "kind": "worker", "alive": True, "restarts": 1,
                               "last_error": "RuntimeError: boom"}  # fmt: skip
    assert p["healthy"] is True and p["problems"] == []


# -- Prometheus, through a real server ---------------------------------------------------------


@contextlib.contextmanager
def serving(f: Figures) -> Iterator[MetricsServer]:
    server = MetricsServer(lambda: f, "127.0.0.1", 0)
    server.start()
    try:
        yield server
    finally:
        server.close()


def get(server: MetricsServer, path: str = "/metrics") -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{server.port}{path}", timeout=10) as resp:
        return str(resp.read().decode())


def scrape(f: Figures) -> tuple[dict[str, Metric], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    with serving(f) as server:
        body = get(server)
    families = {m.name: m for m in text_string_to_metric_families(body)}
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value for m in families.values() for s in m.samples
    }
    return families, samples


@pytest.fixture(scope="module")
def scraped() -> tuple[dict[str, Metric], dict[tuple[str, tuple[tuple[str, str], ...]], float]]:
    return scrape(figures())


def door(**extra: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted({"camera": "door", **extra}.items()))


@pytest.mark.parametrize(
    ("name", "labels", "value"),
    [
        ("edge_camera_frames_read_total", door(), BIG),  # exact, not 1.23457e+06
        ("edge_camera_frames_processed_total", door(), 1200),
        ("edge_camera_frames_skipped_total", door(), 3),
        ("edge_camera_frames_dropped_total", door(), 4),
        ("edge_camera_reconnects_total", door(), 1),
        ("edge_camera_restarts_total", door(), 0),
        ("edge_camera_last_frame_age_seconds", door(), 0.0421),
        ("edge_camera_state", door(state="streaming"), 1),
        ("edge_camera_state", door(state="failed"), 0),
        ("edge_camera_state", (("camera", "gate"), ("state", "reconnecting")), 1),
        ("edge_rule_events_total", door(rule="zone", type="new"), 0),  # listed before any event
        ("edge_rule_events_total", door(rule="zone", type="end"), 0),
        ("edge_rule_events_total", (("camera", "gate"), ("rule", "zone"), ("type", "new")), 3),
        ("edge_outbox_depth", (), 2),
        ("edge_outbox_bytes", (), 512),
        ("edge_outbox_dropped_total", (), 0),
        ("edge_outbox_oldest_age_seconds", (), 12.34),
        ("edge_outbox_write_failures_total", (), 1),
        ("edge_mqtt_connected", (), 1),
        ("edge_mqtt_sent_total", (), 10),
        ("edge_mqtt_acked_total", (), 9),
        ("edge_mqtt_resent_total", (), 1),
        ("edge_actions_dropped_total", (), 0),
        ("edge_action_failures_total", (("action", "snapshot"),), 2),
        ("edge_retention_files_removed_total", (), 5),
        ("edge_thread_restarts_total", (("kind", "worker"), ("thread", "worker-p")), 1),
        ("edge_thread_alive", (("kind", "capture"), ("thread", "capture-door")), 1),
        ("edge_healthy", (), 1),
        ("edge_build_info", (("version", "9.8.7"),), 1),
    ],
)
def test_metric_values(scraped: Any, name: str, labels: tuple[tuple[str, str], ...], value: float) -> None:
    _families, samples = scraped
    assert samples[(name, labels)] == value


def test_no_age_sample_for_a_camera_without_frames(scraped: Any) -> None:
    _families, samples = scraped
    assert ("edge_camera_last_frame_age_seconds", (("camera", "gate"),)) not in samples


def test_histogram_is_cumulative_and_matches_count_and_sum(scraped: Any) -> None:
    families, _samples = scraped
    hist = families["edge_inference_seconds"]
    assert hist.type == "histogram"
    buckets = [(s.labels["le"], s.value) for s in hist.samples if s.name.endswith("_bucket")]
    counts = model().latency_counts
    assert [le for le, _v in buckets] == [*(str(b) for b in LATENCY_BUCKETS), "+Inf"]
    assert [v for _le, v in buckets] == [sum(counts[: i + 1]) for i in range(len(counts))]
    assert all(a <= b for (_x, a), (_y, b) in itertools.pairwise(buckets))
    by_name = {s.name: s.value for s in hist.samples}
    assert by_name["edge_inference_seconds_count"] == buckets[-1][1] == sum(counts)
    assert by_name["edge_inference_seconds_sum"] == 3.5


def test_process_metrics_are_served(scraped: Any) -> None:
    families, _samples = scraped
    assert {"process_cpu_seconds", "process_resident_memory_bytes", "process_open_fds"} <= families.keys()


@pytest.mark.parametrize(
    ("changes", "present", "absent"),
    [
        ({"outbox": None, "mqtt": None}, [], ["edge_outbox_depth", "edge_mqtt_connected"]),
        ({"outbox": OutboxFigures(0, 0, 0, None, 0, 0)}, [("edge_outbox_oldest_age_seconds", 0)], []),
        ({"healthy": False, "problems": UNHEALTHY}, [("edge_healthy", 0)], []),
        ({"cameras": (camera(name='we"ird\\cam\n'),)}, [], []),  # escaped by prometheus_client, parses back
    ],
)
def test_metric_variants(
    changes: dict[str, Any], present: list[tuple[str, float]], absent: list[str]
) -> None:
    families, samples = scrape(figures(**changes))
    for name, value in present:
        assert samples[(name, ())] == value
    for name in absent:
        assert name not in families
    for c in changes.get("cameras", ()):
        assert samples[("edge_camera_frames_read_total", (("camera", c.name),))] == c.frames_read


def test_only_metrics_is_served_and_a_failing_snapshot_is_a_500() -> None:
    with serving(figures()) as server, pytest.raises(urllib.error.HTTPError) as err:
        get(server, "/")
    assert err.value.code == 404

    def broken() -> Figures:
        raise RuntimeError("snapshot failed")

    server = MetricsServer(broken, "127.0.0.1", 0)
    server.start()
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            get(server)
        assert err.value.code == 500
    finally:
        server.close()
    server.close()  # twice is fine


@pytest.mark.parametrize(
    ("host", "match"),
    [
        ("127.0.0.1", r"^metrics: cannot listen on 127\.0\.0\.1:\d+: Address already in use$"),
        ("192.0.2.1", r"^metrics: cannot listen on 192\.0\.2\.1:\d+: Cannot assign requested address$"),
        ("no-such-host.invalid", r"^metrics: cannot listen on no-such-host\.invalid:\d+: .+$"),
    ],
)
def test_unbindable_address_is_a_one_line_error(host: str, match: str) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(EdgeError, match=match) as err:
            MetricsServer(figures, host, port)
    assert "\n" not in str(err.value)


def test_close_without_start_releases_the_port() -> None:
    server = MetricsServer(figures, "127.0.0.1", 0)
    server.close()
    MetricsServer(figures, "127.0.0.1", server.port).close()


def test_telemetry_does_not_import_the_daemon() -> None:
    code = (
        "import sys, edge.telemetry.metrics, edge.telemetry.render, edge.telemetry.figures; "
        "print(sorted(m for m in sys.modules if m.startswith('edge.daemon')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
