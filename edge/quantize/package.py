"""Write the model package ``edge quantize`` produces: the float file(s) and their int8 twins,
each pinned by sha256, with the gate's report per format in the manifest.

A second run into the same folder (another ``--to``) adds its twin beside the first. Files are
written before the manifest, and the manifest is replaced atomically, so a package on disk is
never half-written as far as ``model.yaml`` knows.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import yaml

from edge.errors import QuantizeError
from edge.models import FORMAT_SUFFIX, MANIFEST, ModelPackage, read_manifest
from edge.runners.base import file_sha256


def default_out_dir(package: ModelPackage) -> Path:
    """``models/<name>`` -> ``models/<name>-int8``; a bare export -> ``<stem>-int8/`` beside it."""
    if package.origin.name == MANIFEST:
        return package.origin.parent.parent / f"{package.name}-int8"
    return package.origin.parent / f"{package.origin.stem}-int8"


def _copy(src: Path, dst: Path) -> None:
    """Copy a model file (an IR's .bin with its .xml)."""
    shutil.copyfile(src, dst)
    if src.suffix == ".xml":
        shutil.copyfile(src.with_suffix(".bin"), dst.with_suffix(".bin"))


def _place(src: Path, dst: Path) -> None:
    """Copy (then rename into place) a model file and an IR's .bin."""
    pairs = [(src, dst)] + (
        [(src.with_suffix(".bin"), dst.with_suffix(".bin"))] if src.suffix == ".xml" else []
    )
    for a, b in pairs:
        tmp = b.with_name(b.name + ".tmp")
        shutil.copyfile(a, tmp)
        os.replace(tmp, b)


def _fresh_manifest(package: ModelPackage, out: Path) -> dict[str, Any]:
    files: dict[str, Any] = {}
    for fmt, path in package.files.items():
        target = out / path.name
        if not target.exists() or file_sha256(target) != file_sha256(path):
            _copy(path, target)
        files[fmt] = {"path": path.name, "sha256": file_sha256(target)}
    manifest: dict[str, Any] = {
        "name": f"{package.name}-int8",
        "task": package.task,
        "decoder": package.decoder,
        "labels": list(package.labels),
        "input": package.input.model_dump(mode="json", exclude_none=True),
        "files": files,
        "int8": {},
        "quantization": {},
        "options": dict(package.options),
        "source": f"edge quantize of {package.origin}",
    }
    if package.license:
        manifest["license"] = package.license
    return manifest


def check_out(out: Path, package: ModelPackage, source: Path) -> None:
    """Refuse, before any work, an ``--out`` that cannot take this model's twin: a file, a
    folder that cannot be written, or a package made from another model or another version of
    its float file (its twin would sit beside the wrong float file)."""
    if out.exists() and not out.is_dir():
        raise QuantizeError(f"--out {out}: is not a folder; expected a package folder to write or add to")
    probe = out if out.exists() else next((p for p in out.parents if p.exists()), Path("."))
    if not os.access(probe, os.W_OK | os.X_OK):
        raise QuantizeError(f"--out {out}: cannot write in {probe}")
    manifest_path = out / MANIFEST
    if not manifest_path.exists():
        if out.exists() and any(out.iterdir()):
            raise QuantizeError(
                f"--out {out}: the folder has files but no {MANIFEST}; choose an empty or new folder"
            )
        return
    existing = read_manifest(manifest_path)
    float_sha = file_sha256(source)
    same = (existing.task, existing.decoder, existing.labels, existing.input) == (
        package.task, package.decoder, package.labels, package.input
    )  # fmt: skip
    if not same or float_sha not in existing.sha256.values():
        raise QuantizeError(
            f"--out {out}: holds a package of {existing.name!r} whose float files are not "
            f"{source.name} (sha256 {float_sha[:12]}…); choose another --out"
        )


def write_package(
    package: ModelPackage, out: Path, fmt: str, source: Path, int8_file: Path, report: dict[str, Any]
) -> Path:
    """Put ``int8_file`` (quantised from ``source``, in a scratch folder) into the package at
    ``out`` as the int8 twin of ``fmt``, with ``report``; returns the manifest's path.

    The twin's name carries its sha256 (``pose_detection.int8-1a2b3c4d.xml``), so a new twin
    never overwrites the one the manifest names: the new files land, the manifest is replaced
    atomically, and only then is the old twin removed."""
    manifest_path = out / MANIFEST
    check_out(out, package, source)
    old: Path | None = None
    try:
        out.mkdir(parents=True, exist_ok=True)
        if manifest_path.exists():
            previous = read_manifest(manifest_path)
            old = previous.int8_files.get(fmt)
            data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
            data.setdefault("int8", {})
            data.setdefault("quantization", {})
        else:
            data = _fresh_manifest(package, out)
        digest = file_sha256(int8_file)
        name = f"{source.stem}.int8-{digest[:8]}{FORMAT_SUFFIX[fmt]}"
        _place(int8_file, out / name)
        data["int8"][fmt] = {"path": name, "sha256": digest}
        data["quantization"][fmt] = {**report, "int8_file": name}
        tmp = manifest_path.with_name(MANIFEST + ".tmp")
        header = "# Written by `edge quantize`: float files, their int8 twins and the gate's reports.\n"
        tmp.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        os.replace(tmp, manifest_path)
    except OSError as exc:
        where = exc.filename or out
        raise QuantizeError(f"{where}: cannot write the package ({exc.strerror or exc})") from None
    read_manifest(manifest_path)  # what was written must read back
    if old is not None and old.name != name:
        for stale in (old, old.with_suffix(".bin")) if old.suffix == ".xml" else (old,):
            stale.unlink(missing_ok=True)
    return manifest_path
