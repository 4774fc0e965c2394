"""The ``metadata_props`` of an ONNX file (where Ultralytics writes task, names and imgsz),
read straight from its protobuf encoding.

Only the top level of ``ModelProto`` is walked, through a read-only memory map: the graph
with its weights is skipped by its length, never parsed or copied. So a daemon that runs the
model on OpenVINO or TensorRT learns its labels without importing ONNX Runtime and building a
session (28 MB of memory for YOLOv8n), and without the ``onnx`` package, which edge does not
depend on. A file whose top level does not parse as a model with an IR version and a graph
is refused with the byte offset where it went wrong.
"""

from __future__ import annotations

import mmap
from pathlib import Path

from edge.errors import ModelError

# ModelProto field numbers (onnx/onnx.proto): the ones this reader needs.
IR_VERSION, GRAPH, METADATA_PROPS = 1, 7, 14
KEY, VALUE = 1, 2  # StringStringEntryProto
VARINT, I64, LEN, I32 = 0, 1, 2, 5  # wire types; 3 and 4 (groups) are not used by ONNX


class _Malformed(ValueError):
    pass


def _varint(buf: memoryview | mmap.mmap, pos: int, end: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= end:
            raise _Malformed(f"the file ends inside a number at byte {pos}")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift >= 64:
            raise _Malformed(f"a number longer than 10 bytes at byte {pos}")


def _fields(buf: memoryview | mmap.mmap, pos: int, end: int) -> list[tuple[int, int, int, int]]:
    """(field number, wire type, start, stop) of each field in ``buf[pos:end]``; for a varint
    the value is ``start`` and ``stop`` is unused."""
    out = []
    while pos < end:
        at = pos
        tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise _Malformed(f"field number 0 at byte {at}")
        if wire == VARINT:
            value, pos = _varint(buf, pos, end)
            out.append((number, wire, value, pos))
        elif wire == LEN:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise _Malformed(f"a field of {length} bytes at byte {at} runs past the end ({end})")
            out.append((number, wire, pos, pos + length))
            pos += length
        elif wire in (I64, I32):
            size = 8 if wire == I64 else 4
            if pos + size > end:
                raise _Malformed(f"the file ends inside a fixed-size field at byte {at}")
            out.append((number, wire, pos, pos + size))
            pos += size
        else:
            raise _Malformed(f"wire type {wire} (not used by ONNX) at byte {at}")
    return out


def _text(buf: memoryview | mmap.mmap, start: int, stop: int) -> str:
    try:
        return bytes(buf[start:stop]).decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Malformed(f"metadata text at byte {start} is not UTF-8") from exc


def read_metadata_props(path: Path) -> dict[str, str]:
    """``metadata_props`` of the ONNX model ``path`` as a dict (empty when it has none).
    ModelError when the file is not an ONNX model."""
    try:
        with path.open("rb") as fh:
            try:
                mapped = mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ)
            except (OSError, ValueError):  # a filesystem without mmap, or an empty file
                data = fh.read()
                if not data:
                    raise _Malformed("the file is empty") from None
                return _read(memoryview(data), len(data))
            with mapped:
                return _read(mapped, len(mapped))
    except _Malformed as exc:
        raise ModelError(f"{path}: not a readable ONNX model ({exc})") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror or exc}); expected an ONNX model") from None


def _read(buf: memoryview | mmap.mmap, size: int) -> dict[str, str]:
    fields = _fields(buf, 0, size)
    numbers = {(number, wire) for number, wire, _, _ in fields}
    if (IR_VERSION, VARINT) not in numbers or (GRAPH, LEN) not in numbers:
        raise _Malformed("no IR version and graph at its top level")
    props: dict[str, str] = {}
    for number, wire, start, stop in fields:
        if number != METADATA_PROPS or wire != LEN:
            continue
        key = value = ""
        for inner, inner_wire, a, b in _fields(buf, start, stop):
            if inner_wire == LEN and inner in (KEY, VALUE):
                if inner == KEY:
                    key = _text(buf, a, b)
                else:
                    value = _text(buf, a, b)
        props[key] = value
    return props
