"""Model packages: a ``models/<name>/model.yaml`` manifest, or a bare Ultralytics export.

A manifest names the task, the decoder, labels, the input format and one file per format,
each pinned by sha256. A bare export (``yolo11n.onnx``, ``yolov8n_openvino_model/``,
``*.tflite``, ``*.engine``) carries the same facts in Ultralytics' metadata: ONNX
``metadata_props``, OpenVINO ``metadata.yaml``, a zip appended to the TFLite file, a JSON
header before a TensorRT engine.
"""

from __future__ import annotations

import ast
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
from edge.config.schema import Strict, check_path_text
from edge.config.yaml_safe import YamlProblem, compose_yaml, construct_yaml
from edge.errors import ModelError
from edge.onnx_metadata import read_metadata_props
from edge.runners.base import file_sha256, require_model_file

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
    """``model.yaml``. ``int8`` holds quantised twins of ``files`` (written by ``edge quantize``),
    ``quantization`` the accuracy gate's report for each of them, by format."""

    name: str
    task: Task
    decoder: DecoderName
    labels: list[str] = Field(min_length=1)
    input: InputEntry = Field(default_factory=InputEntry)
    files: dict[Format, FileEntry] = Field(min_length=1)
    int8: dict[Format, FileEntry] = Field(default_factory=dict)
    quantization: dict[Format, dict[str, Any]] = Field(default_factory=dict)
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
    int8_files: Mapping[str, Path] = field(default_factory=lambda: MappingProxyType({}))
    int8_sha256: Mapping[str, str | None] = field(default_factory=lambda: MappingProxyType({}))
    quantization: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: MappingProxyType({}))

    def formats(self) -> list[str]:
        """Formats with a float file or an int8 twin, float ones first."""
        return list(dict.fromkeys([*self.files, *self.int8_files]))

    def pinned_sha256(self, fmt: str, int8: bool = False) -> str | None:
        return (self.int8_sha256 if int8 else self.sha256).get(fmt)

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

    def verified_file(self, fmt: str, int8: bool = False) -> Path:
        """The file for ``fmt`` (its int8 twin with ``int8``), checked to exist and to match
        its pinned sha256."""
        files = self.int8_files if int8 else self.files
        section = "int8" if int8 else "files"
        if fmt not in files:
            raise ModelError(
                f"{self.origin}: model {self.name!r} has no {section}.{fmt} file "
                f"(it has: {', '.join(files) or 'none'})"
            )
        path = files[fmt]
        if not path.exists():
            fix = "run `edge quantize` again" if int8 else "run `edge models fetch`"
            raise ModelError(
                f"{self.origin}: {section}.{fmt}: {path} is missing; {fix} or put the file there"
            )
        if not path.is_file():
            what = "int8 " if int8 else ""
            raise ModelError(
                f"{path}: is not a regular file; expected the model's {what}{fmt} file (from {self.origin})"
            )
        expected = self.pinned_sha256(fmt, int8)
        if expected:
            actual = file_sha256(path)
            if actual != expected:
                raise ModelError(
                    f"{path}: sha256 is {actual}, expected {expected} (from {self.origin}); the file is "
                    "corrupt or not the pinned version: run `edge models fetch` again"
                )
        return path


