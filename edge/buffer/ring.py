"""FrameRing: preallocated slots between one capture thread and one inference worker.

Each slot holds the decoded frame buffer, the preprocessed input tensor, the letterbox and the
frame's sequence number and times. Nothing is allocated per frame: capture decodes into the
slot's frame buffer and preprocesses into the slot's tensor; the worker reads both in place.

Slot life: FREE -> WRITING (capture) -> READY -> READING (worker) -> FREE.

Policies (named, chosen per camera):

* ``latest`` (live sources): capture never blocks. When no slot is free it takes the oldest
  READY slot (that frame is dropped and counted); the worker takes the newest READY slot and
  drops older ones, so inference always sees the freshest frame.
* ``lossless`` (files): capture waits for a free slot; the worker takes READY slots in order.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from typing import Literal

import numpy as np

from edge.types import Letterbox

Policy = Literal["latest", "lossless"]


class SlotState(Enum):
    FREE = "free"
    WRITING = "writing"
    READY = "ready"
    READING = "reading"


@dataclass
class Slot:
    """One preallocated entry. Its arrays are reused; copy what must outlive ``release``."""

    index: int
    tensor: np.ndarray
    frame: np.ndarray | None = None
    letterbox: Letterbox | None = None
    seq: int = -1
    t_frame: float = 0.0
    t_wall: float = 0.0
    t_mono_ns: int = 0
    gated: bool = False  # the scene stood still: no tensor was made, no inference is needed
    state: SlotState = SlotState.FREE


class FrameRing:
    def __init__(
        self,
        slots: int,
        make_tensor: Callable[[], np.ndarray],
        policy: Policy,
        on_ready: Callable[[], None] | None = None,
    ) -> None:
        if slots < 2:
            raise ValueError("a FrameRing needs at least 2 slots")
        self.policy: Policy = policy
        self.slots = [Slot(i, make_tensor()) for i in range(slots)]
        self._ready: deque[int] = deque()
        self._cond = threading.Condition()
        self._on_ready = on_ready
        self._closed = False
        self.dropped = 0
        self.committed = 0
        self.consumed = 0

    def set_on_ready(self, on_ready: Callable[[], None] | None) -> None:
        """Who is woken when a frame is ready (a restarted worker takes over the ring)."""
        self._on_ready = on_ready

    # -- capture side -------------------------------------------------------------------

    def acquire_write(self, timeout: float | None = None) -> Slot | None:
        """A slot to fill, or None if closed (or, for lossless, none freed within ``timeout``)."""
        with self._cond:
            while not self._closed:
                free = next((s for s in self.slots if s.state is SlotState.FREE), None)
                if free is not None:
                    free.state = SlotState.WRITING
                    return free
                if self.policy == "latest" and self._ready:
                    # the oldest gated frame goes first: one that needs inference is kept
                    gated = [i for i in self._ready if self.slots[i].gated]
                    index = gated[0] if gated and len(gated) < len(self._ready) else self._ready[0]
                    self._ready.remove(index)
                    oldest = self.slots[index]
                    self.dropped += 1
                    oldest.state = SlotState.WRITING
                    return oldest
                if not self._cond.wait(timeout):
                    return None
            return None

    def commit(self, slot: Slot) -> None:
        with self._cond:
            if slot.state is not SlotState.WRITING:
                raise RuntimeError(f"slot {slot.index} committed while {slot.state.value}")
            slot.state = SlotState.READY
            self._ready.append(slot.index)
            self.committed += 1
            self._cond.notify_all()
        if self._on_ready is not None:
            self._on_ready()

    def abandon(self, slot: Slot) -> None:
        """Give back a slot that was acquired but not filled (read failed)."""
        with self._cond:
            slot.state = SlotState.FREE
            self._cond.notify_all()

    # -- worker side --------------------------------------------------------------------

    def take(self, gated_only: bool = False) -> Slot | None:
        """The next READY slot for inference, or None. Never blocks. ``gated_only``: only if
        that slot is a gated one (it needs no inference; the worker finishes it while all its
        requests are busy), else None and nothing changes."""
        with self._cond:
            if not self._ready:
                return None
            if gated_only and not self._next_is_gated():
                return None
            if self.policy == "latest":
                # The newest frame; older ones are stale and dropped. But a gated frame (motion
                # gating: a still scene) never displaces one that needs inference: the newest
                # of those is taken, and the gated frames after it stay ready.
                index = self._ready[-1]
                if self.slots[index].gated:
                    index = next((i for i in reversed(self._ready) if not self.slots[i].gated), index)
                while self._ready[0] != index:  # older frames are stale: drop them
                    self.slots[self._ready.popleft()].state = SlotState.FREE
                    self.dropped += 1
                self._ready.popleft()
                self._cond.notify_all()
            else:
                index = self._ready.popleft()
            slot = self.slots[index]
            slot.state = SlotState.READING
            self.consumed += 1
            return slot

    def _next_is_gated(self) -> bool:
        """Whether ``take`` would give a gated slot (``latest``: gated slots only; ``lossless``:
        the oldest is gated). Called with the lock held."""
        if self.policy == "latest":
            return all(self.slots[i].gated for i in self._ready)
        return self.slots[self._ready[0]].gated

    def release(self, slot: Slot) -> None:
        with self._cond:
            if slot.state is not SlotState.READING:
                raise RuntimeError(f"slot {slot.index} released while {slot.state.value}")
            slot.state = SlotState.FREE
            self._cond.notify_all()

    # -- both -----------------------------------------------------------------------------

    @property
    def pending(self) -> int:
        with self._cond:
            return len(self._ready)

    def close(self) -> None:
        """Wake a capture thread waiting for a slot; it will see the ring closed."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
