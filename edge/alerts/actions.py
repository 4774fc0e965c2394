"""What happens to an event: MQTT, a JSON-lines log, a snapshot JPEG. Run off the hot path by
one dispatcher thread; one failing action never stops the others, and nothing fails silently:
every failure and every dropped event is counted (``ActionDispatcher.figures()``) and logged
once per streak. What the actions write on disk stays bounded (``edge.alerts.retention``)."""

from __future__ import annotations

import json
import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, get_args

import cv2
import numpy as np

from edge.alerts.mqtt import MqttPublisher
from edge.alerts.payload import Alert, encode, state_payload
from edge.alerts.retention import PART_SUFFIX, FolderRetention, RotatingFile
from edge.annotate import annotate, with_track
from edge.config.schema import ActionName
from edge.overlay import Shape, draw_shapes
from edge.rules.model import RuleStatus
from edge.types import Detections

log = logging.getLogger("edge.actions")


RULE_ACTIONS = frozenset(get_args(ActionName))


@dataclass(frozen=True)
class EventEnvelope:
    """An event's payload plus, when snapshots are on, a copy of its frame and the shapes to
    draw on it (the rule's zone and the camera's masks)."""

    payload: dict[str, Any]
    image: np.ndarray | None = None
    shapes: tuple[Shape, ...] = ()
    actions: frozenset[str] | None = None
    """The actions the rule names (``actions:``); None: every configured action."""

    def wants(self, action: str) -> bool:
        """Does the rule want this action? Actions a rule cannot name (the preview's event
        list) always see its events."""
        return self.actions is None or action in self.actions or action not in RULE_ACTIONS


@dataclass(frozen=True)
class StatusesDue:
    """Queued when rule states changed: the dispatcher hands the latest state of each changed
    (camera, rule) to the actions that keep a state topic (``status`` method)."""


class ActionError(Exception):
    """An action could not do its job; the message is one line naming the file and the reason."""


class Action(Protocol):
    name: str

    def handle(self, env: EventEnvelope) -> bool:
        """Act on one event: True when done, False when the event is not for this action.
        Raises on failure (``ActionError`` with a one-line reason when the cause is known)."""
        ...

    def tick(self) -> None:
        """Housekeeping (retention) when the queue is idle and at start; may raise."""
        ...

    def close(self) -> None: ...

    @property
    def files_removed(self) -> int:
        """Files removed so far to keep the disk bounded."""
        ...


class MqttAction:
    """Events into the durable outbox; each rule state change onto its retained state topic."""

    name = "mqtt"
    files_removed = 0

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher

    def handle(self, env: EventEnvelope) -> bool:
        p = env.payload
        self.publisher.enqueue(Alert(p["id"], self.publisher.events_topic(), encode(p), qos=1))
        return True

    def status(self, status: RuleStatus) -> None:
        topic = f"{self.publisher.base}/{status.camera}/{status.rule}/state"
        self.publisher.set_latest(topic, state_payload(status))

    def tick(self) -> None:
        pass

    def close(self) -> None:
        pass  # the publisher is closed by the app, after the dispatcher drains


MIB = 1024 * 1024
EVENT_LOG_MAX_BYTES = 16 * MIB
EVENT_LOG_KEEP = 3
SNAPSHOTS_MAX_BYTES = 512 * MIB
SNAPSHOTS_MAX_AGE = 7 * 86400.0


def _reason(exc: OSError) -> str:
    return exc.strerror or str(exc)


def _describe(exc: Exception) -> str | None:
    """One line for an expected failure (a file and the reason); None: log the traceback."""
    if isinstance(exc, ActionError):
        return str(exc)
    if isinstance(exc, OSError):
        return f"{exc.filename}: {_reason(exc)}" if exc.filename else _reason(exc)
    return None


class EventLogAction:
    """Appends each payload as one JSON line to ``<state_dir>/events.jsonl``, rotated by size into
    ``events.jsonl.1`` ... ``.keep``. A failed write leaves no partial line; writing resumes by
    itself when space returns."""

    name = "event_log"

    def __init__(self, path: Path, max_bytes: int = EVENT_LOG_MAX_BYTES, keep: int = EVENT_LOG_KEEP) -> None:
        self.path = path
        self._file = RotatingFile(path, max_bytes, keep)

    @property
    def files_removed(self) -> int:
        return self._file.files_removed

    def handle(self, env: EventEnvelope) -> bool:
        line = json.dumps(env.payload, sort_keys=True) + "\n"
        try:
            self._file.append(line.encode("utf-8"))
        except OSError as exc:
            raise ActionError(f"cannot write {self.path}: {_reason(exc)}") from exc
        return True

    def tick(self) -> None:
        pass

    def close(self) -> None:
        self._file.close()