def read_manifest(path: Path) -> ModelPackage:
    """Parse ``model.yaml``; errors name the manifest file, line and field."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        problem = _os_problem(exc)
        raise ModelError(f"{path}: cannot read model manifest ({problem}); expected UTF-8 YAML") from None
    try:  # the config's YAML reader: bounded depth and size, no alias bombs, no duplicate keys
        node = compose_yaml(text)
        data = construct_yaml(node)
    except YamlProblem as exc:
        raise ModelError(f"{exc.issue(str(path))} (model manifest)") from None
    except yaml.YAMLError as exc:
        where = _yaml_where(path, exc)
        raise ModelError(f"{where}: invalid YAML in model manifest ({_yaml_problem(exc)})") from None
    if data is not None and not isinstance(data, dict):
        raise ModelError(
            f"{path}: expected a mapping (name, task, decoder, labels, files), got {type(data).__name__}"
        )
    source = SourceMap(str(path))
    if node is not None:
        record_lines(node, (), source.lines)
    try:
        manifest = Manifest.model_validate(data)
    except ValidationError as exc:
        issues = [source.issue(p, m) for p, m in pydantic_problems(exc, data)]
        raise ModelError("; ".join(issues)) from None  # one line, each problem with file:line
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
        int8_files=MappingProxyType({f: base / e.path for f, e in manifest.int8.items()}),
        int8_sha256=MappingProxyType({f: e.sha256 for f, e in manifest.int8.items()}),
        quantization=MappingProxyType({f: MappingProxyType(r) for f, r in manifest.quantization.items()}),
    )


# --- bare Ultralytics exports -------------------------------------------------------------


def _literal(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return ast.literal_eval(text)


def _os_problem(exc: BaseException) -> str:
    if isinstance(exc, UnicodeDecodeError):
        return f"byte {exc.start} is not UTF-8"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _yaml_where(path: Path, exc: yaml.YAMLError) -> str:
    mark = getattr(exc, "problem_mark", None)
    return f"{path}:{mark.line + 1}" if mark is not None else str(path)


def _yaml_problem(exc: yaml.YAMLError) -> str:
    problem = getattr(exc, "problem", None)
    return str(problem) if problem else str(exc).splitlines()[0]


def _onnx_metadata(path: Path) -> dict[str, Any]:
    require_model_file(path, "an ONNX model")
    out: dict[str, Any] = {}
    for key, value in read_metadata_props(path).items():
        try:
            out[key] = _literal(value)
        except (ValueError, SyntaxError, MemoryError, RecursionError):
            out[key] = value
    return out


def _openvino_metadata(xml: Path) -> tuple[dict[str, Any], Path]:
    """Ultralytics' ``metadata.yaml`` beside the IR (empty when there is none)."""
    meta_file = xml.parent / "metadata.yaml"
    if not meta_file.exists():
        return {}, meta_file
    expected = "Ultralytics export metadata (a YAML mapping with task, names, imgsz)"
    try:
        text = meta_file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ModelError(f"{meta_file}: cannot read it ({_os_problem(exc)}); expected {expected}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise ModelError(
            f"{_yaml_where(meta_file, exc)}: invalid YAML ({_yaml_problem(exc)}); expected {expected}"
        ) from None
    if data is None:
        return {}, meta_file
    if not isinstance(data, dict):
        raise ModelError(f"{meta_file}: expected {expected}, got a {type(data).__name__}")
    return data, meta_file


def _tflite_metadata(path: Path) -> dict[str, Any]:

    require_model_file(path, "a TFLite flatbuffer")
    try:
        with zipfile.ZipFile(path) as zf:
            names = zf.namelist()
            if not names:
                return {}
            value = _literal(zf.read(names[0]).decode("utf-8"))
            return value if isinstance(value, dict) else {}
    except (zipfile.BadZipFile, ValueError, SyntaxError, MemoryError, RecursionError, OSError):
        return {}


def _engine_metadata(path: Path) -> dict[str, Any]:

    require_model_file(path, "a TensorRT engine")
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
    if isinstance(names, dict) and names:
        try:
            ordered = sorted(((int(k), str(v)) for k, v in names.items()))
        except (TypeError, ValueError):
            raise ModelError(
                f"{where}: metadata 'names' must map class indices to names, e.g. {{0: person}}"
            ) from None
        return tuple(v for _, v in ordered)
    if isinstance(names, list | tuple) and names and all(isinstance(v, str | int) for v in names):
        return tuple(str(v) for v in names)
    raise ModelError(
        f"{where}: metadata 'names' must map class indices to names (e.g. {{0: person}}) or list them, "
        f"got {_shown(names)}"
    )


def _shown(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= limit else text[: limit - 3] + '...'}"


def _positive_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value > 0:
        return value
    if isinstance(value, str) and value.strip().isdigit() and int(value) > 0:
        return int(value)
    return None


def _imgsz(value: Any, where: Path) -> tuple[int, int] | None:
    """Ultralytics' ``imgsz`` ([height, width], or one int for a square) as (width, height)."""
    if value is None:
        return None
    square = _positive_int(value)
    if square is not None:
        return square, square
    if isinstance(value, list | tuple) and len(value) == 2:
        h, w = (_positive_int(v) for v in value)
        if h is not None and w is not None:
            return w, h
    raise ModelError(f"{where}: metadata 'imgsz' must be [height, width] in pixels, got {_shown(value)}")


