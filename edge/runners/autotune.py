"""``runner: auto`` by measurement: time each installed backend on the model, keep the choice.

On the first load of a model on a machine, every candidate (``select.candidates``: each usable
backend with the file the heuristics would give it, and int8 twins the gate lets run) is
loaded and run on one deterministic input: a fixed synthetic frame (seeded noise, shapes and
text drawn with OpenCV) put through the candidate's own preprocessor. Each gets ``WARM_RUNS``
untimed runs (the first one's outputs are the accuracy sample), then timed runs in two passes
over all candidates (A B … then A B … again): each pass gives a candidate half of ``RUNS``
runs or half of ``BACKEND_BUDGET_S`` seconds (at least one timed run), and a candidate's
better pass counts. A shared machine's speed drifts by tens of percent within seconds: timed
one after the other in one block each, two backends of about the same speed swapped places
from run to run; interleaved, drift touches both. Once ``TOTAL_BUDGET_S`` seconds have gone
since the start (loads included), the candidates still waiting are skipped, and the second
pass is run for all or none. So the whole thing takes at most about ``TOTAL_BUDGET_S`` plus one
candidate (its load, warm-up runs and budget), whatever the model: 8 runs / 2 s per backend,
10 s in all.

Accuracy. A float candidate is compared with the reference: the backend native to its file's
format (ONNX Runtime for .onnx, LiteRT for .tflite, OpenVINO for IR), else the first native
candidate. Its error is, over its worst output, the 99.9th percentile of ``|candidate -
reference|`` divided by the reference output's range (peak to peak; its largest magnitude when
it is constant). It is accurate when that is at most ``TOLERANCE`` (2 %). Measured here: f32
backends differ by under 1e-4 of range (PP-OCR on ONNX Runtime vs OpenVINO 5e-5, BlazeFace on
LiteRT vs OpenVINO 2e-6); f16 weights add under 1e-4 at the 99.9th percentile (a few pixels of
a DB map up to 7 %, hence the percentile, not the maximum); rounding the input to bf16 adds at
most 0.7 %; a swapped colour order (a broken conversion) gives 16 % to 84 %. An int8 twin's
accuracy is its ``edge quantize`` gate report (judged on real frames), reported as such.

The fastest accurate candidate (the median of its better pass) wins. The choice, the whole table and
a one-line reason are cached in ``<state_dir>/runner-choice.json`` under a key of the model
files' sha256s, the backends' versions, the CPU model, the int8 preference and the options
that change speed; a key miss measures again, and a cached backend no longer usable is ignored.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge import __version__
from edge.buffer.preprocess import LetterboxPreprocessor
from edge.models import ModelPackage
from edge.runners.base import RunnerOptions, default_jobs, file_sha256, one_line
from edge.runners.select import NATIVE, Candidate, HardwareInfo, Selection, candidates, usable, usable_cores
from edge.statefiles import keep_as_evidence, write_atomic

log = logging.getLogger("edge.autotune")

FILENAME = "runner-choice.json"
SCHEMA = 1
METHOD = 3  # part of the key: bump when the measurement or the tolerance changes
WARM_RUNS = 2
RUNS = 8
BACKEND_BUDGET_S = 2.0
TOTAL_BUDGET_S = 10.0
TOLERANCE = 0.02
PERCENTILE = 99.9
FRAME_SEED = 2026
MAX_ENTRIES = 64  # models x option sets x machines kept in the cache file


@dataclass(frozen=True)
class Budget:
    """How much measuring a model may take (see the module's docstring)."""

    warm_runs: int = WARM_RUNS
    runs: int = RUNS
    backend_s: float = BACKEND_BUDGET_S
    total_s: float = TOTAL_BUDGET_S


class Trial(Protocol):
    """A candidate loaded for timing (``LoadedModel`` is one)."""

    def preprocessor(self) -> LetterboxPreprocessor: ...

    def run_tensor(self, tensor: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


TrialLoader = Callable[[Candidate], Trial]
Clock = Callable[[], float]


@dataclass(frozen=True)
class Row:
    """One candidate's line in the table. ``error``: relative error against the reference
    (float candidates), the gate's agreement (int8 twins), None when not compared."""

    backend: str
    format: str
    file: str
    int8: bool
    load_ms: float | None
    median_ms: float | None
    runs: int
    accuracy: str
    error: float | None
    accurate: bool
    verdict: str


@dataclass(frozen=True)
class Choice:
    """The measured choice: what to run, why, and the table it came from."""

    backend: str
    format: str
    int8: bool
    file: str
    reason: str
    rows: tuple[Row, ...]
    cached: bool = False
    seconds: float = 0.0

    def summary(self) -> tuple[str, ...]:
        """The table as reason lines (``Selection.reasons``), then the reason."""
        lines = [f"autotune: {len(self.rows)} candidate(s) {'(cached)' if self.cached else 'measured'}"]
        lines.extend(f"  {row_text(r)}" for r in self.rows)
        return (*lines, self.reason)

    def selection(self, package: ModelPackage) -> Selection:
        files = package.int8_files if self.int8 else package.files
        return Selection(self.backend, self.format, files[self.format], self.summary(), self.int8)


def row_text(r: Row) -> str:
    load = "-" if r.load_ms is None else f"{r.load_ms:.0f} ms"
    median = "-" if r.median_ms is None else f"{r.median_ms:.2f} ms ({r.runs} runs)"
    kind = "int8 " if r.int8 else ""
    return f"{r.backend} {kind}{r.format} {r.file}: load {load}, median {median}, {r.accuracy}: {r.verdict}"


def synthetic_frame(width: int = 640, height: int = 480, seed: int = FRAME_SEED) -> np.ndarray:
    """A fixed BGR frame: seeded blurred noise, a white box with text, a disc and a grey bar.
    The same bytes on every machine (no download, no image library beyond OpenCV)."""
    rng = np.random.default_rng(seed)
    noise = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    frame: np.ndarray = cv2.GaussianBlur(noise, (0, 0), 3)
    cv2.rectangle(frame, (width // 6, height // 5), (width // 2, height // 2), (255, 255, 255), -1)
    at = (width // 6 + 10, height // 3 + 10)
    cv2.putText(frame, "EDGE 2026", at, cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 0, 0), 3)
    cv2.circle(frame, (width * 2 // 3, height * 2 // 3), min(width, height) // 8, (40, 180, 220), -1)
    cv2.rectangle(frame, (0, height - height // 10), (width, height), (128, 128, 128), -1)
    return frame


def relative_error(reference: Sequence[np.ndarray], other: Sequence[np.ndarray]) -> float | None:
    """The worst output's 99.9th-percentile absolute difference over the reference output's
    range; None when the outputs do not line up (count or shapes differ)."""
    if len(reference) != len(other) or any(a.shape != b.shape for a, b in zip(reference, other, strict=True)):
        return None
    worst = 0.0
    for a, b in zip(reference, other, strict=True):
        if a.size == 0:
            continue
        a64, b64 = a.astype(np.float64), b.astype(np.float64)
        if not np.isfinite(b64).all():
            return float("inf")
        scale = max(float(np.ptp(a64)), float(np.abs(a64).max()) if np.ptp(a64) == 0 else 0.0, 1e-6)
        worst = max(worst, float(np.percentile(np.abs(a64 - b64), PERCENTILE)) / scale)
    return worst


@dataclass(frozen=True)
class _Timed:
    load_ms: float
    median_ms: float
    runs: int
    outputs: list[np.ndarray]


@dataclass
class _Loaded:
    """A candidate loaded and warmed up, kept open between the two timing passes."""

    trial: Trial
    pre: LetterboxPreprocessor
    tensor: np.ndarray
    load_ms: float
    outputs: list[np.ndarray]


def _load_one(
    candidate: Candidate, load: TrialLoader, frame: np.ndarray, clock: Clock, budget: Budget
) -> _Loaded:
    started = clock()
    trial = load(candidate)
    load_ms = (clock() - started) * 1000
    try:
        pre = trial.preprocessor()
        tensor = pre.new_tensor()
        pre(frame, tensor)
        outputs = [np.array(o, copy=True) for o in trial.run_tensor(tensor)]
        for _ in range(budget.warm_runs - 1):
            trial.run_tensor(tensor)
    except BaseException:
        trial.close()
        raise
    return _Loaded(trial, pre, tensor, load_ms, outputs)


def _half(budget: Budget) -> Budget:
    """One of the two timing passes' share of a backend's budget."""
    return replace(budget, runs=max(1, budget.runs // 2), backend_s=budget.backend_s / 2)


def _frame_times(
    trial: Trial,
    pre: LetterboxPreprocessor,
    frame: np.ndarray,
    tensor: np.ndarray,
    clock: Clock,
    budget: Budget,
) -> list[float]:
    """Seconds per frame of preprocessing + inference, the way the worker runs the candidate:
    a runner with requests in flight (OpenVINO) keeps ``default_jobs`` of them busy, and each
    frame counts the wall time over the frames; the others run one frame at a time. The
    preprocessing counts because what a runner folds into its graph (OpenVINO) costs the
    capture thread nothing."""
    runner: Any = getattr(trial, "runner", None)
    make = getattr(runner, "async_infer", None)
    jobs = default_jobs(runner)
    times: list[float] = []
    begun = clock()
    if make is None or jobs < 2:
        while len(times) < budget.runs and (not times or clock() - begun < budget.backend_s):
            t = clock()
            pre(frame, tensor)
            trial.run_tensor(tensor)
            times.append(clock() - t)
        return times
    queue = make(jobs)
    name = runner.inputs[0].name
    slots = [pre.new_tensor() for _ in range(jobs)]
    for job, slot in enumerate(slots):  # each new request's first run allocates: not timed
        pre(frame, slot)
        queue.submit({name: slot}, -1 - job)
    for job in range(jobs):
        queue.wait(-1 - job)
    begun = clock()
    n = 0
    while n < budget.runs * jobs and (n < jobs or clock() - begun < budget.backend_s):
        if n >= jobs:
            queue.wait(n - jobs)
        pre(frame, slots[n % jobs])
        queue.submit({name: slots[n % jobs]}, n)
        n += 1
    for job in range(max(0, n - jobs), n):
        queue.wait(job)
    queue.close()
    return [(clock() - begun) / n] * n


def _reference_of(candidate: Candidate, pool: Sequence[Candidate]) -> Candidate | None:
    natives = [c for c in pool if not c.int8 and c.backend == NATIVE.get(c.format)]
    same_file = [c for c in natives if c.path == candidate.path]
    found = same_file or natives
    return found[0] if found else None


def _gate(package: ModelPackage, candidate: Candidate, int8: bool | None) -> tuple[str, float | None, bool]:
    report = package.quantization.get(candidate.format, {})
    agreement = report.get("agreement")
    figure = float(agreement) if isinstance(agreement, int | float) else None
    shown = f"{figure:.3f}" if figure is not None else "unknown"
    passed = report.get("passed") is not False or int8 is True
    text = f"gate agreement {shown} (bar {report.get('bar')}) on real frames"
    return text, figure, passed


def measure(
    package: ModelPackage,
    hw: HardwareInfo,
    load: TrialLoader,
    int8: bool | None = None,
    *,
    clock: Clock = time.perf_counter,
    budget: Budget = Budget(),
    frame: np.ndarray | None = None,
) -> Choice | None:
    """Time every candidate (see the module's docstring); None when none could be measured.
    ``load``, ``clock`` and ``budget`` are the seams tests use to count loads, inject timings
    and keep the runs few."""
    found = candidates(package, hw, int8)
    pool = sorted(found, key=lambda c: (_reference_of(c, found) != c, found.index(c)))  # references first
    image = synthetic_frame() if frame is None else frame
    started = clock()
    loaded: dict[Candidate, _Loaded] = {}
    times: dict[Candidate, list[list[float]]] = {}
    failed: dict[Candidate, str] = {}
    share = _half(budget)
    try:
        for c in pool:  # pass 1: load, warm up, time
            if loaded and clock() - started > budget.total_s:
                failed[c] = f"skipped: the {budget.total_s:.0f} s budget was spent"
                continue
            try:
                one = loaded[c] = _load_one(c, load, image, clock, budget)
                times[c] = [_frame_times(one.trial, one.pre, image, one.tensor, clock, share)]
            except Exception as exc:  # one broken backend must not stop the others
                broken = loaded.pop(c, None)
                if broken is not None:
                    broken.trial.close()
                failed[c] = f"failed: {one_line(exc, 160)}"
        if len(times) > 1 and clock() - started <= budget.total_s:  # pass 2, for all or none
            for c, one in loaded.items():
                try:
                    times[c].append(_frame_times(one.trial, one.pre, image, one.tensor, clock, share))
                except Exception as exc:
                    times.pop(c)
                    failed[c] = f"failed: {one_line(exc, 160)}"
    finally:
        for one in loaded.values():
            one.trial.close()
    timed = {
        c: _Timed(
            loaded[c].load_ms,
            min(float(np.median(block)) for block in blocks) * 1000,
            sum(len(block) for block in blocks),
            loaded[c].outputs,
        )
        for c, blocks in times.items()
    }
    rows = [_row(package, c, timed, failed, pool, int8) for c in pool]
    fine = [r for r in rows if r.accurate and r.median_ms is not None]
    if not fine:
        return None
    best = min(fine, key=lambda r: r.median_ms or 0.0)
    rows = [replace(r, verdict="chosen") if r is best else r for r in rows]
    others = ", ".join(f"{r.backend} {r.median_ms:.2f} ms" for r in fine if r is not best)
    reason = (
        f"chose {best.backend} with the {'int8 ' if best.int8 else ''}{best.format} file {best.file}: "
        f"fastest accurate, median {best.median_ms:.2f} ms"
        + (f" (vs {others})" if others else " (the only accurate candidate)")
    )
    seconds = clock() - started
    return Choice(best.backend, best.format, best.int8, best.file, reason, tuple(rows), seconds=seconds)


def _row(
    package: ModelPackage,
    c: Candidate,
    timed: Mapping[Candidate, _Timed],
    failed: Mapping[Candidate, str],
    pool: Sequence[Candidate],
    int8: bool | None,
) -> Row:
    blank = Row(c.backend, c.format, c.path.name, c.int8, None, None, 0, "-", None, False, "not measured")
    got = timed.get(c)
    if got is None:
        return replace(blank, verdict=failed.get(c, blank.verdict))
    row = replace(blank, load_ms=round(got.load_ms, 1), median_ms=round(got.median_ms, 3), runs=got.runs)
    if c.int8:
        text, figure, ok = _gate(package, c, int8)
        verdict = "accurate" if ok else "refused: failed its gate"
        return replace(row, accuracy=text, error=figure, accurate=ok, verdict=verdict)
    ref = _reference_of(c, pool)
    if ref == c:
        return replace(row, accuracy="reference", error=0.0, accurate=True, verdict="accurate")
    if ref is None or ref not in timed:
        why = "no reference backend" if ref is None else f"reference {ref.backend} not measured"
        return replace(row, accuracy=f"{why}: not compared", accurate=True, verdict="accurate (unchecked)")
    error = relative_error(timed[ref].outputs, got.outputs)
    if error is None:
        text = f"outputs do not line up with {ref.backend}'s"
        return replace(row, accuracy=text, verdict="refused: inaccurate")
    ok = error <= TOLERANCE
    verdict = "accurate" if ok else f"refused: inaccurate (over {TOLERANCE:.0%})"
    text = f"error {error:.2%} of range vs {ref.backend}"
    return replace(row, accuracy=text, error=round(error, 6), accurate=ok, verdict=verdict)


# --- the cache ------------------------------------------------------------------------------


def cache_key(
    package: ModelPackage, hw: HardwareInfo, options: RunnerOptions, int8: bool | None
) -> tuple[str, dict[str, Any]]:
    """The key (a sha256) and the facts it is made of."""
    files: dict[str, str] = {}
    for kind, paths in (("", package.files), ("int8:", package.int8_files)):
        for fmt, path in paths.items():
            pinned = package.pinned_sha256(fmt, bool(kind))
            files[kind + fmt] = pinned or (file_sha256(path) if path.exists() else "missing")
    facts: dict[str, Any] = {
        "method": METHOD,
        "model": package.name,
        "files": files,
        "backends": dict(sorted(hw.backends.items())),
        "cpu": hw.cpu_model,
        "cores": usable_cores(),
        "edge": __version__,
        "input": [
            list(package.input.size or ()),
            package.input.color,
            list(package.input.mean),
            list(package.input.std),
        ],
        "int8": int8,
        "options": {
            "device": options.device,
            "precision": options.precision,
            "threads": options.threads,
            "providers": list(options.providers) if options.providers else None,
            "performance_hint": options.performance_hint,
            "graph_preprocess": options.graph_preprocess,
        },
    }
    text = json.dumps(facts, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest(), facts


class ChoiceCache:
    """``runner-choice.json``: measured choices by key. Written atomically; a file that cannot
    be read or parsed is renamed to ``runner-choice.json.corrupt`` (``.corrupt.N`` when that
    exists), kept as evidence, with one warning, and the models are measured again."""

    _lock = threading.Lock()  # the daemon loads models one by one; this guards other callers

    def __init__(self, state_dir: Path) -> None:
        self.path = state_dir / FILENAME

    def get(self, key: str) -> Choice | None:
        with self._lock:
            entry = self._read().get(key)
        if not isinstance(entry, dict):
            return None
        try:
            rows = tuple(Row(**r) for r in entry["rows"])
            return Choice(entry["backend"], entry["format"], bool(entry["int8"]), entry["file"],
                          entry["reason"], rows, cached=True)  # fmt: skip
        except (KeyError, TypeError):
            return None

    def put(self, key: str, facts: Mapping[str, Any], choice: Choice) -> None:
        with self._lock:
            entries = self._read()
            entry = {**asdict(choice), "cached": False, "measured": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                     "facts": dict(facts)}  # fmt: skip
            entries.pop(key, None)
            entries[key] = entry
            while len(entries) > MAX_ENTRIES:
                entries.pop(next(iter(entries)))
            doc = {"schema": SCHEMA, "choices": entries}
            try:
                write_atomic(self.path, json.dumps(doc, indent=1) + "\n")
            except OSError as exc:
                log.warning("%s: cannot save the runner choice (%s); it is measured again next start",
                            self.path, exc.strerror or exc)  # fmt: skip

    def _read(self) -> dict[str, Any]:
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
            doc = doc if isinstance(doc, dict) else {}
            choices = doc.get("choices")
            if doc.get("schema") != SCHEMA or not isinstance(choices, dict):
                raise ValueError(f'expected an object with "schema": {SCHEMA} and "choices"')
            return dict(choices)
        except (FileNotFoundError, NotADirectoryError):
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
            log.warning("%s: cannot read the cached runner choices (%s); measuring again%s",
                        self.path, reason, keep_as_evidence(self.path))  # fmt: skip
            return {}


def _still_valid(choice: Choice, package: ModelPackage, hw: HardwareInfo) -> bool:
    files = package.int8_files if choice.int8 else package.files
    return usable(choice.backend, hw) and choice.format in files and files[choice.format].name == choice.file


def autotuned_selection(
    package: ModelPackage,
    hw: HardwareInfo,
    options: RunnerOptions,
    int8: bool | None,
    state_dir: Path,
    heuristic: Selection,
    load: TrialLoader,
    *,
    clock: Clock = time.perf_counter,
    budget: Budget = Budget(),
    measure_fn: Callable[[], Choice | None] | None = None,
) -> Selection:
    """The cached choice for this key, else a measured (and cached) one, else ``heuristic``
    (on a Jetson, or when no candidate could be measured), with the reasons saying which.

    ``measure_fn`` measures instead of ``measure(package, hw, load, ...)`` in this process: the
    daemon passes one that measures in a child process (see ``edge.inference``)."""
    if hw.is_jetson:
        why = "autotune: not on a Jetson (a TensorRT engine build takes minutes); vendor heuristics"
        return replace(heuristic, reasons=(*heuristic.reasons, why))
    if len(candidates(package, hw, int8)) < 2:
        why = "autotune: one candidate at most here, nothing to compare; vendor heuristics"
        return replace(heuristic, reasons=(*heuristic.reasons, why))
    key, facts = cache_key(package, hw, options, int8)
    cache = ChoiceCache(state_dir)
    cached = cache.get(key)
    if cached is not None and _still_valid(cached, package, hw):
        log.info("autotune %s: cached choice %s (%s) from %s: %s",
                 package.name, cached.backend, cached.file, cache.path, cached.reason)  # fmt: skip
        return cached.selection(package)
    if measure_fn is not None:
        choice = measure_fn()
    else:
        choice = measure(package, hw, load, int8, clock=clock, budget=budget)
    if choice is None:
        why = "autotune: no candidate could be measured; vendor heuristics"
        log.warning("autotune %s: no candidate could be measured; using %s (kept in %s: delete it "
                    "to measure again)", package.name, heuristic.backend, cache.path)  # fmt: skip
        # Kept, so that a backend that crashes while being timed does not cost every start.
        fallback = Choice(heuristic.backend, heuristic.format, heuristic.int8, heuristic.path.name,
                          "no candidate could be measured: vendor heuristics", ())  # fmt: skip
        cache.put(key, facts, fallback)
        return replace(heuristic, reasons=(*heuristic.reasons, why))
    cache.put(key, facts, choice)
    figures = "; ".join(
        f"{r.backend}{' int8' if r.int8 else ''} {'-' if r.median_ms is None else f'{r.median_ms:.2f} ms'}"
        f" {r.verdict}" for r in choice.rows
    )  # fmt: skip
    log.info("autotune %s: measured in %.1f s: %s [%s]", package.name, choice.seconds, choice.reason, figures)
    return choice.selection(package)
