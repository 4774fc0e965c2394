"""Small files the daemon keeps in its state_dir: written atomically, and a file that cannot be
read kept aside as evidence rather than overwritten."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def write_atomic(path: Path, data: str | bytes | memoryview, mode: int = 0o644) -> None:
    """Replace ``path`` with ``data`` (text is written as UTF-8): a temporary file in the same
    folder, fsync, rename, fsync of the folder. Readers see the old content or the new, never
    a mix."""
    if not path.parent.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data.encode("utf-8") if isinstance(data, str) else data)
            f.flush()
            os.fchmod(f.fileno(), mode)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        dir_fd = os.open(path.parent, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


def keep_as_evidence(path: Path) -> str:
    """Rename a file that cannot be read out of the way (``<name>.corrupt``, ``.corrupt.N`` when
    that exists: never over an older one); the end of a log line saying where it went."""
    target = path.with_name(path.name + ".corrupt")
    n = 0
    while target.exists():
        n += 1
        target = path.with_name(f"{path.name}.corrupt.{n}")
    try:
        os.rename(path, target)
    except OSError as exc:
        return f" (and it could not be renamed: {exc.strerror or exc})"
    return f"; the file was kept as {target.name}"
