"""Composition root: builds models, rings, capture threads, workers and actions from a config;
starts them in order (actions, workers, cameras) and stops them in reverse.

``run()`` is the main loop: signal handlers only enqueue, the loop handles them, logs a status
line per camera every ``status_interval``, and ends on SIGINT/SIGTERM, ``max_frames``,
``duration``, or when every source is a finished file and every event has been handed on.
"""

from __future__ import annotations

import json
import logging
import queue
import signal
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from edge.alerts.actions import Action, ActionDispatcher, EventLogAction, MqttAction, SnapshotAction
from edge.alerts.homeassistant import Discovery
from edge.alerts.mqtt import MqttPublisher, state_payload
from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import iso_utc
from edge.buffer.ring import FrameRing
from edge.capture.sources import OpenCvSource
from edge.capture.thread import Backoff, CameraState, CaptureThread
from edge.config import LoadedConfig
from edge.config.schema import CameraConfig, FileSource
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
    outbox: OutboxStore | None = None
    flush_timeout: float = 5.0
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
            ob = cfg.mqtt.outbox
            self.outbox = OutboxStore(self.state_dir, ob.max_messages, ob.max_bytes, ob.synchronous)
            pending = self.outbox.stats()
            if pending.depth:
                log.info("outbox: %d event(s) from an earlier run wait to be sent", pending.depth)
            self.publisher = MqttPublisher(cfg.mqtt, self.outbox, max_in_flight=ob.max_in_flight)
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
            self._announce_states(cameras)
            self.publisher.start()
        self.dispatcher.start()
        for worker in self.workers.values():
            worker.start()
        for capture in self.captures.values():
            capture.start()
        log.info("started: %d camera(s), %d model(s), state in %s", len(self.captures), len(self.models),
                 self.state_dir)  # fmt: skip

    def _announce_states(self, cameras: dict[str, CameraConfig]) -> None:
        """Initial retained values: each rule idle, and Home Assistant discovery when enabled."""
        assert self.publisher is not None
        cfg = self.loaded.config
        pairs = [(cam, rule) for rule, rc in cfg.rules.items() for cam in rc.cameras if cam in cameras]
        now = iso_utc(time.time())
        for cam, rule in pairs:
            self.publisher.set_latest(
                f"{self.publisher.base}/{cam}/{rule}/state", state_payload("off", 0, now, None)
            )
        ha = cfg.mqtt.homeassistant
        if ha.enabled:
            Discovery(self.publisher, ha.prefix, cfg.mqtt.device, pairs, self.state_dir).start()

    def stats_payload(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        cameras = {}
        for name, capture in self.captures.items():
            s, ch = capture.stats(), self.channels[name]
            cameras[name] = {
                "state": s.state,
                "frames_read": s.frames_read,
                "processed": ch.processed,
                "fps_in": round(s.frames_read / elapsed, 2),
                "fps_processed": round(ch.processed / elapsed, 2),
                "skipped": s.frames_skipped,
                "dropped": s.frames_dropped,
                "reconnects": s.reconnects,
                "last_frame_age": None if s.last_frame_age is None else round(s.last_frame_age, 3),
                "events": ch.events,
            }
        models = {
            name: {"inference_ms": round(w.stats().infer_ms_avg, 3), "processed": w.processed}
            for name, w in self.workers.items()
        }
        out: dict[str, Any] = {
            "schema": 1,
            "device": self.loaded.config.mqtt.device,
            "ts": iso_utc(time.time()),
            "uptime": round(elapsed, 1),
            "cameras": cameras,
            "models": models,
        }
        if self.outbox is not None and self.publisher is not None:
            o = self.outbox.stats()
            age = None if o.oldest_age is None else round(o.oldest_age, 1)
            out["outbox"] = {"depth": o.depth, "bytes": o.bytes, "dropped": o.dropped, "oldest_age": age}
            out["mqtt"] = {
                "status": self.publisher.status,
                "sent": self.publisher.sent,
                "acked": self.publisher.acked,
            }
        return out

    def publish_stats(self) -> None:
        if self.publisher is not None:
            payload = json.dumps(self.stats_payload(), sort_keys=True)
            self.publisher.set_latest(f"{self.publisher.base}/stats", payload, retain=False)

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
        stats_interval = self.loaded.config.mqtt.stats_interval
        next_stats = time.monotonic() + min(stats_interval, 2.0)
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
            if now >= next_stats:
                self.publish_stats()
                next_stats = now + stats_interval
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
            self.publish_stats()
            self.publisher.close(timeout=self.flush_timeout)
        if self.outbox is not None:
            self.outbox.close()
        for model in self.models.values():
            model.close()
        leaked = [
            t.name for t in threading.enumerate() if t.name.startswith(("capture-", "infer-", "actions"))
        ]
        if leaked:
            log.warning("threads still running after stop: %s", ", ".join(leaked))
