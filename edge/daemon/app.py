"""Composition root: builds models, rings, capture threads, workers and actions from a config;
starts them in order (actions, workers, cameras) and stops them in reverse.

``run()`` is the main loop: signal handlers only enqueue, the loop handles them, logs a status
line per camera every ``status_interval``, and ends on SIGINT/SIGTERM, ``max_frames``,
``duration``, or when every source is a finished file and every event has been handed on.
"""

from __future__ import annotations

import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from edge.alerts.actions import Action, ActionDispatcher, EventLogAction, MqttAction, SnapshotAction
from edge.alerts.mqtt import MqttPublisher
from edge.buffer.ring import FrameRing
from edge.capture.sources import OpenCvSource
from edge.capture.thread import Backoff, CameraState, CaptureThread
from edge.config import LoadedConfig
from edge.config.schema import FileSource
from edge.inference import LoadedModel, decode_overrides, load_model, runner_options
from edge.models import default_search_dirs
from edge.pipeline.worker import CameraChannel, InferenceWorker
from edge.rules.engine import RuleEngine

log = logging.getLogger("edge.app")

STATUS_TOPIC_VALUE = {
    CameraState.CONNECTING: "connecting",
    CameraState.STREAMING: "online",
    CameraState.RECONNECTING: "reconnecting",
    CameraState.STOPPED: "offline",
}


def async_jobs(model: LoadedModel, configured: int | None) -> int:
    """Requests in flight: configured, else OpenVINO's advice clamped to 2..4; 1 (sync) elsewhere."""
    if configured is not None:
        return configured
    optimal = getattr(model.runner, "optimal_jobs", None)
    return min(max(int(optimal()), 2), 4) if optimal is not None else 1


@dataclass
class RunResult:
    reason: str
    frames: int
    events: int
    seconds: float


