"""The durable outbox: every alert is committed to SQLite before it is published, and deleted
only when the broker's PUBACK for it arrives.

SQLite in WAL mode, in the state directory. ``synchronous`` is ``FULL`` by default: a commit
has reached the disk before ``put`` returns, so an alert survives ``kill -9`` *and* a power
cut. ``NORMAL`` is faster (WAL commits are not synced each time) and still survives a crash
of the process, but the last alerts before a power cut may be lost; choose it only on
storage that must be spared (SD cards) and where that loss is acceptable.

The outbox is bounded by row count and payload bytes. When full, the oldest rows are dropped
and counted; the count is kept in the database, so it survives restarts, and is published on
the ``stats`` topic. Nothing grows without bound and nothing is dropped silently.

When the disk cannot take a write (full, I/O error, locked for longer than the busy timeout,
or the database cannot be opened at all), an alert is kept in memory instead (the *spill*,
bounded by ``max_messages``) with the sequence number it would have had, so delivery order
does not change; it is still published, and it is written to disk as soon as the disk takes
writes again. Failed writes are counted. A corrupt database found at start is moved aside
(``outbox.sqlite3.corrupt-<time>``, kept for inspection), a new one is started, and the
recovery is counted and logged.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from edge.alerts.payload import Alert

log = logging.getLogger("edge.outbox")

Synchronous = Literal["FULL", "NORMAL"]
SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    qos INTEGER NOT NULL,
    retain INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO meta (key, value) VALUES ('dropped', 0);
INSERT OR IGNORE INTO meta (key, value) VALUES ('corrupt_recovered', 0);
"""
REOPEN_EVERY = 2.0  # seconds between attempts to reach the disk again while it fails


@dataclass(frozen=True)
class Row:
    seq: int
    alert: Alert
    created: float


@dataclass(frozen=True)
class OutboxStats:
    depth: int
    bytes: int
    dropped: int
    oldest_age: float | None
    path: str
    write_failures: int = 0
    in_memory: int = 0  # alerts the disk has not taken yet (they are still sent)
    corrupt_recovered: int = 0


def _is_corruption(exc: sqlite3.Error) -> bool:
    """A damaged file, as opposed to a full, locked or unreadable disk (OperationalError)."""
    return isinstance(exc, sqlite3.DatabaseError) and not isinstance(exc, sqlite3.OperationalError)


