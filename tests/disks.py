"""Disks that really fill up: a small tmpfs mounted for a test (the tests run as root), and a
helper that takes every free byte of it."""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest


@contextmanager
def small_tmpfs(folder: Path, size: str, options: str = "") -> Iterator[Path]:
    """Mount a tmpfs of ``size`` (e.g. ``256k``, ``1m``) on a new ``folder``; skip the test
    where mounting is not allowed; unmount afterwards."""
    folder.mkdir()
    opts = f"{options},size={size}" if options else f"size={size}"
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "tmpfs", str(folder)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def fill(folder: Path) -> Path:
    """Take every free byte of the file system holding ``folder``; delete the file to free it."""
    filler = folder / "filler"
    with filler.open("wb", buffering=0) as fh:
        for size in (65536, 4096, 512, 1):
            try:
                while True:
                    fh.write(b"\0" * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
    return filler
