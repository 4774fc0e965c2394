"""``edge check-config``: validate a config, its cross-references, and everything ``edge run``
would fail on here (files, folders, addresses, model files, runners, devices, labels)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge.config import LoadedConfig, load_config
from edge.config.preflight import preflight
from edge.errors import ConfigError


def summary(loaded: LoadedConfig) -> str:
    cfg = loaded.config
    mqtt = f"MQTT {cfg.mqtt.host}:{cfg.mqtt.port} as {cfg.mqtt.device}" if cfg.mqtt.enabled else "MQTT off"
    return (
        f"{loaded.path}: OK: {len(cfg.models)} model(s), {len(cfg.cameras)} camera(s), "
        f"{len(cfg.rules)} rule(s), {mqtt}, state in {cfg.state_dir}"
    )


def load_checked(path: Path, overrides: Sequence[str], check_models: bool = True) -> LoadedConfig:
    """``load_config`` then ``preflight``; raises ``ConfigError`` with every problem found."""
    loaded = load_config(path, overrides)
    issues = preflight(loaded, check_models=check_models)
    if issues:
        raise ConfigError(issues)
    return loaded


def cmd_check_config(path: Path, overrides: Sequence[str], check_models: bool = True) -> int:
    print(summary(load_checked(path, overrides, check_models)))
    return 0
