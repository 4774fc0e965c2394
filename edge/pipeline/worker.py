"""The inference worker: one per loaded model, shared by the cameras that use it.

It takes the next ready slot from each camera's ring in turn, runs the model on the slot's
tensor, decodes, evaluates the rules, and hands events to the action dispatcher; then it frees
the slot. This is the one place where the stages meet.
"""

from __future__ import annotations

import bisect
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from edge.alerts.actions import ActionDispatcher, EventEnvelope
from edge.alerts.payload import ModelIdentity, event_payload
from edge.buffer.ring import FrameRing, Slot
from edge.capture.thread import CameraState, CaptureThread
from edge.decoders import DecodeContext
from edge.inference import LoadedModel
from edge.overlay import camera_shapes
from edge.preview.tap import PreviewFrame, PreviewTap
from edge.rules.engine import Event, FrameInfo, RuleEngine
from edge.runners.openvino import AsyncInfer
from edge.runners.openvino_resize import RESIZABLE_DECODERS, suggested_size
from edge.telemetry.figures import LATENCY_BUCKETS
from edge.tracking.bytetrack import ByteTracker
from edge.types import Detections

LATENCY_WINDOW = 4096  # per camera: the latest frames' latencies kept (bounded, a 24/7 daemon)

log = logging.getLogger("edge.pipeline")
LIVE_STATES = (CameraState.STREAMING, CameraState.CONNECTING)


@dataclass
class _Job:
    """A frame whose request is in flight, and the gated frames of its camera taken after it
    (finished right after it, in the order taken)."""

    job: int
    ch: CameraChannel
    slot: Slot
    t0: float
    gated: list[Slot] = field(default_factory=list)


class _Line:
    """The frames the async loop has taken: requests in flight in the order started, each
    with its camera's gated frames that must follow it.

    A gated frame (motion gating: its scene stood still) needs no request. It follows its
    camera's last frame in flight, if there is one; otherwise it goes to ``at_once`` and is
    finished at once. So a still camera never keeps a request idle, nor waits for another
    camera's inference. A camera's frames held here (until ``released``) stay under its
    ring's slots minus one, so its capture thread always has a slot to write into.
    """

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self.entries: deque[_Job] = deque()
        self.at_once: deque[tuple[CameraChannel, Slot]] = deque()
        self.job = 0  # the next request's id
        self._held: dict[str, int] = {}  # frames held, by camera

    def has_request(self) -> bool:
        return len(self.entries) < self.jobs

    def can_take(self, ch: CameraChannel) -> bool:
        return self._held.get(ch.name, 0) < len(ch.ring.slots) - 1

    def add_job(self, ch: CameraChannel, slot: Slot) -> None:
        self.entries.append(_Job(self.job, ch, slot, time.perf_counter()))
        self.job += 1
        self._held[ch.name] = self._held.get(ch.name, 0) + 1

    def add_gated(self, ch: CameraChannel, slot: Slot) -> None:
        last = next((entry for entry in reversed(self.entries) if entry.ch is ch), None)
        if last is None:
            self.at_once.append((ch, slot))
        else:
            last.gated.append(slot)
        self._held[ch.name] = self._held.get(ch.name, 0) + 1

    def released(self, ch: CameraChannel) -> None:
        """One of ``ch``'s frames was finished and its slot given back."""
        self._held[ch.name] -= 1

    def pop(self) -> _Job:
        """The oldest request, done; the gated frames that follow it go to ``at_once``."""
        head = self.entries.popleft()
        self.at_once.extend((head.ch, slot) for slot in head.gated)
        return head

    def drain(self) -> list[tuple[CameraChannel, Slot]]:
        """Every frame still held, emptied: their slots go back when the loop ends."""
        held = list(self.at_once)
        for entry in self.entries:
            held += [(entry.ch, entry.slot)] + [(entry.ch, slot) for slot in entry.gated]
        self.entries.clear()
        self.at_once.clear()
        self._held.clear()
        return held


