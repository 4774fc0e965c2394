"""What happens to an event: MQTT, a JSON-lines log, a snapshot JPEG. Run off the hot path by
one dispatcher thread; one failing action never stops the others."""

from __future__ import annotations

import json
import logging
import queue
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from edge.alerts.mqtt import MqttPublisher, state_payload
from edge.alerts.payload import Alert, encode
from edge.annotate import annotate
from edge.types import Detections

log = logging.getLogger("edge.actions")


@dataclass(frozen=True)
class EventEnvelope:
    """An event's payload plus, when snapshots are on, a copy of its frame."""

    payload: dict[str, Any]
    image: np.ndarray | None = None


class Action(Protocol):
    name: str

    def handle(self, env: EventEnvelope) -> None: ...

    def close(self) -> None: ...


class MqttAction:
    """Events into the durable outbox; the rule's retained state topic follows each event."""

    name = "mqtt"

    def __init__(self, publisher: MqttPublisher) -> None:
        self.publisher = publisher

    def handle(self, env: EventEnvelope) -> None:
        p = env.payload
        self.publisher.enqueue(Alert(p["id"], self.publisher.events_topic(), encode(p), qos=1))
        state = "on" if p["type"] == "new" else "off"
        self.publisher.set_latest(
            f"{self.publisher.base}/{p['camera']}/{p['rule']}/state",
            state_payload(state, p["count"], p["ts"], p["id"]),
        )

    def close(self) -> None:
        pass  # the publisher is closed by the app, after the dispatcher drains


class EventLogAction:
    """Appends each payload as one JSON line to ``<state_dir>/events.jsonl``."""

    name = "event_log"

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._fh = path.open("a", encoding="utf-8")

    def handle(self, env: EventEnvelope) -> None:
        self._fh.write(json.dumps(env.payload, sort_keys=True) + "\n")
        self._fh.flush()

    def close(self) -> None:
        self._fh.close()


class SnapshotAction:
    """Writes ``<dir>/<camera>/<ts>_<rule>_<id>.jpg``: the annotated frame, or the box's crop."""

    name = "snapshot"

    def __init__(self, folder: Path, crop: bool, quality: int) -> None:
        self.folder = folder
        self.crop = crop
        self.quality = quality

    def handle(self, env: EventEnvelope) -> None:
        if env.image is None or env.payload["type"] != "new":
            return
        p = env.payload
        x1, y1, x2, y2 = (round(v) for v in p["box"])
        dets = Detections(np.array([p["box"]], np.float32), np.array([p["score"]]), np.array([0]))
        image = annotate(env.image, dets, [p["label"]])
        if self.crop:
            h, w = image.shape[:2]
            image = image[max(0, y1) : min(h, y2), max(0, x1) : min(w, x2)]
        out = self.folder / p["camera"] / f"{p['ts'].replace(':', '')}_{p['rule']}_{p['id'][:8]}.jpg"
        out.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(out), image, [cv2.IMWRITE_JPEG_QUALITY, self.quality])

    def close(self) -> None:
        pass


class ActionDispatcher(threading.Thread):
    """A bounded queue between the inference workers and the actions."""

    def __init__(self, actions: list[Action], maxsize: int = 10000) -> None:
        super().__init__(name="actions", daemon=True)
        self.actions = actions
        self._queue: queue.Queue[EventEnvelope | list[Action] | None] = queue.Queue(maxsize)
        self.handled = 0
        self.failures: dict[str, int] = {a.name: 0 for a in actions}
        self.dropped = 0

    def submit(self, env: EventEnvelope, timeout: float = 1.0) -> None:
        try:
            self._queue.put(env, timeout=timeout)
        except queue.Full:
            self.dropped += 1
            log.error("action queue full: event %s dropped (%d so far)", env.payload["id"], self.dropped)

    def replace_actions(self, actions: list[Action]) -> None:
        """Swap the actions (config reload) in order with the events already queued."""
        self._queue.put(actions)

    @property
    def pending(self) -> int:
        return self._queue.qsize()

    def run(self) -> None:
        while True:
            env = self._queue.get()
            if env is None:
                break
            if isinstance(env, list):  # a reload: swap between two events, close the old ones
                old, self.actions = self.actions, env
                for action in old:
                    action.close()
                self.failures.update({a.name: self.failures.get(a.name, 0) for a in env})
                continue
            for action in self.actions:
                try:
                    action.handle(env)
                except Exception:
                    self.failures[action.name] += 1
                    log.exception("action %s failed on event %s", action.name, env.payload.get("id"))
            self.handled += 1

    def close(self, timeout: float = 10.0) -> None:
        """Handle everything queued, then close the actions."""
        self._queue.put(None)
        self.join(timeout)
        for action in self.actions:
            action.close()
