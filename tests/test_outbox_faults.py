"""The outbox when the disk misbehaves: full (a real, small tmpfs filled and freed), read-only,
locked by another process, and a corrupt database file. Nothing is lost silently, the order
holds, and writing resumes when the disk does."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from disks import fill, small_tmpfs

from edge.alerts import outbox as outbox_mod
from edge.alerts.outbox import OutboxStore
from edge.alerts.payload import Alert


def alert(i: int, size: int = 2000) -> Alert:
    return Alert(f"{i:032x}", "edge/t/events", json.dumps({"i": i, "pad": "x" * size}).encode(), 1)


def pending_ids(store: OutboxStore) -> list[str]:
    return [r.alert.id for r in store.pending(10**6)]


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs: a disk that really fills up."""
    with small_tmpfs(tmp_path / "small", "1m") as mount:
        yield mount


def test_full_disk_keeps_alerts_in_memory_in_order_and_writes_them_when_space_returns(
    tmpfs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outbox_mod, "REOPEN_EVERY", 0.0)  # retry the disk at every call
    store = OutboxStore(tmpfs / "state")
    for i in range(5):
        store.put(alert(i))
    filler = fill(tmpfs)
    for i in range(5, 40):
        store.put(alert(i))
    stats = store.stats()
    assert stats.write_failures > 0 and stats.in_memory > 0
    assert stats.depth == 40  # every alert is counted: none vanished
    assert pending_ids(store) == [alert(i).id for i in range(40)]
    # The broker acknowledges some while the disk is still full.
    for row in store.pending(8):
        assert store.ack(row.seq)
    filler.unlink()
    store.put(alert(40))  # the disk takes writes again: memory is written first, in order
    assert store.stats().in_memory == 0
    expected = [alert(i).id for i in range(8, 41)]
    assert pending_ids(store) == expected
    store.close()
    assert pending_ids(OutboxStore(tmpfs / "state")) == expected  # and it is really on disk


def test_full_disk_at_start_runs_in_memory_then_opens(tmpfs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(outbox_mod, "REOPEN_EVERY", 0.0)
    (tmpfs / "state").mkdir()
    filler = fill(tmpfs)
    store = OutboxStore(tmpfs / "state")
    for i in range(3):
        store.put(alert(i, size=100))
    assert store.stats().in_memory == 3 and store.stats().write_failures > 0
    filler.unlink()
    assert pending_ids(store) == [alert(i).id for i in range(3)]
    store.put(alert(3, size=100))
    assert store.stats().in_memory == 0
    store.close()
    assert pending_ids(OutboxStore(tmpfs / "state")) == [alert(i).id for i in range(4)]


def test_read_only_state_dir_does_not_raise(tmp_path: Path) -> None:
    with small_tmpfs(tmp_path / "ro", "64k", "ro") as mount:
        store = OutboxStore(mount)
        seq = store.put(alert(1, size=10))
        assert pending_ids(store) == [alert(1).id]
        assert store.ack(seq) and store.depth == 0
        assert store.stats().write_failures > 0
        store.close()


def test_locked_database_spills_then_catches_up(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`edge outbox purge` or another tool holding the write lock must not lose events."""
    monkeypatch.setattr(outbox_mod, "REOPEN_EVERY", 0.0)
    store = OutboxStore(tmp_path, busy_timeout=0.1)
    store.put(alert(0, 10))
    other = sqlite3.connect(tmp_path / OutboxStore.FILENAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store.put(alert(1, 10))
    store.put(alert(2, 10))
    assert store.stats().in_memory == 2
    assert pending_ids(store) == [alert(i).id for i in range(3)]  # WAL: readable while locked, in order
    other.execute("ROLLBACK")
    other.close()
    store.put(alert(3, 10))
    assert store.stats().in_memory == 0
    assert pending_ids(store) == [alert(i).id for i in range(4)]


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(lambda p: p.write_bytes(b"this is not a database at all" * 100), id="garbage"),
        pytest.param(lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), id="truncated"),
        pytest.param(
            lambda p: p.write_bytes(p.read_bytes()[:4096] + b"\xff" * 4096 + p.read_bytes()[8192:]),
            id="page-overwritten",
        ),
    ],
)
def test_corrupt_database_is_moved_aside_and_counted(tmp_path: Path, damage: object) -> None:
    store = OutboxStore(tmp_path)
    for i in range(300):
        store.put(alert(i, 500))
    store.close()
    db = tmp_path / OutboxStore.FILENAME
    for extra in tmp_path.glob("outbox.sqlite3-*"):
        extra.unlink()
    damage(db)  # type: ignore[operator]
    store = OutboxStore(tmp_path)
    st = store.stats()
    assert st.corrupt_recovered == 1, st
    assert st.depth == 0
    aside = list(tmp_path.glob("outbox.sqlite3.corrupt-*"))
    assert aside, "the corrupt file is kept for inspection"
    store.put(alert(1000, 10))
    assert pending_ids(store) == [alert(1000).id]
    store.close()
    assert OutboxStore(tmp_path).stats().corrupt_recovered == 1  # the recovery is remembered


def test_unopenable_at_start_with_rows_on_disk_keeps_ids_apart(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alerts kept in memory before the database could be opened get sequence numbers that rows
    on disk already have; once it opens they are renumbered after them, and an ack (by id)
    removes the right one."""
    monkeypatch.setattr(outbox_mod, "REOPEN_EVERY", 0.0)
    first = OutboxStore(tmp_path)
    for i in range(3):
        first.put(alert(i, 10))
    first.close()
    other = sqlite3.connect(tmp_path / OutboxStore.FILENAME, isolation_level=None)
    other.execute("BEGIN EXCLUSIVE")
    store = OutboxStore(tmp_path, busy_timeout=0.1)
    seq = store.put(alert(99, 10))
    [early] = store.pending(10)  # what the sender took while the disk was unreadable
    assert early.alert.id == alert(99).id
    other.execute("ROLLBACK")
    other.close()
    assert pending_ids(store) == [alert(i).id for i in (0, 1, 2, 99)]
    assert store.generation == 1  # the sender reads again from the start
    assert store.ack(seq, alert(99).id)  # its PUBACK
    assert pending_ids(store) == [alert(i).id for i in (0, 1, 2)]
    assert store.stats().depth == 3 and store.stats().dropped == 0