class OutboxStore:
    """Thread-safe: one connection, one lock. ``put`` from the dispatcher, ``ack`` from the sender."""

    FILENAME = "outbox.sqlite3"

    def __init__(
        self,
        folder: Path,
        max_messages: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        synchronous: Synchronous = "FULL",
        busy_timeout: float = 2.0,
    ) -> None:
        self.path = folder / self.FILENAME
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self.synchronous = synchronous
        self.busy_timeout = busy_timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._depth = 0  # rows on disk
        self._bytes = 0
        self._next_seq = 1
        self._spill: dict[int, Row] = {}  # seq -> row, alerts the disk did not take yet
        self._unacked_deletes: set[str] = set()  # ids acked whose delete failed: never resend
        self._spill_bytes = 0
        self.generation = 0  # bumped when spilled rows get new seqs: senders start over
        self._counted_at = time.monotonic()
        self._mem_dropped = 0  # drops not yet counted on disk
        self.write_failures = 0
        self.corrupt_recovered = 0
        self._failing = False
        self._retry_at = 0.0
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            self._note_failure("create the state folder", exc)
        with self._lock:
            self._open_locked()

    # -- connection ------------------------------------------------------------------------

    def _open_locked(self) -> bool:
        """Open (or re-open) the database; a corrupt one is moved aside and started afresh."""
        self._retry_at = time.monotonic() + REOPEN_EVERY
        for attempt in (1, 2):
            db: sqlite3.Connection | None = None
            try:
                db = sqlite3.connect(
                    self.path, check_same_thread=False, isolation_level=None, timeout=self.busy_timeout
                )
                db.execute("PRAGMA journal_mode=WAL")
                db.execute(f"PRAGMA synchronous={self.synchronous}")
                db.executescript(SCHEMA)
                check = db.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise sqlite3.DatabaseError(f"quick_check: {check[0] if check else 'no answer'}")
                depth, size, top = db.execute(
                    "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), COALESCE(MAX(seq), 0) FROM outbox"
                ).fetchone()
                seq_row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'").fetchone()
            except sqlite3.Error as exc:
                if db is not None:
                    db.close()
                if attempt == 1 and _is_corruption(exc):
                    self._move_aside(exc)
                    continue
                self._note_failure("open the outbox database", exc)
                return False
            self._db = db
            self._depth, self._bytes = int(depth), int(size)
            base = max(int(top), int(seq_row[0]) if seq_row else 0)
            if self._spill and min(self._spill) <= base:
                # Kept in memory before the disk could be read: they come after what it holds.
                rows = [self._spill[k] for k in sorted(self._spill)]
                self._spill = {
                    base + i + 1: Row(base + i + 1, r.alert, r.created) for i, r in enumerate(rows)
                }
                self.generation += 1
            self._next_seq = max(self._next_seq, base + 1, max(self._spill, default=0) + 1)
            if self.corrupt_recovered:
                self._exec_meta("corrupt_recovered", self.corrupt_recovered, absolute=True)
            self.corrupt_recovered = self._meta("corrupt_recovered")
            self._recovered()
            return True
        return False

    def _move_aside(self, exc: sqlite3.Error) -> None:
        stamp = time.strftime("%Y%m%dT%H%M%S")
        target = self.path.with_name(f"{self.FILENAME}.corrupt-{stamp}")
        for suffix in ("", "-wal", "-shm"):
            src = Path(f"{self.path}{suffix}")
            if src.exists():
                try:
                    src.rename(Path(f"{target}{suffix}"))
                except OSError as move_exc:
                    log.error("outbox: cannot move %s aside: %s", src, move_exc)
        self.corrupt_recovered += 1
        log.error(
            "outbox: %s is corrupt (%s); moved it to %s for inspection and started a new one: "
            "the events it held are not sent",
            self.path, exc, target,
        )  # fmt: skip

    def _meta(self, key: str) -> int:
        assert self._db is not None
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _exec_meta(self, key: str, value: int, absolute: bool = False) -> None:
        assert self._db is not None
        update = "?" if absolute else "value + ?"
        self._db.execute(f"UPDATE meta SET value = {update} WHERE key = ?", (value, key))  # noqa: S608

    def _note_failure(self, what: str, exc: BaseException) -> None:
        self.write_failures += 1
        if not self._failing:  # once per streak
            self._failing = True
            log.error(
                "outbox: cannot %s (%s: %s); events are kept in memory and still sent, and are "
                "written to %s when the disk takes writes again",
                what, type(exc).__name__, exc, self.path,
            )  # fmt: skip

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            log.warning("outbox: %s takes writes again", self.path)

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        assert self._db is not None
        if self._db.in_transaction:  # a COMMIT that failed earlier left it open
            self._db.execute("ROLLBACK")
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
            self._db.execute("COMMIT")
        except BaseException:
            try:
                self._db.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise

    def _disk_ready(self) -> bool:
        """The database is open and, when alerts wait in memory, they have been written."""
        if self._db is None and (time.monotonic() < self._retry_at or not self._open_locked()):
            return False
        if self._spill or self._unacked_deletes or self._mem_dropped:
            if time.monotonic() < self._retry_at and self._failing:
                return False
            return self._flush_memory()
        return True

    def _flush_memory(self) -> bool:
        self._retry_at = time.monotonic() + REOPEN_EVERY
        try:
            with self._tx() as db:
                for seq in sorted(self._spill):
                    row = self._spill[seq]
                    self._insert(db, row.alert, seq, row.created)
                for alert_id in self._unacked_deletes:
                    db.execute("DELETE FROM outbox WHERE id = ?", (alert_id,))
                if self._mem_dropped:
                    self._add_dropped(db, self._mem_dropped)
            self._depth, self._bytes = db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.Error as exc:
            self._note_failure("write waiting events", exc)
            return False
        written = len(self._spill)
        self._spill.clear()
        self._spill_bytes = 0
        self._unacked_deletes.clear()
        self._mem_dropped = 0
        if written:
            log.warning("outbox: wrote %d event(s) kept in memory while the disk failed", written)
        self._recovered()
        return True

    # -- the store -----------------------------------------------------------------------

    @staticmethod
    def _insert(db: sqlite3.Connection, alert: Alert, seq: int, created: float) -> None:
        db.execute(
            "INSERT OR IGNORE INTO outbox (seq, id, topic, payload, qos, retain, created) "
            "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, alert.id, alert.topic, alert.payload, alert.qos, int(alert.retain), created),
        )

    @staticmethod
    def _add_dropped(db: sqlite3.Connection, n: int) -> None:
        db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (n,))

    @staticmethod
    def _delete(db: sqlite3.Connection, seq: int) -> None:
        db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))

    def put(self, alert: Alert) -> int:
        """Store an alert (committed on return, or kept in memory while the disk fails); returns
        its sequence number. Drops the oldest first when the bounds would be exceeded. A
        repeated id is stored once."""
        size = len(alert.payload)
        if size > self.max_bytes:
            raise ValueError(f"alert {alert.id} is {size} bytes, larger than the outbox ({self.max_bytes})")
        with self._lock:
            for row in self._spill.values():
                if row.alert.id == alert.id:
                    return row.seq
            if self._disk_ready():
                try:
                    return self._put_on_disk(alert, size)
                except sqlite3.Error as exc:
                    self._note_failure("store an event", exc)
                    if _is_corruption(exc) and self._db is not None:
                        self._db.close()
                        self._db = None  # re-opened (and moved aside) on the next attempt
            return self._put_in_memory(alert)

    def _put_on_disk(self, alert: Alert, size: int) -> int:
        dropped = 0
        with self._tx() as db:
            existing = db.execute("SELECT seq FROM outbox WHERE id = ?", (alert.id,)).fetchone()
            if existing is not None:
                return int(existing[0])
            depth, nbytes = self._depth, self._bytes
            while depth + 1 > self.max_messages or nbytes + size > self.max_bytes:
                oldest = db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 1").fetchone()
                if oldest is None:
                    break
                self._delete(db, oldest[0])
                depth -= 1
                nbytes -= int(oldest[1])
                dropped += 1
            if dropped:
                self._add_dropped(db, dropped)
            seq = self._next_seq
            self._insert(db, alert, seq, time.time())
        self._next_seq += 1
        self._depth, self._bytes = depth + 1, nbytes + size
        if dropped:
            log.warning("outbox full (%d rows, %d bytes max): dropped the %d oldest alert(s)",
                        self.max_messages, self.max_bytes, dropped)  # fmt: skip
        return seq

    def _put_in_memory(self, alert: Alert) -> int:
        seq = self._next_seq
        self._next_seq += 1
        self._spill[seq] = Row(seq, alert, time.time())
        self._spill_bytes += len(alert.payload)
        while len(self._spill) > self.max_messages or self._spill_bytes > self.max_bytes:
            oldest = self._spill.pop(min(self._spill))
            self._spill_bytes -= len(oldest.alert.payload)
            self._mem_dropped += 1
            log.warning("outbox: memory spill full: dropped the oldest alert")
        return seq

    def pending(self, limit: int, after_seq: int = 0) -> list[Row]:
        """Up to ``limit`` stored alerts with ``seq > after_seq``, oldest first (disk, then memory)."""
        with self._lock:
            rows: list[Row] = []
            if self._db is None and time.monotonic() >= self._retry_at:
                self._open_locked()
            if self._db is not None:
                if self._spill or self._unacked_deletes:
                    self._disk_ready()  # try to write what waits in memory
                try:
                    fetched = self._db.execute(
                        "SELECT seq, id, topic, payload, qos, retain, created FROM outbox WHERE seq > ? "
                        "ORDER BY seq LIMIT ?",
                        (after_seq, limit + len(self._unacked_deletes)),
                    ).fetchall()
                except sqlite3.Error as exc:
                    self._note_failure("read the outbox", exc)
                    return []  # never send newer alerts before older ones that could not be read
                rows = [
                    Row(r[0], Alert(r[1], r[2], bytes(r[3]), r[4], bool(r[5])), r[6])
                    for r in fetched
                    if r[1] not in self._unacked_deletes
                ]
            elif self._depth:
                return []  # alerts on a disk we cannot read now come first: wait
            rows += [self._spill[s] for s in sorted(self._spill) if s > after_seq]
            return rows[:limit]

    def ack(self, seq: int, alert_id: str | None = None) -> bool:
        """The broker has the alert: forget it. False if it was already gone (dropped or acked).
        Give ``alert_id`` where known: rows kept in memory may have been renumbered since."""
        with self._lock:
            for key, row in list(self._spill.items()):
                if (row.alert.id == alert_id) if alert_id is not None else key == seq:
                    del self._spill[key]
                    self._spill_bytes -= len(row.alert.payload)
                    return True
            if alert_id is None and self._db is not None:
                try:  # reads work on a full disk
                    found = self._db.execute("SELECT id FROM outbox WHERE seq = ?", (seq,)).fetchone()
                except sqlite3.Error:
                    found = None
                alert_id = None if found is None else str(found[0])
            if alert_id is None or alert_id in self._unacked_deletes:
                return False
            if self._db is None or (self._failing and time.monotonic() < self._retry_at):
                self._unacked_deletes.add(alert_id)  # deleted when the disk is back
                return True
            try:
                with self._tx() as db:
                    row = db.execute(
                        "SELECT LENGTH(payload) FROM outbox WHERE id = ?", (alert_id,)
                    ).fetchone()
                    if row is None:
                        return False
                    db.execute("DELETE FROM outbox WHERE id = ?", (alert_id,))
            except sqlite3.Error as exc:
                self._note_failure("delete a delivered event", exc)
                self._unacked_deletes.add(alert_id)
                return True
            self._depth -= 1
            self._bytes -= int(row[0])
            return True

    def purge(self) -> int:
        """Delete every stored alert (an operator's decision; counted as dropped)."""
        with self._lock:
            n = len(self._spill)
            self._spill.clear()
            self._spill_bytes = 0
            if self._db is not None:
                with self._tx() as db:
                    n += db.execute("DELETE FROM outbox").rowcount
                    self._add_dropped(db, n)
                self._depth, self._bytes = 0, 0
        return int(n)

    @property
    def depth(self) -> int:
        return int(self._depth) + len(self._spill) - len(self._unacked_deletes)

    def stats(self) -> OutboxStats:
        """From the running counters (the status line, ``stats`` and every metrics scrape ask
        for it, so no table scan each time), re-counted in the database every 30 s in case
        another process (``edge outbox purge``) changed it."""
        with self._lock:
            oldest_mem = min((r.created for r in self._spill.values()), default=None)
            oldest, dropped = None, self._mem_dropped
            if self._db is not None:
                try:
                    if time.monotonic() - self._counted_at > 30.0:
                        self._depth, self._bytes = self._db.execute(
                            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
                        ).fetchone()
                        self._counted_at = time.monotonic()
                    dropped += self._meta("dropped")
                    first = self._db.execute("SELECT created FROM outbox ORDER BY seq LIMIT 1").fetchone()
                    oldest = None if first is None else float(first[0])
                except sqlite3.Error:
                    pass
            oldest = oldest if oldest is not None else oldest_mem
            return OutboxStats(
                depth=int(self._depth) + len(self._spill) - len(self._unacked_deletes),
                bytes=int(self._bytes) + self._spill_bytes,
                dropped=int(dropped),
                oldest_age=None if oldest is None else max(0.0, time.time() - oldest),
                path=str(self.path),
                write_failures=self.write_failures,
                in_memory=len(self._spill),
                corrupt_recovered=self.corrupt_recovered,
            )

    def close(self) -> None:
        with self._lock:
            if self._db is not None and (self._spill or self._unacked_deletes):
                self._flush_memory()
            if self._spill:
                log.error("outbox: %d event(s) could not be written to disk and are lost at exit",
                          len(self._spill))  # fmt: skip
            if self._db is not None:
                self._db.close()
                self._db = None
