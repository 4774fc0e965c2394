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
from edge.models import FORMAT_SUFFIX, MANIFEST, ModelPackage, file_sha256, read_manifest


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


def int8_name(source: Path, fmt: str) -> str:
    """``pose_detection.tflite`` quantised for OpenVINO -> ``pose_detection.int8.xml``."""
    return f"{source.stem}.int8{FORMAT_SUFFIX[fmt]}"


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


def write_package(
    package: ModelPackage, out: Path, fmt: str, source: Path, int8_file: Path, report: dict[str, Any]
) -> Path:
    """Put ``int8_file`` (quantised from ``source``; in a scratch folder, moved or copied) into
    the package at ``out`` as the int8 twin of ``fmt``, with ``report``; returns the manifest's
    path."""
    manifest_path = out / MANIFEST
    try:
        out.mkdir(parents=True, exist_ok=True)
        if manifest_path.exists():
            read_manifest(manifest_path)  # refuse to merge into a broken manifest
            data = yaml.safe_load(manifest_path.read_text(encoding="utf-8"))
            data.setdefault("int8", {})
            data.setdefault("quantization", {})
        else:
            data = _fresh_manifest(package, out)
        name = int8_name(source, fmt)
        _place(int8_file, out / name)
        data["int8"][fmt] = {"path": name, "sha256": file_sha256(out / name)}
        data["quantization"][fmt] = report
        tmp = manifest_path.with_suffix(".yaml.tmp")
        header = "# Written by `edge quantize`: float files, their int8 twins and the gate's reports.\n"
        tmp.write_text(header + yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
        os.replace(tmp, manifest_path)
    except OSError as exc:
        raise QuantizeError(f"{out}: cannot write the package ({exc.strerror or exc})") from None
    read_manifest(manifest_path)  # what was written must read back
    return manifest_path
