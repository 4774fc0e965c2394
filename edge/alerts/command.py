"""The ``command`` action: a rule may run a program on its events.

The program is an argv list from the rule's ``command:`` (never a shell), run with a small
environment: ``PATH``, ``HOME``, ``LANG``, ``LC_ALL`` and ``TZ`` from the daemon when set (the
daemon's environment may hold secrets such as an MQTT password, so it is never passed whole),
then the event's fields as ``EDGE_*`` variables (``EDGE_EVENT_JSON`` holds the whole payload),
then the rule's ``env``.

``handle`` never waits: it queues a job for a small pool of worker threads (at most
``command_concurrency`` programs run at once); when ``command_queue`` jobs already wait, the
event is dropped, counted and logged once per streak. Each program runs in its own session and
process group, with stdin from ``/dev/null`` and stdout and stderr into one pipe of which only
the last 2 KiB are kept (the pipe is read all along, so a chatty program never blocks on it).
A program still running after its ``timeout`` gets SIGTERM on its whole process group, and
SIGKILL on the group once it has ended or 2 s later, whichever comes first; its children go with
it. Every outcome is counted (``CommandAction.figures()``); a failure is one log line naming
the rule, the program and the exit code, never a traceback.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import selectors
import signal
import subprocess
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge.alerts.actions import EventEnvelope
from edge.config.schema import CommandConfig

log = logging.getLogger("edge.command")

INHERITED_VARIABLES = ("PATH", "HOME", "LANG", "LC_ALL", "TZ")
"""The only variables a program gets from the daemon's environment."""
OUTPUT_TAIL = 2048
"""Bytes of a program's output kept, for the log line of a failure."""
KILL_GRACE = 2.0
"""Seconds between SIGTERM and SIGKILL to a process group."""
EXIT_NOT_FOUND = 127
EXIT_NOT_EXECUTABLE = 126
_POLL = 0.05  # seconds between looks at a child where pidfd_open is missing
_LINE_MAX = 300  # characters of the last output line in a log line


@dataclass(frozen=True)
class CommandFigures:
    """A snapshot of the command counters, safe to hand to another thread.

    ``started`` counts programs the workers tried to start; each ends in exactly one of
    ``succeeded`` (exit 0), ``failed`` (non-zero exit, killed by a signal, or could not be
    started: 127 not found, 126 not executable) and ``timed_out`` (killed after its timeout or
    at close), or is still ``running``. ``dropped``: events refused (queue full, or at close)."""

    started: int
    succeeded: int
    failed: int
    timed_out: int
    dropped: int
    running: int
    queued: int
    exit_codes: tuple[tuple[int, int], ...]
    """(exit code, programs) by code; a program killed by signal N counts as -N; timed-out
    programs are not here."""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def program_environment(
    payload: Mapping[str, Any], extra: Mapping[str, str], daemon_env: Mapping[str, str]
) -> dict[str, str]:
    """The environment of a rule's program: a few variables of the daemon, the event's fields
    (missing or None: empty), then the rule's ``env`` (which wins)."""
    env = {k: daemon_env[k] for k in INHERITED_VARIABLES if k in daemon_env}
    p = payload
    box = p.get("box")
    env.update(
        EDGE_EVENT_ID=_text(p.get("id")),
        EDGE_EVENT_TYPE=_text(p.get("type")),
        EDGE_RULE_KIND=_text(p.get("kind")),
        EDGE_DEVICE=_text(p.get("device")),
        EDGE_CAMERA=_text(p.get("camera")),
        EDGE_RULE=_text(p.get("rule")),
        EDGE_LABEL=_text(p.get("label")),
        EDGE_SCORE=_text(p.get("score")),
        EDGE_TOP_SCORE=_text(p.get("top_score")),
        EDGE_TRACK_ID=_text(p.get("track_id")),
        EDGE_DIRECTION=_text(p.get("direction")),
        EDGE_COUNT=_text(p.get("count")),
        EDGE_TS=_text(p.get("ts")),
        EDGE_DURATION=_text(p.get("duration")),
        EDGE_BOX="" if box is None else ",".join(_text(v) for v in box),
        EDGE_ZONES=",".join(_text(z) for z in p.get("zones") or []),
        EDGE_EVENT_JSON=json.dumps(dict(p), sort_keys=True),
    )
    env.update(extra)
    return env


@dataclass(frozen=True)
class _Job:
    rule: str
    event_id: str
    argv: tuple[str, ...]
    env: Mapping[str, str]
    timeout: float


