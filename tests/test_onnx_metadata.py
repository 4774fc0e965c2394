"""``edge.onnx_metadata``: ONNX ``metadata_props`` read from the protobuf encoding, checked
against the ``onnx`` package (a test dependency) on real files: the PP-OCR models, ONNX files
built with ``onnx.helper`` with Ultralytics-style metadata; and broken files refused with the
byte where they went wrong."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import onnx
import pytest
from onnx_graphs import ultralytics_metadata, yolov8_like_model

from edge.errors import ModelError
from edge.onnx_metadata import read_metadata_props

REPO = Path(__file__).resolve().parent.parent


def _expected(path: Path) -> dict[str, str]:
    return {p.key: p.value for p in onnx.load(str(path), load_external_data=False).metadata_props}


def _yolo(meta: dict[str, str] | None) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        return yolov8_like_model(tmp / "m.onnx", num_classes=3, size=64, metadata=meta)

    return make


def _shipped(name: str) -> Callable[[Path], Path]:
    def make(_tmp: Path) -> Path:
        found = sorted((REPO / "models" / "ppocr_det").glob(name))
        if not found:
            pytest.skip(f"models/ppocr_det/{name} not fetched (python tools/fetch_models.py)")
        return found[0]

    return make


def _with_fixed_fields(tmp: Path) -> Path:
    """Unknown top-level fields of 8 and 4 bytes (wire types 1 and 5) before the metadata:
    skipped by their size, as protobuf readers do."""
    path = _yolo({"task": "detect"})(tmp)
    data = path.read_bytes()
    path.write_bytes(b"\xf9\x01" + bytes(range(8)) + b"\xfd\x01" + bytes(range(4)) + data)
    return path


ULTRALYTICS = {str(k): str(v) for k, v in ultralytics_metadata(["person", "car", "bus"], 64).items()}
READABLE = [
    ("ultralytics-style", _yolo(ULTRALYTICS)),
    ("no-metadata", _yolo(None)),
    ("unicode-and-empty-values", _yolo({"names": "{0: 'Straße', 1: '车'}", "empty": "", "": "no key"})),
    ("fixed-size-fields-skipped", _with_fixed_fields),
    ("ppocr-rec-character-list", _shipped("*rec*.onnx")),
    ("ppocr-det", _shipped("*det*.onnx")),
]


@pytest.mark.parametrize(("case", "make"), READABLE, ids=[c[0] for c in READABLE])
def test_reads_what_onnx_reads(case: str, make: Callable[[Path], Path], tmp_path: Path) -> None:
    path = make(tmp_path)
    assert read_metadata_props(path) == _expected(path)


def _broken(transform: Callable[[bytes], bytes]) -> Callable[[Path], Path]:
    def make(tmp: Path) -> Path:
        good = yolov8_like_model(tmp / "good.onnx", num_classes=2, size=64, metadata=ULTRALYTICS)
        bad = tmp / "bad.onnx"
        bad.write_bytes(transform(good.read_bytes()))
        return bad

    return make


def _entry(key: bytes, value: bytes) -> bytes:
    inner = b"\x0a" + bytes([len(key)]) + key + b"\x12" + bytes([len(value)]) + value
    return b"\x72" + bytes([len(inner)]) + inner  # field 14, length-delimited


# (case, how the file is made, phrase of the one-line error)
BROKEN = [
    ("truncated-in-the-weights", _broken(lambda b: b[: len(b) // 2]), "runs past the end"),
    ("cut-inside-a-number", _broken(lambda b: b[:1] + b"\xff"), "ends inside a number"),
    ("random-bytes", _broken(lambda b: bytes((i * 197 + 11) % 256 for i in range(4096))), "not a readable"),
    ("text-file", _broken(lambda b: b"name: not a model\n" * 20), "not a readable ONNX model"),
    ("only-metadata", _broken(lambda b: _entry(b"task", b"detect")), "no IR version and graph"),
    ("metadata-not-utf8", _broken(lambda b: b + _entry(b"names", b"\xff\xfe")), "is not UTF-8"),
    ("group-wire-type", _broken(lambda b: b + b"\x0b"), "wire type 3"),
    ("empty", _broken(lambda b: b""), "the file is empty"),
    ("fixed-size-field-cut", _broken(lambda b: b + b"\x7d\x01\x02"), "inside a fixed-size field"),
    ("number-over-10-bytes", _broken(lambda b: b + b"\x08" + b"\xff" * 10 + b"\x01"), "longer than 10 bytes"),
]


@pytest.mark.parametrize(("case", "make", "phrase"), BROKEN, ids=[c[0] for c in BROKEN])
def test_a_broken_file_is_refused_naming_it(
    case: str, make: Callable[[Path], Path], phrase: str, tmp_path: Path
) -> None:
    path = make(tmp_path)
    with pytest.raises(ModelError) as err:
        read_metadata_props(path)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and phrase in message and "\n" not in message


def test_a_bare_onnx_export_loads_without_onnx_runtime(tmp_path: Path) -> None:
    """Labels of an Ultralytics ONNX come from this reader: resolving the model imports no
    ONNX Runtime (a daemon running it on OpenVINO never loads it)."""
    path = yolov8_like_model(tmp_path / "yolo.onnx", num_classes=3, size=64, metadata=ULTRALYTICS)
    code = (
        "import sys; from edge.models import resolve_model; "
        f"p = resolve_model({str(path)!r}); "
        "print(p.labels, 'onnxruntime' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["('person',", "'car',", "'bus')", "False"]
