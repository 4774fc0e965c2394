"""The daemon's figures at one instant: a frozen snapshot that every renderer reads.

The daemon builds a ``Figures`` from its captures, workers, outbox, publisher and supervisor, then
hands it to the renderers in ``edge.telemetry.render`` (status line, MQTT ``stats``) and
``edge.telemetry.metrics`` (Prometheus). Nothing here knows the daemon: the snapshot is plain
values, so it can cross threads and be built by hand in tests.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.alerts.command import CommandFigures

# Upper bounds (seconds) of the inference latency histogram; the worker counts into them and
# ``ModelFigures.latency_counts`` holds one count per bound plus one for +Inf.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

CAMERA_STATES = ("connecting", "streaming", "reconnecting", "stopped", "failed")


@dataclass(frozen=True)
class CameraFigures:
    name: str
    state: str  # one of CAMERA_STATES
    frames_read: int
    frames_processed: int
    frames_skipped: int  # by the fps cap
    frames_dropped: int  # overwritten in the ring before inference took them
    reconnects: int
    restarts: int  # capture thread restarted by the supervisor after it died
    last_frame_age: float | None  # seconds; None before the first frame
    events: int
    error: str | None  # why the camera is failing, when it is
    frames_gated: int = 0  # no inference, the scene stood still (motion gating); looked-at ones are processed

    def __post_init__(self) -> None:
        if self.state not in CAMERA_STATES:
            raise ValueError(f"camera {self.name}: state {self.state!r}, expected one of {CAMERA_STATES}")


@dataclass(frozen=True)
class ModelFigures:
    name: str
    processed: int
    infer_ms_avg: float
    latency_counts: tuple[int, ...]  # NON-cumulative count per bucket of LATENCY_BUCKETS, +Inf last
    latency_sum: float  # seconds
    restarts: int

    def __post_init__(self) -> None:
        expected = len(LATENCY_BUCKETS) + 1
        if len(self.latency_counts) != expected:
            raise ValueError(
                f"model {self.name}: latency_counts has {len(self.latency_counts)} buckets, "
                f"expected {expected} (LATENCY_BUCKETS and +Inf)"
            )


@dataclass(frozen=True)
class EventCount:
    """Rule events so far; the daemon lists every (camera, rule, new|end) from the start, at 0."""

    camera: str
    rule: str
    type: str
    count: int


@dataclass(frozen=True)
class OutboxFigures:
    depth: int
    bytes: int
    dropped: int
    oldest_age: float | None  # seconds; None when empty
    write_failures: int
    corrupt_recovered: int


@dataclass(frozen=True)
class MqttFigures:
    status: str
    connected: bool
    sent: int
    acked: int
    resent: int


@dataclass(frozen=True)
class ActionFigures:
    queue_depth: int
    dropped: int  # events dropped because the action queue was full
    failures: tuple[tuple[str, int], ...]  # (action name, failures)
    files_removed: int  # retention: event log rotation, old snapshots
    commands: CommandFigures | None = None  # rule commands, when any rule has one


@dataclass(frozen=True)
class ThreadFigures:
    name: str
    kind: str  # capture, worker, actions, mqtt, ...
    alive: bool
    restarts: int
    last_error: str | None


@dataclass(frozen=True)
class Figures:
    device: str
    version: str
    ts: float  # UNIX time of the snapshot
    uptime: float  # seconds since the daemon started
    cameras: tuple[CameraFigures, ...]
    models: tuple[ModelFigures, ...]
    events: tuple[EventCount, ...]
    outbox: OutboxFigures | None  # None without MQTT
    mqtt: MqttFigures | None  # None without MQTT
    actions: ActionFigures
    threads: tuple[ThreadFigures, ...]
    healthy: bool
    problems: tuple[str, ...]  # human-readable, e.g. "camera door: capture thread died 3 times: ..."

    @property
    def frames_processed(self) -> int:
        """Frames that went through inference, over every model."""
        return sum(m.processed for m in self.models)
