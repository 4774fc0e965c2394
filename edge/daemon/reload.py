"""Reload as a plan: what a new config changes, worked out without touching a thread.

``plan_reload(old, new)`` compares two validated configs and says which cameras and model
workers to stop and start, whether the actions change, and which (rule, camera) pairs keep
their running state. The main loop applies the plan (``Application.reload``), loading new
models before it stops anything, so a model that fails to load leaves the old config running.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge.config.schema import CameraConfig, EdgeConfig, FileSource, RuleConfig

Pair = tuple[str, str]  # (rule, camera)


@dataclass(frozen=True)
class ReloadPlan:
    cameras_stop: frozenset[str]  # changed or removed: their capture stops
    cameras_start: frozenset[str]  # changed or added: a new capture starts
    workers_stop: frozenset[str]  # models changed or no longer used
    models_load: frozenset[str]  # models to load (new, or changed and used)
    workers_keep: frozenset[str]  # workers that stay; their rule engine is swapped
    keep_pairs: frozenset[Pair]  # (rule, camera) whose state (active, cooldown) carries over
    new_pairs: frozenset[Pair]  # pairs that did not exist before (their state topic is announced)
    gone_pairs: frozenset[Pair]  # pairs that no longer exist (their retained state is deleted)
    actions_changed: bool
    mqtt_changed: bool
    state_dir_ignored: bool  # state_dir changes need a restart; the old one is kept


def enabled_cameras(cfg: EdgeConfig) -> dict[str, CameraConfig]:
    return {n: c for n, c in cfg.cameras.items() if c.enabled}


def rule_pairs(cfg: EdgeConfig) -> set[Pair]:
    cams = enabled_cameras(cfg)
    return {(rule, cam) for rule, rc in cfg.rules.items() for cam in rc.cameras if cam in cams}


NOT_STATE = {"actions", "command", "armed", "schedule"}
"""Rule fields a running rule's state does not depend on: changing them keeps its episodes and
line counters (the engine reads the new ones)."""


def _state(rule: RuleConfig) -> dict[str, object]:
    return rule.model_dump(exclude=NOT_STATE)


def _acts(cfg: EdgeConfig) -> dict[str, object]:
    """What the rules ask of the actions (their commands and action lists)."""
    return {name: (r.command, r.actions) for name, r in cfg.rules.items()}


def plan_reload(old: EdgeConfig, new: EdgeConfig) -> ReloadPlan:
    old_cams, cams = enabled_cameras(old), enabled_cameras(new)
    models_changed = {
        m for m in old.models.keys() | new.models.keys() if old.models.get(m) != new.models.get(m)
    }
    cams_changed = {
        c for c in old_cams.keys() | cams.keys()
        if old_cams.get(c) != cams.get(c) or (c in cams and cams[c].model in models_changed)
    }  # fmt: skip
    used_before = {c.model for c in old_cams.values()}
    used = {c.model for c in cams.values()}
    workers_keep = (used_before & used) - models_changed
    rules_same = {r for r in new.rules if r in old.rules and _state(old.rules[r]) == _state(new.rules[r])}

    def keeps(pair: Pair) -> bool:
        rule, cam = pair
        if rule not in rules_same or cam not in old_cams or cams[cam].model not in workers_keep:
            return False
        if old_cams[cam].model != cams[cam].model:
            return False
        # A restarted file starts again at t=0: state from the old pass would lie in its future.
        return not (cam in cams_changed and isinstance(cams[cam].source, FileSource))

    before, after = rule_pairs(old), rule_pairs(new)
    return ReloadPlan(
        cameras_stop=frozenset(cams_changed & old_cams.keys()),
        cameras_start=frozenset(cams_changed & cams.keys()),
        workers_stop=frozenset(used_before - workers_keep),
        models_load=frozenset(used - workers_keep),
        workers_keep=frozenset(workers_keep),
        keep_pairs=frozenset(p for p in after if keeps(p)),
        new_pairs=frozenset(after - before),
        gone_pairs=frozenset(before - after),
        actions_changed=new.mqtt != old.mqtt or new.actions != old.actions or _acts(new) != _acts(old),
        mqtt_changed=new.mqtt != old.mqtt,
        state_dir_ignored=new.state_dir != old.state_dir,
    )
