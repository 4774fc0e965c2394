"""Retained topics remembered across runs, so the ones a config no longer has are deleted.

A rule or camera removed from the config (or renamed) would otherwise leave its retained
``state``/``status`` on the broker forever, re-read by every new subscriber. The topics
published are kept in ``<state_dir>/retained_topics.json``; at start and after a reload, any
topic in that file that the current config does not publish is cleared (an empty retained
message).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Protocol

log = logging.getLogger("edge.mqtt")
FILENAME = "retained_topics.json"


class Clearing(Protocol):
    def clear_retained(self, topic: str) -> None: ...


def sync_retained(publisher: Clearing, path: Path, current: set[str]) -> list[str]:
    """Clear the topics remembered in ``path`` that are not in ``current``; remember
    ``current``. Returns the topics cleared. (Rule state and camera status topics, and Home
    Assistant's discovery configs, each have their own file.)"""
    try:
        before = set(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError:
        before = set()
    except (OSError, ValueError, TypeError) as exc:
        log.warning("cannot read %s (%s): stale retained topics are not cleared this time", path, exc)
        before = set()
    stale = sorted(t for t in before - current if isinstance(t, str))
    for topic in stale:
        publisher.clear_retained(topic)
    for topic in stale:
        log.info("MQTT: deleting retained %s (no longer in the config)", topic)
    try:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(sorted(current)), encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        log.warning("cannot write %s (%s)", path, exc)
    return stale
