"""Model packages: a ``models/<name>/model.yaml`` manifest, or a bare Ultralytics export.

A manifest names the task, the decoder, labels, the input format and one file per format,
each pinned by sha256. A bare export (``yolo11n.onnx``, ``yolov8n_openvino_model/``,
``*.tflite``, ``*.engine``) carries the same facts in Ultralytics' metadata: ONNX
``metadata_props``, OpenVINO ``metadata.yaml``, a zip appended to the TFLite file, a JSON
header before a TensorRT engine.
"""

from __future__ import annotations

import ast
import hashlib
import json
import os
import struct
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any, Literal

import yaml
from pydantic import Field, StringConstraints, ValidationError

from edge.buffer.preprocess import InputFormat
from edge.config.loader import SourceMap, pydantic_problems, record_lines
from edge.config.schema import Strict
from edge.errors import ModelError

MANIFEST = "model.yaml"
Format = Literal["onnx", "openvino", "tflite", "engine"]
Task = Literal["detect", "pose", "classify", "ocr-det"]
DecoderName = Literal["yolov5", "yolov8", "yolov10", "ssd", "classify", "blazeface", "blazepose", "db"]
FORMAT_SUFFIX: dict[str, str] = {
    "onnx": ".onnx",
    "openvino": ".xml",
    "tflite": ".tflite",
    "engine": ".engine",
}
Sha256 = Annotated[str, StringConstraints(pattern=r"^[0-9a-f]{64}$")]


class FileEntry(Strict):
    path: str
    sha256: Sha256 | None = None


class InputEntry(Strict):
    size: tuple[int, int] | None = Field(None, description="[width, height]; default: from the model")
    color: Literal["rgb", "bgr"] = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    pad_value: int = Field(114, ge=0, le=255)


class Manifest(Strict):
    name: str
    task: Task
    decoder: DecoderName
    labels: list[str] = Field(min_length=1)
    input: InputEntry = Field(default_factory=InputEntry)
    files: dict[Format, FileEntry] = Field(min_length=1)
    options: dict[str, float | int | str | bool | list[int]] = Field(default_factory=dict)
    license: str | None = None
    source: str | None = None
    description: str | None = None


