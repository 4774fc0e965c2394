"""``edge bench``: one model on one video, measured three ways in one run.

(a) bare runner throughput on a ready tensor, sync and (OpenVINO) async;
(b) a naive single-thread loop: read -> preprocess -> infer -> decode;
(c) the full ``edge run`` pipeline in lossless mode (capture thread, ring, worker, rules).

(b) and (c) read ``frames`` frames, from the clip's start again when it is shorter.

Prints FPS, per-stage ms, CPU % and peak RSS, and the ratios (c)/(a) and (c)/(b). Writes
nothing but into a temporary folder (the pipeline's state_dir), removed afterwards; progress
bars go to stderr only when asked (the CLI asks when stderr is a terminal).
"""

from __future__ import annotations

import resource
import statistics
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2

from edge.config import parse_config
from edge.daemon.app import Application, async_jobs
from edge.decoders import DecodeContext
from edge.errors import EdgeError
from edge.inference import LoadedModel, load_model
from edge.logs import progress as progress_line
from edge.runners.base import RunnerOptions


@dataclass
class Measure:
    fps: float
    frames: int
    seconds: float
    cpu_percent: float
    stage_ms: dict[str, float] = field(default_factory=dict)


@dataclass
class BenchReport:
    model: str
    runner: str
    file: str
    precision: str | None
    video: str
    bare_sync: Measure
    bare_async: Measure | None
    naive: Measure
    pipeline: Measure
    async_jobs: int
    peak_rss_mb: float
    ratios: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class _Progress:
    """A ``label [####....] done/total`` line on stderr, redrawn at most five times a second;
    nothing when disabled (stderr is not a terminal)."""

    def __init__(self, label: str, total: int, enabled: bool) -> None:
        self.label, self.total, self.enabled = label, total, enabled
        self._last = 0.0

    def update(self, done: int) -> None:
        now = time.monotonic()
        if self.enabled and (now - self._last > 0.2 or done >= self.total):
            self._last = now
            width = 30
            filled = int(width * done / max(self.total, 1))
            bar = "#" * filled + "." * (width - filled)
            progress_line(f"{self.label:<10} [{bar}] {done}/{self.total}", done=done >= self.total)


def cpu_seconds() -> float:
    """User + system CPU seconds of this process so far."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def peak_rss_mb() -> float:
    """This process's peak resident set size in MB (Linux reports ``ru_maxrss`` in kB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def _measure(frames: int, seconds: float, cpu: float, stages: dict[str, float] | None = None) -> Measure:
    return Measure(
        fps=round(frames / seconds, 2) if seconds > 0 else 0.0,
        frames=frames,
        seconds=round(seconds, 3),
        cpu_percent=round(100 * cpu / seconds, 1) if seconds > 0 else 0.0,
        stage_ms={k: round(v, 3) for k, v in (stages or {}).items()},
    )


def _first_frame(video: Path) -> Any:
    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    if not ok:
        raise EdgeError(f"{video}: cannot read a frame")
    return frame


def bare_sync(model: LoadedModel, tensor: Any, n: int, progress: bool) -> Measure:
    bar = _Progress("bare sync", n, progress)
    c0, t0 = cpu_seconds(), time.perf_counter()
    latencies = []
    for i in range(n):
        t = time.perf_counter()
        model.run_tensor(tensor)
        latencies.append(time.perf_counter() - t)
        bar.update(i + 1)
    seconds = time.perf_counter() - t0
    return _measure(n, seconds, cpu_seconds() - c0, {"infer_median": 1000 * statistics.median(latencies)})


def bare_async(model: LoadedModel, tensor: Any, n: int, jobs: int, progress: bool) -> Measure | None:
    make = getattr(model.runner, "async_infer", None)
    if make is None:
        return None
    infer = make(jobs)
    name = model.input_spec.name
    bar = _Progress("bare async", n, progress)
    c0, t0 = cpu_seconds(), time.perf_counter()
    for i in range(n):
        infer.submit({name: tensor}, i)
        if i >= jobs:
            infer.wait(i - jobs)
        bar.update(i + 1)
    for i in range(max(0, n - jobs), n):
        infer.wait(i)
    seconds = time.perf_counter() - t0
    infer.close()
    return _measure(n, seconds, cpu_seconds() - c0)


def naive_loop(model: LoadedModel, video: Path, limit: int, progress: bool) -> Measure:
    cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
    pre = model.preprocessor()
    tensor = pre.new_tensor()
    stages = {"read": 0.0, "preprocess": 0.0, "infer": 0.0, "decode": 0.0}
    n = 0
    bar = _Progress("naive", limit, progress)
    c0, t0 = cpu_seconds(), time.perf_counter()
    while n < limit:
        t = time.perf_counter()
        ok, frame = cap.read()
        if not ok and n > 0:  # the clip ended: from its start again, as the pipeline loops it
            cap.release()
            cap = cv2.VideoCapture(str(video), cv2.CAP_FFMPEG)
            ok, frame = cap.read()
        t1 = time.perf_counter()
        if not ok:
            break
        box = pre(frame, tensor)
        t2 = time.perf_counter()
        outputs = model.run_tensor(tensor)
        t3 = time.perf_counter()
        model.decode(outputs, DecodeContext(box, (frame.shape[1], frame.shape[0])))
        t4 = time.perf_counter()
        for key, dt in zip(stages, (t1 - t, t2 - t1, t3 - t2, t4 - t3), strict=True):
            stages[key] += dt
        n += 1
        bar.update(n)
    seconds = time.perf_counter() - t0
    cap.release()
    return _measure(n, seconds, cpu_seconds() - c0, {k: 1000 * v / max(n, 1) for k, v in stages.items()})


