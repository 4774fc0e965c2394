"""The worker's OpenVINO requests in flight: how many by default, and that a request which
returns is given the next frame before the worker decodes, tracks and rules on its frame, so
the runner does not wait for that Python work. Frames still finish in the order they came.

Also: a gated frame (motion gating) takes no request and waits only behind its own camera's
frames; a temporary input array is kept alive while its request reads it; and a failure in
``submit`` or ``_finish`` loses no ring slot or ``--max-frames`` unit.

Real OpenVINO on BlazePose, real video (the demo clip, and a still clip written here). The worker's real ``submit``, ``wait``,
``_next_ready`` and ``_finish`` are wrapped to record their order (and, in the fault cases, to
raise once); nothing is replaced.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_backend

from edge.buffer.ring import SlotState
from edge.config import parse_config
from edge.config.schema import CameraConfig, EdgeConfig
from edge.daemon.app import Application, RunResult, async_jobs
from edge.inference import load_model
from edge.pipeline.worker import InferenceWorker
from edge.runners.base import RunnerOptions, jobs_for
from edge.runners.openvino import AsyncInfer


@pytest.mark.parametrize(
    ("optimal", "jobs"),
    [(0, 2), (1, 2), (2, 3), (3, 4), (4, 5), (8, 5)],
)
def test_requests_in_flight_are_one_more_than_the_advice_within_2_to_5(optimal: int, jobs: int) -> None:
    assert jobs_for(optimal) == jobs


@pytest.mark.parametrize(
    ("runner", "configured", "expected"),
    [
        ("openvino", None, "advice"),
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
        if expected == "advice":
            expected = jobs_for(model.runner.optimal_jobs())  # type: ignore[attr-defined]
        assert async_jobs(model, configured) == expected
    finally:
        model.close()


class _Instrumented(Application):
    """An Application whose first worker notes, in ``events`` and in order, each result
    collected (``wait`` returned outputs), each look for a ready frame (``_next_ready``) and
    each frame finished; and, when ``fails`` names ``submit`` or ``_finish``, raises once on its
    6th call (the supervisor then restarts the worker, which takes the requests over and runs
    as it is)."""

    def __init__(self, *args: Any, fails: str | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[str, int]] = []
        self.trace: list[tuple[str, str, int]] = []  # (what, camera, seq or job) of every camera
        self.fails = fails
        self.calls = 0

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
        if reuse_async is not None:
            return worker
        wait, next_ready, finish, submit = infer.wait, worker._next_ready, worker._finish, infer.submit
        events = self.events

        def fault(what: str) -> None:
            if self.fails == what:
                self.calls += 1
                if self.calls == 6:
                    raise RuntimeError(f"injected: {what} failed")

        def recorded_submit(feeds: Any, job: int) -> None:
            fault("submit")
            submit(feeds, job)

        def recorded_wait(job: int, timeout: float | None = None) -> Any:
            outputs = wait(job, timeout)
            if outputs is not None:
                events.append(("result", job))
                self.trace.append(("result", "", job))
            return outputs

        def recorded_next_ready(*args: Any, **kwargs: Any) -> Any:
            events.append(("look", 0))
            got = next_ready(*args, **kwargs)
            if got is not None:
                self.trace.append(("take gated" if got[1].gated else "take", got[0].name, got[1].seq))
            return got

        def recorded_finish(ch: Any, slot: Any, outputs: Any, seconds: float) -> None:
            fault("_finish")
            events.append(("finish" if outputs is not None else "finish gated", slot.seq))
            self.trace.append(("finish" if outputs is not None else "finish gated", ch.name, slot.seq))
            finish(ch, slot, outputs, seconds)

        for owner, attribute, fn in (
            (infer, "submit", recorded_submit),
            (infer, "wait", recorded_wait),
            (worker, "_next_ready", recorded_next_ready),
            (worker, "_finish", recorded_finish),
        ):
            setattr(owner, attribute, fn)  # instance attributes: the class is left alone
        return worker


def _run(cameras: str, state_dir: Path, frames: int, jobs: int = 3) -> tuple[_Instrumented, RunResult]:
    """BlazePose on OpenVINO with ``jobs`` requests for ``cameras`` (YAML lines), run to ``frames``."""
    text = f"""
state_dir: "{state_dir}"
status_interval: 1h
models: {{m: {{path: blazepose, runner: openvino, async_jobs: {jobs}}}}}
cameras:
{cameras}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    app = _Instrumented(parse_config(text, "async.yaml"), max_frames=frames)
    app.start()
    try:
        result = app.run()
    finally:
        app.stop()
    return app, result


@pytest.mark.parametrize(
    ("case", "jobs", "motion"),
    [
        ("2 requests", 2, False),
        ("3 requests", 3, False),
        ("3 requests, motion gating: gated frames wait in line", 3, True),
    ],
)
def test_a_returned_request_is_given_a_frame_before_its_frame_is_finished(
    models_dir: Path, demo_clip: Path, tmp_path: Path, case: str, jobs: int, motion: bool
) -> None:
    """After each result and before that frame is finished, the worker looks for the next
    frame to give the freed request (the old loop finished first, then looked). Frames finish
    in the order they came, and no ring slot is left held by the worker at the end."""
    require_backend("openvino")
    frames = 60
    gating = ", motion: {enabled: true}" if motion else ""
    camera = f'  c: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless, buffer_slots: 8{gating}}}'
    app, result = _run(camera, tmp_path, frames, jobs)
    assert result.frames == frames, case
    events = app.events
    finished = [seq for kind, seq in events if kind.startswith("finish")]
    assert finished == sorted(finished) and len(finished) == frames, case
    results = [i for i, (kind, _) in enumerate(events) if kind == "result"]
    inferred = [i for i, (kind, _) in enumerate(events) if kind == "finish"]
    assert len(results) == len(inferred) > 0, case  # results are finished in the order they came
    for got, done in zip(results, inferred, strict=True):
        assert ("look", 0) in events[got:done], f"{case}: frame finished before the next was looked for"
    ring = app.channels["c"].ring
    assert not [s for s in ring.slots if s.state is SlotState.READING], case


