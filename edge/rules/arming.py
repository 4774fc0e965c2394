"""Which rules are armed, per (camera, rule), changed at run time and kept across restarts.

The inference worker asks ``armed(camera, rule)`` for every rule on every frame: that is one
lookup in a dict that is never changed after it is published (a change builds a new dict and
swaps the reference, which is atomic in Python), so the read path takes no lock.

Only the values someone *set* (an ON/OFF command) are saved, in ``<state_dir>/armed.json``::

    {"schema": 1, "armed": {"<camera>": {"<rule>": true}}}

A pair nobody set follows its rule's ``armed:`` config field (the ``defaults``), so editing
that field still works for rules nobody switched. Saved values of pairs no longer in the config
(a rule or camera deleted) are dropped at the next save. The file is replaced atomically (a
temporary file in the same folder, fsync, ``os.replace``), so a crash or power cut leaves the
old table or the new one, never half of one. A file that cannot be read or parsed is renamed
to ``<name>.corrupt`` (kept as evidence), one warning is logged and the defaults are used.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from edge.config.schema import RuleConfig
from edge.statefiles import keep_as_evidence, write_atomic

log = logging.getLogger("edge.arming")

Pair = tuple[str, str]  # (camera, rule)
FILENAME = "armed.json"
SCHEMA = 1


class CorruptArmingFile(ValueError):
    """The arming file exists but does not hold the expected JSON."""


class ArmingStore:
    """Armed flags per (camera, rule): lock-free reads, locked and persisted writes."""

    def __init__(self, path: Path, defaults: Mapping[Pair, bool]) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._defaults: dict[Pair, bool] = dict(defaults)
        self._saved: dict[Pair, bool] = {
            p: v for p, v in self._load().items() if p in self._defaults
        }  # explicit ON/OFF commands still in the config
        self._save_failing = False
        self._table: Mapping[Pair, bool] = self._build()

    # -- the hot path -----------------------------------------------------------------------

    def armed(self, camera: str, rule: str) -> bool:
        """Whether the rule is armed on this camera; a pair not configured counts as armed
        (the config's default), so a worker that runs a rule a moment before ``reconfigure``
        never drops its events silently."""
        return self._table.get((camera, rule), True)

    # -- changes (any thread) ----------------------------------------------------------------

    def set(self, camera: str, rule: str, on: bool) -> bool:
        """Arm or disarm one pair and save the table; True when the value changed.
        Raises ``KeyError`` for a pair that is not configured. A save that fails (full or
        read-only disk) is logged once per failure streak; the new value applies anyway."""
        pair = (camera, rule)
        with self._lock:
            if pair not in self._defaults:
                raise KeyError(pair)
            changed = self._table[pair] != on
            if self._saved.get(pair) == on:
                return changed  # the same command again: nothing to save
            self._saved[pair] = on
            self._table = self._build()
            self._save()
        return changed

    def reconfigure(self, defaults: Mapping[Pair, bool]) -> None:
        """A config reload: new pairs take their default, pairs that remain keep what was
        set, pairs that went are forgotten (and leave the file at the next save)."""
        with self._lock:
            self._defaults = dict(defaults)
            self._saved = {p: v for p, v in self._saved.items() if p in self._defaults}
            self._table = self._build()

    def snapshot(self) -> dict[Pair, bool]:
        """Every configured pair and whether it is armed now."""
        return dict(self._table)

    def pairs(self) -> frozenset[Pair]:
        return frozenset(self._table)

    # -- inside ----------------------------------------------------------------------------

    def _build(self) -> dict[Pair, bool]:
        return {p: self._saved.get(p, d) for p, d in self._defaults.items()}

    def _load(self) -> dict[Pair, bool]:
        try:
            text = self.path.read_text(encoding="utf-8")
            return parse(text)
        except (FileNotFoundError, NotADirectoryError):  # no file (a broken folder: the save says)
            return {}
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
            moved = keep_as_evidence(self.path)
            log.warning(
                "%s: cannot read the armed rules (%s); using each rule's `armed:` from the config%s",
                self.path, reason, moved,
            )  # fmt: skip
            return {}

    def _save(self) -> None:
        """Write the saved values of configured pairs; called with the lock held."""
        doc: dict[str, Any] = {"schema": SCHEMA, "armed": {}}
        for (camera, rule), on in sorted(self._saved.items()):
            doc["armed"].setdefault(camera, {})[rule] = on
        try:
            write_atomic(self.path, json.dumps(doc, indent=1, sort_keys=True) + "\n")
        except OSError as exc:
            if not self._save_failing:
                log.warning(
                    "%s: cannot save the armed rules (%s); the change applies until the next start",
                    self.path, exc.strerror or exc,
                )  # fmt: skip
            self._save_failing = True
        else:
            if self._save_failing:
                log.info("%s: saving the armed rules works again", self.path)
            self._save_failing = False


def arming_defaults(rules: Mapping[str, RuleConfig], cameras: Collection[str]) -> dict[Pair, bool]:
    """``{(camera, rule): rule.armed}`` for every rule on every camera in ``cameras`` (the
    enabled ones): the ``defaults`` of ``ArmingStore``."""
    return {(cam, name): rc.armed for name, rc in rules.items() for cam in rc.cameras if cam in cameras}


def parse(text: str) -> dict[Pair, bool]:
    """The saved values in the file's text; ``ValueError`` (``CorruptArmingFile``) saying
    what was expected when it is not the format above."""
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise CorruptArmingFile(f"not JSON: {exc.msg} at line {exc.lineno}") from None
    if not isinstance(doc, dict) or doc.get("schema") != SCHEMA:
        raise CorruptArmingFile(f'expected an object with "schema": {SCHEMA}')
    cameras = doc.get("armed")
    if not isinstance(cameras, dict):
        raise CorruptArmingFile('expected "armed": {camera: {rule: true|false}}')
    out: dict[Pair, bool] = {}
    for camera, rules in cameras.items():
        if not isinstance(rules, dict):
            raise CorruptArmingFile(f'"armed"."{camera}": expected {{rule: true|false}}')
        for rule, on in rules.items():
            if not isinstance(on, bool):
                raise CorruptArmingFile(f'"armed"."{camera}"."{rule}": expected true or false')
            out[(camera, rule)] = on
    return out
