"""Composition root: builds models, rings, capture threads, workers and actions from a config;
starts them in order (actions, workers, cameras) and stops them in reverse.

``run()`` is the main loop: signal handlers only enqueue, the loop handles them, logs a status
line per camera every ``status_interval``, and ends on SIGINT/SIGTERM, ``max_frames``,
``duration``, or when every source is a finished file and every event has been handed on.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator, Set
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

from edge.alerts.actions import Action, ActionDispatcher, EventLogAction, MqttAction, SnapshotAction
from edge.alerts.arming import ArmControl
from edge.alerts.command import CommandAction
from edge.alerts.homeassistant import Discovery
from edge.alerts.mqtt import MqttPublisher
from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import state_payload
from edge.alerts.retained import FILENAME as RETAINED_TOPICS
from edge.alerts.retained import sync_retained
from edge.buffer.ring import FrameRing
from edge.capture.motion import MotionGate
from edge.capture.sources import OpenCvSource, ring_policy
from edge.capture.thread import Backoff, CameraState, CaptureThread
from edge.config import LoadedConfig
from edge.config.schema import CameraConfig, EdgeConfig, FileSource, Source, TrackingConfig
from edge.daemon.figures import build_figures
from edge.daemon.notify import Notifier
from edge.daemon.reload import enabled_cameras, rule_pairs
from edge.daemon.reloading import reload_config
from edge.daemon.supervisor import Supervisor
from edge.inference import LoadedModel, decode_overrides, load_model, runner_options
from edge.memory import release_free_heap
from edge.models import default_search_dirs
from edge.pipeline.worker import CameraChannel, FrameBudget, InferenceWorker
from edge.preview.server import PreviewServer, PreviewSource
from edge.preview.tap import PreviewEventsAction, PreviewTap
from edge.rules.arming import FILENAME as ARMING_FILE
from edge.rules.arming import ArmingStore, arming_defaults
from edge.rules.engine import RuleEngine, always_armed, initial_status
from edge.rules.schedule import Schedule
from edge.runners.base import default_jobs
from edge.runners.openvino import AsyncInfer
from edge.runners.select import HardwareInfo, probe_hardware, usable_cores
from edge.telemetry.figures import Figures
from edge.telemetry.metrics import MetricsServer
from edge.telemetry.render import stats_payload, status_line
from edge.tracking.bytetrack import ByteTracker, TrackerConfig

log = logging.getLogger("edge.app")

STATUS_TOPIC_VALUE = {
    CameraState.CONNECTING: "connecting",
    CameraState.STREAMING: "online",
    CameraState.RECONNECTING: "reconnecting",
    CameraState.STOPPED: "offline",
}


def new_tracker(cfg: TrackingConfig, ids: Iterator[int] | None = None) -> ByteTracker | None:
    """The camera's tracker, as its ``tracking:`` block says (None when disabled); ``ids`` is
    the camera's id counter, kept across restarts of the camera so no id is used twice."""
    if not cfg.enabled:
        return None
    return ByteTracker(
        TrackerConfig(
            high_score=cfg.high_score, low_score=cfg.low_score, new_track_score=cfg.new_track_score,
            match_iou=cfg.match_iou, confirm_frames=cfg.confirm_frames, lost_seconds=cfg.lost_after,
            stationary_fraction=cfg.stationary_fraction, stationary_seconds=cfg.stationary_after,
            max_tracks=cfg.max_tracks,
        ),
        ids,
    )  # fmt: skip


