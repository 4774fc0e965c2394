"""Keep what the local actions write bounded on an SD card: a JSON-lines file rotated by size,
and a folder of snapshots pruned by total size and age, oldest first.

Both run on the action dispatcher's thread only; ``files_removed`` may be read from any thread.
"""

from __future__ import annotations

import logging
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

log = logging.getLogger("edge.actions")

PART_SUFFIX = ".part"
"""A file being written; renamed to its final name when complete, removed when the write fails."""


class RotatingFile:
    """Appends whole records to ``path``. Before a record would take the file past ``max_bytes``,
    ``path`` becomes ``path.1`` (``.1`` becomes ``.2`` ... up to ``.keep``; the oldest is removed), as
    :class:`logging.handlers.RotatingFileHandler` names them. A record larger than ``max_bytes``
    gets a file of its own.

    A failed write (``ENOSPC``, ``EIO``) raises ``OSError`` and leaves no partial record: the file is
    cut back to where the record began and closed; the next ``append`` reopens it, so writing
    resumes by itself once space returns (or once the folder is back).
    """

    def __init__(self, path: Path, max_bytes: int, keep: int) -> None:
        if max_bytes < 1 or keep < 0:
            raise ValueError(f"max_bytes must be >= 1 and keep >= 0, got {max_bytes} and {keep}")
        self.path = path
        self.max_bytes = max_bytes
        self.keep = keep
        self.files_removed = 0
        self._fd: int | None = None
        self._size = 0

    def rotated(self, n: int) -> Path:
        """``path.n``: the n-th newest rotated file."""
        return self.path.with_name(f"{self.path.name}.{n}")

    def append(self, record: bytes) -> None:
        fd = self._open()
        if self._size > 0 and self._size + len(record) > self.max_bytes:
            self._rotate()
            fd = self._open()
        start = self._size
        try:
            view = memoryview(record)
            while view:
                view = view[os.write(fd, view) :]
        except OSError:
            self._abandon(start)
            raise
        self._size += len(record)

    def close(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)

    def _open(self) -> int:
        if self._fd is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o644)
            self._size = os.fstat(fd).st_size
            self._fd = fd
        return self._fd

    def _abandon(self, start: int) -> None:
        """Cut off a partly written record (truncating frees space, so it works on a full disk)."""
        fd, self._fd = self._fd, None
        if fd is None:
            return
        try:
            os.ftruncate(fd, start)
        except OSError:
            pass  # the next open reads the real size; a torn last line is the worst case
        os.close(fd)

    def _rotate(self) -> None:
        self.close()
        if self.keep == 0:
            self.path.unlink(missing_ok=True)
            self.files_removed += 1
            return
        oldest = self.rotated(self.keep)
        if oldest.exists():
            oldest.unlink()
            self.files_removed += 1
        for n in range(self.keep - 1, 0, -1):
            if self.rotated(n).exists():
                self.rotated(n).rename(self.rotated(n + 1))
        self.path.rename(self.rotated(1))


class _Kept(NamedTuple):
    mtime: float
    path: Path
    size: int


class FolderRetention:
    """Bounds the ``*<suffix>`` files under ``folder`` by total bytes and by age, removing the
    oldest first. ``added`` costs O(1): a running index (oldest first) and total are kept, and the
    folder is scanned only on the first call, then every ``rescan_writes`` additions or
    ``rescan_seconds`` (to notice files removed or added by someone else). ``max_age <= 0``: no age
    limit. ``clock`` gives wall-clock seconds, like file modification times.
    """

    def __init__(
        self,
        folder: Path,
        max_bytes: int,
        max_age: float,
        *,
        suffix: str = ".jpg",
        clock: Callable[[], float] = time.time,
        rescan_writes: int = 1000,
        rescan_seconds: float = 3600.0,
    ) -> None:
        self.folder = folder
        self.max_bytes = max_bytes
        self.max_age = max_age
        self.suffix = suffix
        self.clock = clock
        self.rescan_writes = rescan_writes
        self.rescan_seconds = rescan_seconds
        self.files_removed = 0
        self.scans = 0
        self.total_bytes = 0
        self._index: deque[_Kept] | None = None
        self._writes_since_scan = 0
        self._next_scan = 0.0

    @property
    def count(self) -> int:
        return 0 if self._index is None else len(self._index)

    def added(self, path: Path, size: int) -> None:
        """Record a file just written (the newest), then prune."""
        self._writes_since_scan += 1
        if self._index is not None:  # else the scan in prune() finds it
            self._index.append(_Kept(self.clock(), path, size))
            self.total_bytes += size
        self.prune()

    def prune(self) -> None:
        """Remove the oldest files while over ``max_bytes`` or older than ``max_age``; rescan when due.

        Raises ``OSError`` when a file cannot be removed (it is dropped from the index first, so
        the next call goes on with the others)."""
        now = self.clock()
        if self._index is None or self._writes_since_scan >= self.rescan_writes or now >= self._next_scan:
            self._scan(now)
        index = self._index
        assert index is not None
        cutoff = now - self.max_age if self.max_age > 0 else float("-inf")
        while index and (self.total_bytes > self.max_bytes or index[0].mtime < cutoff):
            oldest = index.popleft()
            self.total_bytes -= oldest.size
            try:
                oldest.path.unlink()
            except FileNotFoundError:
                continue  # removed by someone else: it no longer counts
            self.files_removed += 1

    def _scan(self, now: float) -> None:
        found: list[_Kept] = []
        for root, _dirs, names in os.walk(self.folder):
            for name in names:
                path = Path(root, name)
                if name.endswith(PART_SUFFIX):  # left by a crash mid-write: only this thread writes
                    self._remove_quietly(path)
                    continue
                if not name.endswith(self.suffix):
                    continue
                try:
                    st = path.stat()
                except FileNotFoundError:
                    continue
                found.append(_Kept(st.st_mtime, path, st.st_size))
        found.sort(key=lambda k: k.mtime)
        self._index = deque(found)
        self.total_bytes = sum(k.size for k in found)
        self._writes_since_scan = 0
        self._next_scan = now + self.rescan_seconds
        self.scans += 1

    def _remove_quietly(self, path: Path) -> None:
        try:
            path.unlink()
            self.files_removed += 1
        except OSError as exc:
            log.warning("cannot remove %s: %s", path, exc.strerror or exc)
