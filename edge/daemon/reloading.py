"""Applying a reload: the plan from ``edge.daemon.reload`` carried out on a running
``Application`` by its main loop. New models are loaded before anything stops; any failure
(an invalid config, a model that does not load) keeps the old config running and says why.
Rule engines are swapped on their worker's thread; a new MQTT connection opens only after the
old one is closed."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Set
from typing import TYPE_CHECKING, Any

from edge.config import LoadedConfig, load_config
from edge.config.preflight import preflight
from edge.config.schema import EdgeConfig
from edge.daemon.reload import ReloadPlan, enabled_cameras, plan_reload, rule_pairs
from edge.errors import ConfigError, EdgeError
from edge.inference import LoadedModel
from edge.rules.arming import arming_defaults
from edge.rules.engine import Event, RuleEngine

if TYPE_CHECKING:
    from edge.daemon.app import Application

log = logging.getLogger("edge.app")


def _engine_swap(
    engine: RuleEngine, keep: Set[tuple[str, str]], frames: dict[str, Any]
) -> Callable[[RuleEngine], tuple[RuleEngine, list[Event]]]:
    """What a kept worker runs on its thread at a reload: the new engine takes over the state
    of the pairs in ``keep`` and ends the others."""

    def build(old: RuleEngine) -> tuple[RuleEngine, list[Event]]:
        return engine, engine.take_over(old, lambda rule, cam: (rule, cam) in keep, frames)

    return build


def reload_config(app: Application) -> bool:
    """Re-read the config and apply ``plan_reload``. New models are loaded before anything
    stops; any failure (invalid config, a model that does not load) keeps the old config
    running and says why."""
    app.notifier.reloading()
    path = app.loaded.path
    try:
        if path is None:
            raise ConfigError(["this configuration was not loaded from a file; nothing to re-read"])
        new = load_config(path, app.overrides)
        issues = preflight(new)
        if issues:
            raise ConfigError(issues)
    except ConfigError as exc:
        log.error("reload: the new config is invalid, still running the old one:\n%s", exc)
        app.notifier.ready(app.status_line())
        return False
    old_cfg, cfg = app.loaded.config, new.config
    if app.adjust is not None:  # ``edge preview``: files in real time and looping, preview on
        cfg = app.adjust(cfg)
    plan = plan_reload(old_cfg, cfg)
    if plan.state_dir_ignored:
        log.warning("reload: state_dir changes need a restart; keeping %s", old_cfg.state_dir)
        cfg = cfg.model_copy(update={"state_dir": old_cfg.state_dir})
    if cfg.preview != old_cfg.preview:
        log.warning("reload: preview changes need a restart; the preview keeps its settings")
        cfg = cfg.model_copy(update={"preview": old_cfg.preview})
    loaded: dict[str, LoadedModel] = {}
    try:
        for name in sorted(plan.models_load):
            loaded[name] = app._load_model(cfg, name)
    except (EdgeError, OSError, RuntimeError, ValueError) as exc:
        for model in loaded.values():
            model.close()
        log.error("reload: model %s cannot be loaded (%s); still running the old config", name, exc)
        app.notifier.ready(app.status_line())
        return False
    old_base = None if app.publisher is None else app.publisher.base
    if app.arming is not None:  # before the new engines read it
        app.arming.reconfigure(arming_defaults(cfg.rules, cfg.cameras))
    apply_plan(app, plan, cfg, loaded)
    app.loaded = LoadedConfig(cfg, new.source, new.path)
    if app.publisher is not None:
        moved = app.publisher.base != old_base  # a new prefix/device, or MQTT turned on
        # Kept rules say their real state at their next frame (an `off` now would be a lie, and
        # zeroed line counters would look like a reset to Home Assistant's total_increasing).
        fresh = rule_pairs(cfg) - plan.keep_pairs if moved else plan.new_pairs
        app._announce_states(fresh, reset=plan.mqtt_changed)
        app.control_arming()
        if moved:
            for cam, capture in app.captures.items():
                app._on_camera_state(cam, capture.state)
    log.info(
        "reloaded %s: restarted camera(s) %s, model(s) %s; %d rule(s); ended (rule, camera) %s",
        path, sorted(plan.cameras_start) or "none", sorted(plan.models_load) or "none", len(cfg.rules),
        sorted(plan.gone_pairs) or "none",
    )  # fmt: skip
    app.notifier.ready(app.status_line())
    return True


def apply_plan(app: Application, plan: ReloadPlan, cfg: EdgeConfig, loaded: dict[str, LoadedModel]) -> None:
    cams = enabled_cameras(cfg)
    # 1. Stop the cameras that change or go, and the workers of models that change or go
    #    (a stopping worker ends the rules of its cameras).
    for name in sorted(plan.cameras_stop):
        # Rules of a camera whose worker goes end now; a kept worker settles them in step 3.
        stop_camera(app, name, end_rules=app.loaded.config.cameras[name].model in plan.workers_stop)
    for name in sorted(plan.workers_stop):
        stop_worker(app, name)
    # 2. Actions: a new MQTT client only after the old one is gone (one client id at a time).
    if plan.actions_changed:
        replace_actions(app, cfg)
    # 3. Kept workers get a new rule engine on their own thread; pairs that do not carry
    #    over are ended there.
    frames = {ch.name: ch.last_frame for ch in app.channels.values()} | dict(app._last_frames)
    for name in sorted(plan.workers_keep):
        engine = app._build_engine(cfg, name, cams)
        if not app.workers[name].replace_engine(_engine_swap(engine, plan.keep_pairs, frames)):
            log.error("reload: worker %s did not take the new rules within 10 s", name)
    app._last_frames.clear()
    # 4. New or changed models, then new or changed cameras.
    for name, model in sorted(loaded.items()):
        app.models[name] = model
        app.workers[name] = app._build_worker(cfg, name, cams)
    for name in sorted(plan.cameras_start):
        app._build_camera(name, cams[name])
    for name in sorted(loaded):
        app.workers[name].start()
    for name in sorted(plan.workers_keep):
        if not app.workers[name].is_alive() and app.workers[name].channels:
            app._restart_worker(name)  # it had finished its files; now it has cameras again
    for name in sorted(plan.cameras_start):
        app.captures[name].start()


def stop_camera(app: Application, name: str, end_rules: bool = False) -> None:
    capture = app.captures.pop(name)
    channel = app.channels.pop(name)
    app._last_frames[name] = channel.last_frame
    app.supervisor.forget("capture", name)
    if app.tap is not None:
        app.tap.forget(name)
    capture.stop()
    capture.join(10)
    for worker in app.workers.values():
        if channel in worker.channels:
            worker.on_worker(functools.partial(worker.remove_channel, channel, end_rules))


def stop_worker(app: Application, name: str) -> None:
    worker = app.workers.pop(name)
    app.supervisor.forget("worker", name)
    worker.stop()
    worker.join(10)
    app._retire_counts(worker)
    model = app.models.pop(name)
    if worker.is_alive():  # still inferring: leave the model to the process's end
        log.error("worker %s did not stop within 10 s; its model stays loaded", name)
    else:
        model.close()


def replace_actions(app: Application, cfg: EdgeConfig) -> None:
    """New actions at the same place in the event stream. The MQTT publisher stays one
    object: a changed ``mqtt:`` closes its connection before the new one opens."""
    assert app.dispatcher is not None
    old_cfg, publisher = app.loaded.config, app.publisher
    if publisher is not None and not cfg.mqtt.enabled:
        app.supervisor.forget("mqtt", "sender")
        publisher.close(timeout=min(app.flush_timeout, 2.0))
        app.publisher = None
    elif publisher is not None and cfg.mqtt != old_cfg.mqtt:
        if cfg.mqtt.outbox != old_cfg.mqtt.outbox:
            log.warning("reload: mqtt.outbox changes take effect at the next start")
        publisher.reconfigure(cfg.mqtt)
    app.dispatcher.replace_actions(app._build_actions(cfg))
    if app.publisher is not None and publisher is None:
        app.publisher.start()