class _Running:
    """A started program, shared (under the action's lock) between its worker and ``close``.
    Only the worker reaps it, and it leaves ``_running`` first, so a signal sent to its group
    under the lock never reaches a recycled process id."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.terminated: str | None = None  # why SIGTERM went to its group: 'timeout' or 'close'


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _last_line(tail: bytes) -> str:
    lines = [ln.strip() for ln in tail.decode("utf-8", "replace").splitlines() if ln.strip()]
    if not lines:
        return "(no output)"
    last = lines[-1]
    return last if len(last) <= _LINE_MAX else last[:_LINE_MAX] + "..."


def _describe_code(code: int) -> str:
    if code < 0:
        try:
            return f"was killed by signal {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class _Child:
    """Watches one started program: reads its output into a bounded tail and notices its end
    without reaping it (a pidfd, or ``waitid(WNOWAIT)`` polling where pidfds are missing)."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        assert proc.stdout is not None
        self.proc = proc
        self.tail = bytearray()
        self.ended = False
        self._fd = proc.stdout.fileno()
        self._sel = selectors.DefaultSelector()
        self._sel.register(self._fd, selectors.EVENT_READ, "out")
        self._pidfd: int | None = None
        with contextlib.suppress(AttributeError, OSError):
            self._pidfd = os.pidfd_open(proc.pid)
        if self._pidfd is not None:
            self._sel.register(self._pidfd, selectors.EVENT_READ, "end")
        self._pipe_open = True

    def wait(self, until: float) -> bool:
        """Read output until the program ends or the monotonic time ``until``; True if it ended."""
        while not self.ended:
            left = until - time.monotonic()
            if left <= 0:
                return False
            self._select(left if self._pidfd is not None else min(left, _POLL))
            if self._pidfd is None and not self.ended:
                self.ended = (
                    os.waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
                )
        # Take what it wrote before it ended, without waiting for children that hold the pipe.
        while self._pipe_open and any(key.data == "out" for key, _ in self._sel.select(0)):
            self._read()
        return True

    def _select(self, timeout: float) -> None:
        for key, _ in self._sel.select(timeout):
            if key.data == "out":
                self._read()
            else:
                self.ended = True

    def _read(self) -> None:
        try:
            chunk = os.read(self._fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            self._sel.unregister(self._fd)
            self._pipe_open = False
            return
        self.tail += chunk
        del self.tail[:-OUTPUT_TAIL]

    def close(self) -> None:
        self._sel.close()
        if self._pidfd is not None:
            os.close(self._pidfd)
        assert self.proc.stdout is not None
        self.proc.stdout.close()


class CommandAction:
    """Runs the rules' programs on their events, off the dispatcher thread.

    ``commands`` maps a rule name to its ``CommandConfig``; at most ``concurrency`` programs run
    at once (daemon worker threads, started when jobs wait) and at most ``queue_size`` jobs
    wait. ``reconfigure`` applies a reload without losing the counters or killing a running
    program; ``close`` drops the jobs still waiting and ends the running programs after its
    timeout. ``handle`` returns False for events the rule's command does not take, True when
    the event was queued or dropped (a drop is counted here, not raised)."""

    name = "command"

    def __init__(self, commands: Mapping[str, CommandConfig], concurrency: int, queue_size: int) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._commands = dict(commands)
        self._concurrency = concurrency
        self._queue_size = queue_size
        self._jobs: deque[_Job] = deque()
        self._threads: set[threading.Thread] = set()
        self._busy = 0  # workers between taking a job and counting its outcome
        self._running: dict[int, _Running] = {}
        self._closed = False
        self._dropping = False
        self._started = self._succeeded = self._failed = self._timed_out = self._dropped = 0
        self._exit_codes: Counter[int] = Counter()
        self._seq = 0

    @property
    def files_removed(self) -> int:
        return 0

    def reconfigure(self, commands: Mapping[str, CommandConfig], concurrency: int, queue_size: int) -> None:
        """A config reload: new commands and limits for the next events; jobs already queued
        run as they were queued, running programs go on, counters stay."""
        with self._cond:
            self._commands = dict(commands)
            self._concurrency = concurrency
            self._queue_size = queue_size
            while self._spawn_needed():
                self._spawn()
            self._cond.notify_all()  # workers over the new limit leave when idle

    def handle(self, env: EventEnvelope) -> bool:
        p = env.payload
        rule, kind = p.get("rule"), p.get("type")
        with self._lock:
            cmd = self._commands.get(rule) if isinstance(rule, str) else None
        if cmd is None or kind not in cmd.events:
            return False
        job = _Job(
            rule=str(rule),
            event_id=_text(p.get("id")),
            argv=tuple(cmd.argv),
            env=program_environment(p, cmd.env, os.environ),
            timeout=cmd.timeout,
        )
        with self._cond:
            refused = self._closed or len(self._jobs) >= self._queue_size
            if refused:
                self._dropped += 1
                streak_starts, self._dropping = not self._dropping, True
            else:
                streak_ends, self._dropping = self._dropping, False
                self._jobs.append(job)
                if self._spawn_needed():
                    self._spawn()
                self._cond.notify()
            closed, limit, dropped = self._closed, self._queue_size, self._dropped
        if refused and streak_starts:
            why = "the command action is closed" if closed else f"command queue full ({limit} waiting)"
            log.error(
                "%s: dropping commands, from rule %s event %s on; counted as dropped", why, rule, job.event_id
            )
        elif not refused and streak_ends:
            log.warning("command queue has room again; %d command(s) dropped so far", dropped)
        return True

    def tick(self) -> None:
        pass

    def figures(self) -> CommandFigures:
        with self._lock:
            return CommandFigures(
                started=self._started,
                succeeded=self._succeeded,
                failed=self._failed,
                timed_out=self._timed_out,
                dropped=self._dropped,
                running=self._busy,
                queued=len(self._jobs),
                exit_codes=tuple(sorted(self._exit_codes.items())),
            )

    def close(self, timeout: float = 5.0) -> None:
        """Take no more jobs and drop the waiting ones; wait up to ``timeout`` for the running
        programs, then end their process groups (SIGTERM, SIGKILL 2 s later); join the workers."""
        with self._cond:
            self._closed = True
            dropped = len(self._jobs)
            self._jobs.clear()
            self._dropped += dropped
            self._cond.notify_all()
            threads = list(self._threads)
        if dropped:
            log.warning("command action closing: %d queued command(s) dropped, not run", dropped)
        deadline = time.monotonic() + timeout
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        for sig in (signal.SIGTERM, signal.SIGKILL):
            with self._lock:
                running = list(self._running.values())
                for r in running:
                    r.terminated = r.terminated or "close"
                    _signal_group(r.proc.pid, sig)
            if running and sig == signal.SIGTERM:
                log.warning(
                    "command action closing: %d program(s) still running after %.1f s; terminated",
                    len(running), timeout,
                )  # fmt: skip
            deadline = time.monotonic() + KILL_GRACE
            for t in threads:
                t.join(max(0.0, deadline - time.monotonic()))

    # --- workers ---------------------------------------------------------------------------

    def _spawn_needed(self) -> bool:
        idle = len(self._threads) - self._busy
        return not self._closed and len(self._jobs) > idle and len(self._threads) < self._concurrency

    def _spawn(self) -> None:
        self._seq += 1
        t = threading.Thread(target=self._work, name=f"command-{self._seq}", daemon=True)
        self._threads.add(t)
        t.start()

    def _work(self) -> None:
        me = threading.current_thread()
        while True:
            with self._cond:
                while not self._jobs and not self._closed and len(self._threads) <= self._concurrency:
                    self._cond.wait()
                if self._closed or len(self._threads) > self._concurrency:
                    self._threads.discard(me)
                    return
                job = self._jobs.popleft()
                self._busy += 1
                self._started += 1
            try:
                self._run(job)
            except Exception:  # a worker must not die: count it, log it once with its cause
                log.exception("command of rule %s: %s could not be run", job.rule, job.argv[0])
                self._count(None, timed_out=False)
            finally:
                with self._lock:
                    self._busy -= 1

    def _count(self, code: int | None, timed_out: bool) -> None:
        """One outcome: timed out, an exit code, or (None) a failure without one."""
        with self._lock:
            if timed_out:
                self._timed_out += 1
                return
            if code is not None:
                self._exit_codes[code] += 1
            if code == 0:
                self._succeeded += 1
            else:
                self._failed += 1

    def _run(self, job: _Job) -> None:
        program = job.argv[0]
        try:
            proc = subprocess.Popen(
                list(job.argv),
                env=dict(job.env),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                close_fds=True,
            )
        except (OSError, ValueError) as exc:  # ValueError: a NUL byte in an argument
            missing = isinstance(exc, (FileNotFoundError, NotADirectoryError))
            code = EXIT_NOT_FOUND if missing else EXIT_NOT_EXECUTABLE
            reason = (exc.strerror or str(exc)) if isinstance(exc, OSError) else str(exc)
            log.warning(
                "command of rule %s: cannot run %s: %s (counted as exit code %d)",
                job.rule,
                program,
                reason,
                code,
            )
            self._count(code, timed_out=False)
            return
        running = _Running(proc)
        child = _Child(proc)
        with self._lock:
            self._running[proc.pid] = running
        try:
            if not child.wait(time.monotonic() + job.timeout):
                with self._lock:
                    running.terminated = running.terminated or "timeout"
                    _signal_group(proc.pid, signal.SIGTERM)
                child.wait(time.monotonic() + KILL_GRACE)
            with self._lock:
                del self._running[proc.pid]
                if running.terminated:  # the group's stragglers go too; the zombie keeps the id ours
                    _signal_group(proc.pid, signal.SIGKILL)
            code = proc.wait()
        finally:
            child.close()
        last = _last_line(bytes(child.tail))
        if running.terminated:
            when = (
                f"after its timeout of {job.timeout:g} s" if running.terminated == "timeout" else "at close"
            )
            log.warning(
                "command of rule %s: %s still running %s; its process group was killed; last output: %s",
                job.rule, program, when, last,
            )  # fmt: skip
            self._count(None, timed_out=True)
            return
        if code != 0:
            log.warning(
                "command of rule %s: %s %s; last output: %s", job.rule, program, _describe_code(code), last
            )
        self._count(code, timed_out=False)
