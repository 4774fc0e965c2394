"""Compiled OpenVINO models kept in the daemon's state_dir (``<state_dir>/openvino``).

The first start reads the model, folds preprocessing into it and compiles it, as always, then
exports the compiled model there. Later starts import it instead: the model is hashed but not
parsed or compiled, so the daemon starts sooner and never holds the original weights beside
the compiled ones (about 10 MB less for YOLOv8n).

A compiled model is kept as ``<model>-<key>.blob`` with ``<model>-<key>.json`` beside it: the
facts its key is made of, the model's path, whether the graph takes uint8 BGR, and the blob's
size and sha256 (checked before every import: a blob damaged on disk is never imported). The
key covers what the compiled graph depends on: the model file's sha256 (and the size and time
of files beside a .onnx named after it, where external weights live), OpenVINO's version, the
device (name, architecture, capabilities, and the CPU's model and instruction sets), the
compile settings and the folded preprocessing. Up to ``KEEP`` entries are kept per model file
(two models on one file with other settings do not evict each other); older ones go. A broken
entry is set aside as ``.corrupt`` evidence (one per file, replacing an older one), with one
warning, and the model is compiled again. Failing to write the cache (a full disk, a read-only
state_dir) only costs the next start its speed.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.runners import openvino_resize
from edge.runners.base import RunnerOptions, file_sha256, one_line
from edge.statefiles import write_atomic

log = logging.getLogger("edge.runners")

FORMAT = 1  # of the cache's files; a new one makes every key new
KEEP = 3  # entries kept per model file


@dataclass(frozen=True)
class CacheEntry:
    """Where one compiled model is kept, and the facts its key is made of."""

    blob: Path
    meta: Path
    facts: Mapping[str, Any]


@dataclass(frozen=True)
class Imported:
    compiled: Any  # openvino.CompiledModel
    takes_bgr8: bool


class _Unusable(Exception):
    """A kept entry that must not be imported; ``culprit`` is the file at fault."""

    def __init__(self, reason: str, culprit: Path) -> None:
        super().__init__(reason)
        self.culprit = culprit


def _device_property(core: Any, device: str, name: str) -> str:
    try:
        value = core.get_property(device, name)
    except Exception:  # a virtual device (AUTO) may not answer: the rest of the key still holds
        return ""
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def _cpu() -> str:
    """The CPU's model name and instruction sets (a blob may hold kernels chosen for them)."""
    wanted = {"model name": "", "flags": ""}
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                key = key.strip()
                if key in wanted and not wanted[key]:
                    wanted[key] = value.strip()
                if all(wanted.values()):
                    break
    except OSError:
        return ""
    flags = hashlib.sha256(wanted["flags"].encode()).hexdigest()[:16]
    return f"{wanted['model name']} flags:{flags}"


def _companions(path: Path) -> list[list[object]]:
    """Files beside a .onnx whose names start with its stem (external weights), by size and
    modification time: replacing them makes a new key."""
    if path.suffix != ".onnx":
        return []
    out: list[list[object]] = []
    for other in sorted(path.parent.glob(f"{path.stem}*")):
        if other != path and other.is_file():
            st = other.stat()
            out.append([other.name, st.st_size, st.st_mtime_ns])
    return out


def entry_for(
    core: Any, folder: Path, path: Path, options: RunnerOptions, config: Mapping[str, Any]
) -> CacheEntry:
    """The cache entry of ``path`` compiled with ``options`` and ``config`` (OpenVINO's)."""
    import openvino as ov

    fmt = options.preprocess if options.graph_preprocess else None
    device = options.device
    facts: dict[str, Any] = {
        "format": FORMAT,
        "model": file_sha256(path),
        "companions": _companions(path),
        "openvino": ov.get_version(),
        "device": device,
        "device_name": _device_property(core, device, "FULL_DEVICE_NAME"),
        "architecture": _device_property(core, device, "DEVICE_ARCHITECTURE"),
        "capabilities": _device_property(core, device, "OPTIMIZATION_CAPABILITIES"),
        "cpu": _cpu(),
        "config": {k: str(v) for k, v in sorted(config.items())},
        "preprocess": None if fmt is None else [fmt.color, list(fmt.mean), list(fmt.std)],
    }
    if options.graph_hw is not None:  # absent otherwise: the keys of earlier entries stay valid
        facts["graph_hw"] = [*options.graph_hw, openvino_resize.VERSION]
    # The sizes dynamic input axes are pinned to: set for nearly every model (input_hw comes
    # from its model.yaml), so entries kept before pinning existed are compiled once more.
    if options.pin_batch is not None or options.input_hw is not None:
        facts["pin"] = [options.pin_batch, list(options.input_hw) if options.input_hw else None]
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    stem = f"{path.stem}-{digest}"
    return CacheEntry(folder / f"{stem}.blob", folder / f"{stem}.json", facts)