class SnapshotAction:
    """Writes ``<dir>/<camera>/<ts>_<rule>_<id>.jpg``: the annotated frame, or the box's crop
    (and hands the JPEG to ``publish`` when snapshots also go to MQTT).
    The folder is kept under ``max_bytes`` and ``max_age`` (oldest removed first). A JPEG is
    written beside its final name and renamed when complete, so a full disk leaves no torn file."""

    name = "snapshot"

    def __init__(
        self,
        folder: Path,
        crop: bool,
        quality: int,
        max_bytes: int = SNAPSHOTS_MAX_BYTES,
        max_age: float = SNAPSHOTS_MAX_AGE,
        *,
        clock: Callable[[], float] = time.time,
        publish: Callable[[str, str, bytes], None] | None = None,
    ) -> None:
        self.publish = publish  # (camera, rule, JPEG): the retained snapshot topic, when on
        self.folder = folder
        self.crop = crop
        self.quality = quality
        self.retention = FolderRetention(folder, max_bytes, max_age, clock=clock)

    @property
    def files_removed(self) -> int:
        return self.retention.files_removed

    def handle(self, env: EventEnvelope) -> bool:
        if env.image is None or env.payload["type"] not in ("new", "cross") or env.payload["box"] is None:
            return False
        p = env.payload
        x1, y1, x2, y2 = (round(v) for v in p["box"])
        dets = Detections(np.array([p["box"]], np.float32), np.array([p["score"]]), np.array([0]))
        dets = with_track(dets, p.get("track_id"))
        base = env.image.copy()
        draw_shapes(base, env.shapes)
        image = annotate(base, dets, [p["label"]])
        if self.crop:
            h, w = image.shape[:2]
            image = image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
        out = self.folder / p["camera"] / f"{p['ts'].replace(':', '')}_{p['rule']}_{p['id'][:8]}.jpg"
        if image.size == 0:
            raise ActionError(f"cannot write {out}: the box is outside the frame")
        ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])
        if not ok:
            raise ActionError(f"cannot write {out}: JPEG encoding failed")
        data = jpeg.tobytes()
        if self.publish is not None:  # before the file: a full disk must not stop it
            self.publish(p["camera"], p["rule"], data)
        self._write(out, data)
        self.retention.added(out, len(data))
        return True

    @staticmethod
    def _write(out: Path, data: bytes) -> None:
        part = out.with_name(out.name + PART_SUFFIX)
        try:
            out.parent.mkdir(parents=True, exist_ok=True)
            with part.open("wb") as fh:
                fh.write(data)
            os.replace(part, out)
        except OSError as exc:
            try:
                part.unlink(missing_ok=True)
            except OSError:
                pass
            raise ActionError(f"cannot write {out}: {_reason(exc)}") from exc

    def tick(self) -> None:
        self.retention.prune()

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class ActionFigures:
    """A snapshot of the dispatcher's counters, safe to hand to another thread."""

    queue_depth: int
    handled: int
    dropped: int
    """Events refused because the queue was full."""
    failures: tuple[tuple[str, int], ...]
    """(action name, failures) in name order; ``dispatcher`` counts errors of the loop itself."""
    files_removed: int
    """Rotated event logs and snapshots removed to keep the disk bounded."""