@dataclass(frozen=True)
class ModelPackage:
    """A resolved model: where its files are and how to feed and decode it."""

    name: str
    task: Task
    decoder: DecoderName
    labels: tuple[str, ...]
    input: InputEntry
    files: Mapping[str, Path]
    sha256: Mapping[str, str | None]
    options: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    origin: Path = Path()
    license: str | None = None

    def formats(self) -> list[str]:
        return list(self.files)

    def input_format(self, width: int, height: int) -> InputFormat:
        size = self.input.size or (width, height)
        return InputFormat(
            width=size[0],
            height=size[1],
            color=self.input.color,
            mean=self.input.mean,
            std=self.input.std,
            pad_value=self.input.pad_value,
        )

    def verified_file(self, fmt: str) -> Path:
        """The file for ``fmt``, checked to exist and to match its pinned sha256."""
        if fmt not in self.files:
            raise ModelError(
                f"{self.origin}: model {self.name!r} has no {fmt} file (it has: {', '.join(self.files)})"
            )
        path = self.files[fmt]
        if not path.exists():
            raise ModelError(
                f"{self.origin}: files.{fmt}: {path} is missing; run `edge models fetch` "
                "or put the file there"
            )
        expected = self.sha256.get(fmt)
        if expected:
            actual = file_sha256(path)
            if actual != expected:
                raise ModelError(
                    f"{path}: sha256 is {actual}, expected {expected} (from {self.origin}); the file is "
                    "corrupt or not the pinned version: run `edge models fetch` again"
                )
        return path


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of an OpenVINO IR's .xml and .bin together."""
    digest = hashlib.sha256()
    parts = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    for part in parts:
        if not part.exists():
            continue
        with part.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def read_manifest(path: Path) -> ModelPackage:
    """Parse ``model.yaml``; errors name the manifest file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except (OSError, yaml.YAMLError) as exc:
        raise ModelError(f"{path}: cannot read model manifest: {exc}") from None
    source = SourceMap(str(path))
    if node is not None:
        record_lines(node, (), source.lines)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        issues = [source.issue(p, m) for p, m in pydantic_problems(exc, data)]
        raise ModelError("\n".join(issues)) from None
    base = path.parent
    return ModelPackage(
        name=manifest.name,
        task=manifest.task,
        decoder=manifest.decoder,
        labels=tuple(manifest.labels),
        input=manifest.input,
        files=MappingProxyType({f: base / e.path for f, e in manifest.files.items()}),
        sha256=MappingProxyType({f: e.sha256 for f, e in manifest.files.items()}),
        options=MappingProxyType(dict(manifest.options)),
        origin=path,
        license=manifest.license,
    )


# --- bare Ultralytics exports -------------------------------------------------------------


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _onnx_metadata(path: Path) -> dict[str, Any]:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.log_severity_level = 3
    try:
        meta = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"]).get_modelmeta()
    except Exception as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({type(exc).__name__}: {exc})") from exc
    out: dict[str, Any] = {}
    for key, value in meta.custom_metadata_map.items():
        try:
            out[key] = _literal(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def _tflite_metadata(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not names:
                return {}
            value = _literal(zf.read(names[0]).decode("utf-8"))
            return value if isinstance(value, dict) else {}
    except (zipfile.BadZipFile, ValueError, SyntaxError, UnicodeDecodeError):
        return {}


def _engine_metadata(path: Path) -> dict[str, Any]:
    with path.open("rb") as fh:
        head = fh.read(4)
        if len(head) < 4:
            return {}
        (length,) = struct.unpack("<i", head)
        if not 0 < length < 1 << 20:
            return {}
        try:
            value = json.loads(fh.read(length).decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return {}
    return value if isinstance(value, dict) else {}


def _labels_from_names(names: Any, where: Path) -> tuple[str, ...]:
    if isinstance(names, dict):
        try:
            ordered = sorted(((int(k), str(v)) for k, v in names.items()))
        except (TypeError, ValueError):
            raise ModelError(f"{where}: metadata 'names' must map class indices to names") from None
        return tuple(v for _, v in ordered)
    if isinstance(names, list | tuple):
        return tuple(str(v) for v in names)
    raise ModelError(f"{where}: metadata has no class names ('names'); use a model.yaml manifest instead")


def _bare_file(path: Path) -> tuple[str, Path]:
    if path.is_dir():
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            raise ModelError(f"{path}: expected one OpenVINO .xml in the folder, found {len(xmls)}")
        return "openvino", xmls[0]
    for fmt, suffix in FORMAT_SUFFIX.items():
        if path.suffix == suffix:
            return fmt, path
    raise ModelError(
        f"{path}: unknown model file type; expected .onnx, .tflite, .xml, .engine or a model.yaml folder"
    )


def read_bare_export(path: Path) -> ModelPackage:
    """A model package from one exported file and the metadata Ultralytics embeds in it."""
    fmt, file = _bare_file(path)
    if not file.exists():
        raise ModelError(f"{file}: model file not found")
    if fmt == "onnx":
        meta = _onnx_metadata(file)
    elif fmt == "openvino":
        meta_file = file.parent / "metadata.yaml"
        meta = yaml.safe_load(meta_file.read_text()) if meta_file.exists() else {}
    elif fmt == "tflite":
        meta = _tflite_metadata(file)
    else:
        meta = _engine_metadata(file)
    if not meta or "names" not in meta:
        raise ModelError(
            f"{file}: no Ultralytics metadata (task, names, imgsz) found; write a model.yaml "
            "manifest beside it naming task, decoder and labels"
        )
    task = str(meta.get("task", "detect"))
    if task not in ("detect", "pose", "classify"):
        raise ModelError(f"{file}: task {task!r} is not supported (detect, pose, classify are)")
    decoder: DecoderName = (
        "classify" if task == "classify" else "yolov10" if meta.get("end2end") else "yolov8"
    )
    imgsz = meta.get("imgsz")
    size = (int(imgsz[1]), int(imgsz[0])) if isinstance(imgsz, list | tuple) and len(imgsz) == 2 else None
    options: dict[str, Any] = {}
    if "kpt_shape" in meta:
        options["kpt_shape"] = list(meta["kpt_shape"])
    return ModelPackage(
        name=path.stem.removesuffix("_openvino_model"),
        task=task,  # type: ignore[arg-type]
        decoder=decoder,
        labels=_labels_from_names(meta["names"], file),
        input=InputEntry(size=size),
        files=MappingProxyType({fmt: file}),
        sha256=MappingProxyType({fmt: None}),
        options=MappingProxyType(options),
        origin=file,
        license=str(meta["license"]) if "license" in meta else None,
    )


# --- resolution --------------------------------------------------------------------------


def default_search_dirs(extra: Sequence[Path | None] = ()) -> list[Path]:
    """Where model packages are looked for, first match wins."""
    dirs = [p for p in extra if p is not None]
    if os.environ.get("EDGE_MODELS_DIR"):
        dirs.append(Path(os.environ["EDGE_MODELS_DIR"]))
    dirs.append(Path.cwd() / "models")
    dirs.append(Path(__file__).resolve().parent.parent / "models")  # a source checkout
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def resolve_model(ref: str, search_dirs: Sequence[Path] | None = None) -> ModelPackage:
    """A model package by name, folder, manifest path or bare export file."""
    candidate = Path(ref).expanduser()
    if candidate.exists():
        return _load_path(candidate)
    dirs = default_search_dirs() if search_dirs is None else list(search_dirs)
    for d in dirs:
        if (d / ref).exists():
            return _load_path(d / ref)
    searched = ", ".join(str(d) for d in dirs)
    raise ModelError(f"model {ref!r} not found: no such file, and no package {ref}/ in {searched}")


def _load_path(path: Path) -> ModelPackage:
    if path.is_dir() and (path / MANIFEST).exists():
        return read_manifest(path / MANIFEST)
    if path.name == MANIFEST:
        return read_manifest(path)
    return read_bare_export(path)
