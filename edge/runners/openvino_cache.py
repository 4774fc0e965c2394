"""Compiled OpenVINO models kept in the daemon's state_dir (``<state_dir>/openvino``).

The first start reads the model, folds preprocessing into it and compiles it, as always, then
exports the compiled model there. Later starts import it instead: nothing is read or compiled,
so the daemon starts sooner and never holds the original weights beside the compiled ones
(17 MB less for YOLOv8n).

A compiled model is kept as ``<model>-<key>.blob`` with ``<model>-<key>.json`` beside it (the
facts its key is made of, the model's path, and whether the graph takes uint8 BGR). The key
covers everything the compiled graph depends on: the model file's sha256, OpenVINO's version,
the device and its name and capabilities (a state_dir copied to another CPU compiles again),
the compile settings and the folded preprocessing. One blob is kept per model file: a new one
replaces those of the same file made for other settings. A blob that does not import is kept
aside as ``.corrupt`` evidence, with one warning, and the model is compiled again. Failing to
write the cache (a full disk, a read-only state_dir) only costs the next start its speed.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge.runners.base import RunnerOptions, file_sha256, one_line
from edge.statefiles import keep_as_evidence, write_atomic

log = logging.getLogger("edge.runners")

FORMAT = 1  # of the cache's files; a new one makes every key new


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


def _device_property(core: Any, device: str, name: str) -> str:
    try:
        value = core.get_property(device, name)
    except Exception:  # a virtual device (AUTO) may not answer: the rest of the key still holds
        return ""
    return " ".join(map(str, value)) if isinstance(value, list | tuple) else str(value)


def entry_for(
    core: Any, folder: Path, path: Path, options: RunnerOptions, config: Mapping[str, Any]
) -> CacheEntry:
    """The cache entry of ``path`` compiled with ``options`` and ``config`` (OpenVINO's)."""
    import openvino as ov

    fmt = options.preprocess if options.graph_preprocess else None
    facts: dict[str, Any] = {
        "format": FORMAT,
        "model": file_sha256(path),
        "openvino": ov.get_version(),
        "device": options.device,
        "device_name": _device_property(core, options.device, "FULL_DEVICE_NAME"),
        "capabilities": _device_property(core, options.device, "OPTIMIZATION_CAPABILITIES"),
        "config": {k: str(v) for k, v in sorted(config.items())},
        "preprocess": None if fmt is None else [fmt.color, list(fmt.mean), list(fmt.std)],
    }
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:16]
    stem = f"{path.stem}-{digest}"
    return CacheEntry(folder / f"{stem}.blob", folder / f"{stem}.json", facts)


def load(core: Any, entry: CacheEntry, path: Path, device: str, config: Mapping[str, Any]) -> Imported | None:
    """The compiled model kept for ``entry``, or None when there is none (or it is unusable:
    then it is moved aside with a warning)."""
    if not entry.meta.is_file() or not entry.blob.is_file():
        return None
    try:
        meta = json.loads(entry.meta.read_text(encoding="utf-8"))
        if not isinstance(meta, dict) or meta.get("facts") != entry.facts:
            raise ValueError(f"{entry.meta.name} does not describe this model and these settings")
        takes_bgr8 = meta.get("takes_bgr8")
        if not isinstance(takes_bgr8, bool):
            raise ValueError(f"{entry.meta.name} has no takes_bgr8 true/false")
        data = entry.blob.read_bytes()
        compiled = core.import_model(data, device, dict(config))
        del data
    except Exception as exc:
        reason = one_line(exc) if not isinstance(exc, OSError) else (exc.strerror or str(exc))
        log.warning(
            "%s: the compiled model kept in %s cannot be used (%s): compiling it again%s",
            path, entry.blob, reason, keep_as_evidence(entry.blob),
        )  # fmt: skip
        entry.meta.unlink(missing_ok=True)
        return None
    log.info("%s: compiled model imported from %s", path, entry.blob)
    return Imported(compiled, takes_bgr8)


def save(compiled: Any, entry: CacheEntry, path: Path, takes_bgr8: bool) -> None:
    """Keep ``compiled`` for the next start, and drop what was kept for other settings of the
    same model file. A failure is logged, never raised."""
    source = str(path.resolve())
    meta = {"source": source, "takes_bgr8": takes_bgr8, "facts": dict(entry.facts)}
    try:
        buffer = compiled.export_model()
        write_atomic(entry.blob, buffer.getbuffer())
        del buffer
        write_atomic(entry.meta, json.dumps(meta, indent=1, sort_keys=True) + "\n")
    except Exception as exc:  # OSError, or a device that cannot export
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else one_line(exc)
        log.warning("%s: cannot keep the compiled model in %s (%s): it is compiled at every start",
                    path, entry.blob.parent, reason)  # fmt: skip
        return
    log.info("%s: compiled model kept in %s for the next start", path, entry.blob)
    _drop_others(entry, source)


def _drop_others(entry: CacheEntry, source: str) -> None:
    for other in entry.meta.parent.glob("*.json"):
        if other == entry.meta:
            continue
        try:
            doc = json.loads(other.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        if isinstance(doc, dict) and doc.get("source") == source:
            other.with_suffix(".blob").unlink(missing_ok=True)
            other.unlink(missing_ok=True)