@dataclass
class CameraChannel:
    name: str
    ring: FrameRing
    capture: CaptureThread
    last_frame: FrameInfo | None = None
    processed: int = 0
    detections: int = 0
    events: int = 0
    offline_ended: bool = False  # the rules were ended because the camera went away
    tracker: ByteTracker | None = None  # used by the worker thread only
    last_dets: Detections | None = None  # the last decoded detections: reused for gated frames
    gated: int = 0  # frames processed without inference (the scene stood still)
    hinted: bool = False  # the input_size hint was considered for this camera
    # Seconds from the frame's decode (``slot.t_wall``) to the end of ``_finish`` (rules
    # evaluated, events handed to the actions), for the most recent frames: ``edge bench``.
    latencies: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))

    @property
    def inferred(self) -> int:
        """Frames that ran through the model (processed less gated)."""
        return self.processed - self.gated

    @property
    def finished(self) -> bool:
        """The file was read to its end (or given up) and every committed frame has been taken."""
        capture = self.capture
        ended = capture.exhausted or capture.failed  # a crashed capture is restarted: not finished
        return capture.state is CameraState.STOPPED and ended and self.ring.pending == 0


class FrameBudget:
    """At most ``limit`` frames over every worker (``edge run --max-frames N``): a worker takes
    one unit before it runs a frame, so exactly N frames are run, and settles it when the frame
    is done with (processed, or failed). ``complete`` once every unit is settled."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._taken = 0
        self._settled = 0
        self._lock = threading.Lock()

    @property
    def exhausted(self) -> bool:
        return self._taken >= self.limit

    @property
    def complete(self) -> bool:
        return self._settled >= self.limit

    def take(self) -> bool:
        with self._lock:
            if self._taken >= self.limit:
                return False
            self._taken += 1
            return True

    def settle(self) -> None:
        with self._lock:
            self._settled += 1


@dataclass(frozen=True)
class WorkerStats:
    model: str
    processed: int
    infer_ms_avg: float
    stage_ms: dict[str, float]
    idle: bool
    last_progress_age: float
    inferred: int = 0  # frames that ran inference
    infer_seconds: float = 0.0  # their inference time, summed (submit to result)


@dataclass
class _Timing:
    infer: float = 0.0
    decode: float = 0.0
    track: float = 0.0
    rules: float = 0.0
    count: int = 0
    inferred: int = 0  # frames that ran inference (the others were gated): infer and decode are theirs


class InferenceWorker(threading.Thread):
    def __init__(
        self,
        model_name: str,
        model: LoadedModel,
        engine: RuleEngine,
        dispatcher: ActionDispatcher,
        device: str,
        snapshots: bool = False,
        async_jobs: int = 1,
        reuse_async: AsyncInfer | None = None,
        preview: PreviewTap | None = None,
        budget: FrameBudget | None = None,
    ) -> None:
        super().__init__(name=f"infer-{model_name}", daemon=True)
        self.preview = preview  # frames for viewers of the preview page, when one is served
        self.budget = budget
        self.model_name = model_name
        self.model = model
        self.engine = engine
        self.dispatcher = dispatcher
        self.device = device
        self.snapshots = snapshots
        self.identity = ModelIdentity(model.package.name, model.sha256)
        self.channels: list[CameraChannel] = []
        self._channels_lock = threading.Lock()
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.processed = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)  # Prometheus histogram, +Inf last
        self.latency_sum = 0.0
        self.event_counts: dict[tuple[str, str, str], int] = {}
        self.batches = 0  # inferences that served more than one camera
        self.batched_frames = 0
        self.error: str | None = None
        self._timing = _Timing()
        self._last_progress = time.monotonic()
        self._idle = True
        self._rr = 0
        self._calls: queue.SimpleQueue[tuple[Callable[[], None], threading.Event]] = queue.SimpleQueue()
        self._async: AsyncInfer | None = None
        make_async = getattr(model.runner, "async_infer", None)
        if reuse_async is not None:  # a restarted worker takes over its predecessor's requests
            self._async = reuse_async
        elif async_jobs > 1 and make_async is not None:
            self._async = make_async(async_jobs)
        self.jobs = self._async.jobs if self._async is not None else 1  # frames in flight at most

    @property
    def async_requests(self) -> AsyncInfer | None:
        """OpenVINO requests in flight (a restarted worker takes them over)."""
        return self._async

    def add_camera(self, channel: CameraChannel) -> None:
        with self._channels_lock:  # the list is replaced, never mutated: readers need no lock
            self.channels = [*[c for c in self.channels if c.name != channel.name], channel]

    def remove_channel(self, channel: CameraChannel, end_rules: bool = False) -> None:
        """Remove this channel (not another one of the same name added since). Call it on the
        worker thread (``on_worker``) when ``end_rules``: the camera's active rules end first."""
        if end_rules:
            self._dispatch(channel, self.engine.finish(channel.name, channel.last_frame), None)
        with self._channels_lock:
            self.channels = [c for c in self.channels if c is not channel]

    def on_worker(self, fn: Callable[[], None], timeout: float = 10.0) -> bool:
        """Run ``fn`` on this worker's thread between two frames (the rule engine is not
        thread-safe); inline when the thread is not running. False if it did not run in time."""
        if not self.is_alive():
            fn()
            return True
        done = threading.Event()
        self._calls.put((fn, done))
        self.wake.set()
        return done.wait(timeout)

    def replace_engine(self, build: Callable[[RuleEngine], tuple[RuleEngine, list[Event]]]) -> bool:
        """Swap the rule engine on the worker thread; ``build(old)`` returns the new engine and
        the events that closing the old state produced (``end`` of rules that go)."""

        def swap() -> None:
            engine, events = build(self.engine)
            self.engine = engine
            by_camera = {ch.name: ch for ch in self.channels}
            for event in events:
                ch = by_camera.get(event.camera)
                if ch is not None:
                    self._dispatch(ch, [event], None)
                else:
                    self._dispatch_event(event)

        return self.on_worker(swap)

    def _service(self) -> None:
        """Between frames: run queued calls, and end the rules of cameras that went away."""
        while not self._calls.empty():
            fn, done = self._calls.get_nowait()
            try:
                fn()
            except Exception:
                log.exception("worker %s: a reload step failed", self.model_name)
            finally:
                done.set()
        for ch in self.channels:
            if ch.capture.state in LIVE_STATES:
                ch.offline_ended = False
            elif not ch.offline_ended and ch.ring.pending == 0:
                ch.offline_ended = True  # offline (reconnecting, stopped): nothing stays `on`
                self._dispatch(ch, self.engine.finish(ch.name, ch.last_frame), None)
                if ch.tracker is not None:
                    ch.tracker.reset()  # objects are not followed across a gap in the video
                ch.last_dets = None

    def stats(self) -> WorkerStats:
        t = self._timing
        n = max(t.count, 1)
        m = max(t.inferred, 1)
        return WorkerStats(
            model=self.model_name,
            processed=self.processed,
            infer_ms_avg=1000 * t.infer / m,
            stage_ms={
                "infer": 1000 * t.infer / m,
                "decode": 1000 * t.decode / m,
                "track": 1000 * t.track / n,
                "rules": 1000 * t.rules / n,
            },
            idle=self._idle,
            last_progress_age=time.monotonic() - self._last_progress,
            inferred=t.inferred,
            infer_seconds=t.infer,
        )

    def stop(self) -> None:
        """Finish what the rings hold, then exit."""
        self.stop_event.set()
        self.wake.set()

    def run(self) -> None:
        try:
            self._loop()
        except Exception as exc:
            self.error = f"{type(exc).__name__}: {exc}"
            log.exception("worker %s failed", self.model_name)
        finally:
            for ch in self.channels:
                self._dispatch(ch, self.engine.finish(ch.name, ch.last_frame), None)

    def _next_ready(
        self, gated_only: bool = False, room: Callable[[CameraChannel], bool] | None = None
    ) -> tuple[CameraChannel, Slot] | None:
        """Round-robin over the cameras, starting after the last one served. ``gated_only``:
        only a frame that needs no inference (``FrameRing.take``); ``room``: only from a
        camera it says may give one more."""
        channels = self.channels  # a reload replaces the list; never mutates it
        n = len(channels)
        for i in range(n):
            ch = channels[(self._rr + i) % n]
            if room is not None and not room(ch):
                continue
            slot = ch.ring.take(gated_only)
            if slot is not None:
                self._rr = (self._rr + i + 1) % n
                if self.budget is not None and not self.budget.take():
                    ch.ring.release(slot)  # --max-frames reached: this frame is not processed
                    return None
                return ch, slot
        return None

    def _should_exit_when_idle(self) -> bool:
        self._service()
        self._idle = True
        self._last_progress = time.monotonic()
        channels = self.channels
        if channels and all(ch.finished for ch in channels):
            return True
        spent = self.budget is not None and self.budget.exhausted
        if self.stop_event.is_set() and (spent or all(ch.ring.pending == 0 for ch in channels)):
            return True
        self.wake.wait(0.05)
        self.wake.clear()
        return False

    def _loop(self) -> None:
        if self._async is not None:
            self._loop_async()
            return
        if self.model.input_spec.has_dynamic_batch and len(self.channels) > 1:
            self._loop_batched()
            return
        while True:
            got = self._next_ready()
            if got is None:
                if self._should_exit_when_idle():
                    return
                continue
            ch, slot = got
            self._idle = False
            try:
                t0 = time.perf_counter()
                outputs = None if slot.gated else self.model.run_tensor(slot.tensor)
                self._finish(ch, slot, outputs, time.perf_counter() - t0)
            finally:
                self._done(ch, slot)
            self._service()

    def _loop_batched(self) -> None:
        """Models with a dynamic batch axis: one inference for every camera with a frame ready."""
        first = self.channels[0].ring.slots[0].tensor
        batch = np.empty((len(self.channels), *first.shape[1:]), dtype=first.dtype)  # once, not per frame
        while True:
            channels = self.channels
            if len(channels) > len(batch):  # a reload added a camera
                batch = np.empty((len(channels), *first.shape[1:]), dtype=first.dtype)
            taken = []
            for ch in channels:
                slot = ch.ring.take()
                if slot is None:
                    continue
                if self.budget is not None and not self.budget.take():
                    ch.ring.release(slot)
                    continue
                taken.append((ch, slot))
            if not taken:
                if self._should_exit_when_idle():
                    return
                continue
            self._idle = False
            try:
                for ch, slot in taken:
                    if slot.gated:
                        self._finish(ch, slot, None, 0.0)
                live = [(ch, slot) for ch, slot in taken if not slot.gated]
                for i, (_ch, slot) in enumerate(live):
                    batch[i] = slot.tensor[0]
                if live:
                    t0 = time.perf_counter()
                    outputs = self.model.run_tensor(batch[: len(live)])
                    per_frame = (time.perf_counter() - t0) / len(live)
                    if len(live) > 1:
                        self.batches += 1
                        self.batched_frames += len(live)
                    for i, (ch, slot) in enumerate(live):
                        self._finish(ch, slot, [o[i : i + 1] for o in outputs], per_frame)
            finally:
                for ch, slot in taken:
                    self._done(ch, slot)
            self._service()

    def _loop_async(self) -> None:
        """Keep up to ``jobs`` requests in flight; finish frames in the order they were taken,
        so each camera's frames reach the rules in sequence. A request that returns is given
        the next frame before its own frame is decoded, tracked and ruled on, so the runner
        does not wait for that Python work. Gated frames: see ``_Line``."""
        assert self._async is not None
        infer = self._async
        line = _Line(infer.jobs)
        try:
            while True:
                self._fill(line)
                self._finish_gated(line)
                if not line.entries:
                    if self._should_exit_when_idle():
                        return
                    continue
                outputs = infer.wait(line.entries[0].job, timeout=0.02)
                if outputs is None:
                    continue  # not done yet: meanwhile fill free requests with new frames
                head = line.pop()
                seconds = time.perf_counter() - head.t0
                try:
                    try:
                        self._fill(line)  # the request just freed runs while this frame is finished
                    finally:
                        self._finish(head.ch, head.slot, outputs, seconds)  # its inference succeeded
                finally:
                    self._done(head.ch, head.slot)
                    line.released(head.ch)
                self._finish_gated(line)  # those that followed it, then any taken meanwhile
                self._service()  # between two results; frames still in flight are finished later
        finally:
            if line.entries:
                infer.wait_all()
            for ch, slot in line.drain():
                self._done(ch, slot)

    def _fill(self, line: _Line) -> None:
        """Take ready frames while a request is free: start a request for each, or put a
        gated one in line. Then, with every request busy, take the gated frames that are
        ready: they need none."""
        assert self._async is not None
        name = self.model.input_spec.name
        while line.has_request() and (got := self._next_ready(room=line.can_take)) is not None:
            ch, slot = got
            self._idle = False
            if slot.gated:
                line.add_gated(ch, slot)
                continue
            try:
                self._async.submit({name: slot.tensor}, line.job)
            except BaseException:
                self._done(ch, slot)  # never started: its slot goes back now
                raise
            line.add_job(ch, slot)
        while (got := self._next_ready(gated_only=True, room=line.can_take)) is not None:
            self._idle = False
            line.add_gated(*got)

    def _finish_gated(self, line: _Line) -> None:
        while line.at_once:
            ch, slot = line.at_once.popleft()
            try:
                self._finish(ch, slot, None, 0.0)
            finally:
                self._done(ch, slot)
                line.released(ch)

    def _done(self, ch: CameraChannel, slot: Slot) -> None:
        """The slot goes back to its ring and its budget unit is settled, whatever happened."""
        ch.ring.release(slot)
        if self.budget is not None:
            self.budget.settle()

    def _hint_input_size(self, camera: str, frame_wh: tuple[int, int]) -> None:
        """Say once per camera when a YOLO model spends a fifth or more of its input on the
        letterbox's padding, and which ``input_size`` would not (README: input_size)."""
        fmt = self.model.input_format
        if self.model.package.decoder not in RESIZABLE_DECODERS:
            return
        size = suggested_size(frame_wh, (fmt.width, fmt.height))
        if size is None:
            return
        scale = min(fmt.width / frame_wh[0], fmt.height / frame_wh[1])
        share = 100.0 * frame_wh[0] * frame_wh[1] * scale * scale / (fmt.width * fmt.height)
        log.info(
            "camera %s: its %dx%d frames fill %.0f %% of model %s's %dx%d input; "
            "models.%s.input_size: [%d, %d] runs the model without the padding (YOLO on OpenVINO)",
            camera, frame_wh[0], frame_wh[1], share, self.model_name, fmt.width, fmt.height,
            self.model_name, size[0], size[1],
        )  # fmt: skip

    def _finish(
        self, ch: CameraChannel, slot: Slot, outputs: list[np.ndarray] | None, infer_seconds: float
    ) -> None:
        """Decode, track, evaluate the rules. ``outputs`` None: a gated frame (the scene stood
        still), whose detections are the camera's last ones."""
        assert slot.frame is not None
        h, w = slot.frame.shape[:2]
        t1 = time.perf_counter()
        if outputs is None:
            dets = ch.last_dets if ch.last_dets is not None else Detections()
            ch.gated += 1
        else:
            assert slot.letterbox is not None
            dets = ch.last_dets = self.model.decode(outputs, DecodeContext(slot.letterbox, (w, h)))
            if not ch.hinted:
                ch.hinted = True
                self._hint_input_size(ch.name, (w, h))
        t_decoded = time.perf_counter()
        stationary: np.ndarray | None = None
        ended: tuple[int, ...] = ()
        if ch.tracker is not None:
            tracked = ch.tracker.update(dets, slot.t_frame)
            dets, stationary = tracked.detections, tracked.stationary
            ended = tuple(track.id for track in tracked.ended)
        t2 = time.perf_counter()
        info = FrameInfo(ch.name, slot.seq, slot.t_frame, slot.t_wall, w, h)
        events = self.engine.evaluate(info, dets, self.model.labels, stationary, ended)
        t3 = time.perf_counter()
        tap = self.preview
        if tap is not None and tap.wants(ch.name):  # only while somebody watches this camera
            self._offer(tap, ch.name, slot, dets)
        ch.last_frame = info
        ch.latencies.append(time.time() - slot.t_wall)
        ch.processed += 1
        ch.detections += len(dets)
        self.processed += 1
        self._last_progress = time.monotonic()
        timing = self._timing
        if outputs is not None:  # gated frames ran no inference: not in its figures
            timing.inferred += 1
            timing.infer += infer_seconds
            self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, infer_seconds)] += 1
            self.latency_sum += infer_seconds
        timing.decode += t_decoded - t1
        timing.track += t2 - t_decoded
        timing.rules += t3 - t2
        timing.count += 1
        if events:
            self._dispatch(ch, events, slot)
        self._send_statuses()

    def _offer(self, tap: PreviewTap, camera: str, slot: Slot, dets: Detections) -> None:
        """A copy of the frame for the preview's viewers; a failure is logged, never fatal."""
        try:
            assert slot.frame is not None
            shapes = camera_shapes(camera, self.engine.rules, self.engine.cameras)
            frame = PreviewFrame(
                camera, slot.seq, slot.t_wall, slot.frame.copy(), dets, tuple(self.model.labels), shapes
            )
            tap.offer(frame)
        except Exception:
            log.exception("preview: could not take a frame of camera %s", camera)

    def _dispatch(self, ch: CameraChannel, events: list[Event], slot: Slot | None) -> None:
        pictures = self.snapshots or self.preview is not None
        for event in events:
            ch.events += 1
            image = None
            if pictures and slot is not None and slot.frame is not None and event.type in ("new", "cross"):
                image = slot.frame.copy()  # the slot is reused once released
            self._dispatch_event(event, image)
        if slot is None:  # outside a frame (offline, reload): the states changed too
            self._send_statuses()

    def _send_statuses(self) -> None:
        for status in self.engine.statuses():
            self.dispatcher.submit_status(status)

    def _dispatch_event(self, event: Event, image: np.ndarray | None = None) -> None:
        key = (event.camera, event.rule, event.type)
        if key not in self.event_counts:
            self.event_counts = {**self.event_counts, key: 0}  # readers see a whole dict, never a growing one
        self.event_counts[key] += 1
        payload = event_payload(event, self.device, self.identity)
        track = f" #{event.track_id}" if event.track_id is not None else ""
        extra = f" direction={event.direction}" if event.direction else ""
        extra += f" reason={event.reason}" if event.reason else ""
        log.info(
            "event %s %s camera=%s rule=%s label=%s%s score=%.2f t=%.2fs%s",
            event.type, event.id[:8], event.camera, event.rule, event.label, track, event.score,
            event.t_frame, extra,
        )  # fmt: skip
        shapes = camera_shapes(event.camera, self.engine.rules, self.engine.cameras, only_rule=event.rule)
        rule = self.engine.rules.get(event.rule)
        wanted = frozenset(rule.actions) if rule is not None and rule.actions is not None else None
        self.dispatcher.submit(EventEnvelope(payload, image, shapes, wanted))
