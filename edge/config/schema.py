"""The config file's schema: pydantic v2 models, ``extra="forbid"`` everywhere.

Validation here is pure (no file or hardware access; ``~`` in paths is expanded from the user
database). Every value is bounded: durations are finite with a per-field maximum, paths fit the
filesystem's limits, MQTT topic prefixes are valid publish topics, polygons have at most
``MAX_POLYGON_POINTS`` points. Cross-references between sections (a camera's model, a rule's
cameras) are checked by ``edge.config.loader``, and what needs the filesystem or the hardware by
``edge.config.preflight``, so their errors can point at the right line.
"""

from __future__ import annotations

import math
import os
import pwd
import re
import unicodedata
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ByteSize,
    ConfigDict,
    Field,
    SecretStr,
    StringConstraints,
    WithJsonSchema,
    field_validator,
    model_validator,
)

Name = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")]
"""Camera, model and rule names: they become MQTT topic levels and entity ids."""

_DURATION_NUMBER = r"(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?"
_DURATION = re.compile(rf"^\s*([-+]?{_DURATION_NUMBER})\s*(ms|s|m|h)?\s*$")
DURATION_PATTERN = rf"^\s*\+?{_DURATION_NUMBER}\s*(ms|s|m|h)?\s*$"
"""``_DURATION`` without a minus sign, for the JSON schema (ECMA-262 regex syntax)."""
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_duration(value: object) -> object:
    """``10``, ``2.5``, ``"500ms"``, ``"10s"``, ``"5m"``, ``"1h"`` → seconds."""
    if isinstance(value, str):
        match = _DURATION.match(value)
        if not match:
            raise ValueError(f"not a duration: {value[:40]!r} (use e.g. 10, '500ms', '10s', '5m', '1h')")
        return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    return value


HOUR, DAY, WEEK, YEAR = 3600.0, 86400.0, 7 * 86400.0, 366 * 86400.0