@dataclass
class Application:
    loaded: LoadedConfig
    max_frames: int | None = None
    duration: float | None = None
    models: dict[str, LoadedModel] = field(default_factory=dict)
    workers: dict[str, InferenceWorker] = field(default_factory=dict)
    captures: dict[str, CaptureThread] = field(default_factory=dict)
    channels: dict[str, CameraChannel] = field(default_factory=dict)
    publisher: MqttPublisher | None = None
    dispatcher: ActionDispatcher | None = None
    _signals: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)
    _started: float = 0.0

    @property
    def state_dir(self) -> Path:
        return self.loaded.config.state_dir

    # -- build & start -------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.loaded.config
        self._started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cameras = {n: c for n, c in cfg.cameras.items() if c.enabled}
        dirs = default_search_dirs([cfg.models_dir])
        for name in sorted({c.model for c in cameras.values()}):
            mc = cfg.models[name]
            model = load_model(mc.path, mc.runner, options=runner_options(mc), overrides=decode_overrides(mc),
                               search_dirs=dirs)  # fmt: skip
            log.info(
                "model %s: %s on %s (%s), loaded and warmed in %.0f ms",
                name, model.package.name, model.selection.backend, model.selection.path.name,
                model.load_seconds * 1000,
            )  # fmt: skip
            self.models[name] = model

        actions: list[Action] = []
        if cfg.mqtt.enabled:
            self.publisher = MqttPublisher(cfg.mqtt)
            actions.append(MqttAction(self.publisher))
        if cfg.actions.event_log:
            actions.append(EventLogAction(self.state_dir / "events.jsonl"))
        snaps = cfg.actions.snapshots
        if snaps.enabled:
            actions.append(SnapshotAction(self.state_dir / "snapshots", snaps.crop, snaps.quality))
        self.dispatcher = ActionDispatcher(actions)

        engine_rules = cfg.rules
        for name, model in self.models.items():
            engine = RuleEngine(engine_rules, {c: cam for c, cam in cameras.items() if cam.model == name})
            self.workers[name] = InferenceWorker(
                name, model, engine, self.dispatcher, cfg.mqtt.device, snapshots=snaps.enabled,
                async_jobs=async_jobs(model, cfg.models[name].async_jobs),
            )  # fmt: skip
        for cam_name, cam in cameras.items():
            worker = self.workers[cam.model]
            pre = worker.model.preprocessor()
            is_file = isinstance(cam.source, FileSource)
            policy = cam.buffer or ("lossless" if is_file else "latest")
            ring = FrameRing(cam.buffer_slots, pre.new_tensor, policy, on_ready=worker.wake.set)
            capture = CaptureThread(
                cam_name,
                OpenCvSource(cam.source),
                ring,
                pre,
                fps_cap=cam.fps,
                loop=is_file and cam.source.loop,  # type: ignore[union-attr]
                backoff=Backoff(cam.reconnect.initial, cam.reconnect.max),
                on_state=self._on_camera_state,
            )
            self.captures[cam_name] = capture
            channel = CameraChannel(cam_name, ring, capture)
            self.channels[cam_name] = channel
            worker.add_camera(channel)

        if self.publisher is not None:
            self.publisher.start()
        self.dispatcher.start()
        for worker in self.workers.values():
            worker.start()
        for capture in self.captures.values():
            capture.start()
        log.info("started: %d camera(s), %d model(s), state in %s", len(self.captures), len(self.models),
                 self.state_dir)  # fmt: skip

    def _on_camera_state(self, camera: str, state: CameraState) -> None:
        if self.publisher is not None:
            self.publisher.set_status(camera, STATUS_TOPIC_VALUE[state])

    # -- main loop -----------------------------------------------------------------------

    def install_signal_handlers(self) -> None:
        def enqueue(signum: int, _frame: FrameType | None) -> None:
            self._signals.put(signum)

        signal.signal(signal.SIGINT, enqueue)
        signal.signal(signal.SIGTERM, enqueue)

    def frames_processed(self) -> int:
        return sum(w.processed for w in self.workers.values())

    def run(self) -> RunResult:
        interval = self.loaded.config.status_interval
        next_status = time.monotonic() + interval
        reason = "finished"
        while True:
            try:
                signum = self._signals.get(timeout=0.2)
                reason = signal.Signals(signum).name
                log.info("received %s: stopping", reason)
                break
            except queue.Empty:
                pass
            now = time.monotonic()
            if now >= next_status:
                self.log_status()
                next_status = now + interval
            if self.max_frames is not None and self.frames_processed() >= self.max_frames:
                reason = f"max frames ({self.max_frames})"
                break
            if self.duration is not None and now - self._started >= self.duration:
                reason = f"duration ({self.duration:g} s)"
                break
            if self.workers and not any(w.is_alive() for w in self.workers.values()):
                break  # every camera finished (files exhausted) or every worker failed
        self.stop()
        self.log_status()
        events = sum(ch.events for ch in self.channels.values())
        return RunResult(reason, self.frames_processed(), events, time.monotonic() - self._started)

    def log_status(self) -> None:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        for name, capture in self.captures.items():
            s = capture.stats()
            ch = self.channels[name]
            w = self.workers[self.loaded.config.cameras[name].model].stats()
            age = "-" if s.last_frame_age is None else f"{s.last_frame_age:.1f}s"
            log.info(
                "camera %s: %s, read %d (%.1f fps), processed %d (%.1f fps), skipped %d, dropped %d, "
                "reconnects %d, last frame %s ago, inference %.1f ms, events %d",
                name, s.state, s.frames_read, s.frames_read / elapsed, ch.processed, ch.processed / elapsed,
                s.frames_skipped, s.frames_dropped, s.reconnects, age, w.infer_ms_avg, ch.events,
            )  # fmt: skip

    # -- stop ------------------------------------------------------------------------------

    def stop(self, timeout: float = 10.0) -> None:
        """Stop cameras, let workers finish what is buffered, drain actions, close MQTT."""
        for capture in self.captures.values():
            capture.stop()
        for capture in self.captures.values():
            capture.join(timeout)
        for worker in self.workers.values():
            worker.stop()
        for worker in self.workers.values():
            worker.join(timeout)
        if self.dispatcher is not None and self.dispatcher.is_alive():
            self.dispatcher.close(timeout)
        if self.publisher is not None:
            self.publisher.close(timeout=5.0)
        for model in self.models.values():
            model.close()
        leaked = [
            t.name for t in threading.enumerate() if t.name.startswith(("capture-", "infer-", "actions"))
        ]
        if leaked:
            log.warning("threads still running after stop: %s", ", ".join(leaked))
