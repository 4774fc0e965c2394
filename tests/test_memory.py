"""``edge.memory.release_free_heap``: glibc's malloc_trim, a no-op without glibc."""

from __future__ import annotations

import os
import platform

import numpy as np
import pytest

from edge.memory import _libc, release_free_heap


def _rss_kb() -> int:
    with open("/proc/self/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def test_freed_heap_goes_back_to_the_system() -> None:
    """Many small blocks (below glibc's mmap threshold) freed in the middle of the heap stay
    resident until trimmed."""
    if "malloc" in os.environ.get("LD_PRELOAD", ""):  # jemalloc, tcmalloc: not glibc's heap
        pytest.skip("another allocator is preloaded")
    if platform.libc_ver()[0] != "glibc":
        assert release_free_heap() is False
        return
    assert getattr(_libc(), "malloc_trim", None) is not None
    blocks = [np.ones(16_000, np.uint8) for _ in range(6000)]  # ~96 MB in 16 kB heap blocks
    keep = blocks[-1]
    del blocks
    before = _rss_kb()
    assert release_free_heap() is True
    after = _rss_kb()
    assert before - after > 40_000  # most of the ~96 MB freed went back (kB)
    assert keep.sum() == 16_000