def _at_most(limit: float, text: str) -> AfterValidator:
    def check(value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, got {value}")
        if value < 0:
            raise ValueError(f"must not be negative, got {value:g}")
        if value > limit:
            raise ValueError(f"must be at most {text} ({limit:g} s), got {value:g} s")
        return value

    return AfterValidator(check)


def _seconds_schema(limit: float) -> WithJsonSchema:
    """A number of seconds within [0, limit], or a duration string (its value is not bounded here:
    a regular expression cannot compare, so '1000h' for a one-hour field is caught by validation)."""
    wrong = "expected a duration: seconds, or e.g. '500ms', '10s', '5m', '1h' (not negative)"
    return WithJsonSchema(
        {
            "anyOf": [  # errorMessage, patternErrorMessage: the YAML language server shows these
                {"type": "number", "minimum": 0, "maximum": limit, "errorMessage": wrong},
                {"type": "string", "pattern": DURATION_PATTERN, "patternErrorMessage": wrong},
            ],
            "examples": ["500ms", "10s", "5m", "1h"],
        }
    )


Seconds = Annotated[float, BeforeValidator(parse_duration), _at_most(YEAR, "366 days"), _seconds_schema(YEAR)]
"""A duration (number of seconds or '500ms', '10s', '5m', '1h'), finite, at most a year."""
Timeout = Annotated[float, BeforeValidator(parse_duration), _at_most(HOUR, "1 h"), _seconds_schema(HOUR)]
Interval = Annotated[float, BeforeValidator(parse_duration), _at_most(DAY, "1 day"), _seconds_schema(DAY)]
Cooldown = Annotated[float, BeforeValidator(parse_duration), _at_most(WEEK, "1 week"), _seconds_schema(WEEK)]

BYTE_SIZE_PATTERN = r"^\s*[0-9]*\.?[0-9]+\s*([bB]([iI][tT])?|[kKmMgGtTpPeE]([iI]?[bB]([iI][tT])?)?)?\s*$"
"""Pydantic ``ByteSize`` text ('512MiB', '16 MB', '1g'), its units spelled out case-insensitively
for the JSON schema (pydantic's own pattern accepts any word as a unit and ignores what follows)."""


def _bytes(least: int) -> WithJsonSchema:
    """JSON schema of a ``ByteSize`` field: an integer of at least ``least`` bytes, or a size
    string (whose value a regular expression cannot bound)."""
    wrong = "expected a size: bytes, or e.g. '64KiB', '16MiB', '2GB'"
    return WithJsonSchema(
        {
            "anyOf": [  # errorMessage, patternErrorMessage: the YAML language server shows these
                {"type": "integer", "minimum": least, "errorMessage": wrong},
                {"type": "string", "pattern": BYTE_SIZE_PATTERN, "patternErrorMessage": wrong},
            ],
            "examples": ["16MiB", "512MiB", "2GiB"],
        }
    )


PATH_MAX_BYTES, NAME_MAX_BYTES = 4095, 255  # Linux PATH_MAX (with its NUL) and NAME_MAX


def _expand_home(value: str) -> str:
    """``~`` and ``~user`` like the shell; an unknown user is an error (``Path.expanduser``
    raises RuntimeError, ``os.path.expanduser`` leaves the text as it is)."""
    head, _, rest = value.partition("/")
    user = head[1:]
    try:
        home = (
            pwd.getpwnam(user).pw_dir if user else os.environ.get("HOME") or pwd.getpwuid(os.getuid()).pw_dir
        )
    except KeyError:
        raise ValueError(
            f"no user {user!r} for {head!r}" if user else "cannot determine the home directory for '~'"
        ) from None
    return os.path.join(home, rest) if rest else home


def check_path_text(value: str) -> str:
    """A path as the config writes it: no NUL, valid UTF-8, within PATH_MAX/NAME_MAX, ``~`` expanded."""
    if not value:
        raise ValueError("the path is empty")
    if "\x00" in value:
        raise ValueError("a path cannot contain a NUL character")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("the path is not valid UTF-8 text") from None
    if value.startswith("~"):
        value = _expand_home(value)
    raw = value.encode("utf-8")
    if len(raw) > PATH_MAX_BYTES:
        raise ValueError(f"the path is {len(raw)} bytes long; at most {PATH_MAX_BYTES}")
    longest = max(raw.split(b"/"), key=len)
    if len(longest) > NAME_MAX_BYTES:
        start = longest[:20].decode("utf-8", "replace")
        raise ValueError(
            f"a path component ({start!r}...) is {len(longest)} bytes long; at most {NAME_MAX_BYTES}"
        )
    return value


def _path_before(value: object) -> object:
    return check_path_text(value) if isinstance(value, str) else value


LocalPath = Annotated[Path, BeforeValidator(_path_before)]
"""A filesystem path (``~`` expanded, length-checked); relative paths are from the working folder."""
PathText = Annotated[str, BeforeValidator(_path_before)]

MAX_TOPIC_PREFIX = 256


def _check_topic_prefix(value: str) -> str:
    """The first levels of topics edge publishes to, as MQTT allows them (and practical)."""
    if not value:
        raise ValueError("must not be empty")
    if len(value) > MAX_TOPIC_PREFIX:
        raise ValueError(f"is {len(value)} characters long; at most {MAX_TOPIC_PREFIX}")
    for ch in value:
        if ch in "#+":
            raise ValueError(f"holds the wildcard {ch!r}, which a topic one publishes to cannot contain")
        if unicodedata.category(ch) in ("Cc", "Cs"):
            raise ValueError(f"holds the control character {ch!r}; MQTT topics are UTF-8 text")
    if value.startswith("$"):
        raise ValueError("must not start with '$' (topics starting with '$' are the broker's)")
    if "" in value.split("/"):
        raise ValueError(f"{value!r} has an empty level (a leading, trailing or doubled '/')")
    return value


TopicPrefix = Annotated[str, AfterValidator(_check_topic_prefix)]


def _check_host(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be empty (a broker host name or address)")
    if len(value) > 253 or any(ch.isspace() or unicodedata.category(ch) in ("Cc", "Cs") for ch in value):
        raise ValueError(f"{value[:40]!r} is not a host name or address")
    return value


def _check_mqtt_text(value: str) -> str:
    if any(unicodedata.category(ch) in ("Cc", "Cs") for ch in value) or len(value) > 4096:
        raise ValueError("must be at most 4096 characters of text without control characters")
    return value


MAX_POLYGON_POINTS = 256


def _check_polygon(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    n = len(points)
    if n < 3:
        raise ValueError(f"a polygon needs at least 3 points, got {n}")
    if n > MAX_POLYGON_POINTS:
        raise ValueError(f"a polygon has at most {MAX_POLYGON_POINTS} points, got {n}: simplify it")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point {i} ({x}, {y}) is outside [0, 1]: coordinates are fractions of the frame"
            )
    crossing = _first_crossing(np.asarray(points, dtype=np.float64))
    if crossing is not None:
        raise ValueError(f"the polygon crosses itself (edges {crossing[0]} and {crossing[1]})")
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in zip(points, points[1:] + points[:1], strict=True))
    if abs(area2) < 1e-9:
        raise ValueError("the polygon has zero area")
    return points


def _first_crossing(pts: np.ndarray) -> tuple[int, int] | None:
    """The first pair of non-adjacent edges (i < j) that properly cross; all pairs at once."""
    n = len(pts)
    a, b = pts, np.roll(pts, -1, axis=0)  # edge k runs from a[k] to b[k]

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        # orientation of r against the line p->q, for p, q of edge j (columns) and r of edge i (rows)
        out: np.ndarray = (q[None, :, 0] - p[None, :, 0]) * (r[:, None, 1] - p[None, :, 1]) - (
            q[None, :, 1] - p[None, :, 1]
        ) * (r[:, None, 0] - p[None, :, 0])
        return out

    d1, d2 = orient(a, b, a), orient(a, b, b)  # [i, j]: ends of edge i against edge j
    i, j = np.indices((n, n))
    apart = (j > i + 1) & ~((i == 0) & (j == n - 1))  # neighbours share a vertex
    cross = (d1 * d2 < 0) & (d1.T * d2.T < 0) & apart
    hits = np.argwhere(cross)
    return (int(hits[0][0]), int(hits[0][1])) if len(hits) else None


Polygon = Annotated[list[tuple[float, float]], AfterValidator(_check_polygon)]
"""A simple polygon in normalised frame coordinates: ``[[x, y], ...]`` with 0 ≤ x, y ≤ 1."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _multiple_of_32(side: int) -> int:
    if side % 32:
        raise ValueError(f"expected a multiple of 32 (YOLO's largest stride), got {side}")
    return side


ImageSide = Annotated[int, Field(ge=32, le=4096), AfterValidator(_multiple_of_32)]


class ModelConfig(Strict):
    """A model the cameras can use."""

    path: PathText = Field(
        description="Model package name (folder under a models directory with model.yaml), "
        "a package folder, or a bare export file (.onnx, .tflite, .xml, *_openvino_model/, .engine)."
    )
    runner: Literal["auto", "onnxruntime", "openvino", "litert", "tensorrt"] = "auto"
    autotune: bool = Field(
        True,
        description="With runner: auto, time each installed backend that reads the model at its "
        "first start on this machine and run the fastest whose outputs match the reference backend's; "
        "the choice is kept in state_dir/runner-choice.json. false: choose by vendor heuristics.",
    )
    device: str = Field("CPU", description="OpenVINO device: CPU, GPU, NPU or AUTO.")
    precision: Literal["f32", "f16", "bf16"] | None = Field(
        None,
        description="OpenVINO INFERENCE_PRECISION_HINT; unset leaves OpenVINO's default. "
        "TensorRT 10: f16 when unset (and int8 when the ONNX has Q/DQ nodes); "
        "TensorRT 11 follows the ONNX's types.",
    )
    threads: int | None = Field(None, ge=1, le=256)
    int8: bool | None = Field(
        None,
        description="Run the int8 twin made by `edge quantize` (true) or the float file (false); "
        "unset: the twin, unless its gate report measured it slower than float on this CPU.",
    )
    providers: list[str] | None = Field(
        None, description="ONNX Runtime execution providers in order; unset: CUDA, OpenVINO, CPU."
    )
    performance_hint: Literal["latency", "throughput"] | None = Field(
        None,
        description="OpenVINO; unset: throughput under `edge run` (frames in flight), latency otherwise.",
    )
    async_jobs: int | None = Field(
        None,
        ge=1,
        le=16,
        description="OpenVINO requests in flight; unset: one more than OpenVINO's advice, 2 to 5. "
        "Each takes one frame, so a dynamic batch axis is pinned to 1; 1: no requests in flight, "
        "and a dynamic batch axis then serves every camera with a frame ready in one inference.",
    )
    graph_preprocess: bool = Field(
        True,
        description="OpenVINO: fold colour order, normalisation and layout into the compiled model "
        "(it takes uint8 BGR frames; the capture thread only resizes). false: do them in the capture thread.",
    )
    input_size: tuple[ImageSide, ImageSide] | None = Field(
        None,
        description="[width, height] to run a square YOLO detector at (OpenVINO), e.g. [640, 384] "
        "for 16:9 cameras on a 640x640 export: the padding a wide frame gets in a square input is "
        "not computed. Multiples of 32. Unset: the model's own size.",
    )
    dla_core: int | None = Field(
        None,
        ge=0,
        le=7,
        description="TensorRT on Jetson Orin/Xavier: run on this DLA core (0 or 1); layers the DLA "
        "cannot run fall back to the GPU. Needs f16 (the default) or a Q/DQ int8 model.",
    )
    max_batch: int = Field(
        4,
        ge=1,
        le=64,
        description="TensorRT: the largest batch a dynamic-batch model's engine is built for (cameras "
        "sharing the model); larger batches run in chunks.",
    )
    score_threshold: float | None = Field(None, ge=0.0, le=1.0)
    iou_threshold: float | None = Field(None, ge=0.0, le=1.0)
    max_detections: int | None = Field(None, ge=1, le=10000)


DecodeThreads = Annotated[
    int | None,
    Field(
        ge=1,
        le=64,
        description="FFmpeg decoding threads for this stream; unset: 1 for a stream or a file played in "
        "real time, and when there are at least as many cameras as cores (less CPU and memory, no frame "
        "held back), else FFmpeg's choice.",
    ),
]


class FileSource(Strict):
    type: Literal["file"]
    path: PathText
    loop: bool = False
    realtime: bool = Field(
        False,
        description="Play the file at its own frame rate (a looped file standing in for a camera); "
        "false: as fast as the pipeline goes, every frame processed.",
    )
    decode_threads: DecodeThreads = None


class StreamSource(Strict):
    """RTSP, HTTP or MJPEG URL read with OpenCV's FFmpeg backend."""

    type: Literal["rtsp", "http"]
    url: str = Field(description="May hold credentials (rtsp://user:pass@host/...); they are masked in logs.")
    transport: Literal["tcp", "udp"] = "tcp"
    open_timeout: Timeout = 10.0
    read_timeout: Timeout = 5.0
    decode_threads: DecodeThreads = None

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

    initial: Timeout = 1.0
    max: Timeout = 30.0


class TrackingConfig(Strict):
    """The camera's object tracker (ByteTrack-style, on frame time): it gives detections track
    ids, follows objects through short misses and says which ones stand still."""

    enabled: bool = True
    high_score: float = Field(0.5, gt=0.0, le=1.0, description="Detections this sure are matched first.")
    low_score: float = Field(
        0.1, ge=0.0, le=1.0, description="Less sure detections only extend tracks (occlusion, blur)."
    )
    new_track_score: float = Field(0.6, gt=0.0, le=1.0, description="Least score that starts a track.")
    match_iou: float = Field(0.3, gt=0.0, le=1.0, description="Least overlap of a box and its track.")
    confirm_frames: int = Field(3, ge=1, le=100, description="Frames before a track gets its id.")
    lost_after: Timeout = Field(1.0, description="How long a track is kept after its object was last seen.")
    stationary_fraction: float = Field(
        0.1, gt=0.0, le=1.0, description="Stationary: moved less than this fraction of its size ..."
    )
    stationary_after: Interval = Field(10.0, description="... for this long.")
    max_tracks: int = Field(512, ge=1, le=100_000, description="Tracks kept per camera at most.")

    @model_validator(mode="after")
    def _ordered(self) -> TrackingConfig:
        low, high, start = self.low_score, self.high_score, self.new_track_score
        if not low <= high <= start:
            raise ValueError(
                f"expected low_score <= high_score <= new_track_score, got {low:g}, {high:g}, {start:g}"
            )
        return self


class MotionConfig(Strict):
    """Motion gating: while the scene stands still, inference is skipped and the last
    detections are reused (tracks stay alive, rules keep their time)."""

    enabled: bool = Field(False, description="Skip inference while nothing moves.")
    threshold: int = Field(25, ge=1, le=255, description="Grey-level change that counts as motion.")
    min_area: float = Field(
        0.002, gt=0.0, le=1.0, description="Least moving area that counts, as a fraction of the frame."
    )
    hold: Interval = Field(2.0, description="Inference goes on this long after motion stops.")
    refresh_after: Interval = Field(
        5.0, description="On a still scene, one inference this often all the same."
    )
    width: int = Field(320, ge=64, le=1920, description="Frames are compared at this width.")
    check_fps: float = Field(
        5.0,
        gt=0.0,
        le=100.0,
        description="On a still scene, frames looked at per second; others only decoded.",
    )
    masks: list[Polygon] = Field(
        default_factory=list,
        max_length=64,
        description="Areas whose motion is ignored (trees, screens, clocks).",
    )


class CameraConfig(Strict):
    source: Source
    model: Name
    enabled: bool = True
    fps: float | None = Field(None, gt=0, description="Cap on frames processed per second.")
    buffer: Literal["latest", "lossless"] | None = Field(
        None, description="Frame ring policy; default lossless for files, latest for live sources."
    )
    masks: list[Polygon] = Field(
        default_factory=list, max_length=64, description="Areas whose detections are ignored."
    )
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    buffer_slots: int = Field(
        3, ge=2, le=64, description="Preallocated frame slots between capture and inference."
    )


RuleKind = Literal["presence", "line", "dwell", "count", "absence"]
ActionName = Literal["mqtt", "event_log", "snapshot", "command"]
EventKind = Literal["new", "update", "end", "cross"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_CLOCK = re.compile(r"^([01][0-9]|2[0-3]):([0-5][0-9])$|^24:00$")


def _check_clock(value: str) -> str:
    if not _CLOCK.match(value):
        raise ValueError(f"expected a time of day 'HH:MM' (00:00 to 24:00), got {value!r}")
    return value


ClockTime = Annotated[str, AfterValidator(_check_clock)]


def _check_timezone(value: str) -> str:
    if value == "local":
        return value
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown time zone {value!r}: expected an IANA name such as 'Europe/Berlin' or 'UTC', or 'local'"
        ) from None
    return value


def _check_line(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    if len(points) != 2:
        raise ValueError(f"a line is two points [[x1, y1], [x2, y2]], got {len(points)}")
    for i, (x, y) in enumerate(points):
        if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"point {i} ({x}, {y}) is outside [0, 1]: coordinates are fractions of the frame"
            )
    (x1, y1), (x2, y2) = points
    if abs(x2 - x1) + abs(y2 - y1) < 1e-3:
        raise ValueError("the line's two points are the same")
    return points


Line = Annotated[list[tuple[float, float]], AfterValidator(_check_line)]
"""A directed segment ``[[x1, y1], [x2, y2]]`` in normalised frame coordinates."""


class ScheduleWindow(Strict):
    """From ``from`` to ``to`` on each of ``days``; a window whose ``to`` is not after its
    ``from`` runs past midnight into the next day (it belongs to the day it starts on)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    days: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS), min_length=1)
    start: ClockTime = Field(alias="from")
    end: ClockTime = Field(alias="to")

    @field_validator("start")
    @classmethod
    def _start_in_the_day(cls, value: str) -> str:
        if value == "24:00":
            raise ValueError("`from: 24:00` is the next day's 00:00: write `from: 00:00` on that day")
        return value


class ScheduleConfig(Strict):
    """When a rule is active; outside its windows the rule is idle and says so in its state."""

    timezone: Annotated[str, AfterValidator(_check_timezone)] = Field(
        "local", description="IANA time zone of the windows, e.g. 'Europe/Berlin'; 'local': the system's."
    )
    windows: list[ScheduleWindow] = Field(min_length=1, max_length=64)

    @model_validator(mode="after")
    def _builds(self) -> ScheduleConfig:
        from edge.rules.schedule import Schedule  # the rules' own code: what it refuses, we refuse

        Schedule.from_config(self)
        return self


def _new_and_cross() -> list[EventKind]:
    return ["new", "cross"]


def _both_directions() -> list[Literal["in", "out"]]:
    return ["in", "out"]


class CommandConfig(Strict):
    """A program the rule runs on its events: an argv list (never a shell), with the event's
    fields in ``EDGE_*`` environment variables."""

    argv: list[Annotated[str, StringConstraints(min_length=1)]] = Field(min_length=1, max_length=256)
    timeout: Timeout = Field(30.0, description="The program is killed after this long.")
    events: list[EventKind] = Field(
        default_factory=_new_and_cross, min_length=1, description="Which events run it."
    )
    env: dict[Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")], str] = Field(
        default_factory=dict, description="Extra environment variables for the program."
    )


KIND_FIELDS = {
    "line_margin": "line",
    "directions": "line",
    "min_count": "count",
    "on_after": "count",
    "off_after": "count",
    "absent_after": "absence",
    "present_after": "absence",
}
"""Fields only one kind reads: given to another kind, they would be ignored, so they are refused."""
EVENTS_OF_KIND = {"line": ("cross",), "absence": ("new", "end")}


class RuleConfig(Strict):
    kind: RuleKind = Field(
        "presence",
        description="presence: objects in the zone; line: crossings of a line; dwell: an object in the "
        "zone at least `dwell`; count: at least `min_count` objects; absence: no object for `absent_after`.",
    )
    cameras: list[Name] = Field(min_length=1)
    labels: list[str] = Field(default_factory=list, description="Empty: any label.")
    min_score: float = Field(0.5, ge=0.0, le=1.0)
    zone: Polygon | None = None
    line: Line | None = Field(None, description="kind line: the directed segment [[x1, y1], [x2, y2]].")
    line_margin: float = Field(
        0.02, ge=0.0, le=0.2, description="kind line: an object must get this far past the line to cross it."
    )
    directions: list[Literal["in", "out"]] = Field(
        default_factory=_both_directions,
        min_length=1,
        description="kind line: crossings that make events.",
    )
    dwell: Interval | None = Field(None, description="kind dwell: least time an object stays in the zone.")
    min_count: int = Field(1, ge=1, le=10_000, description="kind count: least number of matching objects.")
    on_after: Interval = Field(2.0, description="kind count: the count must hold this long to start.")
    off_after: Interval = Field(5.0, description="kind count: ... and stay below this long to end.")
    absent_after: Interval = Field(60.0, description="kind absence: no match this long starts the event.")
    present_after: Interval = Field(3.0, description="kind absence: matches this long end it.")
    stationary: Literal["include", "exclude", "only"] = Field(
        "include",
        description="Objects that stand still (parked cars, left bags): include, exclude or only them.",
    )
    point: Literal["bottom_center", "center", "top_center"] = "bottom_center"
    min_area: float = Field(0.0, ge=0.0, le=1.0, description="Smallest box area, as a fraction of the frame.")
    cooldown: Cooldown = Field(
        10.0,
        description="Least time between two 'new' events of this rule and camera (per object when tracked).",
    )
    clear_after: Interval = Field(2.0, description="Time without a match after which the rule ends.")
    update_interval: Interval = Field(
        5.0, description="Least time between two 'update' events of one object; 0: no updates."
    )
    schedule: ScheduleConfig | None = Field(None, description="Active windows; none: always active.")
    armed: bool = Field(
        True, description="Armed at the first start; later the last ON/OFF sent to its set topic."
    )
    actions: list[ActionName] | None = Field(
        None, description="Which actions its events trigger; none: every action that is configured."
    )
    command: CommandConfig | None = None

    @model_validator(mode="after")
    def _kind_fields(self) -> RuleConfig:
        if self.kind == "line":
            if self.line is None:
                raise ValueError("a rule of kind line needs `line: [[x1, y1], [x2, y2]]`")
            if self.zone is not None:
                raise ValueError("a rule of kind line takes `line`, not `zone`")
        elif self.line is not None:
            raise ValueError(f"`line` is for rules of kind line, this rule is of kind {self.kind}")
        if self.kind == "dwell" and self.dwell is None:
            raise ValueError("a rule of kind dwell needs `dwell` (e.g. `dwell: 2m`)")
        if self.kind != "dwell" and self.dwell is not None:
            raise ValueError(f"`dwell` is for rules of kind dwell, this rule is of kind {self.kind}")
        if self.actions is not None and "command" in self.actions and self.command is None:
            raise ValueError("`actions` names command but the rule has no `command: {argv: [...]}`")
        if self.command is not None and self.actions is not None and "command" not in self.actions:
            raise ValueError("the rule has a `command` but its `actions` leave command out")
        for field_name, kind in KIND_FIELDS.items():
            if field_name in self.model_fields_set and self.kind != kind:
                raise ValueError(f"`{field_name}` is for rules of kind {kind}, not {self.kind}")
        if self.command is not None and "events" in self.command.model_fields_set:
            made = EVENTS_OF_KIND.get(self.kind, ("new", "update", "end"))
            never = [e for e in self.command.events if e not in made]
            if never:
                raise ValueError(
                    f"command.events: a rule of kind {self.kind} never makes {', '.join(never)} events "
                    f"(it makes {', '.join(made)})"
                )
        return self

    def needs_tracking(self) -> str | None:
        """Why this rule needs its cameras' tracker, or None."""
        if self.kind in ("line", "dwell"):
            return f"a rule of kind {self.kind} follows objects over time"
        if self.stationary != "include":
            return f"`stationary: {self.stationary}` needs to know which objects stand still"
        return None


class TlsConfig(Strict):
    ca_file: LocalPath | None = None
    cert_file: LocalPath | None = None
    key_file: LocalPath | None = None
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
    prefix: TopicPrefix = "homeassistant"


class MqttConfig(Strict):
    enabled: bool = True
    host: Annotated[str, AfterValidator(_check_host)] = "localhost"
    port: int = Field(1883, ge=1, le=65535)
    device: Name = "edge"
    prefix: TopicPrefix = "edge"
    username: Annotated[str, AfterValidator(_check_mqtt_text)] | None = None
    password: SecretStr | None = None
    password_file: LocalPath | None = Field(None, description="Read the password from this file (mode 0600).")
    tls: TlsConfig | None = None
    protocol: Literal["3.1.1", "5"] = "5"
    keepalive: int = Field(30, ge=5, le=3600)
    reconnect: ReconnectConfig = Field(default_factory=ReconnectConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    stats_interval: Interval = Field(30.0, description="How often figures go to the stats topic.")
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
    max_bytes: Annotated[ByteSize, _bytes(1024 * 1024)] = Field(
        ByteSize(512 * 1024 * 1024),
        description="Snapshots kept at most, all cameras together (e.g. '512MiB'); the oldest go first.",
    )
    max_age: Seconds = Field(7 * 86400.0, description="Snapshots older than this are removed; 0: no limit.")
    mqtt: bool = Field(
        False,
        description="Also publish each snapshot (JPEG bytes) retained on <camera>/<rule>/snapshot, "
        "e.g. for Home Assistant's image entity.",
    )

    @model_validator(mode="after")
    def _mqtt_needs_snapshots(self) -> SnapshotConfig:
        if self.mqtt and not self.enabled:
            raise ValueError("`mqtt: true` publishes the snapshots: set `enabled: true` too")
        return self

    @field_validator("max_bytes")
    @classmethod
    def _at_least_1mib(cls, value: int) -> int:
        if value < 1024 * 1024:
            raise ValueError(f"must be at least 1MiB, got {value} bytes")
        return value


class ActionsConfig(Strict):
    event_log: bool = Field(True, description="Append every event to <state_dir>/events.jsonl.")
    event_log_max_bytes: Annotated[ByteSize, _bytes(64 * 1024)] = Field(
        ByteSize(16 * 1024 * 1024),
        description="events.jsonl is rotated to events.jsonl.1 at this size (e.g. '16MiB').",
    )
    event_log_keep: int = Field(
        3, ge=0, le=100, description="Rotated files kept, events.jsonl.1 (newest) to .N; 0: none."
    )
    snapshots: SnapshotConfig = Field(default_factory=SnapshotConfig)
    command_concurrency: int = Field(
        2, ge=1, le=64, description="Rule commands running at once at most; more wait in a queue."
    )
    command_queue: int = Field(
        100, ge=1, le=100_000, description="Rule commands waiting at most; more are dropped and counted."
    )

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
        if _is_loopback(host):
            return host
        raise ValueError(f"metrics listen on a loopback address only (127.0.0.1, ::1), not {host!r}")


def _is_loopback(host: str) -> bool:
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class PreviewConfig(Strict):
    """Opt-in live view and zone editor over HTTP. Loopback only, unless ``host`` names another
    address and ``username`` and ``password`` are set (HTTP basic auth; use an SSH tunnel or a
    TLS proxy in front: the page itself is plain HTTP)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(8090, ge=0, le=65535, description="0 picks a free port.")
    fps: float = Field(5.0, gt=0, le=30, description="Most frames per second sent to each viewer.")
    width: int = Field(960, ge=160, le=3840, description="Preview frames wider than this are scaled down.")
    quality: int = Field(75, ge=20, le=95, description="JPEG quality of the preview frames.")
    username: str | None = None
    password: SecretStr | None = Field(None, description="Use ${ENV}; required with a non-loopback host.")

    @model_validator(mode="after")
    def _exposed_needs_auth(self) -> PreviewConfig:
        if not _is_loopback(self.host) and (
            not self.username or self.password is None or not self.password.get_secret_value()
        ):
            raise ValueError(
                f"preview on {self.host!r} is reachable from the network: set preview.username and "
                "preview.password, or keep host 127.0.0.1 and use an SSH tunnel"
            )
        return self


class EdgeConfig(Strict):
    """Top level of an edge config file."""

    state_dir: LocalPath = Field(
        Path("/var/lib/edge"), description="Everything the daemon writes lives here."
    )
    models_dir: LocalPath | None = Field(None, description="Extra folder searched first for model packages.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per line.")
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    preview: PreviewConfig = Field(default_factory=PreviewConfig)
    models: dict[Name, ModelConfig] = Field(min_length=1)
    cameras: dict[Name, CameraConfig] = Field(default_factory=dict)
    rules: dict[Name, RuleConfig] = Field(default_factory=dict)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    actions: ActionsConfig = Field(default_factory=ActionsConfig)
    status_interval: Interval = Field(30.0, description="How often each camera's status line is logged.")
