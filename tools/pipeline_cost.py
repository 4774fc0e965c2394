"""P1 of issue 12: the pipeline against the best bare runner, over every runner that reads a model
(``python tools/bench.py pipeline --model M --video V [--repeat N]``).

For each runner installed here that can read the model, ``edge bench``'s three measures in one
run (``edge.bench.run_bench``): bare inference on a ready tensor (sync, and async where the
runner has it), a naive read -> preprocess -> infer -> decode loop, and the whole pipeline.
Then the ratio that matters to a user: the best pipeline over the runners against the best bare
figure over the runners (what the hardware could do if decoding and preprocessing were free).

A shared machine's speed drifts by a tenth or more within seconds, and each measure lasts only
a few seconds, so ``repeat`` runs the whole set that many times per runner (bare, naive,
pipeline, bare, naive, pipeline, ...) and reports each measure's median.
"""

from __future__ import annotations

import statistics
import sys
from dataclasses import dataclass
from pathlib import Path

from edge.bench import BenchReport, run_bench
from edge.errors import EdgeError
from edge.models import resolve_model
from edge.runners.select import candidates, probe_hardware


def _bare_best(r: BenchReport) -> float:
    return max(r.bare_sync.fps, r.bare_async.fps if r.bare_async else 0.0)


@dataclass(frozen=True)
class RunnerRuns:
    """One runner's repeated ``edge bench`` reports on one model, and their medians."""

    runner: str
    reports: tuple[BenchReport, ...]

    def _median(self, values: list[float]) -> float:
        return statistics.median(values) if values else 0.0

    @property
    def bare_sync(self) -> float:
        return self._median([r.bare_sync.fps for r in self.reports])

    @property
    def bare_async(self) -> float | None:
        found = [r.bare_async.fps for r in self.reports if r.bare_async is not None]
        return self._median(found) if found else None

    @property
    def bare_best(self) -> float:
        return self._median([_bare_best(r) for r in self.reports])

    @property
    def naive(self) -> float:
        return self._median([r.naive.fps for r in self.reports])

    @property
    def pipeline(self) -> float:
        return self._median([r.pipeline.fps for r in self.reports])

    @property
    def pipeline_cpu(self) -> float:
        return self._median([r.pipeline.cpu_percent for r in self.reports])

    @property
    def peak_rss_mb(self) -> float:
        return max(r.peak_rss_mb for r in self.reports)


@dataclass(frozen=True)
class PipelineCost:
    model: str
    runners: tuple[RunnerRuns, ...]

    @property
    def best_bare(self) -> tuple[float, str]:
        return max(((r.bare_best, r.runner) for r in self.runners), default=(0.0, "-"))

    @property
    def best_pipeline(self) -> tuple[float, str]:
        return max(((r.pipeline, r.runner) for r in self.runners), default=(0.0, "-"))


def runners_for(model: str) -> list[str]:
    """The backends ``runner: auto`` would time for the model here (float files)."""
    found = candidates(resolve_model(model), probe_hardware(full=False), int8=False)
    return list(dict.fromkeys(c.backend for c in found))


def bench_pipeline(
    models: list[str], video: Path, frames: int, bare_runs: int, repeat: int = 1
) -> list[PipelineCost]:
    out = []
    for model in models:
        runs = []
        for runner in runners_for(model):
            reports = []
            for i in range(repeat):
                print(f"{model} on {runner} ({i + 1}/{repeat}) ...", file=sys.stderr, flush=True)
                try:
                    reports.append(run_bench(model, video, runner, None, frames, bare_runs, progress=False))
                except EdgeError as exc:
                    print(f"skip {model} on {runner}: {exc}", file=sys.stderr)
                    break
            if reports:
                runs.append(RunnerRuns(runner, tuple(reports)))
        out.append(PipelineCost(model, tuple(runs)))
    return out


def format_pipeline(results: list[PipelineCost]) -> str:
    lines = [
        f"{'model':<22} {'runner':<12} {'bare sync':>9} {'bare async':>10} {'naive':>7} {'pipeline':>8} "
        f"{'pipe/bare':>9} {'CPU %':>6} {'RSS MB':>7} {'runs':>4}"
    ]
    for cost in results:
        name = Path(cost.model).name
        for r in cost.runners:
            best = r.bare_best
            asynchronous = f"{r.bare_async:.1f}" if r.bare_async is not None else "n/a"
            lines.append(
                f"{name:<22} {r.runner:<12} {r.bare_sync:>9.1f} {asynchronous:>10} {r.naive:>7.1f} "
                f"{r.pipeline:>8.1f} {r.pipeline / best if best else 0:>9.3f} "
                f"{r.pipeline_cpu:>6.0f} {r.peak_rss_mb:>7.0f} {len(r.reports):>4}"
            )
        (bare, bare_runner), (pipe, pipe_runner) = cost.best_bare, cost.best_pipeline
        ratio = pipe / bare if bare else 0.0
        lines.append(
            f"  P1 {name}: best pipeline {pipe:.1f} FPS ({pipe_runner}) / best bare {bare:.1f} FPS "
            f"({bare_runner}) = {ratio:.3f}"
        )
    lines.append(
        "(FPS, medians over the runs; pipeline in lossless mode on the clip, looped to --frames; "
        "peak RSS is of the whole bench process)"
    )
    return "\n".join(lines)
