"""Arming and disarming rules over MQTT.

Topics under ``<prefix>/<device>/``, per (camera, rule):

* ``<camera>/<rule>/set`` (edge subscribes): ``ON`` arms the rule on that camera, ``OFF``
  disarms it (case-insensitive, surrounding whitespace ignored; ``true``/``false`` and
  ``1``/``0`` work too). The value is saved (``ArmingStore``) and survives restarts.
* ``<camera>/<rule>/armed`` (retained, edge publishes): ``ON`` or ``OFF``, the value in use,
  published at start, after each command (even one that changes nothing, as a confirmation)
  and on every reconnect.

A command for a camera/rule pair that is not configured, or with another payload, is logged
as one warning and ignored. A retained message left on a ``set`` topic (someone published
with the retain flag) is delivered again at every subscribe, so it is applied again at every
start and reconnect: the last command wins, which is the value it set anyway unless a later
non-retained command changed it. Send commands without the retain flag (Home Assistant's
switch does by default).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from typing import Any, Protocol

from edge.rules.arming import ArmingStore, Pair

log = logging.getLogger("edge.arming")

TRUE_WORDS = frozenset({"on", "true", "1"})
FALSE_WORDS = frozenset({"off", "false", "0"})
SHOWN = 40  # characters of a bad payload quoted in the log


class Publisher(Protocol):
    base: str

    def set_latest(
        self, topic: str, payload: str | bytes, retain: bool = True, revive: bool = False
    ) -> None: ...

    def clear_retained(self, topic: str) -> None: ...

    def subscribe(self, topic: str, handler: Any) -> None: ...


def parse_command(payload: bytes) -> bool | None:
    """True for ON, False for OFF, None for anything else."""
    try:
        word = payload.decode("utf-8").strip().lower()
    except UnicodeDecodeError:
        return None
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    return None


REJECTIONS_LOGGED = 20


def shown(payload: bytes) -> str:
    """A payload as it may appear in a log line: at most ``SHOWN`` characters, quoted, with
    control and undecodable characters escaped."""
    text = payload.decode("utf-8", "backslashreplace")
    return repr(text[:SHOWN]) + ("..." if len(text) > SHOWN else "")


def armed_topic(base: str, camera: str, rule: str) -> str:
    return f"{base}/{camera}/{rule}/armed"


def set_topic(base: str, camera: str, rule: str) -> str:
    return f"{base}/{camera}/{rule}/set"


def on_off(on: bool) -> str:
    return "ON" if on else "OFF"


class ArmControl:
    """Applies ``set`` commands to the store and publishes the retained ``armed`` values."""

    def __init__(self, publisher: Publisher, store: ArmingStore) -> None:
        self.publisher = publisher
        self.store = store
        self._lock = threading.Lock()  # a store change and its `armed` message go out together
        self._pairs: frozenset[Pair] = frozenset()
        self._subscribed: str | None = None
        self.applied = 0  # commands applied (including repeats)
        self.rejected = 0  # commands ignored: unknown pair or bad payload

    def start(self, pairs: Iterable[Pair]) -> None:
        """Subscribe to ``<base>/+/+/set`` and publish ``armed`` for every (camera, rule)."""
        with self._lock:
            self._pairs = frozenset(pairs)
            self._subscribe()
            for camera, rule in sorted(self._pairs):
                self._publish(camera, rule, revive=True)

    def update(self, pairs: Iterable[Pair]) -> None:
        """After a reload (``store.reconfigure`` first): ``armed`` for the new pairs, the
        retained ``armed`` of pairs that went deleted. A new prefix or device (the publisher's
        ``base`` changed) subscribes there and publishes every pair again."""
        new = frozenset(pairs)
        with self._lock:
            moved = self._subscribed != self.publisher.base
            if moved:
                self._subscribe()
            for camera, rule in sorted(self._pairs - new):
                self.publisher.clear_retained(armed_topic(self.publisher.base, camera, rule))
            for camera, rule in sorted(new if moved else new - self._pairs):
                self._publish(camera, rule, revive=True)
            self._pairs = new

    def topics(self, pairs: Iterable[Pair]) -> set[str]:
        """The retained ``armed`` topics of ``pairs`` (for the remembered retained topics)."""
        return {armed_topic(self.publisher.base, camera, rule) for camera, rule in pairs}

    def on_message(self, topic: str, payload: bytes) -> None:
        """paho's thread: apply one command. Never raises."""
        try:
            self._apply(topic, payload)
        except Exception:  # a bug must not reach paho's loop
            log.exception("arming: command on %s failed", topic)

    # -- inside ----------------------------------------------------------------------------

    def _subscribe(self) -> None:
        self._subscribed = self.publisher.base
        self.publisher.subscribe(f"{self.publisher.base}/+/+/set", self.on_message)

    def _publish(self, camera: str, rule: str, revive: bool = False) -> None:
        on = self.store.armed(camera, rule)
        self.publisher.set_latest(
            armed_topic(self.publisher.base, camera, rule), on_off(on), retain=True, revive=revive
        )

    def _reject(self, why: str, *args: object) -> None:
        """Count a command that is ignored; log the first ones and then every 1000th (a client
        that floods the set topics cannot flood the log)."""
        self.rejected += 1
        if self.rejected <= REJECTIONS_LOGGED or self.rejected % 1000 == 0:
            log.warning("arming: ignoring " + why + " (%d ignored so far)", *args, self.rejected)

    def _apply(self, topic: str, payload: bytes) -> None:
        where = shown(topic.encode())  # a topic may hold anything but wildcards: escaped
        pair = self._pair_of(topic)
        if pair is None:
            self._reject("%s: not <camera>/<rule>/set under %s", where, self.publisher.base)
            return
        on = parse_command(payload)
        if on is None:
            self._reject("%s: payload %s, expected ON or OFF", where, shown(payload))
            return
        camera, rule = pair
        with self._lock:
            try:
                changed = self.store.set(camera, rule, on)
            except KeyError:
                self._reject("%s: no rule %r on camera %r in the config", where, rule, camera)
                return
            self._publish(camera, rule)
        self.applied += 1
        if changed:
            log.info("arming: %s on %s %s", rule, camera, "armed" if on else "disarmed")

    def _pair_of(self, topic: str) -> Pair | None:
        head, tail = f"{self.publisher.base}/", "/set"
        if not (topic.startswith(head) and topic.endswith(tail)):
            return None
        parts = topic[len(head) : -len(tail)].split("/")
        if len(parts) != 2 or not all(parts):
            return None
        return parts[0], parts[1]
