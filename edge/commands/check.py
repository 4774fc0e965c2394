"""``edge check-config``: validate a config, its cross-references and its model files."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from edge.config import LoadedConfig, load_config
from edge.errors import ConfigError, ModelError
from edge.models import default_search_dirs, resolve_model


def check_model_files(loaded: LoadedConfig) -> list[str]:
    """Resolve every configured model and verify its files; issues point at ``models.X.path``."""
    issues = []
    dirs = default_search_dirs([loaded.config.models_dir])
    for name, model in loaded.config.models.items():
        try:
            package = resolve_model(model.path, dirs)
            for fmt in package.formats():
                package.verified_file(fmt)
        except ModelError as exc:
            issues.append(loaded.source.issue(("models", name, "path"), str(exc)))
    return issues


def summary(loaded: LoadedConfig) -> str:
    cfg = loaded.config
    mqtt = f"MQTT {cfg.mqtt.host}:{cfg.mqtt.port} as {cfg.mqtt.device}" if cfg.mqtt.enabled else "MQTT off"
    return (
        f"{loaded.path}: OK: {len(cfg.models)} model(s), {len(cfg.cameras)} camera(s), "
        f"{len(cfg.rules)} rule(s), {mqtt}, state in {cfg.state_dir}"
    )


def cmd_check_config(path: Path, overrides: Sequence[str], check_models: bool = True) -> int:
    loaded = load_config(path, overrides)
    if check_models:
        issues = check_model_files(loaded)
        if issues:
            raise ConfigError(issues)
    print(summary(loaded))
    return 0
