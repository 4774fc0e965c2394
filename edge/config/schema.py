"""The config file's schema: pydantic v2 models, ``extra="forbid"`` everywhere.

Validation here is pure (no file or hardware access). Cross-references between sections
(a camera's model, a rule's cameras) are checked by ``edge.config.loader`` so their errors can
point at the right line.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    field_validator,
)

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""Camera, model and rule names: they become MQTT topic levels and entity ids."""

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> object:
    """``10``, ``2.5``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"`` → seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value!r} (use e.g. 10, '500ms', '10s', '5m', '1h')")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


Seconds = Annotated[float, BeforeValidator(parse_duration), Field(ge=0)]


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {len(points)}")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point {i} ({x}, {y}) is outside [0, 1]: coordinates are fractions of the frame"
            )
    n = len(points)
    for i in range(n):
        for j in range(i + 1, n):
            if abs(i - j) in (1, n - 1):
                continue  # neighbours share a vertex
            if _segments_cross(points[i], points[(i + 1) % n], points[j], points[(j + 1) % n]):
                raise ValueError(f"the polygon crosses itself (edges {i} and {j})")
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))
    if abs(area2) < 1e-9:
        raise ValueError("the polygon has zero area")
    return points


def _segments_cross(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float], d: tuple[float, float]
) -> bool:
    def orient(p: tuple[float, float], q: tuple[float, float], r: tuple[float, float]) -> float:
        return (q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])

    d1, d2 = orient(c, d, a), orient(c, d, b)
    d3, d4 = orient(a, b, c), orient(a, b, d)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


Polygon = Annotated[list[tuple[float, float]], AfterValidator(_check_polygon)]
"""A simple polygon in normalised frame coordinates: ``[[x, y], ...]`` with 0 ≤ x, y ≤ 1."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelConfig(Strict):
    """A model the cameras can use."""

    path: str = Field(
        description="Model package name (folder under a models directory with model.yaml), "
        "a package folder, or a bare export file (.onnx, .tflite, .xml, *_openvino_model/, .engine)."
    )
    runner: Literal["auto", "onnxruntime", "openvino", "litert", "tensorrt"] = "auto"
    device: str = Field("CPU", description="OpenVINO device: CPU, GPU, NPU or AUTO.")
    precision: Literal["f32", "f16", "bf16"] | None = Field(
        None, description="OpenVINO INFERENCE_PRECISION_HINT; unset leaves OpenVINO's default."
    )
    threads: int | None = Field(None, ge=1, le=256)
    providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order; unset: CUDA, OpenVINO, CPU."
    )
    performance_hint: Literal["latency", "throughput"] | None = Field(
        None,
        description="OpenVINO; unset: throughput under `edge run` (frames in flight), latency otherwise.",
    )
    async_jobs: int | None = Field(
        None, ge=1, le=16, description="OpenVINO requests in flight; unset: OpenVINO's advice, 2 to 4."
    )
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)
    iou_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_detections: int | None = Field(None, ge=1, le=10000)


class FileSource(Strict):
    type: Literal["file"]
    path: str
    loop: bool = False


class StreamSource(Strict):
    """RTSP, HTTP or MJPEG URL read with OpenCV's FFmpeg backend."""

    type: Literal["rtsp", "http"]
    url: str = Field(description="May hold credentials (rtsp://user:pass@host/...); they are masked in logs.")
    transport: Literal["tcp", "udp"] = "tcp"
    open_timeout: Seconds = 10.0
    read_timeout: Seconds = 5.0

    @field_validator("url")
    @classmethod
    def _scheme(cls, url: str) -> str:
        if not re.match(r"^(rtsps?|https?)://", url):
            raise ValueError("url must start with rtsp://, rtsps://, http:// or https://")
        return url


class V4l2Source(Strict):
    type: Literal["v4l2"]
    device: str | int = Field("/dev/video0", description="Device path or index.")
    width: int | None = Field(None, ge=1)
    height: int | None = Field(None, ge=1)
    fps: float | None = Field(None, gt=0)
    fourcc: str | None = Field(None, min_length=4, max_length=4, description="e.g. MJPG, YUYV")


class GStreamerSource(Strict):
    """A raw GStreamer pipeline ending in an appsink (Jetson CSI, Raspberry Pi libcamera)."""

    type: Literal["gstreamer"]
    pipeline: str

    @field_validator("pipeline")
    @classmethod
    def _appsink(cls, pipeline: str) -> str:
        if "appsink" not in pipeline:
            raise ValueError("the pipeline must end in an appsink (e.g. '... ! videoconvert ! appsink')")
        return pipeline


Source = Annotated[FileSource | StreamSource | V4l2Source | GStreamerSource, Field(discriminator="type")]


class ReconnectConfig(Strict):
    """Exponential backoff with jitter between reconnection attempts."""

    initial: Seconds = 1.0
    max: Seconds = 30.0


