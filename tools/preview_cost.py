"""What the preview costs: CPU of a running ``edge run`` with the preview off, on without a
viewer, and on with one viewer reading the MJPEG stream (``python tools/bench.py preview``).

The demo clip plays in real time and loops (``source.realtime``), so the daemon does the
same work per second as with a camera; CPU is the process's user + system time (from
``/proc/<pid>/stat``) over the same window in each mode, as a percentage of one core.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True)
class PreviewCost:
    mode: str
    cpu_percent: float  # of one core, over the window
    frames_streamed: int  # MJPEG parts the viewer received


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime, stime


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _viewer(port: int, stop: threading.Event, counter: list[int]) -> None:
    """Read the stream like a browser tab would, counting parts, until ``stop``."""
    while not stop.is_set():
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/stream/entrance.mjpg")
            resp = conn.getresponse()
            while not stop.is_set():
                line = resp.fp.readline()
                if not line:
                    break
                if line.startswith(b"--edgeframe"):
                    counter[0] += 1
            conn.close()
        except OSError:
            time.sleep(0.2)


def _drain(stream: object) -> None:
    """Read the daemon's log to its end, so a full pipe never blocks it."""
    for _line in stream:  # type: ignore[attr-defined]
        pass


def cpu_of_edge_run(
    sets: dict[str, str],
    warmup: float,
    window: float,
    on_ready: Callable[[], None] | None = None,
    mark: Callable[[str], None] | None = None,
) -> float:
    """Run ``edge run configs/demo.yaml`` with ``--set`` for each of ``sets``; once it is ready
    (and ``on_ready`` has run), wait ``warmup`` seconds, then measure its CPU over ``window``
    seconds: percent of one core (``mark("start")`` and ``mark("end")`` bracket the window).
    The daemon is stopped afterwards."""
    args = [sys.executable, "-m", "edge", "run", str(REPO / "configs" / "demo.yaml")]
    for k, v in sets.items():
        args += ["--set", f"{k}={v}"]
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        for line in proc.stderr:  # wait for "ready"
            if re.search(r"\bready in\b", line):
                break
        else:
            raise SystemExit(f"edge run ended before it was ready ({sets})")
        threading.Thread(target=_drain, args=(proc.stderr,), daemon=True).start()
        if on_ready is not None:
            on_ready()
        time.sleep(warmup)
        c0, t0 = cpu_seconds(proc.pid), time.monotonic()
        if mark is not None:
            mark("start")
        time.sleep(window)
        c1, t1 = cpu_seconds(proc.pid), time.monotonic()
        if mark is not None:
            mark("end")
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    return 100.0 * (c1 - c0) / (t1 - t0)


def measure(mode: str, clip: Path, runner: str, warmup: float, window: float) -> PreviewCost:
    port = free_port()
    stop = threading.Event()
    counter = [0]
    counted: dict[str, int] = {}

    def start_viewer() -> None:
        if mode == "viewer":
            threading.Thread(target=_viewer, args=(port, stop, counter), daemon=True).start()

    with tempfile.TemporaryDirectory(prefix="edge-preview-cost-") as state:
        sets = {
            "state_dir": state,
            "cameras.entrance.source.path": str(clip),
            "cameras.entrance.source.loop": "true",
            "cameras.entrance.source.realtime": "true",
            "models.person.runner": runner,
            "mqtt.enabled": "false",
            "actions.event_log": "false",
            "actions.snapshots.enabled": "false",
            "preview.enabled": "false" if mode == "off" else "true",
            "preview.port": str(port),
        }
        try:
            window_marks = lambda at: counted.update({at: counter[0]})  # noqa: E731
            cpu = cpu_of_edge_run(sets, warmup, window, start_viewer, window_marks)
        finally:
            stop.set()
    return PreviewCost(mode, cpu, counted["end"] - counted["start"])


def bench_preview(clip: Path, runner: str, warmup: float, window: float) -> list[PreviewCost]:
    return [measure(mode, clip, runner, warmup, window) for mode in ("off", "no-viewer", "viewer")]


def format_preview(results: list[PreviewCost], window: float) -> str:
    off = results[0].cpu_percent
    lines = [f"edge run on the demo clip in real time; CPU over {window:g} s, % of one core"]
    for r in results:
        extra = f", {r.frames_streamed} frames streamed" if r.mode == "viewer" else ""
        delta = r.cpu_percent - off
        lines.append(f"  preview {r.mode:<10} {r.cpu_percent:6.1f} %  ({delta:+.1f} vs off{extra})")
    return "\n".join(lines)