def _still_clip(path: Path, frames: int = 250) -> Path:
    """A scene where nothing moves: the same textured picture in every frame."""
    import cv2

    noise = np.random.default_rng(3).integers(0, 255, (240, 320, 3), dtype=np.uint8)
    picture = cv2.GaussianBlur(noise, (9, 9), 0)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 25.0, (320, 240))
    for _ in range(frames):
        writer.write(picture)
    writer.release()
    return path


def test_a_gated_frame_takes_no_request_and_waits_only_behind_its_own_camera(
    models_dir: Path, demo_clip: Path, tmp_path: Path
) -> None:
    """A still camera (motion gating) beside a moving one, 3 requests: a gated frame none of
    whose camera's frames is being inferred is finished before any further result, so it
    neither waits for the other camera's inference nor keeps a request idle (the old loop put
    it in line, counted as a request, behind every frame in flight); and gated frames are
    taken while every request is busy (the old loop took no frame then). Each camera's frames
    still finish in the order they were taken, and the gated frames are many."""
    require_backend("openvino")
    still = _still_clip(tmp_path / "still.mp4")
    frames = 220  # about half from each camera; the still one is gated after its first 2 s
    cameras = f"""\
  moving: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless, buffer_slots: 8}}
  still: {{source: {{type: file, path: "{still}"}}, model: m, buffer: lossless, buffer_slots: 8,
           motion: {{enabled: true}}}}"""
    app, result = _run(cameras, tmp_path, frames)
    assert result.frames == frames
    taken: dict[str, list[int]] = {"moving": [], "still": []}
    finished: dict[str, list[int]] = {"moving": [], "still": []}
    inferring: dict[str, set[int]] = {"moving": set(), "still": set()}  # taken, inferred, not finished
    must_not_wait: set[tuple[str, int]] = set()  # gated, none of its camera's frames being inferred
    gated = busy = requests = 0  # busy: gated frames taken while every request was in flight
    for what, camera, seq in app.trace:
        if what == "result":
            requests -= 1
            assert not must_not_wait, f"gated frame(s) {sorted(must_not_wait)} waited for a result"
        elif what.startswith("take"):
            taken[camera].append(seq)
            if what == "take":
                inferring[camera].add(seq)
                requests += 1
                continue
            gated += 1
            busy += requests == 3
            if not inferring[camera]:
                must_not_wait.add((camera, seq))
        else:
            finished[camera].append(seq)
            inferring[camera].discard(seq)
            must_not_wait.discard((camera, seq))
    assert gated >= 20, f"only {gated} gated frames: the still scene was not gated"
    assert busy > 0, "no gated frame was taken while the 3 requests were busy"
    assert finished == taken  # every frame, each camera's in the order taken
    for channel in app.channels.values():
        assert not [s for s in channel.ring.slots if s.state is SlotState.READING]


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


@pytest.mark.parametrize("fails", ["submit", "_finish"])
def test_a_failure_on_the_async_path_loses_no_slot_and_no_budget(
    models_dir: Path, demo_clip: Path, tmp_path: Path, fails: str
) -> None:
    """A request that cannot start, or a frame whose rules raise: the worker dies and is
    restarted; the frame's ring slot goes back and its budget unit is settled, so the run
    still ends at --max-frames, with no slot held and no input kept."""
    require_backend("openvino")
    frames = 40
    text = f"""
state_dir: "{tmp_path}"
status_interval: 1h
models: {{m: {{path: blazepose, runner: openvino, async_jobs: 2}}}}
cameras:
  c: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless, buffer_slots: 6}}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    app = _Instrumented(parse_config(text, "fail.yaml"), max_frames=frames, fails=fails)
    app.start()
    try:
        result = app.run()
    finally:
        app.stop()
    assert app.calls >= 6 and result.reason.startswith("max frames"), (fails, result)
    assert app.budget is not None and app.budget.complete
    assert not [s for s in app.channels["c"].ring.slots if s.state is SlotState.READING]
    infer = app.workers["m"].async_requests
    assert infer is not None and not infer._held


@pytest.mark.parametrize(
    ("taken", "released", "may_take"),
    [
        (["job"], 0, True),
        (["job", "gated", "gated"], 0, False),  # 3 of 4 slots held: the capture keeps the 4th
        (["job", "gated", "gated"], 1, True),
        (["gated", "gated", "gated"], 0, False),  # at once, not yet finished: still held
        (["job", "job", "gated"], 3, True),
    ],
)
def test_a_camera_never_has_every_ring_slot_held_by_the_worker(
    taken: list[str], released: int, may_take: bool
) -> None:
    """However a still camera's gated frames pile up behind its frame in flight, the worker
    holds at most its ring's slots minus one, so the capture thread always has one to write."""
    from edge.buffer.ring import FrameRing
    from edge.pipeline.worker import CameraChannel, _Line

    ring = FrameRing(4, lambda: np.zeros((1, 3, 4, 4), np.float32), "latest")
    camera = CameraChannel("a", ring, capture=None)  # type: ignore[arg-type]  # never started
    line = _Line(jobs=2)
    for i, kind in enumerate(taken):
        slot = ring.slots[i]
        if kind == "job":
            line.add_job(camera, slot)
        else:
            line.add_gated(camera, slot)
    for _ in range(released):
        line.released(camera)
    assert line.can_take(camera) is may_take
