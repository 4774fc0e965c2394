"""``edge preview CONFIG``: the config's cameras, models and rules with the live view and the
zone editor, and no actions (no MQTT, no event log, no snapshots), until Ctrl-C.

Files play at their own frame rate and loop, so a recorded clip stands in for the camera it
came from. The page is served on the config's ``preview`` address (default 127.0.0.1:8090),
whether or not ``preview.enabled`` is set; ``--host``/``--port`` override it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from pathlib import Path

from pydantic import ValidationError

from edge.commands.check import load_checked
from edge.config import LoadedConfig
from edge.config.schema import EdgeConfig, FileSource
from edge.config.yaml_safe import one_line
from edge.daemon.app import Application
from edge.errors import ConfigError
from edge.logs import setup_logging

log = logging.getLogger("edge")


def preview_config(cfg: EdgeConfig, host: str | None, port: int | None) -> EdgeConfig:
    """The config as ``edge preview`` runs it: preview on, files in real time and looping."""
    update: dict[str, object] = {"enabled": True}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    try:
        preview = cfg.preview.model_validate({**cfg.preview.model_dump(), **update})
    except ValidationError as exc:
        raise ConfigError([f"--host/--port: {one_line(e['msg'])}" for e in exc.errors()]) from None
    cameras = {
        name: cam.model_copy(
            update={"source": cam.source.model_copy(update={"realtime": True, "loop": True})}
        )
        if isinstance(cam.source, FileSource)
        else cam
        for name, cam in cfg.cameras.items()
    }
    return cfg.model_copy(update={"preview": preview, "cameras": cameras})


def cmd_preview(
    config: Path,
    overrides: Sequence[str],
    host: str | None,
    port: int | None,
    log_level: str | None,
    log_format: str | None,
) -> int:
    loaded = load_checked(config, overrides)
    setup_logging(log_level or loaded.config.log_level, log_format or loaded.config.log_format)
    cfg = preview_config(loaded.config, host, port)
    app = Application(LoadedConfig(cfg, loaded.source, loaded.path), overrides=tuple(overrides))
    app.preview_only = True
    app.adjust = functools.partial(preview_config, host=host, port=port)  # a reload keeps them
    app.launch()
    assert app.preview is not None
    print(f"preview of {config} on {app.preview.url} (Ctrl-C to stop)", flush=True)
    result = app.run()
    log.info("preview stopped (%s)", result.reason)
    return 0
