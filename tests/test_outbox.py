"""The SQLite outbox on its own: order, acks, bounds, drop counting, crash-safety, and a
Hypothesis state machine against a model of what it must hold."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import deque
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import Alert
from edge.cli import main


def alert(i: int, size: int = 100) -> Alert:
    return Alert(f"{i:032x}", "edge/t/events", json.dumps({"i": i, "pad": "x" * size}).encode(), 1)


def ids(store: OutboxStore) -> list[str]:
    return [r.alert.id for r in store.pending(10**6)]


def test_order_ack_and_duplicate_ids(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path)
    seqs = [store.put(alert(i)) for i in range(5)]
    assert seqs == sorted(seqs)
    assert store.put(alert(2)) == seqs[2]  # same id stored once
    assert ids(store) == [alert(i).id for i in range(5)]
    assert store.ack(seqs[0]) and not store.ack(seqs[0])
    assert [r.seq for r in store.pending(2, after_seq=seqs[1])] == seqs[2:4]
    assert store.depth == 4


def test_bounded_by_count_drops_oldest_and_counts(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path, max_messages=10)
    for i in range(35):
        store.put(alert(i))
    assert ids(store) == [alert(i).id for i in range(25, 35)]
    assert store.stats().dropped == 25
    store.close()
    assert OutboxStore(tmp_path).stats().dropped == 25  # the count survives a restart


def test_bounded_by_bytes_and_file_stays_small(tmp_path: Path) -> None:
    store = OutboxStore(tmp_path, max_messages=10**6, max_bytes=64 * 1024)
    for i in range(3000):
        store.put(alert(i, size=1000))
    st_ = store.stats()
    assert st_.bytes <= 64 * 1024 and st_.depth == st_.bytes // len(alert(0, 1000).payload)
    assert st_.dropped == 3000 - st_.depth
    on_disk = sum(p.stat().st_size for p in tmp_path.glob("outbox.sqlite3*"))
    assert on_disk < 8 * 1024 * 1024, on_disk  # WAL checkpoints keep the files bounded too


def test_survives_kill_9_of_the_writer(tmp_path: Path) -> None:
    """A separate process stores alerts and is killed with SIGKILL without closing anything."""
    code = f"""
import os, signal, sys
sys.path.insert(0, {str(Path(__file__).parent)!r})
from test_outbox import alert
from edge.alerts.outbox import OutboxStore
s = OutboxStore(__import__('pathlib').Path({str(tmp_path)!r}))
for i in range(50):
    s.put(alert(i))
os.kill(os.getpid(), signal.SIGKILL)
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True)
    assert proc.returncode == -9
    assert ids(OutboxStore(tmp_path)) == [alert(i).id for i in range(50)]


def test_outbox_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = OutboxStore(tmp_path, max_messages=10)
    for i in range(12):
        store.put(alert(i))
    store.close()
    assert main(["outbox", "stats", str(tmp_path), "--json"]) == 0
    stats = json.loads(capsys.readouterr().out)
    assert (stats["depth"], stats["dropped"]) == (10, 2)
    assert main(["outbox", "list", str(tmp_path), "--limit", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3
    assert main(["outbox", "purge", str(tmp_path)]) == 1
    assert "--yes" in capsys.readouterr().err
    assert main(["outbox", "purge", str(tmp_path), "--yes"]) == 0
    assert "purged 10" in capsys.readouterr().out
    assert main(["outbox", "stats", str(tmp_path / "nope")]) == 1


class OutboxMachine(RuleBasedStateMachine):
    """Random puts, in-order deliveries (the broker acknowledges the oldest in flight), out-of-
    order acks, and crashes (the store is reopened from disk). The model is a bounded deque."""

    LIMIT = 8

    def __init__(self) -> None:
        super().__init__()
        import tempfile

        self.dir = Path(tempfile.mkdtemp())
        self.store = OutboxStore(self.dir, max_messages=self.LIMIT)
        self.model: deque[str] = deque()
        self.dropped = 0
        self.next = 0

    @rule(n=st.integers(1, 5))
    def put(self, n: int) -> None:
        for _ in range(n):
            a = alert(self.next)
            self.next += 1
            self.store.put(a)
            if len(self.model) == self.LIMIT:
                self.model.popleft()
                self.dropped += 1
            self.model.append(a.id)

    @rule(n=st.integers(1, 4))
    def deliver_oldest(self, n: int) -> None:
        for row in self.store.pending(n):
            assert self.store.ack(row.seq)
            assert self.model.popleft() == row.alert.id

    @rule(k=st.integers(0, 7))
    def ack_one_out_of_order(self, k: int) -> None:
        rows = self.store.pending(self.LIMIT)
        if k < len(rows):
            self.store.ack(rows[k].seq)
            self.model.remove(rows[k].alert.id)

    @rule()
    def crash_and_restart(self) -> None:
        self.store = OutboxStore(self.dir, max_messages=self.LIMIT)  # the old connection is just abandoned

    @invariant()
    def holds_exactly_the_model_in_order(self) -> None:
        assert ids(self.store) == list(self.model)
        assert self.store.stats().dropped == self.dropped
        assert self.store.depth == len(self.model)


TestOutboxMachine = OutboxMachine.TestCase
TestOutboxMachine.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)
