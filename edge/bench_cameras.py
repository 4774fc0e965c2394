"""``edge bench --cameras N``: N cameras on one model in one ``Application``, in real time.

Each camera is the same clip played as a live camera would deliver it (``realtime: true``,
``loop: true``: paced at the clip's own frame rate, a ``latest`` ring that drops the oldest
frame when the worker is behind), capped at ``--detect-fps`` (the camera's ``fps`` field).
With ``--rtsp`` the cameras read N RTSP streams of the clip from a local GStreamer RTSP server
instead (live sources: frame times on the live clock, reconnects, read timeouts).
After a warm-up the counters are read twice, ``seconds`` apart, and reported per camera:

* decode fps: frames read from the source (decoded; those the cap drops are only decoded);
* detect fps: frames run through the model; its ratio to the target is the fairness figure;
* dropped: frames overwritten or passed over in the ring (the worker was behind), and frames
  skipped by the fps cap, separately (the cap's are expected: decode fps - detect fps);
* latency p50/p99: from the frame's decode (``slot.t_wall``) to the end of the worker's
  ``_finish`` (decoded, tracked, rules evaluated, events handed to the actions);

and for the process: CPU % (of one core), peak RSS, and where the CPU time went (decode,
preprocess, inference), so the limit can be read from the report.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import select
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.bench import cpu_seconds, peak_rss_mb
from edge.config import parse_config
from edge.daemon.app import Application
from edge.errors import EdgeError

WITHIN = 0.10  # a camera is held when its detect fps is within 10 % of the target
SYSTEM_PYTHON = "/usr/bin/python3"  # Debian's, where python3-gi and GStreamer's RTSP server live

# GStreamer's RTSP server (Debian gir1.2-gst-rtsp-server-1.0, python3-gi, gstreamer1.0-plugins-
# base/good/bad), run by the system Python: argv = port, file, cameras. Each mount plays the
# H.264 file in real time without re-encoding (demux and payload only). Prints "ready".
RTSP_SERVER = """
import sys
import gi
gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer
Gst.init(None)
port, path, cameras = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = GstRtspServer.RTSPServer()
server.set_address("127.0.0.1")
server.set_service(port)
for i in range(1, cameras + 1):
    factory = GstRtspServer.RTSPMediaFactory()
    factory.set_launch(
        f"( filesrc location={path} ! qtdemux ! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )
    factory.set_shared(True)
    server.get_mount_points().add_factory(f"/cam{i:02d}", factory)
server.attach(None)
print("ready", flush=True)
GLib.MainLoop().run()
"""


@dataclass(frozen=True)
class CameraFigures:
    """One camera over the measured window."""

    name: str
    decode_fps: float
    detect_fps: float
    ratio: float  # detect fps / target
    dropped: int  # overwritten or passed over in the ring: the worker was behind
    skipped: int  # dropped by the fps cap (only decoded)
    latency_p50_ms: float
    latency_p99_ms: float


@dataclass(frozen=True)
class Fairness:
    """How evenly the cameras got their target rate."""

    min_ratio: float
    max_ratio: float
    within: int  # cameras whose detect fps is within 10 % of the target
    cameras: int


@dataclass(frozen=True)
class Counters:
    """Every camera's counters and the process CPU time at one moment."""

    t: float
    cpu: float
    read: dict[str, int]
    inferred: dict[str, int]
    dropped: dict[str, int]
    skipped: dict[str, int]
    read_s: dict[str, float]
    pre_s: dict[str, float]
    infer_s: float
    inferences: int


@dataclass(frozen=True)
class CamerasReport:
    model: str
    runner: str
    file: str
    video: str
    source: str  # file (real-time, looped) or rtsp (a local server)
    cameras: int
    target_fps: float
    seconds: float
    cpu_percent: float  # of one core; this machine has ``cores``
    cores: int
    peak_rss_mb: float
    # Mean wall time of each stage, waits for the CPU (and the GIL) included: on an overloaded
    # box every figure grows; the profile (py-spy) says which stage really costs.
    stage_ms: dict[str, float]
    latency_p50_ms: float  # over every camera
    latency_p99_ms: float
    fairness: Fairness
    per_camera: tuple[CameraFigures, ...]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def bench_config(
    model_ref: str,
    runner: str,
    video: Path,
    cameras: int,
    fps: float,
    state_dir: Path,
    threads: int | None = None,
    urls: list[str] | None = None,
    input_size: tuple[int, int] | None = None,
) -> str:
    """The config text: ``cameras`` real-time looping file cameras (or, given ``urls``, RTSP
    cameras) on one model, no MQTT, no event log (nothing written but into ``state_dir``).
    ``input_size``: (width, height) the model runs at (``models.<name>.input_size``)."""
    extra = f", threads: {threads}" if threads else ""
    if input_size:
        extra += f", input_size: [{input_size[0]}, {input_size[1]}]"
    file = f"{{type: file, path: {json.dumps(str(video))}, loop: true, realtime: true}}"
    sources = [f"{{type: rtsp, url: {json.dumps(u)}}}" for u in urls] if urls else [file] * cameras
    cams = "\n".join(
        f"  cam{i:02d}: {{source: {src}, model: m, fps: {fps:g}}}" for i, src in enumerate(sources, 1)
    )
    return f"""
state_dir: {json.dumps(str(state_dir))}
status_interval: 1h
models: {{m: {{path: {json.dumps(model_ref)}, runner: {runner}{extra}}}}}
cameras:
{cams}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""


def read_counters(app: Application) -> Counters:
    """Every camera's counters now (the threads keep running; each figure is read once)."""
    caps, chans = app.captures, app.channels
    worker = app.workers["m"].stats()
    return Counters(
        t=time.monotonic(),
        cpu=cpu_seconds(),
        read={n: c.frames_read for n, c in caps.items()},
        inferred={n: ch.inferred for n, ch in chans.items()},
        dropped={n: ch.ring.dropped for n, ch in chans.items()},
        skipped={n: c.frames_skipped for n, c in caps.items()},
        read_s={n: c.read_seconds for n, c in caps.items()},
        pre_s={n: c.preprocess_seconds for n, c in caps.items()},
        infer_s=worker.infer_seconds,
        inferences=worker.inferred,
    )


def _per(seconds: float, count: int) -> float:
    return round(1000 * seconds / count, 2) if count > 0 else 0.0


def _percentile(values: list[float], q: float) -> float:
    return round(1000 * float(np.percentile(values, q)), 1) if values else 0.0


def summarise(
    a: Counters, b: Counters, latencies: dict[str, list[float]], target: float
) -> tuple[tuple[CameraFigures, ...], Fairness]:
    """Per-camera figures over the window from ``a`` to ``b``, and the fairness figure."""
    dt = max(b.t - a.t, 1e-9)
    rows = []
    for name in sorted(b.read):
        detect = (b.inferred[name] - a.inferred.get(name, 0)) / dt
        lat = latencies.get(name, [])
        rows.append(
            CameraFigures(
                name=name,
                decode_fps=round((b.read[name] - a.read.get(name, 0)) / dt, 2),
                detect_fps=round(detect, 2),
                ratio=round(detect / target, 3),
                dropped=b.dropped[name] - a.dropped.get(name, 0),
                skipped=b.skipped[name] - a.skipped.get(name, 0),
                latency_p50_ms=_percentile(lat, 50),
                latency_p99_ms=_percentile(lat, 99),
            )
        )
    ratios = [r.ratio for r in rows] or [0.0]
    within = sum(1 for r in rows if abs(r.ratio - 1.0) <= WITHIN)
    return tuple(rows), Fairness(min(ratios), max(ratios), within, len(rows))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _clip_seconds(video: Path) -> float:
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    frames, fps = cap.get(cv2.CAP_PROP_FRAME_COUNT), cap.get(cv2.CAP_PROP_FPS)
    cap.release()
    if not (frames > 0 and 0 < fps < 1000):
        raise EdgeError(f"{video}: cannot tell the video's length (frame count and fps)")
    return float(frames / fps)


@contextmanager
def rtsp_streams(video: Path, cameras: int, seconds: float, folder: Path) -> Iterator[list[str]]:
    """Serve ``video`` as ``cameras`` RTSP streams on loopback (GStreamer's RTSP server, a
    separate process whose CPU is not in the report), each lasting at least ``seconds``: the
    clip is first repeated into ``folder`` with ``ffmpeg -c copy`` (no re-encoding)."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None or not Path(SYSTEM_PYTHON).exists():
        raise EdgeError("--rtsp needs ffmpeg and /usr/bin/python3 with GStreamer's RTSP server")
    long = folder / "stream.mp4"
    loops = math.ceil(seconds / _clip_seconds(video))
    cmd = [
        ffmpeg,
        "-v",
        "error",
        "-stream_loop",
        str(loops),
        "-i",
        str(video),
        "-an",
        "-c",
        "copy",
        "-y",
        str(long),
    ]
    made = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    if made.returncode != 0:
        raise EdgeError(f"{video}: ffmpeg could not repeat it for --rtsp: {made.stderr.strip()[-200:]}")
    port = _free_port()
    log_file = folder / "rtsp-server.log"  # a file, not a pipe nobody reads: it never fills
    with log_file.open("w") as log_out:
        server = subprocess.Popen(
            [SYSTEM_PYTHON, "-c", RTSP_SERVER, str(port), str(long), str(cameras)],
            stdout=subprocess.PIPE, stderr=log_out, text=True,
        )  # fmt: skip
    try:
        assert server.stdout is not None
        ready, _, _ = select.select([server.stdout], [], [], 30.0)
        if not ready or server.stdout.readline().strip() != "ready":
            server.kill()
            server.wait(5)
            why = log_file.read_text().strip().splitlines()
            raise EdgeError(f"the RTSP server did not start: {why[-1] if why else 'no answer in 30 s'}")
        yield [f"rtsp://127.0.0.1:{port}/cam{i:02d}" for i in range(1, cameras + 1)]
    finally:
        server.terminate()
        try:
            server.wait(5)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


def run_cameras_bench(
    model_ref: str,
    video: Path,
    cameras: int,
    detect_fps: float,
    seconds: float,
    runner: str = "auto",
    warmup: float = 3.0,
    threads: int | None = None,
    rtsp: bool = False,
    input_size: tuple[int, int] | None = None,
) -> CamerasReport:
    """Run ``cameras`` real-time cameras for ``warmup`` + ``seconds`` and measure the last
    ``seconds``; everything is written into a temporary folder, removed afterwards. ``rtsp``:
    the cameras read RTSP streams of the video from a local server instead of the file."""
    with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder, contextlib.ExitStack() as stack:
        urls = (
            stack.enter_context(rtsp_streams(video, cameras, warmup + seconds + 30.0, Path(folder)))
            if rtsp
            else None
        )
        return _run(
            model_ref, video, cameras, detect_fps, seconds, runner, warmup, threads, Path(folder), urls,
            input_size,
        )  # fmt: skip


def _run(
    model_ref: str,
    video: Path,
    cameras: int,
    detect_fps: float,
    seconds: float,
    runner: str,
    warmup: float,
    threads: int | None,
    folder: Path,
    urls: list[str] | None,
    input_size: tuple[int, int] | None = None,
) -> CamerasReport:
    state_dir = folder / "state"
    text = bench_config(model_ref, runner, video, cameras, detect_fps, state_dir, threads, urls, input_size)
    app = Application(parse_config(text, "<bench>"))
    app.start()
    try:
        time.sleep(warmup)
        for ch in app.channels.values():
            ch.latencies.clear()
        a = read_counters(app)
        time.sleep(seconds)
        b = read_counters(app)
        latencies = {n: list(ch.latencies) for n, ch in app.channels.items()}
        model = app.models["m"]
        backend, file = model.selection.backend, model.selection.path.name
    finally:
        app.stop()
    source = "rtsp" if urls else "file"
    return make_report(model_ref, backend, file, video, source, detect_fps, a, b, latencies)


def make_report(
    model_ref: str,
    backend: str,
    file: str,
    video: Path,
    source: str,
    target: float,
    a: Counters,
    b: Counters,
    latencies: dict[str, list[float]],
) -> CamerasReport:
    """The report over the window ``a`` to ``b``."""
    dt = max(b.t - a.t, 1e-9)
    rows, fairness = summarise(a, b, latencies, target)
    inferences = b.inferences - a.inferences
    infer_s = b.infer_s - a.infer_s
    reads = sum(b.read.values()) - sum(a.read.values())
    converted = reads - (sum(b.skipped.values()) - sum(a.skipped.values()))
    read_s = sum(b.read_s.values()) - sum(a.read_s.values())
    stage_ms = {
        "read (per frame; RTSP: with the wait for it)": _per(read_s, reads),
        "preprocess (per frame handed on)": _per(sum(b.pre_s.values()) - sum(a.pre_s.values()), converted),
        "inference (submit to result)": _per(infer_s, inferences),
    }
    everything = [v for lat in latencies.values() for v in lat]
    return CamerasReport(
        model=model_ref, runner=backend, file=file, video=str(video), source=source, cameras=len(rows),
        target_fps=target, seconds=round(dt, 2),
        cpu_percent=round(100 * (b.cpu - a.cpu) / dt, 1), cores=os.cpu_count() or 1,
        peak_rss_mb=peak_rss_mb(),
        stage_ms=stage_ms,
        latency_p50_ms=_percentile(everything, 50), latency_p99_ms=_percentile(everything, 99),
        fairness=fairness, per_camera=rows,
    )  # fmt: skip


def format_cameras_report(r: CamerasReport) -> str:
    """The report as a text table."""
    f = r.fairness
    lines = [
        f"{r.cameras} camera(s) x {r.target_fps:g} detect fps, model {r.model} on {r.runner} ({r.file}), "
        f"video {r.video} ({r.source}), measured {r.seconds:.1f} s",
        f"  {'camera':<8} {'decode fps':>10} {'detect fps':>10} {'/target':>8} {'dropped':>8} "
        f"{'capped':>7} {'p50 ms':>8} {'p99 ms':>8}",
    ]
    for c in r.per_camera:
        lines.append(
            f"  {c.name:<8} {c.decode_fps:10.2f} {c.detect_fps:10.2f} {c.ratio:8.3f} {c.dropped:8d} "
            f"{c.skipped:7d} {c.latency_p50_ms:8.1f} {c.latency_p99_ms:8.1f}"
        )
    lines.append(
        f"  fairness: detect/target min {f.min_ratio:.3f} max {f.max_ratio:.3f}; "
        f"{f.within}/{f.cameras} camera(s) within {WITHIN:.0%} of target"
    )
    lines.append(
        f"  latency decode->end of rules, all cameras: p50 {r.latency_p50_ms:.1f} ms, "
        f"p99 {r.latency_p99_ms:.1f} ms"
    )
    lines.append(f"  CPU {r.cpu_percent:.0f}% of one core ({r.cores} cores), peak RSS {r.peak_rss_mb:.0f} MB")
    lines.append("  wall ms: " + ", ".join(f"{k} {v:.1f}" for k, v in r.stage_ms.items()))
    return "\n".join(lines)
