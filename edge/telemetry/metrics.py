"""Opt-in Prometheus endpoint: the figures snapshot through ``prometheus_client``.

``EdgeCollector`` turns one ``Figures`` (taken by the daemon at scrape time through
``get_figures``) into metric families; it sits in its own ``CollectorRegistry`` next to the
process metrics, never in the library's global registry. ``prometheus_client`` writes the text
format (escaping, histogram suffixes, exact integers), so this module only names the figures.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Callable, Iterable, Iterator
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer

from prometheus_client import CollectorRegistry, ProcessCollector, make_wsgi_app
from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from edge.errors import EdgeError
from edge.telemetry.figures import CAMERA_STATES, LATENCY_BUCKETS, CameraFigures, Figures

log = logging.getLogger("edge.metrics")

WsgiApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def _camera_counters(cameras: tuple[CameraFigures, ...]) -> Iterator[Metric]:
    per_camera: list[tuple[str, str, Callable[[CameraFigures], int]]] = [
        ("edge_camera_frames_read", "Frames decoded from the source.", lambda c: c.frames_read),
        ("edge_camera_frames_processed", "Frames through tracking and rules.", lambda c: c.frames_processed),
        ("edge_camera_frames_dropped", "Frames overwritten before inference.", lambda c: c.frames_dropped),
        ("edge_camera_frames_skipped", "Frames skipped by the fps cap.", lambda c: c.frames_skipped),
        (
            "edge_camera_frames_gated",
            "Frames without inference (motion gating).",
            lambda c: c.frames_gated,
        ),
        ("edge_camera_reconnects", "Times the source was reconnected.", lambda c: c.reconnects),
        ("edge_camera_restarts", "Times the capture thread died and was restarted.", lambda c: c.restarts),
    ]
    for name, help_text, value in per_camera:
        counter = CounterMetricFamily(name, help_text, labels=["camera"])
        for c in cameras:
            counter.add_metric([c.name], value(c))
        yield counter
    age = GaugeMetricFamily(
        "edge_camera_last_frame_age_seconds", "Seconds since the last frame was read.", labels=["camera"]
    )
    for c in cameras:
        if c.last_frame_age is not None:  # no frame yet: no sample rather than a made-up age
            age.add_metric([c.name], c.last_frame_age)
    yield age
    state = GaugeMetricFamily(
        "edge_camera_state", "1 for the camera's current state.", labels=["camera", "state"]
    )
    for c in cameras:
        for s in CAMERA_STATES:
            state.add_metric([c.name, s], int(c.state == s))
    yield state


def _inference(f: Figures) -> Iterator[Metric]:
    hist = HistogramMetricFamily("edge_inference_seconds", "Inference latency per frame.", labels=["model"])
    bounds = (*LATENCY_BUCKETS, float("inf"))
    for m in f.models:
        cumulative, buckets = 0, []
        for bound, count in zip(bounds, m.latency_counts, strict=True):
            cumulative += count
            buckets.append(("+Inf" if math.isinf(bound) else repr(bound), float(cumulative)))
        hist.add_metric([m.name], buckets, m.latency_sum)
    yield hist
    events = CounterMetricFamily(
        "edge_rule_events", "Rule events by camera, rule and type.", labels=["camera", "rule", "type"]
    )
    for e in f.events:
        events.add_metric([e.camera, e.rule, e.type], e.count)
    yield events


def _outbox_mqtt(f: Figures) -> Iterator[Metric]:
    if f.outbox is not None:
        o = f.outbox
        yield GaugeMetricFamily("edge_outbox_depth", "Events waiting for the broker.", value=o.depth)
        yield GaugeMetricFamily("edge_outbox_bytes", "Payload bytes waiting.", value=o.bytes)
        yield GaugeMetricFamily(
            "edge_outbox_oldest_age_seconds",
            "Age of the oldest waiting event; 0 when nothing waits.",
            value=o.oldest_age or 0.0,
        )
        yield CounterMetricFamily(
            "edge_outbox_dropped", "Events dropped because the outbox was full.", value=o.dropped
        )
        yield CounterMetricFamily(
            "edge_outbox_write_failures", "Events the outbox failed to store.", value=o.write_failures
        )
        yield CounterMetricFamily(
            "edge_outbox_corrupt_recovered",
            "Times a corrupt outbox database was set aside and started afresh.",
            value=o.corrupt_recovered,
        )
    if f.mqtt is not None:
        m = f.mqtt
        yield GaugeMetricFamily(
            "edge_mqtt_connected", "1 while connected to the broker.", value=int(m.connected)
        )
        yield CounterMetricFamily("edge_mqtt_sent", "Events published to the broker.", value=m.sent)
        yield CounterMetricFamily("edge_mqtt_acked", "Events the broker acknowledged.", value=m.acked)
        yield CounterMetricFamily(
            "edge_mqtt_resent", "Events published again because no acknowledgement came.", value=m.resent
        )


def _actions_threads(f: Figures) -> Iterator[Metric]:
    a = f.actions
    yield GaugeMetricFamily(
        "edge_actions_queue_depth", "Events waiting for the actions.", value=a.queue_depth
    )
    yield CounterMetricFamily(
        "edge_actions_dropped", "Events dropped because the action queue was full.", value=a.dropped
    )
    failures = CounterMetricFamily("edge_action_failures", "Failures per action.", labels=["action"])
    for action, count in a.failures:
        failures.add_metric([action], count)
    yield failures
    if a.commands is not None:
        runs = CounterMetricFamily("edge_command_runs", "Rule commands by outcome.", labels=["outcome"])
        for outcome in ("succeeded", "failed", "timed_out", "dropped"):
            runs.add_metric([outcome], getattr(a.commands, outcome))
        yield runs
        codes = CounterMetricFamily("edge_command_exit_codes", "Rule command exit codes.", labels=["code"])
        for code, n in a.commands.exit_codes:
            codes.add_metric([str(code)], n)
        yield codes
    yield CounterMetricFamily(
        "edge_retention_files_removed",
        "Files removed by retention (rotated event logs, old snapshots).",
        value=a.files_removed,
    )
    restarts = CounterMetricFamily(
        "edge_thread_restarts", "Times a thread died and was restarted.", labels=["thread", "kind"]
    )
    alive = GaugeMetricFamily("edge_thread_alive", "1 while the thread runs.", labels=["thread", "kind"])
    for t in f.threads:
        restarts.add_metric([t.name, t.kind], t.restarts)
        alive.add_metric([t.name, t.kind], int(t.alive))
    yield restarts
    yield alive
    yield GaugeMetricFamily("edge_healthy", "1 while every part makes progress.", value=int(f.healthy))
    yield GaugeMetricFamily("edge_uptime_seconds", "Seconds since the daemon started.", value=f.uptime)
    yield InfoMetricFamily("edge_build", "The running edge version.", value={"version": f.version})


class EdgeCollector(Collector):
    """Every family is built from one snapshot per scrape, so the figures agree with each other."""

    def __init__(self, get_figures: Callable[[], Figures]) -> None:
        self._get_figures = get_figures

    def collect(self) -> Iterable[Metric]:
        f = self._get_figures()
        yield from _camera_counters(f.cameras)
        yield from _inference(f)
        yield from _outbox_mqtt(f)
        yield from _actions_threads(f)


def build_registry(get_figures: Callable[[], Figures]) -> CollectorRegistry:
    """A private registry: the edge figures and the process metrics (CPU, memory, open files)."""
    registry = CollectorRegistry()
    registry.register(EdgeCollector(get_figures))
    ProcessCollector(registry=registry)
    return registry


def _metrics_only(app: WsgiApp) -> WsgiApp:
    """404 for any path but /metrics; a snapshot that fails is logged and answered with a 500."""

    def serve(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"only /metrics is served\n"]
        try:
            return app(environ, start_response)
        except Exception:
            log.exception("metrics: could not collect the figures")
            start_response("500 Internal Server Error", [("Content-Type", "text/plain; charset=utf-8")])
            return [b"could not collect the figures; see the daemon's log\n"]

    return serve


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("metrics: " + format, *args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, family: socket.AddressFamily, address: tuple[str, int]) -> None:
        self.address_family = family
        super().__init__(address, _QuietHandler)


def _bind(host: str, port: int) -> _Server:
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        return _Server(family, (host, port))
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise EdgeError(f"metrics: cannot listen on {where}: {reason}") from None


class MetricsServer:
    """Serves ``/metrics`` on ``host:port`` from a daemon thread; ``port`` 0 picks a free port.

    The socket is bound here, so ``.port`` is known before ``start()``; a busy port or an address
    that cannot be bound raises ``EdgeError`` naming host:port and the system's reason.
    """

    def __init__(self, get_figures: Callable[[], Figures], host: str, port: int) -> None:
        self.registry = build_registry(get_figures)
        self._server = _bind(host, port)
        self._server.set_app(_metrics_only(make_wsgi_app(self.registry)))
        self.host = host
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)
        self._closed = False

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self.host, self.port)

    def close(self) -> None:
        """Stop serving and release the port; safe to call twice or without ``start()``."""
        if self._closed:
            return
        self._closed = True
        if self._thread.is_alive():  # shutdown() would wait forever for a loop that never ran
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
