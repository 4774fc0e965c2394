"""FrameRing policies: latest drops and counts under a slow consumer, lossless never drops,
and the consumer always sees increasing sequence numbers."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.buffer.ring import FrameRing, SlotState


def ring(policy: str, slots: int = 3) -> FrameRing:
    return FrameRing(slots, lambda: np.zeros((1, 3, 4, 4), np.float32), policy)  # type: ignore[arg-type]


def produce(r: FrameRing, seq: int) -> bool:
    slot = r.acquire_write(timeout=0)
    if slot is None:
        return False
    slot.seq = seq
    slot.tensor[...] = seq
    r.commit(slot)
    return True


def test_latest_drops_oldest_and_counts_under_a_slow_consumer() -> None:
    r = ring("latest", 3)
    for seq in range(10):  # nobody consumes: capture must never block
        assert produce(r, seq)
    got = r.take()
    assert got is not None and got.seq == 9 and float(got.tensor[0, 0, 0, 0]) == 9
    assert r.dropped == 9  # 7 overwritten while full + 2 stale ones skipped by take()
    assert r.committed == 10 and r.consumed == 1
    r.release(got)
    assert r.take() is None


def test_lossless_never_drops_and_capture_waits() -> None:
    r = ring("lossless", 2)
    assert produce(r, 0) and produce(r, 1)
    assert not produce(r, 2)  # full: lossless capture waits instead of overwriting
    first = r.take()
    assert first is not None and first.seq == 0
    r.release(first)
    assert produce(r, 2)
    assert [s.seq for s in (r.take(), r.take()) if s is not None] == [1, 2]
    assert r.dropped == 0


def test_slot_state_errors_are_loud() -> None:
    r = ring("lossless", 2)
    slot = r.acquire_write()
    assert slot is not None
    r.commit(slot)
    try:
        r.commit(slot)
    except RuntimeError as exc:
        assert "committed while ready" in str(exc)
    else:
        raise AssertionError("double commit accepted")


def test_close_wakes_a_waiting_producer() -> None:
    r = ring("lossless", 2)
    produce(r, 0), produce(r, 1)
    result: list[object] = []
    t = threading.Thread(target=lambda: result.append(r.acquire_write(timeout=30)))
    t.start()
    r.close()
    t.join(5)
    assert not t.is_alive() and result == [None]


@settings(max_examples=150, deadline=None)
@given(policy=st.sampled_from(["latest", "lossless"]), slots=st.integers(2, 5),
       ops=st.lists(st.sampled_from(["produce", "consume"]), max_size=80))
def test_consumer_sees_increasing_sequence_numbers(policy: str, slots: int, ops: list[str]) -> None:
    r = ring(policy, slots)
    seq, seen, produced = 0, [], 0
    for op in ops:
        if op == "produce":
            if produce(r, seq):
                produced += 1
            seq += 1
        else:
            slot = r.take()
            if slot is not None:
                seen.append(slot.seq)
                r.release(slot)
    while (slot := r.take()) is not None:
        seen.append(slot.seq)
        r.release(slot)
    assert seen == sorted(set(seen))
    if policy == "lossless":
        assert r.dropped == 0 and len(seen) == produced
    else:
        assert len(seen) + r.dropped == produced
    assert all(s.state is SlotState.FREE for s in r.slots)


def produce_gated(r: FrameRing, seq: int, gated: bool) -> None:
    slot = r.acquire_write(timeout=0)
    assert slot is not None
    slot.seq, slot.gated = seq, gated
    r.commit(slot)


@pytest.mark.parametrize(
    ("frames", "taken", "dropped"),
    [
        ([(1, False), (2, False), (3, False)], [3], 2),  # the newest; older frames are stale
        ([(1, False), (2, True), (3, True)], [1, 3], 1),  # a still scene's gated frames never
        ([(1, True), (2, False), (3, True)], [2, 3], 1),  # displace the one that needs inference
        ([(1, True), (2, True), (3, True)], [3], 2),
        ([(1, False), (2, False), (3, True), (4, True)], [2, 4], 2),  # full: a gated frame is overwritten
    ],
    ids=["all inferred", "due then gated", "gated, due, gated", "all gated", "overwrite gated first"],
)
def test_latest_keeps_frames_that_need_inference(
    frames: list[tuple[int, bool]], taken: list[int], dropped: int
) -> None:
    """Motion gating: the refresh or hold frame of a still scene must reach inference even when
    gated frames come after it before the worker looks."""
    r = ring("latest", 3)
    for seq, gated in frames:
        produce_gated(r, seq, gated)
    got = []
    while (slot := r.take()) is not None:
        got.append(slot.seq)
        r.release(slot)
    assert (got, r.dropped) == (taken, dropped)


@pytest.mark.parametrize(
    ("policy", "frames", "taken", "left"),
    [
        ("latest", [(1, True), (2, True)], 2, 0),  # only gated frames: the newest, as take() would
        ("latest", [(1, False), (2, True)], None, 2),  # one needs inference: left for a request
        ("latest", [(1, True), (2, False)], None, 2),
        ("latest", [], None, 0),
        ("lossless", [(1, True), (2, False)], 1, 1),  # the oldest is gated: taken, in order
        ("lossless", [(1, False), (2, True)], None, 2),  # the oldest needs inference: nothing
    ],
    ids=["latest all gated", "latest due then gated", "latest gated then due", "latest empty",
         "lossless gated first", "lossless due first"],
)  # fmt: skip
def test_take_gated_only_takes_what_needs_no_inference(
    policy: str, frames: list[tuple[int, bool]], taken: int | None, left: int
) -> None:
    """With every request busy the worker still takes the frames it can finish without one; a
    frame that needs inference is never taken that way, nor dropped for a gated one."""
    r = ring(policy, 3)
    for seq, gated in frames:
        produce_gated(r, seq, gated)
    slot = r.take(gated_only=True)
    assert (slot.seq if slot is not None else None) == taken
    assert r.pending == left
    if slot is not None:
        assert slot.gated and slot.state is SlotState.READING
        r.release(slot)
