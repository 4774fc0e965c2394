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
from edge.config import LoadedConfig, load_config
from edge.config.schema import CameraConfig, EdgeConfig, FileSource
from edge.daemon.notify import Notifier
from edge.errors import ConfigError
from edge.inference import LoadedModel, decode_overrides, load_model, runner_options
from edge.models import default_search_dirs
from edge.pipeline.worker import CameraChannel, InferenceWorker
from edge.rules.engine import RuleEngine
from edge.runners.select import HardwareInfo, probe_hardware
from edge.telemetry.metrics import MetricsServer, render

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
    overrides: tuple[str, ...] = ()
    notifier: Notifier = field(default_factory=Notifier)
    ready_at: float | None = None
    _next: dict[str, float] = field(default_factory=dict)
    metrics: MetricsServer | None = None
    hardware: HardwareInfo | None = None
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
        cameras = self._enabled_cameras(cfg)
        for name in sorted({c.model for c in cameras.values()}):
            self.models[name] = self._load_model(cfg, name)
        self.dispatcher = ActionDispatcher(self._build_actions(cfg))
        for name in self.models:
            self.workers[name] = self._build_worker(cfg, name, cameras)
        for cam_name, cam in cameras.items():
            self._build_camera(cam_name, cam)
        if self.publisher is not None:
            self._announce_states(cameras)
            self.publisher.start()
        if cfg.metrics.enabled:
            self.metrics = MetricsServer(lambda: render(self), cfg.metrics.host, cfg.metrics.port)
            self.metrics.start()
        self.dispatcher.start()
        for worker in self.workers.values():
            worker.start()
        for capture in self.captures.values():
            capture.start()
        log.info("started: %d camera(s), %d model(s), state in %s", len(self.captures), len(self.models),
                 self.state_dir)  # fmt: skip

    @staticmethod
    def _enabled_cameras(cfg: EdgeConfig) -> dict[str, CameraConfig]:
        return {n: c for n, c in cfg.cameras.items() if c.enabled}

    def _load_model(self, cfg: EdgeConfig, name: str) -> LoadedModel:
        mc = cfg.models[name]
        if self.hardware is None:  # probed once, not per model
            self.hardware = probe_hardware()
        model = load_model(
            mc.path, mc.runner, options=runner_options(mc), overrides=decode_overrides(mc),
            hardware=self.hardware, search_dirs=default_search_dirs([cfg.models_dir]),
        )  # fmt: skip
        log.info(
            "model %s: %s on %s (%s), loaded and warmed in %.0f ms",
            name, model.package.name, model.selection.backend, model.selection.path.name,
            model.load_seconds * 1000,
        )  # fmt: skip
        return model

    def _build_actions(self, cfg: EdgeConfig) -> list[Action]:
        actions: list[Action] = []
        if cfg.mqtt.enabled:
            ob = cfg.mqtt.outbox
            if self.outbox is None:
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
        return actions

    def _build_engine(self, cfg: EdgeConfig, model_name: str, cameras: dict[str, CameraConfig]) -> RuleEngine:
        return RuleEngine(cfg.rules, {c: cam for c, cam in cameras.items() if cam.model == model_name})

    def _build_worker(self, cfg: EdgeConfig, name: str, cameras: dict[str, CameraConfig]) -> InferenceWorker:
        assert self.dispatcher is not None
        model = self.models[name]
        return InferenceWorker(
            name, model, self._build_engine(cfg, name, cameras), self.dispatcher, cfg.mqtt.device,
            snapshots=cfg.actions.snapshots.enabled,
            async_jobs=async_jobs(model, cfg.models[name].async_jobs),
        )  # fmt: skip

    def _build_camera(self, cam_name: str, cam: CameraConfig) -> CaptureThread:
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
        return capture

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

    def camera_figures(self) -> dict[str, dict[str, Any]]:
        """Per-camera counters, for the stats topic and the status log line."""
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
        return cameras

    def stats_payload(self) -> dict[str, Any]:
        elapsed = max(time.monotonic() - self._started, 1e-6)
        cameras = self.camera_figures()
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
        """Handlers only enqueue the signal; the main loop acts on it."""

        def enqueue(signum: int, _frame: FrameType | None) -> None:
            self._signals.put(signum)

        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, enqueue)

    def frames_processed(self) -> int:
        return sum(w.processed for w in self.workers.values())

    def wait_cameras_tried(self, timeout: float) -> None:
        """Until every camera has left ``connecting`` once (opened, failed, or stopped)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if all(c.state is not CameraState.CONNECTING or c.frames_read for c in self.captures.values()):
                return
            time.sleep(0.05)

    def healthy(self) -> bool:
        """Every worker made progress recently (or is idle with nothing to do)."""
        limit = self.notifier.watchdog_interval or 30.0
        for w in self.workers.values():
            if not w.is_alive() or w.error:
                return False
            if w.stats().last_progress_age > limit:
                return False
        return True

    def status_line(self) -> str:
        streaming = sum(c.state is CameraState.STREAMING for c in self.captures.values())
        elapsed = max(time.monotonic() - self._started, 1e-6)
        fps = self.frames_processed() / elapsed
        text = f"{streaming}/{len(self.captures)} camera(s) streaming, {fps:.1f} fps processed"
        if self.outbox is not None:
            text += f", outbox {self.outbox.depth}"
        return text

    def run(self) -> RunResult:
        self.wait_cameras_tried(timeout=20.0)
        self.ready_at = time.monotonic()
        self.notifier.ready(self.status_line())
        log.info("ready in %.2f s: %s", self.ready_at - self._started, self.status_line())
        self._next = {"watchdog": 0.0, "notify": 0.0, "status": 0.0, "stats": time.monotonic() + 2.0}
        reason = "finished"
        while True:
            try:
                signum = self._signals.get(timeout=0.2)
            except queue.Empty:
                signum = None
            if signum == signal.SIGHUP:
                self.reload()
                continue
            if signum is not None:
                reason = signal.Signals(signum).name
                log.info("received %s: stopping", reason)
                break
            now = time.monotonic()
            self._periodic(now)
            if self.max_frames is not None and self.frames_processed() >= self.max_frames:
                reason = f"max frames ({self.max_frames})"
                break
            if self.duration is not None and now - self._started >= self.duration:
                reason = f"duration ({self.duration:g} s)"
                break
            if self.workers and not any(w.is_alive() for w in self.workers.values()):
                break  # every camera finished (files exhausted) or every worker failed
        self.notifier.stopping()
        self.stop()
        self.log_status()
        events = sum(ch.events for ch in self.channels.values())
        return RunResult(reason, self.frames_processed(), events, time.monotonic() - self._started)

    def _periodic(self, now: float) -> None:
        """Watchdog (only while healthy), systemd STATUS, the status log line, MQTT stats."""
        cfg, nxt = self.loaded.config, self._next
        watchdog = self.notifier.watchdog_interval
        if watchdog and now >= nxt["watchdog"]:
            if self.healthy():
                self.notifier.watchdog()
            else:
                log.error("a worker has made no progress for %.0f s: not feeding the watchdog", watchdog)
            nxt["watchdog"] = now + watchdog / 2
        if now >= nxt["notify"]:
            if nxt["notify"]:
                self.notifier.status(self.status_line())
            nxt["notify"] = now + 5.0
        if now >= nxt["status"]:
            if nxt["status"]:
                self.log_status()
            nxt["status"] = now + cfg.status_interval
        if now >= nxt["stats"]:
            self.publish_stats()
            nxt["stats"] = now + cfg.mqtt.stats_interval

    # -- reload (SIGHUP) ---------------------------------------------------------------------

    def reload(self) -> bool:
        """Re-read the config. Invalid: keep running on the old one and say why. Valid: swap
        rules and actions in place; restart only the cameras and models whose config changed."""
        self.notifier.reloading()
        path = self.loaded.path
        try:
            if path is None:
                raise ConfigError(["this configuration was not loaded from a file; nothing to re-read"])
            new = load_config(path, self.overrides)
        except ConfigError as exc:
            log.error("reload: the new config is invalid, still running the old one:\n%s", exc)
            self.notifier.ready(self.status_line())
            return False
        old_cfg, cfg = self.loaded.config, new.config
        if cfg.state_dir != old_cfg.state_dir:
            log.warning("reload: state_dir changes need a restart; keeping %s", old_cfg.state_dir)
            cfg = cfg.model_copy(update={"state_dir": old_cfg.state_dir})
        old_cams, cams = self._enabled_cameras(old_cfg), self._enabled_cameras(cfg)
        models_changed = {
            m for m in old_cfg.models.keys() | cfg.models.keys() if old_cfg.models.get(m) != cfg.models.get(m)
        }
        cams_changed = {
            c for c in old_cams.keys() | cams.keys()
            if old_cams.get(c) != cams.get(c) or (c in cams and cams[c].model in models_changed)
        }  # fmt: skip
        # 1. Stop the cameras that change or go, then the workers of models that change or go.
        for name in sorted(cams_changed & old_cams.keys()):
            self._stop_camera(name)
        needed = {c.model for c in cams.values()}
        for name in sorted(set(self.workers) - (needed - models_changed)):
            self._stop_worker(name)
        # 2. Actions (MQTT, event log, snapshots) when they changed.
        if cfg.mqtt != old_cfg.mqtt or cfg.actions != old_cfg.actions:
            self._replace_actions(cfg)
        # 3. New or changed models and their workers; new rules everywhere else, keeping the
        #    state of rules that did not change.
        unchanged_rules = {r for r in cfg.rules if old_cfg.rules.get(r) == cfg.rules[r]}
        for name in sorted(needed):
            if name in self.workers:
                worker = self.workers[name]
                engine = self._build_engine(cfg, name, cams)
                engine.adopt_state(worker.engine, unchanged_rules)
                worker.engine = engine
            else:
                self.models[name] = self._load_model(cfg, name)
                self.workers[name] = self._build_worker(cfg, name, cams)
                self.workers[name].start()
        # 4. New or changed cameras.
        for name in sorted(cams_changed & cams.keys()):
            self._build_camera(name, cams[name]).start()
        self.loaded = LoadedConfig(cfg, new.source, new.path)
        if self.publisher is not None:
            self._announce_states(cams)
        log.info(
            "reloaded %s: restarted camera(s) %s, model(s) %s; %d rule(s)",
            path, sorted(cams_changed & cams.keys()) or "none", sorted(models_changed & needed) or "none",
            len(cfg.rules),
        )  # fmt: skip
        self.notifier.ready(self.status_line())
        return True

    def _stop_camera(self, name: str) -> None:
        capture = self.captures.pop(name)
        self.channels.pop(name)
        capture.stop()
        capture.join(10)
        for worker in self.workers.values():
            worker.remove_camera(name)

    def _stop_worker(self, name: str) -> None:
        worker = self.workers.pop(name)
        worker.stop()
        worker.join(10)
        self.models.pop(name).close()

    def _replace_actions(self, cfg: EdgeConfig) -> None:
        assert self.dispatcher is not None
        old_publisher = self.publisher
        self.publisher = None
        actions = self._build_actions(cfg)
        if self.publisher is not None:
            self.publisher.start()
        self.dispatcher.replace_actions(actions)
        if old_publisher is not None:
            old_publisher.close(timeout=self.flush_timeout)

    def log_status(self) -> None:
        for name, f in self.camera_figures().items():
            w = self.workers[self.loaded.config.cameras[name].model].stats()
            age = "-" if f["last_frame_age"] is None else f"{f['last_frame_age']:.1f}s"
            log.info(
                "camera %s: %s, read %d (%.1f fps), processed %d (%.1f fps), skipped %d, dropped %d, "
                "reconnects %d, last frame %s ago, inference %.1f ms, events %d",
                name, f["state"], f["frames_read"], f["fps_in"], f["processed"], f["fps_processed"],
                f["skipped"], f["dropped"], f["reconnects"], age, w.infer_ms_avg, f["events"],
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
        if self.metrics is not None:
            self.metrics.close()
        leaked = [
            t.name for t in threading.enumerate() if t.name.startswith(("capture-", "infer-", "actions"))
        ]
        if leaked:
            log.warning("threads still running after stop: %s", ", ".join(leaked))