def pipeline(
    model_ref: str,
    runner: str,
    precision: str | None,
    video: Path,
    limit: int,
    jobs: int,
    progress: bool,
    input_size: tuple[int, int] | None = None,
    state_dir: Path | None = None,
) -> Measure:
    """``edge run``'s pipeline on ``limit`` frames of ``video`` (looped when shorter), in
    ``state_dir`` (None: a temporary one)."""
    if state_dir is None:
        with tempfile.TemporaryDirectory(prefix="edge-bench-") as folder:
            return pipeline(
                model_ref, runner, precision, video, limit, jobs, progress, input_size, Path(folder)
            )
    size = f", input_size: [{input_size[0]}, {input_size[1]}]" if input_size else ""
    text = f"""
state_dir: "{state_dir}"
status_interval: 1h
models: {{m: {{path: "{model_ref}", runner: {runner}{f", precision: {precision}" if precision else ""},
            async_jobs: {jobs}{size}}}}}
cameras:
  bench: {{source: {{type: file, path: "{video}", loop: true}}, model: m, buffer: lossless,
          buffer_slots: {jobs + 2}}}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    app = Application(parse_config(text, "<bench>"), max_frames=limit)
    app.start()
    bar = _Progress("pipeline", limit, progress)
    c0, t0 = cpu_seconds(), time.perf_counter()
    worker = app.workers["m"]
    while worker.is_alive() and worker.processed < limit:
        time.sleep(0.05)
        bar.update(min(worker.processed, limit))
    seconds = time.perf_counter() - t0
    cpu = cpu_seconds() - c0
    frames = worker.processed
    bar.update(limit)
    capture = app.captures["bench"]
    stats = worker.stats()
    app.stop()
    stages = {
        "read (capture thread)": 1000 * capture.read_seconds / max(capture.frames_read, 1),
        "preprocess (capture thread)": 1000 * capture.preprocess_seconds / max(capture.frames_read, 1),
        "infer (submit to result)": stats.stage_ms["infer"],
        "decode": stats.stage_ms["decode"],
        "rules": stats.stage_ms["rules"],
    }
    return _measure(frames, seconds, cpu, stages)


def run_bench(
    model_ref: str,
    video: Path,
    runner: str = "auto",
    precision: str | None = None,
    frames: int = 300,
    bare_runs: int = 200,
    progress: bool = True,
    input_size: tuple[int, int] | None = None,
) -> BenchReport:
    """``input_size``: (width, height) to run the model at (``models.<name>.input_size``)."""
    graph_hw = (input_size[1], input_size[0]) if input_size else None
    # Sync and the naive loop get the latency-tuned model; async and the pipeline the
    # throughput-tuned one (the same settings `edge run` uses), so each is at its best.
    latency = RunnerOptions(precision=precision, performance_hint="latency", graph_hw=graph_hw, pin_batch=1)
    model = load_model(model_ref, runner, options=latency)
    pre = model.preprocessor()
    tensor = pre.new_tensor()
    pre(_first_frame(video), tensor)
    sync = bare_sync(model, tensor, bare_runs, progress)
    naive = naive_loop(model, video, frames, progress)
    model.close()
    throughput = replace(latency, performance_hint="throughput")
    model = load_model(model_ref, runner, options=throughput)
    jobs = async_jobs(model, None)
    asynchronous = bare_async(model, tensor, bare_runs, jobs, progress)
    backend = model.selection.backend
    file = model.selection.path.name
    model.close()
    piped = pipeline(model_ref, backend, precision, video, frames, jobs, progress, input_size)
    best = max(sync.fps, asynchronous.fps if asynchronous else 0.0)
    ratios = {
        "pipeline / bare best": round(piped.fps / best, 3) if best else 0.0,
        "pipeline / bare sync": round(piped.fps / sync.fps, 3) if sync.fps else 0.0,
        "pipeline / naive loop": round(piped.fps / naive.fps, 3) if naive.fps else 0.0,
    }
    return BenchReport(
        model=model_ref, runner=backend, file=file, precision=precision, video=str(video),
        bare_sync=sync, bare_async=asynchronous, naive=naive, pipeline=piped, async_jobs=jobs,
        peak_rss_mb=peak_rss_mb(), ratios=ratios,
    )  # fmt: skip


def format_report(r: BenchReport) -> str:
    lines = [
        f"model {r.model} on {r.runner} ({r.file}, precision {r.precision or 'default'}), video {r.video}"
    ]

    def row(name: str, m: Measure | None) -> None:
        if m is None:
            lines.append(f"  {name:<22} n/a (this runner has no async API; threads overlap instead)")
            return
        lines.append(
            f"  {name:<22} {m.fps:8.1f} FPS  {m.frames:5d} frames  {m.seconds:7.2f} s  "
            f"CPU {m.cpu_percent:5.0f}%"
        )
        for k, v in m.stage_ms.items():
            lines.append(f"      {k:<30} {v:8.2f} ms")

    row("(a) bare sync", r.bare_sync)
    row(f"(a) bare async x{r.async_jobs}", r.bare_async)
    row("(b) naive loop", r.naive)
    row("(c) pipeline", r.pipeline)
    for k, v in r.ratios.items():
        lines.append(f"  {k:<22} {v:.3f}")
    lines.append(f"  peak RSS {r.peak_rss_mb:.0f} MB")
    return "\n".join(lines)
