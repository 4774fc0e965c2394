"""The inference worker: one per loaded model, shared by the cameras that use it.

It takes the next ready slot from each camera's ring in turn, runs the model on the slot's
tensor, decodes, evaluates the rules, and hands events to the action dispatcher; then it frees
the slot. This is the one place where the stages meet.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from edge.alerts.actions import ActionDispatcher, EventEnvelope
from edge.alerts.payload import ModelIdentity, event_payload
from edge.buffer.ring import FrameRing, Slot
from edge.capture.thread import CameraState, CaptureThread
from edge.decoders import DecodeContext
from edge.inference import LoadedModel
from edge.rules.engine import Event, FrameInfo, RuleEngine

log = logging.getLogger("edge.pipeline")


@dataclass
class CameraChannel:
    name: str
    ring: FrameRing
    capture: CaptureThread
    last_frame: FrameInfo | None = None
    processed: int = 0
    detections: int = 0
    events: int = 0

    @property
    def finished(self) -> bool:
        """The capture thread has stopped and every committed frame has been taken."""
        return self.capture.state is CameraState.STOPPED and self.ring.pending == 0


@dataclass(frozen=True)
class WorkerStats:
    model: str
    processed: int
    infer_ms_avg: float
    stage_ms: dict[str, float]
    idle: bool
    last_progress_age: float


@dataclass
class _Timing:
    infer: float = 0.0
    decode: float = 0.0
    rules: float = 0.0
    count: int = 0
    window: dict[str, float] = field(default_factory=dict)


class InferenceWorker(threading.Thread):
    def __init__(
        self,
        model_name: str,
        model: LoadedModel,
        engine: RuleEngine,
        dispatcher: ActionDispatcher,
        device: str,
        snapshots: bool = False,
    ) -> None:
        super().__init__(name=f"infer-{model_name}", daemon=True)
        self.model_name = model_name
        self.model = model
        self.engine = engine
        self.dispatcher = dispatcher
        self.device = device
        self.snapshots = snapshots
        self.identity = ModelIdentity(model.package.name, model.sha256)
        self.channels: list[CameraChannel] = []
        self.wake = threading.Event()
        self.stop_event = threading.Event()
        self.processed = 0
        self.error: str | None = None
        self._timing = _Timing()
        self._last_progress = time.monotonic()
        self._idle = True

    def add_camera(self, channel: CameraChannel) -> None:
        self.channels.append(channel)

    def stats(self) -> WorkerStats:
        t = self._timing
        n = max(t.count, 1)
        return WorkerStats(
            model=self.model_name,
            processed=self.processed,
            infer_ms_avg=1000 * t.infer / n,
            stage_ms={
                "infer": 1000 * t.infer / n,
                "decode": 1000 * t.decode / n,
                "rules": 1000 * t.rules / n,
            },
            idle=self._idle,
            last_progress_age=time.monotonic() - self._last_progress,
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

    def _loop(self) -> None:
        start = 0
        while True:
            worked = False
            n = len(self.channels)
            for i in range(n):  # round-robin, starting after the last camera served
                ch = self.channels[(start + i) % n]
                slot = ch.ring.take()
                if slot is None:
                    continue
                worked = True
                self._idle = False
                try:
                    self._process(ch, slot)
                finally:
                    ch.ring.release(slot)
                self._last_progress = time.monotonic()
                start = (start + i + 1) % n
                break
            if worked:
                continue
            self._idle = True
            self._last_progress = time.monotonic()
            if all(ch.finished for ch in self.channels):
                return
            if self.stop_event.is_set() and all(ch.ring.pending == 0 for ch in self.channels):
                return
            self.wake.wait(0.05)
            self.wake.clear()

    def _process(self, ch: CameraChannel, slot: Slot) -> None:
        assert slot.frame is not None and slot.letterbox is not None
        h, w = slot.frame.shape[:2]
        t0 = time.perf_counter()
        outputs = self.model.run_tensor(slot.tensor)
        t1 = time.perf_counter()
        dets = self.model.decode(outputs, DecodeContext(slot.letterbox, (w, h)))
        t2 = time.perf_counter()
        info = FrameInfo(ch.name, slot.seq, slot.t_frame, slot.t_wall, w, h)
        events = self.engine.evaluate(info, dets, self.model.labels)
        t3 = time.perf_counter()
        ch.last_frame = info
        ch.processed += 1
        ch.detections += len(dets)
        self.processed += 1
        timing = self._timing
        timing.infer += t1 - t0
        timing.decode += t2 - t1
        timing.rules += t3 - t2
        timing.count += 1
        if events:
            self._dispatch(ch, events, slot)

    def _dispatch(self, ch: CameraChannel, events: list[Event], slot: Slot | None) -> None:
        for event in events:
            ch.events += 1
            image = None
            if self.snapshots and slot is not None and slot.frame is not None and event.type == "new":
                image = slot.frame.copy()  # the slot is reused once released
            payload = event_payload(event, self.device, self.identity)
            log.info(
                "event %s %s camera=%s rule=%s label=%s score=%.2f t=%.2fs",
                event.type, event.id[:8], event.camera, event.rule, event.label, event.score, event.t_frame,
            )  # fmt: skip
            self.dispatcher.submit(EventEnvelope(payload, image))