def _checked_meta(entry: CacheEntry) -> tuple[bool, str, int]:
    """(takes_bgr8, blob sha256, blob size) from the entry's .json; _Unusable when it is not
    the description of this entry."""
    try:
        meta = json.loads(entry.meta.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise _Unusable(f"{entry.meta.name} is not readable JSON ({exc})", entry.meta) from None
    if not isinstance(meta, dict) or meta.get("facts") != entry.facts:
        raise _Unusable(f"{entry.meta.name} does not describe this model and these settings", entry.meta)
    takes_bgr8, sha, size = meta.get("takes_bgr8"), meta.get("blob_sha256"), meta.get("blob_bytes")
    if not isinstance(takes_bgr8, bool) or not isinstance(sha, str) or not isinstance(size, int):
        raise _Unusable(f"{entry.meta.name} lacks takes_bgr8, blob_sha256 or blob_bytes", entry.meta)
    return takes_bgr8, sha, size


def load(core: Any, entry: CacheEntry, path: Path, device: str, config: Mapping[str, Any]) -> Imported | None:
    """The compiled model kept for ``entry``, or None when there is none (or it is unusable:
    then the file at fault is set aside, with a warning)."""
    if not entry.meta.is_file() or not entry.blob.is_file():
        return None
    try:
        takes_bgr8, sha, size = _checked_meta(entry)
        try:
            data = entry.blob.read_bytes()
        except OSError as exc:
            raise _Unusable(f"cannot read it ({exc.strerror or exc})", entry.blob) from None
        if len(data) != size or hashlib.sha256(data).hexdigest() != sha:
            raise _Unusable(
                f"{entry.blob.name} is not the blob that was kept (size or sha256 differ)", entry.blob
            )
        try:
            compiled = core.import_model(data, device, dict(config))
        except Exception as exc:
            raise _Unusable(f"OpenVINO cannot import it ({one_line(exc)})", entry.blob) from None
        del data
    except _Unusable as exc:
        log.warning(
            "%s: the compiled model kept in %s cannot be used (%s): compiling it again%s",
            path, entry.blob.parent, exc, _set_aside(exc.culprit),
        )  # fmt: skip
        for other in (entry.blob, entry.meta):
            if other != exc.culprit:
                other.unlink(missing_ok=True)
        return None
    log.info("%s: compiled model imported from %s", path, entry.blob)
    return Imported(compiled, takes_bgr8)


def _set_aside(culprit: Path) -> str:
    """Rename ``culprit`` to ``<name>.corrupt`` (replacing an older one: evidence, bounded)."""
    target = culprit.with_name(culprit.name + ".corrupt")
    try:
        os.replace(culprit, target)
    except OSError as exc:
        culprit.unlink(missing_ok=True)
        return f" (it could not be set aside: {exc.strerror or exc}; removed)"
    return f"; {culprit.name} was kept as {target.name}"


def save(compiled: Any, entry: CacheEntry, path: Path, takes_bgr8: bool) -> None:
    """Keep ``compiled`` for the next start, and drop the oldest entries of the same model
    file beyond ``KEEP``. A failure is logged, never raised."""
    source = str(path.resolve())
    try:
        stream = io.BytesIO()
        compiled.export_model(stream)
        data = stream.getbuffer()
        meta = {
            "source": source,
            "takes_bgr8": takes_bgr8,
            "blob_sha256": hashlib.sha256(data).hexdigest(),
            "blob_bytes": len(data),
            "facts": dict(entry.facts),
        }
        write_atomic(entry.blob, data)
        del data, stream
        write_atomic(entry.meta, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    except Exception as exc:  # OSError, or a device that cannot export
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        log.warning("%s: cannot keep the compiled model in %s (%s): it is compiled at every start",
                    path, entry.blob.parent, reason)  # fmt: skip
        return
    log.info("%s: compiled model kept in %s for the next start", path, entry.blob)
    _drop_old(entry, source)


def _drop_old(entry: CacheEntry, source: str) -> None:
    """Of the other entries made from ``source``, keep the ``KEEP - 1`` newest."""
    others: list[tuple[int, Path]] = []
    for meta in entry.meta.parent.glob("*.json"):
        if meta == entry.meta:
            continue
        try:
            doc = json.loads(meta.read_text(encoding="utf-8"))
            written = meta.stat().st_mtime_ns
        except (OSError, UnicodeDecodeError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("source") == source:
            others.append((written, meta))
    for _written, meta in sorted(others, reverse=True)[KEEP - 1 :]:
        for name in (meta.name, meta.with_suffix(".blob").name):
            for old in (meta.with_name(name), meta.with_name(name + ".corrupt")):
                old.unlink(missing_ok=True)
