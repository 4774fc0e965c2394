"""The daemon's side of telemetry: one frozen ``Figures`` snapshot built from the running
objects (captures, workers, outbox, publisher, dispatcher, supervisor). ``edge.telemetry``
renders it and never sees a daemon object."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from edge import __version__
from edge.daemon.reload import rule_pairs
from edge.telemetry.figures import (
    ActionFigures,
    CameraFigures,
    EventCount,
    Figures,
    ModelFigures,
    MqttFigures,
    OutboxFigures,
)

if TYPE_CHECKING:
    from edge.daemon.app import Application


def build_figures(app: Application) -> Figures:
    now = time.monotonic()
    cfg = app.loaded.config
    cameras = []
    for name, capture in list(app.captures.items()):
        s, ch = capture.stats(), app.channels.get(name)
        state = "failed" if s.failed else s.state
        cameras.append(
            CameraFigures(
                name=name, state=state, frames_read=s.frames_read,
                frames_processed=ch.processed if ch else 0, frames_skipped=s.frames_skipped,
                frames_dropped=s.frames_dropped, reconnects=s.reconnects,
                restarts=app.supervisor.restarts("capture", name), last_frame_age=s.last_frame_age,
                events=ch.events if ch else 0, error=s.error, frames_gated=s.frames_gated,
            )
        )  # fmt: skip
    models, counts = [], {(c, r, t): 0 for r, c in rule_pairs(cfg) for t in ("new", "end")}
    for name, worker in list(app.workers.items()):
        st = worker.stats()
        models.append(
            ModelFigures(
                name=name, processed=st.processed, infer_ms_avg=st.infer_ms_avg,
                latency_counts=tuple(worker.latency_counts), latency_sum=worker.latency_sum,
                restarts=app.supervisor.restarts("worker", name),
            )
        )  # fmt: skip
        for key, n in dict(worker.event_counts).items():
            counts[key] = counts.get(key, 0) + n
    counts_total = {k: n + app.retired_event_counts.get(k, 0) for k, n in counts.items()}
    outbox = mqtt = None
    if app.outbox is not None:
        o = app.outbox.stats()
        outbox = OutboxFigures(
            o.depth, o.bytes, o.dropped, o.oldest_age, o.write_failures, o.corrupt_recovered
        )
    if app.publisher is not None:
        p = app.publisher
        mqtt = MqttFigures(p.status, p.connected.is_set(), p.sent, p.acked, p.resent)
    actions = ActionFigures(0, 0, (), 0)
    if app.dispatcher is not None:
        a = app.dispatcher.figures()
        commands = app.commands.figures() if app.commands is not None else None
        actions = ActionFigures(a.queue_depth, a.dropped, tuple(a.failures), a.files_removed, commands)
    problems = tuple(app.problems())
    return Figures(
        device=cfg.mqtt.device, version=__version__, ts=time.time(), uptime=max(now - app.started, 1e-6),
        cameras=tuple(cameras), models=tuple(models),
        events=tuple(EventCount(c, r, t, n) for (c, r, t), n in sorted(counts_total.items())),
        outbox=outbox, mqtt=mqtt, actions=actions, threads=app.supervisor.figures(),
        healthy=app.healthy(), problems=problems,
    )  # fmt: skip
