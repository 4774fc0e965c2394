"""P1 of issue 12: the pipeline against the best bare runner, over every runner that reads a model
(``python tools/bench.py pipeline --model M --video V``).

For each runner installed here that can read the model, ``edge bench``'s three measures in one
run (``edge.bench.run_bench``): bare inference on a ready tensor (sync, and async where the
runner has it), a naive read -> preprocess -> infer -> decode loop, and the whole pipeline.
Then the ratio that matters to a user: the best pipeline over the runners against the best bare
figure over the runners (what the hardware could do if decoding and preprocessing were free).
"""

from __future__ import annotations

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
class PipelineCost:
    model: str
    reports: tuple[BenchReport, ...]

    @property
    def best_bare(self) -> tuple[float, str]:
        return max(
            (
                (max(r.bare_sync.fps, r.bare_async.fps if r.bare_async else 0.0), r.runner)
                for r in self.reports
            ),
            default=(0.0, "-"),
        )

    @property
    def best_pipeline(self) -> tuple[float, str]:
        return max(((r.pipeline.fps, r.runner) for r in self.reports), default=(0.0, "-"))


def runners_for(model: str) -> list[str]:
    """The backends ``runner: auto`` would time for the model here (float files)."""
    found = candidates(resolve_model(model), probe_hardware(full=False), int8=False)
    return list(dict.fromkeys(c.backend for c in found))


def bench_pipeline(models: list[str], video: Path, frames: int, bare_runs: int) -> list[PipelineCost]:
    out = []
    for model in models:
        reports = []
        for runner in runners_for(model):
            print(f"{model} on {runner} ...", file=sys.stderr, flush=True)
            try:
                reports.append(run_bench(model, video, runner, None, frames, bare_runs, progress=False))
            except EdgeError as exc:
                print(f"skip {model} on {runner}: {exc}", file=sys.stderr)
        out.append(PipelineCost(model, tuple(reports)))
    return out


def format_pipeline(results: list[PipelineCost]) -> str:
    lines = [
        f"{'model':<22} {'runner':<12} {'bare sync':>9} {'bare async':>10} {'naive':>7} {'pipeline':>8} "
        f"{'pipe/bare':>9} {'CPU %':>6} {'RSS MB':>7}"
    ]
    for cost in results:
        name = Path(cost.model).name
        for r in cost.reports:
            best = _bare_best(r)
            asynchronous = f"{r.bare_async.fps:.1f}" if r.bare_async else "n/a"
            lines.append(
                f"{name:<22} {r.runner:<12} {r.bare_sync.fps:>9.1f} {asynchronous:>10} {r.naive.fps:>7.1f} "
                f"{r.pipeline.fps:>8.1f} {r.pipeline.fps / best if best else 0:>9.3f} "
                f"{r.pipeline.cpu_percent:>6.0f} {r.peak_rss_mb:>7.0f}"
            )
        (bare, bare_runner), (pipe, pipe_runner) = cost.best_bare, cost.best_pipeline
        ratio = pipe / bare if bare else 0.0
        lines.append(
            f"  P1 {name}: best pipeline {pipe:.1f} FPS ({pipe_runner}) / best bare {bare:.1f} FPS "
            f"({bare_runner}) = {ratio:.3f}"
        )
    lines.append("(FPS; pipeline in lossless mode on the clip; peak RSS is of the whole bench process)")
    return "\n".join(lines)
