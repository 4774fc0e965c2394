"""The worker's OpenVINO requests in flight: how many by default, and that a request which
returns is given the next frame before the worker decodes, tracks and rules on its frame, so
the runner does not wait for that Python work. Frames still finish in the order they came.

Real OpenVINO on BlazePose, real video (the demo clip). The worker's real ``submit`` and
``_finish`` are wrapped to record their order; nothing is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_backend

from edge.config import parse_config
from edge.config.schema import CameraConfig, EdgeConfig
from edge.daemon.app import Application, async_jobs
from edge.inference import load_model
from edge.pipeline.worker import InferenceWorker
from edge.runners.base import RunnerOptions
from edge.runners.openvino import AsyncInfer


@pytest.mark.parametrize(
    ("runner", "configured", "expected"),
    [
        ("openvino", None, "advice + 1"),
        ("openvino", 1, 1),
        ("openvino", 7, 7),
        ("litert", None, 1),
        ("litert", 3, 3),  # taken as it is; a runner without requests then runs synchronously
    ],
)
def test_default_requests_in_flight(
    models_dir: Path, runner: str, configured: int | None, expected: object
) -> None:
    require_backend(runner)
    model = load_model("blazepose", runner, options=RunnerOptions(performance_hint="throughput"))
    try:
        if expected == "advice + 1":
            expected = min(max(model.runner.optimal_jobs() + 1, 2), 5)  # type: ignore[attr-defined]
        assert async_jobs(model, configured) == expected
    finally:
        model.close()


class _Recording(Application):
    """An Application whose workers note each submit and each finish, in order."""

    events: list[tuple[str, int]]

    def _build_worker(
        self,
        cfg: EdgeConfig,
        name: str,
        cameras: dict[str, CameraConfig],
        reuse_async: AsyncInfer | None = None,
    ) -> InferenceWorker:
        worker = super()._build_worker(cfg, name, cameras, reuse_async)
        infer = worker.async_requests
        assert infer is not None
        submit, finish = infer.submit, worker._finish
        events = self.events

        def recorded_submit(feeds: Any, job: int) -> None:
            events.append(("submit", job))
            submit(feeds, job)

        def recorded_finish(ch: Any, slot: Any, outputs: Any, seconds: float) -> None:
            events.append(("finish", slot.seq))
            finish(ch, slot, outputs, seconds)

        setattr(infer, "submit", recorded_submit)  # noqa: B010 (instance attributes, not the class)
        setattr(worker, "_finish", recorded_finish)  # noqa: B010
        return worker


@pytest.mark.parametrize("jobs", [2, 3])
def test_a_returned_request_runs_the_next_frame_while_its_frame_is_finished(
    models_dir: Path, demo_clip: Path, tmp_path: Path, jobs: int
) -> None:
    require_backend("openvino")
    frames = 40
    text = f"""
state_dir: "{tmp_path}"
status_interval: 1h
models: {{m: {{path: blazepose, runner: openvino, async_jobs: {jobs}}}}}
cameras:
  c: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless, buffer_slots: 8}}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    app = _Recording(parse_config(text, "async.yaml"), max_frames=frames)
    app.events = []
    app.start()
    try:
        result = app.run()
    finally:
        app.stop()
    assert result.frames == frames
    submitted = finished = 0
    busy_while_finishing = []  # requests running while the worker finishes one frame in Python
    seqs = []
    for kind, value in app.events:
        if kind == "submit":
            submitted += 1
        else:
            seqs.append(value)
            finished += 1
            busy_while_finishing.append(submitted - finished)
    assert seqs == sorted(seqs) and len(seqs) == frames  # in the order the frames came
    assert max(busy_while_finishing) <= jobs
    # With frames waiting in the ring (8 slots, the capture thread is ahead of BlazePose), every
    # request is busy while the worker finishes a frame at least once; before this change one
    # request always stood idle then (at most jobs - 1 busy).
    assert busy_while_finishing.count(jobs) >= 1, busy_while_finishing


def test_a_submitted_array_is_read_in_place_and_kept_alive_until_done(
    models_dir: Path, astronaut: Any
) -> None:
    """The request reads the caller's array without a copy; a temporary array handed to it
    stays alive until the request is done, so memory freed and written over meanwhile cannot
    change the result."""
    require_backend("openvino")
    model = load_model("blazepose", "openvino", options=RunnerOptions(performance_hint="throughput"))
    try:
        pre = model.preprocessor()
        reference = pre.new_tensor()
        pre(astronaut, reference)
        expected = model.run_tensor(reference)
        infer = model.runner.async_infer(2)  # type: ignore[attr-defined]
        name = model.input_spec.name
        for job in range(6):
            infer.submit({name: reference.copy()}, job)  # the only reference goes with the call
            junk = [np.full_like(reference, 255 - 40 * i) for i in range(4)]  # reuses freed memory
            got = infer.wait(job, timeout=30)
            assert got is not None and len(junk) == 4
            for a, b in zip(got, expected, strict=True):
                np.testing.assert_allclose(a, b, atol=1e-4)
        infer.close()
    finally:
        model.close()