class ActionDispatcher(threading.Thread):
    """A bounded queue between the inference workers and the actions.

    ``submit`` never waits more than ``submit_timeout`` for room, and not at all while the queue
    stays full (each refused event is counted in ``dropped``). The thread never dies of an
    action's error: failures are counted per action and logged once per streak (when an action
    starts failing, and when it recovers). When idle for ``tick_interval`` it lets the actions do
    their housekeeping (snapshot retention)."""

    def __init__(
        self,
        actions: list[Action],
        maxsize: int = 10000,
        submit_timeout: float = 0.05,
        tick_interval: float = 60.0,
    ) -> None:
        super().__init__(name="actions", daemon=True)
        self.actions = actions
        self.submit_timeout = submit_timeout
        self.tick_interval = tick_interval
        self._queue: queue.Queue[EventEnvelope | StatusesDue | list[Action] | None] = queue.Queue(maxsize)
        self._statuses: dict[tuple[str, str], RuleStatus] = {}  # latest per pair, not yet handed on
        self._statuses_queued = False  # a StatusesDue is in the queue
        self._statuses_overdue = False  # the queue was full: hand them on after the next item
        self._lock = threading.Lock()  # counters written by several threads, read by figures()
        self.handled = 0
        self.failures: dict[str, int] = {a.name: 0 for a in actions}
        self.dropped = 0
        self._dropping = False
        self._streaks: dict[str, int] = {}
        self._removed_by_retired = 0
        self._next_tick = 0.0

    def submit(self, env: EventEnvelope, timeout: float | None = None) -> bool:
        """Queue an event; False when it was dropped (queue full)."""
        wait = self.submit_timeout if timeout is None else timeout
        try:
            if self._dropping:  # already full: do not hold the inference worker again
                self._queue.put_nowait(env)
            else:
                self._queue.put(env, timeout=wait)
        except queue.Full:
            with self._lock:
                self.dropped += 1
                first, self._dropping = not self._dropping, True
            if first:
                log.error(
                    "action queue full (%d events): dropping events, from %s on; counted as dropped",
                    self._queue.maxsize, env.payload.get("id"),
                )  # fmt: skip
            return False
        if self._dropping:
            with self._lock:
                self._dropping = False
                dropped = self.dropped
            log.warning("action queue has room again; %d event(s) dropped so far", dropped)
        return True

    def submit_status(self, status: RuleStatus) -> None:
        """A rule's new state, never waiting and never lost: the latest state of each (camera,
        rule) is kept until the actions thread hands it on, in order with the events queued
        before it (right after the next event when the queue is full)."""
        with self._lock:
            self._statuses[(status.camera, status.rule)] = status
            if self._statuses_queued:
                return
            self._statuses_queued = True
        try:
            self._queue.put_nowait(StatusesDue())
        except queue.Full:
            with self._lock:
                self._statuses_queued, self._statuses_overdue = False, True

    def replace_actions(self, actions: list[Action]) -> None:
        """Swap the actions (config reload) in order with the events already queued."""
        if self.is_alive():
            self._queue.put(actions)
        else:  # not started (or stopped): nobody else touches the actions
            self._swap(actions)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def figures(self) -> ActionFigures:
        with self._lock:
            failures = tuple(sorted(self.failures.items()))
            removed = self._removed_by_retired + sum(a.files_removed for a in self.actions)
            return ActionFigures(self._queue.qsize(), self.handled, self.dropped, failures, removed)

    def run(self) -> None:
        self._tick()
        while True:
            try:
                item = self._queue.get(timeout=self.tick_interval)
            except queue.Empty:
                self._tick()
                continue
            if item is None:
                self._hand_on_statuses()
                break
            try:
                if isinstance(item, list):
                    self._swap(item)
                elif isinstance(item, StatusesDue):
                    self._hand_on_statuses()
                else:
                    self._handle(item)
                    if self._statuses_overdue:
                        self._hand_on_statuses()
                    if time.monotonic() >= self._next_tick:
                        self._tick()
            except Exception:  # the loop itself must not die: count, log, go on
                self._failed("dispatcher", None)
            else:
                self._succeeded("dispatcher")

    def _hand_on_statuses(self) -> None:
        with self._lock:
            statuses = list(self._statuses.values())
            self._statuses.clear()
            self._statuses_queued = self._statuses_overdue = False
        for status in statuses:
            self._status(status)

    def _status(self, status: RuleStatus) -> None:
        for action in self.actions:
            handler = getattr(action, "status", None)
            if handler is None:
                continue
            try:
                handler(status)
            except Exception as exc:
                self._failed(action.name, _describe(exc))

    def _handle(self, env: EventEnvelope) -> None:
        for action in self.actions:
            if not env.wants(action.name):
                continue
            try:
                done = action.handle(env)
            except Exception as exc:
                self._failed(action.name, _describe(exc), env.payload.get("id"))
            else:
                if done:
                    self._succeeded(action.name)
        with self._lock:
            self.handled += 1

    def _tick(self) -> None:
        self._next_tick = time.monotonic() + self.tick_interval
        for action in self.actions:
            try:
                action.tick()
            except Exception as exc:
                self._failed(action.name, _describe(exc))

    def _swap(self, actions: list[Action]) -> None:
        """A reload: swap between two events, close the old actions that are not kept."""
        with self._lock:
            old, self.actions = self.actions, actions
            self._removed_by_retired += sum(a.files_removed for a in old)
            for action in actions:
                self.failures.setdefault(action.name, 0)
        for action in old:
            if any(action is kept for kept in actions):
                continue
            try:
                action.close()
            except Exception as exc:
                self._failed(action.name, _describe(exc))
        self._tick()

    def _failed(self, name: str, reason: str | None, event_id: object = None) -> None:
        """Count a failure; log it only when it starts a streak. ``reason=None``: an unexpected
        error, logged with its traceback (call from an ``except`` block)."""
        with self._lock:
            self.failures[name] = self.failures.get(name, 0) + 1
        streak = self._streaks.get(name, 0)
        self._streaks[name] = streak + 1
        if streak:
            return
        if reason is not None:
            log.error(
                "action %s failed: %s (logged once until it recovers; failures are counted)", name, reason
            )
        else:
            where = f" on event {event_id}" if event_id is not None else ""
            log.exception(
                "action %s failed%s (logged once until it recovers; failures are counted)", name, where
            )

    def _succeeded(self, name: str) -> None:
        streak = self._streaks.pop(name, 0)
        if streak:
            log.warning("action %s works again after %d failure(s)", name, streak)

    def close(self, timeout: float = 10.0) -> None:
        """Handle everything queued, then close the actions."""
        if self.is_alive():
            self._queue.put(None)
            self.join(timeout)
        for action in self.actions:
            try:
                action.close()
            except Exception as exc:
                self._failed(action.name, _describe(exc))
