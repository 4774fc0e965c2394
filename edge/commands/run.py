"""``edge run``: the daemon's main entry. The config is checked as ``edge check-config`` checks
it (``load_config`` + ``preflight``) before anything starts: a problem exits 2 with the same lines."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from edge.commands.check import load_checked
from edge.daemon.app import Application
from edge.logs import setup_logging

log = logging.getLogger("edge")


def cmd_run(
    config: Path,
    overrides: Sequence[str],
    max_frames: int | None,
    duration: float | None,
    log_level: str | None,
    log_format: str | None = None,
) -> int:
    loaded = load_checked(config, overrides)  # the same checks and lines as check-config
    setup_logging(log_level or loaded.config.log_level, log_format or loaded.config.log_format)
    app = Application(loaded, max_frames=max_frames, duration=duration, overrides=tuple(overrides))
    app.launch()
    result = app.run()
    log.info(
        "stopped (%s): %d frame(s) processed, %d event(s), %.1f s",
        result.reason, result.frames, result.events, result.seconds,
    )  # fmt: skip
    failed = [w.model_name for w in app.workers.values() if w.error]
    return 1 if failed else 0
