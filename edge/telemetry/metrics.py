"""Opt-in Prometheus endpoint on a loopback address.

Served by the standard library's ``ThreadingHTTPServer``: the figures already live in the
daemon's objects, so rendering the text format is a few lines and needs no extra dependency
(``prometheus-client`` would add a package and a second registry to keep in sync).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING

from edge.pipeline.worker import LATENCY_BUCKETS

if TYPE_CHECKING:
    from edge.daemon.app import Application

log = logging.getLogger("edge.metrics")
STATES = ("connecting", "streaming", "reconnecting", "stopped")


def _escape(value: str) -> str:
    """Label values: backslash, double quote and newline are escaped."""
    return value.replace("\\", r"\\").replace('"', r"\"").replace("\n", r"\n")


def _labels(**kv: str) -> str:
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in kv.items())
    return "{" + inner + "}" if inner else ""


def _family(name: str, kind: str, help_text: str, samples: Iterable[tuple[str, float]]) -> list[str]:
    lines = [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}"]
    lines += [
        f"{name}{labels} {value:g}" if isinstance(value, int) else f"{name}{labels} {value!r}"
        for labels, value in samples
    ]
    return lines


def render(app: Application) -> str:
    """The daemon's figures in the Prometheus text format (version 0.0.4)."""
    out: list[str] = []
    caps = {name: (cap.stats(), app.channels.get(name)) for name, cap in list(app.captures.items())}
    out += _family("edge_camera_frames_read_total", "counter", "Frames decoded from the source.",
                   [(_labels(camera=n), s.frames_read) for n, (s, _c) in caps.items()])  # fmt: skip
    out += _family("edge_camera_frames_processed_total", "counter", "Frames that went through inference.",
                   [(_labels(camera=n), c.processed if c else 0) for n, (_s, c) in caps.items()])  # fmt: skip
    out += _family("edge_camera_frames_dropped_total", "counter", "Frames overwritten before inference.",
                   [(_labels(camera=n), s.frames_dropped) for n, (s, _c) in caps.items()])  # fmt: skip
    out += _family("edge_camera_frames_skipped_total", "counter", "Frames skipped by the fps cap.",
                   [(_labels(camera=n), s.frames_skipped) for n, (s, _c) in caps.items()])  # fmt: skip
    out += _family("edge_camera_reconnects_total", "counter", "Times the source was reconnected.",
                   [(_labels(camera=n), s.reconnects) for n, (s, _c) in caps.items()])  # fmt: skip
    out += _family("edge_camera_last_frame_age_seconds", "gauge", "Seconds since the last frame was read.",
                   [(_labels(camera=n), float(s.last_frame_age)) for n, (s, _c) in caps.items()
                    if s.last_frame_age is not None])  # fmt: skip
    state_samples = [
        (_labels(camera=n, state=st), int(s.state == st)) for n, (s, _c) in caps.items() for st in STATES
    ]
    out += _family("edge_camera_state", "gauge", "1 for the camera's current state.", state_samples)
    name = "edge_inference_seconds"
    out += [f"# HELP {name} Inference latency per frame.", f"# TYPE {name} histogram"]
    events: list[tuple[str, float]] = []
    for model, worker in list(app.workers.items()):
        cumulative = 0
        for bound, count in zip((*LATENCY_BUCKETS, float("inf")), worker.latency_counts, strict=True):
            cumulative += count
            le = "+Inf" if bound == float("inf") else repr(bound)
            out.append(f"{name}_bucket{_labels(model=model, le=le)} {cumulative}")
        out.append(f"{name}_sum{_labels(model=model)} {worker.latency_sum!r}")
        out.append(f"{name}_count{_labels(model=model)} {sum(worker.latency_counts)}")
        events += [
            (_labels(camera=c, rule=r, type=t), n) for (c, r, t), n in sorted(worker.event_counts.items())
        ]
    out += _family("edge_rule_events_total", "counter", "Rule events by camera, rule and type.", events)
    if app.outbox is not None:
        stats = app.outbox.stats()
        out += _family("edge_outbox_depth", "gauge", "Events waiting for the broker.", [("", stats.depth)])
        out += _family("edge_outbox_bytes", "gauge", "Payload bytes waiting.", [("", stats.bytes)])
        out += _family("edge_outbox_dropped_total", "counter", "Events dropped because the outbox was full.",
                       [("", stats.dropped)])  # fmt: skip
    if app.publisher is not None:
        out += _family("edge_mqtt_connected", "gauge", "1 while connected to the broker.",
                       [("", int(app.publisher.connected.is_set()))])  # fmt: skip
    return "\n".join(out) + "\n"


class MetricsServer:
    def __init__(self, render_text: Callable[[], str], host: str, port: int) -> None:
        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                if self.path.split("?")[0] != "/metrics":
                    self.send_error(404, "only /metrics is served")
                    return
                body = render_text().encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                log.debug("metrics: " + format, *args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics", daemon=True)

    def start(self) -> None:
        self._thread.start()
        log.info("metrics on http://%s:%d/metrics", self._server.server_address[0], self.port)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