def _kpt_shape(value: Any, where: Path) -> list[int]:
    if isinstance(value, list | tuple) and len(value) == 2:
        k, d = (_positive_int(v) for v in value)
        if k is not None and d in (2, 3):
            return [k, d]
    raise ModelError(f"{where}: metadata 'kpt_shape' must be [keypoints, 2 or 3], got {_shown(value)}")


def _bare_file(path: Path) -> tuple[str, Path]:
    suffixes = {suffix: fmt for fmt, suffix in FORMAT_SUFFIX.items()}
    if path.is_dir():
        if path.suffix in suffixes:
            raise ModelError(f"{path}: is a directory; expected a {suffixes[path.suffix]} model file")
        xmls = sorted(path.glob("*.xml"))
        if len(xmls) != 1:
            raise ModelError(
                f"{path}: expected one OpenVINO .xml in the folder (or a {MANIFEST}), found {len(xmls)}"
            )
        return "openvino", xmls[0]
    if path.suffix in suffixes:
        return suffixes[path.suffix], path
    raise ModelError(
        f"{path}: unknown model file type; expected .onnx, .tflite, .xml, .engine or a model.yaml folder"
    )


def read_bare_export(path: Path) -> ModelPackage:
    """A model package from one exported file and the metadata Ultralytics embeds in it."""
    fmt, file = _bare_file(path)
    if not file.exists():
        raise ModelError(f"{file}: model file not found")
    where = file
    if fmt == "onnx":
        meta = _onnx_metadata(file)
    elif fmt == "openvino":
        meta, where = _openvino_metadata(file)
    elif fmt == "tflite":
        meta = _tflite_metadata(file)
    else:
        meta = _engine_metadata(file)
    if not meta or "names" not in meta:
        raise ModelError(
            f"{where}: no Ultralytics metadata (task, names, imgsz) found; write a model.yaml "
            "manifest beside it naming task, decoder and labels"
        )
    task = meta.get("task", "detect")
    if task not in ("detect", "pose", "classify"):
        raise ModelError(
            f"{where}: metadata 'task' {task!r} is not supported; expected detect, pose or classify"
        )
    decoder: DecoderName = (
        "classify" if task == "classify" else "yolov10" if _truthy(meta.get("end2end")) else "yolov8"
    )
    options: dict[str, Any] = {}
    if "kpt_shape" in meta:
        options["kpt_shape"] = _kpt_shape(meta["kpt_shape"], where)
    elif task == "pose":
        raise ModelError(f"{where}: a pose model needs metadata 'kpt_shape' [keypoints, 2 or 3]")
    return ModelPackage(
        name=path.stem.removesuffix("_openvino_model"),
        task=task,
        decoder=decoder,
        labels=_labels_from_names(meta["names"], where),
        input=InputEntry(size=_imgsz(meta.get("imgsz"), where)),
        files=MappingProxyType({fmt: file}),
        sha256=MappingProxyType({fmt: None}),
        options=MappingProxyType(options),
        origin=file,
        license=str(meta["license"]) if "license" in meta else None,
    )


def _truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


# --- resolution --------------------------------------------------------------------------


def default_search_dirs(extra: Sequence[Path | None] = ()) -> list[Path]:
    """Where model packages are looked for, first match wins: ``extra`` (a config's
    ``models_dir``), ``$EDGE_MODELS_DIR``, ``./models``, the ``models/`` beside the venv edge runs
    in (``/opt/edge/venv`` -> ``/opt/edge/models``, as tools/install.sh lays it out) when that
    exists, and the source checkout's ``models/``."""
    import sys

    dirs = [p for p in extra if p is not None]
    if os.environ.get("EDGE_MODELS_DIR"):
        dirs.append(Path(os.environ["EDGE_MODELS_DIR"]))
    dirs.append(Path.cwd() / "models")
    beside_venv = Path(sys.prefix).parent / "models"
    if sys.prefix != sys.base_prefix and beside_venv.is_dir():
        dirs.append(beside_venv)
    dirs.append(Path(__file__).resolve().parent.parent / "models")  # a source checkout
    seen: list[Path] = []
    for d in dirs:
        if d not in seen:
            seen.append(d)
    return seen


def resolve_model(ref: str, search_dirs: Sequence[Path] | None = None) -> ModelPackage:
    """A model package by name, folder, manifest path or bare export file."""
    try:
        candidate = Path(check_path_text(ref))
        exists = candidate.exists()
    except (ValueError, OSError) as exc:
        raise ModelError(f"model path {ref[:200]!r}: {exc}") from None
    if exists:
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