class CameraConfig(Strict):
    source: Source
    model: Name
    enabled: bool = True
    fps: float | None = Field(None, gt=0, description="Cap on frames processed per second.")
    buffer: Literal["latest", "lossless"] | None = Field(
        None, description="Frame ring policy; default lossless for files, latest for live sources."
    )
    masks: list[Polygon] = Field(default_factory=list, description="Areas whose detections are ignored.")
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    buffer_slots: int = Field(
        3, ge=2, le=64, description="Preallocated frame slots between capture and inference."
    )


class RuleConfig(Strict):
    cameras: list[Name] = Field(min_length=1)
    labels: list[str] = Field(default_factory=list, description="Empty: any label.")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    zone: Polygon | None = None
    point: Literal["bottom_center", "center", "top_center"] = "bottom_center"
    min_area: float = Field(0.0, ge=0.0, le=1.0, description="Smallest box area, as a fraction of the frame.")
    cooldown: Seconds = Field(
        10.0, description="Least time between two 'new' events of this rule and camera."
    )
    clear_after: Seconds = Field(2.0, description="Time without a match after which the rule ends.")


class TlsConfig(Strict):
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    insecure: bool = Field(False, description="Skip the broker hostname check (never in production).")


class OutboxConfig(Strict):
    """The durable outbox: alerts wait here (on disk) until the broker acknowledges them."""

    max_messages: int = Field(100_000, ge=10)
    max_bytes: int = Field(256 * 1024 * 1024, ge=64 * 1024, description="Payload bytes kept at most.")
    synchronous: Literal["FULL", "NORMAL"] = Field(
        "FULL",
        description="FULL: every alert is on disk before it is published (survives power loss). "
        "NORMAL: faster, survives a crash of the process but may lose the last alerts on power loss.",
    )
    max_in_flight: int = Field(20, ge=1, le=1000)


class HomeAssistantConfig(Strict):
    enabled: bool = False
    prefix: str = "homeassistant"


class MqttConfig(Strict):
    enabled: bool = True
    host: str = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    device: Name = "edge"
    prefix: str = "edge"
    username: str | None = None
    password: SecretStr | None = None
    password_file: Path | None = Field(None, description="Read the password from this file (mode 0600).")
    tls: TlsConfig | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: int = Field(30, ge=5, le=3600)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    stats_interval: Seconds = Field(30.0, description="How often figures go to the stats topic.")
    homeassistant: HomeAssistantConfig = Field(default_factory=HomeAssistantConfig)

    def resolved_password(self) -> str | None:
        """The password from ``password`` or ``password_file`` (never logged)."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is not None:
            return self.password_file.read_text(encoding="utf-8").strip()
        return None


class SnapshotConfig(Strict):
    enabled: bool = False
    crop: bool = Field(False, description="Save the box's crop instead of the whole annotated frame.")
    quality: int = Field(90, ge=1, le=100)
    max_bytes: ByteSize = Field(
        ByteSize(512 * 1024 * 1024),
        description="Snapshots kept at most, all cameras together (e.g. '512MiB'); the oldest go first.",
    )
    max_age: Seconds = Field(7 * 86400.0, description="Snapshots older than this are removed; 0: no limit.")

    @field_validator("max_bytes")
    @classmethod
    def _at_least_1mib(cls, value: int) -> int:
        if value < 1024 * 1024:
            raise ValueError(f"must be at least 1MiB, got {value} bytes")
        return value


class ActionsConfig(Strict):
    event_log: bool = Field(True, description="Append every event to <state_dir>/events.jsonl.")
    event_log_max_bytes: ByteSize = Field(
        ByteSize(16 * 1024 * 1024),
        description="events.jsonl is rotated to events.jsonl.1 at this size (e.g. '16MiB').",
    )
    event_log_keep: int = Field(
        3, ge=0, le=100, description="Rotated files kept, events.jsonl.1 (newest) to .N; 0: none."
    )
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)

    @field_validator("event_log_max_bytes")
    @classmethod
    def _at_least_64kib(cls, value: int) -> int:
        if value < 64 * 1024:
            raise ValueError(f"must be at least 64KiB, got {value} bytes")
        return value


class MetricsConfig(Strict):
    """Opt-in Prometheus endpoint; only a loopback address is allowed (no open ports)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(9108, ge=0, le=65535, description="0 picks a free port.")

    @field_validator("host")
    @classmethod
    def _loopback(cls, host: str) -> str:
        import ipaddress

        if host == "localhost":
            return host
        try:
            if ipaddress.ip_address(host).is_loopback:
                return host
        except ValueError:
            pass
        raise ValueError(f"metrics listen on a loopback address only (127.0.0.1, ::1), not {host!r}")


class EdgeConfig(Strict):
    """Top level of an edge config file."""

    state_dir: Path = Field(Path("/var/lib/edge"), description="Everything the daemon writes lives here.")
    models_dir: Path | None = Field(None, description="Extra folder searched first for model packages.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    models: dict[Name, ModelConfig] = Field(min_length=1)
    cameras: dict[Name, CameraConfig] = Field(default_factory=dict)
    rules: dict[Name, RuleConfig] = Field(default_factory=dict)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    status_interval: Seconds = Field(30.0, description="How often each camera's status line is logged.")
