"""Keeps the daemon's threads alive: a thread that died is logged with its error, counted, and
restarted with backoff by the main loop. What is dead, and for how long, feeds the watchdog,
the systemd STATUS line and the figures (``stats`` topic, Prometheus)."""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from edge.capture.thread import Backoff
from edge.telemetry.figures import ThreadFigures

log = logging.getLogger("edge.supervisor")


@dataclass
class _Entry:
    kind: str
    name: str
    alive: bool = True
    restarts: int = 0
    dead_since: float | None = None
    due: float = 0.0
    last_error: str | None = None


class Supervisor:
    """The main loop checks and restarts; the metrics thread reads (``problems``, ``figures``)."""

    def __init__(
        self, initial: float = 1.0, maximum: float = 30.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.backoff = Backoff(initial, maximum)
        self.clock = clock
        self._rng = random.Random()
        self._lock = threading.Lock()
        self._entries: dict[tuple[str, str], _Entry] = {}

    def delay(self, restarts: int) -> float:
        return self.backoff.delay(restarts, self._rng)

    def check(
        self, kind: str, name: str, alive: bool, error: str | None, restart: Callable[[], None]
    ) -> None:
        """Note a thread's health; when it is dead and its restart is due, call ``restart``.
        It counts as dead (for the watchdog) until it is seen alive again."""
        with self._lock:
            entry = self._entries.setdefault((kind, name), _Entry(kind, name))
        entry.alive = alive
        if alive:
            entry.dead_since = None
            return
        now = self.clock()
        if entry.dead_since is None:
            entry.dead_since = now
            entry.last_error = error
            entry.due = now + self.delay(entry.restarts)
            log.error(
                "%s %s: thread died (%s); restarting in %.1f s (restart %d)",
                kind, name, error or "no error recorded", entry.due - now, entry.restarts + 1,
            )  # fmt: skip
        if now >= entry.due:
            entry.restarts += 1
            entry.due = now + self.delay(entry.restarts)  # the next try, if this one fails
            try:
                restart()
            except Exception as exc:  # still dead: tried again at `due`; the watchdog sees it
                entry.last_error = f"restart failed: {type(exc).__name__}: {exc}"
                log.exception("%s %s: restart failed", kind, name)

    def _snapshot(self) -> list[_Entry]:
        with self._lock:
            return list(self._entries.values())

    def forget(self, kind: str, name: str) -> None:
        """The thread was stopped on purpose (reload, shutdown)."""
        with self._lock:
            self._entries.pop((kind, name), None)

    def restarts(self, kind: str, name: str) -> int:
        with self._lock:
            entry = self._entries.get((kind, name))
        return entry.restarts if entry else 0

    def dead_for(self) -> float:
        """How long the longest-dead thread has been dead (0 when all live)."""
        now = self.clock()
        since = [e.dead_since for e in self._snapshot() if e.dead_since is not None]
        return max((now - t for t in since), default=0.0)

    def problems(self) -> list[str]:
        out = []
        for e in self._snapshot():
            if e.dead_since is not None:
                out.append(f"{e.kind} {e.name}: thread dead ({e.last_error or 'no error'}); restart pending")
            elif e.restarts:
                out.append(f"{e.kind} {e.name}: restarted {e.restarts} time(s), last error: {e.last_error}")
        return out

    def figures(self) -> tuple[ThreadFigures, ...]:
        return tuple(
            ThreadFigures(e.name, e.kind, e.alive, e.restarts, e.last_error)
            for e in sorted(self._snapshot(), key=lambda e: (e.kind, e.name))
        )
