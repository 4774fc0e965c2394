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
"""


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


class OutboxStore:
    """Thread-safe: one connection, one lock. ``put`` from the dispatcher, ``ack`` from paho."""

    FILENAME = "outbox.sqlite3"

    def __init__(
        self,
        folder: Path,
        max_messages: int = 100_000,
        max_bytes: int = 256 * 1024 * 1024,
        synchronous: Synchronous = "FULL",
    ) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / self.FILENAME
        self.max_messages = max_messages
        self.max_bytes = max_bytes
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute(f"PRAGMA synchronous={synchronous}")
        self._db.executescript(SCHEMA)
        self._depth, self._bytes = self._db.execute(
            "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0) FROM outbox"
        ).fetchone()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def put(self, alert: Alert) -> int:
        """Store an alert (committed on return); returns its sequence number. Drops the oldest
        rows first when the bounds would be exceeded. A repeated id is stored once."""
        size = len(alert.payload)
        if size > self.max_bytes:
            raise ValueError(f"alert {alert.id} is {size} bytes, larger than the outbox ({self.max_bytes})")
        with self._tx() as db:
            existing = db.execute("SELECT seq FROM outbox WHERE id = ?", (alert.id,)).fetchone()
            if existing is not None:
                return int(existing[0])
            dropped = 0
            while self._depth + 1 > self.max_messages or self._bytes + size > self.max_bytes:
                oldest = db.execute("SELECT seq, LENGTH(payload) FROM outbox ORDER BY seq LIMIT 1").fetchone()
                if oldest is None:
                    break
                db.execute("DELETE FROM outbox WHERE seq = ?", (oldest[0],))
                self._depth -= 1
                self._bytes -= int(oldest[1])
                dropped += 1
            if dropped:
                db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (dropped,))
            cur = db.execute(
                "INSERT INTO outbox (id, topic, payload, qos, retain, created) VALUES (?, ?, ?, ?, ?, ?)",
                (alert.id, alert.topic, alert.payload, alert.qos, int(alert.retain), time.time()),
            )
            self._depth += 1
            self._bytes += size
        if dropped:
            log.warning("outbox full (%d rows, %d bytes max): dropped the %d oldest alert(s)",
                        self.max_messages, self.max_bytes, dropped)  # fmt: skip
        assert cur.lastrowid is not None
        return int(cur.lastrowid)

    def pending(self, limit: int, after_seq: int = 0) -> list[Row]:
        """Up to ``limit`` stored alerts with ``seq > after_seq``, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT seq, id, topic, payload, qos, retain, created FROM outbox WHERE seq > ? "
                "ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [Row(r[0], Alert(r[1], r[2], bytes(r[3]), r[4], bool(r[5])), r[6]) for r in rows]

    def ack(self, seq: int) -> bool:
        """The broker has the alert: forget it. False if it was already gone (dropped or acked)."""
        with self._tx() as db:
            row = db.execute("SELECT LENGTH(payload) FROM outbox WHERE seq = ?", (seq,)).fetchone()
            if row is None:
                return False
            db.execute("DELETE FROM outbox WHERE seq = ?", (seq,))
            self._depth -= 1
            self._bytes -= int(row[0])
        return True

    def purge(self) -> int:
        """Delete every stored alert (an operator's decision; counted as dropped)."""
        with self._tx() as db:
            n = db.execute("DELETE FROM outbox").rowcount
            db.execute("UPDATE meta SET value = value + ? WHERE key = 'dropped'", (n,))
            self._depth, self._bytes = 0, 0
        return int(n)

    @property
    def depth(self) -> int:
        return int(self._depth)

    def stats(self) -> OutboxStats:
        """Counted in the database, so it is right even while another process writes to it."""
        with self._lock:
            dropped = self._db.execute("SELECT value FROM meta WHERE key = 'dropped'").fetchone()[0]
            depth, size, oldest = self._db.execute(
                "SELECT COUNT(*), COALESCE(SUM(LENGTH(payload)), 0), MIN(created) FROM outbox"
            ).fetchone()
        return OutboxStats(
            depth=int(depth),
            bytes=int(size),
            dropped=int(dropped),
            oldest_age=None if oldest is None else max(0.0, time.time() - float(oldest)),
            path=str(self.path),
        )

    def close(self) -> None:
        with self._lock:
            self._db.close()