def async_jobs(model: LoadedModel, configured: int | None) -> int:
    """Requests in flight: configured, else the runner's default (``base.default_jobs``)."""
    return configured if configured is not None else default_jobs(model.runner)


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
    commands: CommandAction | None = None
    arming: ArmingStore | None = None  # which rules are armed; set over MQTT, kept in state_dir
    arm_control: ArmControl | None = None
    _track_ids: dict[str, Iterator[int]] = field(default_factory=dict)  # per camera, for its trackers
    supervisor: Supervisor = field(default_factory=Supervisor)
    retired_event_counts: dict[tuple[str, str, str], int] = field(default_factory=dict)
    _signals: queue.SimpleQueue[int] = field(default_factory=queue.SimpleQueue)
    started: float = 0.0
    _last_frames: dict[str, Any] = field(default_factory=dict)  # of cameras stopped by a reload
    preview_only: bool = False  # ``edge preview``: no actions, no MQTT; serves until stopped
    adjust: Callable[[EdgeConfig], EdgeConfig] | None = None  # applied to every config loaded (reload)
    preview: PreviewServer | None = None
    tap: PreviewTap | None = None
    budget: FrameBudget | None = None

    @property
    def state_dir(self) -> Path:
        return self.loaded.config.state_dir

    # -- build & start -------------------------------------------------------------------

    def start(self) -> None:
        cfg = self.loaded.config
        self.started = time.monotonic()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        cameras = enabled_cameras(cfg)
        if not self.preview_only:
            # every configured camera: a choice survives a camera disabled for a while
            self.arming = ArmingStore(self.state_dir / ARMING_FILE, arming_defaults(cfg.rules, cfg.cameras))
        if cfg.metrics.enabled:  # bound first: a busy port stops the start before any thread runs
            self.metrics = MetricsServer(self.figures, cfg.metrics.host, cfg.metrics.port)
        if cfg.preview.enabled or self.preview_only:
            self.tap = PreviewTap(fps=cfg.preview.fps)
            source = PreviewSource(self.figures, lambda: self.loaded.config, self.loaded.path, self.overrides)
            self.preview = PreviewServer(self.tap, source, cfg.preview)
        if self.max_frames is not None:
            self.budget = FrameBudget(self.max_frames)
        for name in sorted({c.model for c in cameras.values()}):
            self.models[name] = self._load_model(cfg, name)
        self.dispatcher = ActionDispatcher(self._build_actions(cfg))
        for name in self.models:
            self.workers[name] = self._build_worker(cfg, name, cameras)
        # what compiling the models and warming them up freed goes back to the system
        release_free_heap()
        for cam_name, cam in cameras.items():
            self._build_camera(cam_name, cam)
        if self.publisher is not None:
            self._announce_states(rule_pairs(cfg), reset=True)
            self.control_arming()
            self.publisher.start()
        if self.metrics is not None:
            self.metrics.start()
        if self.preview is not None:
            self.preview.start()
        self.dispatcher.start()
        for worker in self.workers.values():
            worker.start()
        for capture in self.captures.values():
            capture.start()
        where = "preview only, no actions" if self.preview_only else f"state in {self.state_dir}"
        log.info("started: %d camera(s), %d model(s), %s", len(self.captures), len(self.models), where)

    def _load_model(self, cfg: EdgeConfig, name: str) -> LoadedModel:
        mc = cfg.models[name]
        if self.hardware is None:  # probed once, not per model
            self.hardware = probe_hardware(full=False)
        model = load_model(
            mc.path, mc.runner, options=runner_options(mc, state_dir=cfg.state_dir),
            overrides=decode_overrides(mc), hardware=self.hardware,
            search_dirs=default_search_dirs([cfg.models_dir]), int8=mc.int8,
            state_dir=cfg.state_dir, autotune=mc.autotune,
        )  # fmt: skip
        log.info(
            "model %s: %s on %s (%s), loaded and warmed in %.0f ms",
            name, model.package.name, model.selection.backend, model.selection.path.name,
            model.load_seconds * 1000,
        )  # fmt: skip
        return model

    def _build_actions(self, cfg: EdgeConfig) -> list[Action]:
        actions: list[Action] = [PreviewEventsAction(self.tap)] if self.tap is not None else []
        if self.preview_only:
            return actions
        if cfg.mqtt.enabled:
            ob = cfg.mqtt.outbox
            if self.outbox is None:
                self.outbox = OutboxStore(self.state_dir, ob.max_messages, ob.max_bytes, ob.synchronous)
                pending = self.outbox.stats()
                if pending.depth:
                    log.info("outbox: %d event(s) from an earlier run wait to be sent", pending.depth)
            if self.publisher is None:  # one publisher for the process; a reload reconfigures it
                self.publisher = MqttPublisher(cfg.mqtt, self.outbox, max_in_flight=ob.max_in_flight)
            actions.append(MqttAction(self.publisher))
        if cfg.actions.event_log:
            a = cfg.actions
            actions.append(
                EventLogAction(self.state_dir / "events.jsonl", a.event_log_max_bytes, a.event_log_keep)
            )
        commands = {
            name: r.command
            for name, r in cfg.rules.items()
            if r.command is not None and (r.actions is None or "command" in r.actions)
        }
        if commands:  # one for the process: a reload keeps its counters and running programs
            a = cfg.actions
            if self.commands is None:
                self.commands = CommandAction(commands, a.command_concurrency, a.command_queue)
            else:
                self.commands.reconfigure(commands, a.command_concurrency, a.command_queue)
            actions.append(self.commands)
        else:
            self.commands = None  # a reload that removed the last command: the swap closes it
        snaps = cfg.actions.snapshots
        if snaps.enabled:
            publish = self._publish_snapshot if snaps.mqtt and cfg.mqtt.enabled else None
            folder = self.state_dir / "snapshots"
            action = SnapshotAction(
                folder, snaps.crop, snaps.quality, snaps.max_bytes, snaps.max_age, publish=publish
            )
            actions.append(action)
        return actions

    def _publish_snapshot(self, camera: str, rule: str, jpeg: bytes) -> None:
        """A rule's latest snapshot, retained on ``<camera>/<rule>/snapshot``."""
        if self.publisher is not None:
            self.publisher.set_latest(f"{self.publisher.base}/{camera}/{rule}/snapshot", jpeg)

    def _build_engine(self, cfg: EdgeConfig, model_name: str, cameras: dict[str, CameraConfig]) -> RuleEngine:
        schedules = {name: Schedule.from_config(r.schedule) for name, r in cfg.rules.items() if r.schedule}
        return RuleEngine(
            cfg.rules,
            {c: cam for c, cam in cameras.items() if cam.model == model_name},
            armed=self.arming.armed if self.arming is not None else always_armed,
            schedules=schedules,
        )

    def control_arming(self) -> None:
        """``<camera>/<rule>/set`` commands and the retained ``armed`` topics, on this
        publisher (a new one after MQTT was turned on by a reload)."""
        if self.publisher is None or self.arming is None:
            return
        pairs = {(cam, rule) for rule, cam in rule_pairs(self.loaded.config)}  # enabled cameras
        if self.arm_control is None or self.arm_control.publisher is not self.publisher:
            self.arm_control = ArmControl(self.publisher, self.arming)
            self.arm_control.start(pairs)
        else:
            self.arm_control.update(pairs)

    def _build_worker(
        self,
        cfg: EdgeConfig,
        name: str,
        cameras: dict[str, CameraConfig],
        reuse_async: AsyncInfer | None = None,
    ) -> InferenceWorker:
        assert self.dispatcher is not None
        model = self.models[name]
        return InferenceWorker(
            name, model, self._build_engine(cfg, name, cameras), self.dispatcher, cfg.mqtt.device,
            snapshots=cfg.actions.snapshots.enabled and not self.preview_only,
            async_jobs=async_jobs(model, cfg.models[name].async_jobs), reuse_async=reuse_async,
            preview=self.tap, budget=self.budget,
        )  # fmt: skip

    def _build_camera(self, cam_name: str, cam: CameraConfig) -> CaptureThread:
        worker = self.workers[cam.model]
        pre = worker.model.preprocessor()
        policy = cam.buffer or ring_policy(cam.source)
        # Frames the worker holds (OpenVINO async: up to `jobs` running, the one it is
        # finishing, gated frames waiting behind them) stay under the slots minus one
        # (worker._Line), so the capture thread always has one to write into.
        slots = max(cam.buffer_slots, worker.jobs + 2)
        ring = FrameRing(slots, pre.new_tensor, policy, on_ready=worker.wake.set)
        capture = self._new_capture(cam_name, cam, ring)
        if self.publisher is not None:  # a camera added back after a reload deleted its topic
            self.publisher.set_latest(f"{self.publisher.base}/{cam_name}/status", "connecting", revive=True)
        self.captures[cam_name] = capture
        ids = self._track_ids.setdefault(cam_name, itertools.count(1))
        channel = CameraChannel(cam_name, ring, capture, tracker=new_tracker(cam.tracking, ids))
        self.channels[cam_name] = channel
        worker.add_camera(channel)
        return capture

    def _decode_threads(self, source: Source) -> int | None:
        """FFmpeg's decoding threads for a camera whose config sets none: 1 for a paced source
        (a stream, a file played in real time), whose frames come far slower than one core
        decodes them: frame threads cost CPU and hold each frame back a frame. 1 also when
        there are at least as many cameras as cores this process may use: decoding streams
        side by side already fills the cores, and one thread per stream costs 19 % less CPU and
        6 MB less memory per 720p H.264 stream (measured with 16 streams). Else None, FFmpeg's
        choice: a file read as fast as the pipeline goes decodes faster on more threads. The
        capture thread warns when one thread cannot keep up with a stream."""
        paced = not isinstance(source, FileSource) or source.realtime
        if paced or len(enabled_cameras(self.loaded.config)) >= usable_cores():
            return 1
        return None

    def _new_capture(self, cam_name: str, cam: CameraConfig, ring: FrameRing) -> CaptureThread:
        return CaptureThread(
            cam_name,
            OpenCvSource(cam.source, decode_threads=self._decode_threads(cam.source)),
            ring,
            self.workers[cam.model].model.preprocessor(),
            fps_cap=cam.fps,
            loop=isinstance(cam.source, FileSource) and cam.source.loop,
            backoff=Backoff(cam.reconnect.initial, cam.reconnect.max),
            on_state=self._on_camera_state,
            motion=MotionGate(cam.motion, cam.masks) if cam.motion.enabled else None,
        )

    def _announce_states(self, new_pairs: Set[tuple[str, str]], reset: bool) -> None:
        """Retained values: ``off`` for rules that are new (or all, at start, which also resets
        what a crash left ``on``); stale retained topics of removed rules and cameras deleted;
        Home Assistant discovery when enabled."""
        assert self.publisher is not None
        cfg, base = self.loaded.config, self.publisher.base
        now = time.time()
        for rule, cam in sorted(new_pairs):
            armed = self.arming is None or self.arming.armed(cam, rule)
            status = initial_status(cfg.rules[rule], rule, cam, now, armed=armed)
            self.publisher.set_latest(f"{base}/{cam}/{rule}/state", state_payload(status), revive=True)
        pairs = rule_pairs(cfg)
        current = {f"{base}/{cam}/{rule}/state" for rule, cam in pairs}
        current |= {f"{base}/{cam}/status" for cam in enabled_cameras(cfg)}
        current |= {f"{base}/{cam}/{rule}/armed" for rule, cam in pairs}
        if cfg.actions.snapshots.mqtt:
            current |= {f"{base}/{cam}/{rule}/snapshot" for rule, cam in pairs}
        sync_retained(self.publisher, self.state_dir / RETAINED_TOPICS, current)
        ha = cfg.mqtt.homeassistant
        if ha.enabled:  # every time: a reload may change a rule's kind, and so its entities
            entities = sorted((cam, rule, cfg.rules[rule].kind) for rule, cam in pairs)
            images = cfg.actions.snapshots.mqtt
            Discovery(self.publisher, ha.prefix, cfg.mqtt.device, entities, self.state_dir, images).start()

    def launch(self) -> None:
        """For commands: signal handlers, then ``start``; anything that fails stops what started."""
        self.install_signal_handlers()
        try:
            self.start()
        except BaseException:
            self.stop()
            raise

    def figures(self) -> Figures:
        """One snapshot of every figure: the status line, ``stats`` and Prometheus read it."""
        return build_figures(self)

    def publish_stats(self) -> None:
        if self.publisher is not None:
            payload = json.dumps(stats_payload(self.figures()), sort_keys=True)
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
        """Every worker made progress recently (or is idle with nothing to do), and no thread
        has stayed dead longer than the watchdog interval (the supervisor restarts them)."""
        limit = self.notifier.watchdog_interval or 30.0
        for w in list(self.workers.values()):
            if w.stats().last_progress_age > limit and w.is_alive():
                return False
        return self.supervisor.dead_for() <= limit

    def problems(self) -> list[str]:
        """What is wrong now, in words: dead or restarted threads, failed cameras, stalls."""
        out = self.supervisor.problems()
        limit = self.notifier.watchdog_interval or 30.0
        for name, w in list(self.workers.items()):
            age = w.stats().last_progress_age
            if w.is_alive() and age > limit:
                out.append(f"worker {name}: no progress for {age:.0f} s")
        for name, c in list(self.captures.items()):
            st = c.stats()
            if st.failed:
                out.append(f"camera {name}: gave up: {st.error}")
        if self.publisher is not None and self.publisher.sender_error:
            out.append(f"mqtt sender: {self.publisher.sender_error}")
        return out

    def status_line(self) -> str:
        return status_line(self.figures())

    def run(self) -> RunResult:
        self.wait_cameras_tried(timeout=20.0)
        self.ready_at = time.monotonic()
        self.notifier.ready(self.status_line())
        log.info("ready in %.2f s: %s", self.ready_at - self.started, self.status_line())
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
            self.supervise()
            self._periodic(now)
            if self.budget is not None and self.budget.complete:
                reason = f"max frames ({self.max_frames})"
                break
            if self.duration is not None and now - self.started >= self.duration:
                reason = f"duration ({self.duration:g} s)"
                break
            if self.preview_only:
                continue  # the preview serves the last frames until it is stopped
            if self.workers and all(self._worker_finished(w) for w in self.workers.values()):
                break  # every camera finished (files read to their end, or given up)
        self.notifier.stopping()
        self.stop()
        self.log_status()
        events = sum(ch.events for ch in self.channels.values())
        return RunResult(reason, self.frames_processed(), events, time.monotonic() - self.started)

    @staticmethod
    def _worker_finished(worker: InferenceWorker) -> bool:
        return not worker.is_alive() and worker.error is None

    # -- supervision -----------------------------------------------------------------------

    def supervise(self) -> None:
        """Restart (with backoff) every thread that died: captures, workers, the action
        dispatcher and the MQTT sender. A file given up on, or read to its end, is not restarted."""
        sup = self.supervisor
        for name, capture in list(self.captures.items()):
            st = capture.stats()
            alive = capture.is_alive() or not st.crashed
            sup.check("capture", name, alive, st.error, functools.partial(self._restart_capture, name))
        for name, worker in list(self.workers.items()):
            alive = worker.is_alive() or worker.error is None
            sup.check("worker", name, alive, worker.error, functools.partial(self._restart_worker, name))
        if self.dispatcher is not None:
            d = self.dispatcher
            alive = d.is_alive() or d.ident is None  # not started yet
            sup.check("actions", "dispatcher", alive, None, self._restart_dispatcher)
        if self.publisher is not None:
            p = self.publisher
            sup.check("mqtt", "sender", p.sender_alive, p.sender_error, p.restart_sender)

    def _restart_capture(self, name: str) -> None:
        old, channel = self.captures[name], self.channels[name]
        cam = self.loaded.config.cameras[name]
        capture = self._new_capture(name, cam, channel.ring)
        capture.frames_read, capture.reconnects = old.frames_read, old.reconnects
        capture.frames_skipped = old.frames_skipped
        if capture.motion is not None and old.motion is not None:
            capture.motion.gated = old.motion.gated  # counters never go back
        if channel.last_frame is not None and isinstance(cam.source, FileSource):
            capture.continue_after(channel.last_frame.t_frame)
        self.captures[name] = capture
        channel.capture = capture
        capture.start()

    def _restart_worker(self, name: str) -> None:
        """A new thread for a worker that died (or finished, when a reload gives it cameras):
        same model, rings, rule engine and OpenVINO requests; counters carry on."""
        assert self.dispatcher is not None
        old = self.workers[name]
        self._retire_counts(old)
        reuse = old.async_requests
        if reuse is not None:
            reuse.reset()
        worker = self._build_worker(self.loaded.config, name, enabled_cameras(self.loaded.config), reuse)
        worker.engine = old.engine  # the old thread has ended its rules; their state carries on
        worker.processed = old.processed
        worker.latency_counts, worker.latency_sum = old.latency_counts, old.latency_sum
        for channel in old.channels:
            worker.add_camera(channel)
            channel.ring.set_on_ready(worker.wake.set)
        self.workers[name] = worker
        worker.start()

    def _restart_dispatcher(self) -> None:
        assert self.dispatcher is not None
        self.dispatcher = ActionDispatcher(self.dispatcher.actions)
        for worker in self.workers.values():
            worker.dispatcher = self.dispatcher
        self.dispatcher.start()

    def _retire_counts(self, worker: InferenceWorker) -> None:
        for key, n in dict(worker.event_counts).items():
            self.retired_event_counts[key] = self.retired_event_counts.get(key, 0) + n

    def _periodic(self, now: float) -> None:
        """Watchdog (only while healthy), systemd STATUS, the status log line, MQTT stats."""
        cfg, nxt = self.loaded.config, self._next
        watchdog = self.notifier.watchdog_interval
        if watchdog and now >= nxt["watchdog"]:
            if self.healthy():
                self.notifier.watchdog()
            else:
                log.error("not feeding the watchdog: %s", "; ".join(self.problems()) or "unhealthy")
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
        """Re-read the config and apply it as a plan (``edge.daemon.reloading``); False when
        the new config or one of its models is refused and the old one keeps running."""
        return reload_config(self)

    def log_status(self) -> None:
        fig = self.figures()
        infer = {m.name: m.infer_ms_avg for m in fig.models}
        cams = self.loaded.config.cameras
        for c in fig.cameras:
            age = "-" if c.last_frame_age is None else f"{c.last_frame_age:.1f}s"
            ms = infer.get(cams[c.name].model, 0.0) if c.name in cams else 0.0
            gated = f", gated {c.frames_gated}" if c.name in cams and cams[c.name].motion.enabled else ""
            log.info(
                "camera %s: %s, read %d (%.1f fps), processed %d (%.1f fps)%s, skipped %d, dropped %d, "
                "reconnects %d, restarts %d, last frame %s ago, inference %.1f ms, events %d",
                c.name, c.state, c.frames_read, c.frames_read / fig.uptime, c.frames_processed,
                c.frames_processed / fig.uptime, gated, c.frames_skipped, c.frames_dropped, c.reconnects,
                c.restarts, age, ms, c.events,
            )  # fmt: skip
        for problem in fig.problems:
            log.warning("problem: %s", problem)

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
        if self.preview is not None:
            self.preview.close()
        leaked = [
            t.name for t in threading.enumerate() if t.name.startswith(("capture-", "infer-", "actions"))
        ]
        if leaked:
            log.warning("threads still running after stop: %s", ", ".join(leaked))
