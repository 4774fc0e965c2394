"""Fuzzing the config path: ``load_config`` + ``preflight`` either return or raise ``ConfigError``
whose every line starts with the file name (or ``--set``), and never hang.

Two sources of inputs: configs drawn from the JSON schema (``EdgeConfig.model_json_schema()``),
sometimes with values of the wrong type or out of range, and YAML breakage of a valid config
(byte flips, truncation, deep nesting, alias chains, non-UTF-8 bytes, huge numbers). Budgets are
fixed and derandomised, so CI runs the same examples every time. A hang fails through a
``signal.alarm`` guard (a generous bound, not a timing assertion).
"""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.config import EdgeConfig, load_config
from edge.config.preflight import preflight
from edge.errors import ConfigError

HANG_SECONDS = 20
FUZZ = settings(
    max_examples=300,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
SCHEMA = EdgeConfig.model_json_schema()

VALID = """\
state_dir: ./state
models:
  face:
    path: blazeface
cameras:
  door:
    source: {type: rtsp, url: 'rtsp://cam/1', open_timeout: 5s, read_timeout: 2s}
    model: face
    masks:
      - [[0, 0], [0.2, 0], [0.2, 0.2]]
  yard:
    source: {type: file, path: clip.mp4}
    model: face
rules:
  r: &rule
    cameras: [door]
    labels: [face]
    zone: [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]
    cooldown: 30s
  s:
    <<: *rule
    cameras: [door, yard]
mqtt:
  host: localhost
  prefix: site/edge
  tls: {ca_file: ca.pem}
  homeassistant: {enabled: true}
metrics: {enabled: true, host: 127.0.0.1, port: 0}
"""


class Hang(Exception):
    pass


@contextmanager
def hang_guard(seconds: int) -> Iterator[None]:
    def on_alarm(signum: int, frame: FrameType | None) -> None:
        raise Hang(f"load_config + preflight still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def check_one(path: Path, content: bytes, overrides: list[str] | None = None) -> None:
    path.write_bytes(content)
    with hang_guard(HANG_SECONDS):
        try:
            loaded = load_config(path, overrides or [], env={"CAM_PASS": "x"})
            issues = preflight(loaded)
        except ConfigError as exc:
            issues = exc.issues
    for line in issues:
        assert line.startswith((str(path), "--set ")), line
        assert "\n" not in line and line.isprintable(), line
        line.encode("utf-8")


@pytest.fixture
def workdir(tmp_path: Path, models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Relative paths in fuzzed configs land in a temporary folder, not the checkout."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "clip.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
    return tmp_path


# --- configs from the JSON schema ------------------------------------------------------------

ODD_TEXT = st.sampled_from(["", "~", "~nosuchuser/x", "/", "..", "a/#", "+", "$SYS", "\x00", "\ud800", "é", "a" * 300,
                            "/proc/x", "/dev/null", "1e15", ".inf", "-1", "10s", "::1", "person"])  # fmt: skip
TEXT = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), min_size=1, max_size=12)
WRONG = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT, st.lists(st.integers(), max_size=3), st.dictionaries(st.sampled_from(["a", "type"]), st.integers(), max_size=2),
)  # fmt: skip


def _ref(schema: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        schema = SCHEMA["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    return schema


def from_schema(schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
    """Values valid for ``schema`` most of the time, a wrong value (type or range) now and then."""
    valid = _valid(schema, depth)
    if not depth:
        return valid
    return st.integers(0, 24).flatmap(lambda n: WRONG if n == 0 else valid)


def _valid(schema: dict[str, Any], depth: int) -> st.SearchStrategy[Any]:
    schema = _ref(schema)
    for key in ("anyOf", "oneOf"):
        if key in schema:
            return st.one_of([from_schema(s, depth + 1) for s in schema[key]])
    if "enum" in schema:
        return st.sampled_from(schema["enum"])
    if "const" in schema:
        return st.just(schema["const"])
    kind = schema.get("type")
    if kind == "object":
        props = schema.get("properties", {})
        values = schema.get("additionalProperties")
        if props:
            required = set(schema.get("required", []))
            return st.fixed_dictionaries(
                {k: from_schema(v, depth + 1) for k, v in props.items() if k in required},
                optional={k: from_schema(v, depth + 1) for k, v in props.items() if k not in required},
            )
        values = next(iter(schema.get("patternProperties", {}).values()), values)
        if isinstance(values, dict):
            names = st.sampled_from(["face", "door", "yard", "r", "face", "door", "bad name"])
            return st.dictionaries(names, from_schema(values, depth + 1), min_size=1, max_size=2)
        return st.dictionaries(st.text(max_size=5), WRONG, max_size=2)
    if kind == "array":
        if "prefixItems" in schema:
            return st.tuples(*[from_schema(s, depth + 1) for s in schema["prefixItems"]]).map(list)
        items = schema.get("items", {})
        if _ref(items).get("type") == "string" and "pattern" in _ref(items):  # names of cameras
            return st.lists(st.sampled_from(["face", "door", "yard", "r"]), min_size=1, max_size=3)
        return st.lists(from_schema(items, depth + 1), min_size=schema.get("minItems", 0), max_size=4)
    if kind == "string":
        if "pattern" in schema:  # a name: mostly one the other sections use
            return st.sampled_from(["face", "door", "yard", "r", "x y"])
        if schema.get("format") == "path":
            return st.one_of(st.sampled_from(["state", "s/t", "clip.mp4", "blazeface", "/tmp", "~/x"]), TEXT)
        return st.one_of(st.sampled_from(["blazeface", "blazepose", "face", "localhost", "edge"]), TEXT, ODD_TEXT)
    if kind == "integer":
        low = schema.get("minimum", -5)
        return st.integers(low, schema.get("maximum", max(low, 10**6)))
    if kind == "number":
        low = schema.get("minimum", -1.0)
        return st.one_of(st.floats(low, schema.get("maximum", max(low, 1e6))), st.floats())
    if kind == "boolean":
        return st.booleans()
    if kind == "null":
        return st.none()
    return WRONG


@FUZZ
@given(config=from_schema(SCHEMA))
def test_configs_from_the_schema(config: dict[str, Any], workdir: Path) -> None:
    text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
    check_one(workdir / "fuzz.yaml", text.encode("utf-8", "surrogateescape"))


# --- YAML breakage of a valid config ------------------------------------------------------------

VALID_BYTES = VALID.encode()


@st.composite
def broken_yaml(draw: st.DrawFn) -> bytes:
    data = bytearray(VALID_BYTES)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "truncate", "insert", "nest", "aliases", "number", "type", "bytes"]))
        at = draw(st.integers(0, max(len(data) - 1, 0)))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "truncate":
            del data[at:]
        elif how == "insert":
            data[at:at] = draw(st.sampled_from([b"&a ", b"*a", b"<<: ", b"{", b"[", b"\n  ", b": ", b"- ", b"---\n",
                                                b"!!binary ", b"!!python/object:os.system ", b'"\\ud800"', b"\t"]))  # fmt: skip
        elif how == "nest":
            n = draw(st.integers(1, 3000))
            data += b"deep: " + b"[" * n + b"]" * draw(st.sampled_from([n, 0, n // 2]))
        elif how == "aliases":
            levels, width = draw(st.integers(1, 10)), draw(st.integers(1, 12))
            lines = [b"x0: &x0 [" + b",".join([b"v"] * width) + b"]"]
            lines += [f"x{i}: &x{i} [{','.join([f'*x{i - 1}'] * width)}]".encode() for i in range(1, levels)]
            data += b"\nextra:\n" + b"".join(b"  " + line + b"\n" for line in lines)
        elif how == "number":
            number = draw(st.sampled_from(["9" * 5000, "1e999", "-1e999", ".nan", ".inf", "0x" + "f" * 200, "1_000_000", "-0"]))
            key = draw(st.sampled_from(["cooldown", "open_timeout", "read_timeout", "port", "buffer_slots", "min_score"]))
            data = bytearray(VALID_BYTES.replace(f"{key}: ".encode(), f"{key}: {number} #".encode()) if key.encode() in VALID_BYTES
                             else VALID_BYTES + f"\nmqtt_port_dup: {number}\n".encode())  # fmt: skip
        elif how == "type":
            old = draw(st.sampled_from([b"blazeface", b"localhost", b"[door]", b"30s", b"rtsp", b"true", b"0]"]))
            new = draw(st.sampled_from([b"[]", b"{}", b"~", b"-1", b"yes", b"2021-13-45", b"!!set {a}", b"''"]))
            data = bytearray(bytes(data).replace(old, new, 1))
        elif how == "bytes":
            data[at:at] = draw(st.binary(min_size=1, max_size=8))
    return bytes(data)


@FUZZ
@given(content=broken_yaml())
def test_broken_yaml(content: bytes, workdir: Path) -> None:
    check_one(workdir / "fuzz.yaml", content)


@settings(FUZZ, max_examples=100)
@given(key=st.sampled_from(["mqtt.port", "state_dir", "rules.r.zone", "cameras.door.source", "models.face.path",
                            "a.b.c", "rules.0", "mqtt.prefix", "metrics.host"]),
       value=st.one_of(st.text(max_size=30), st.sampled_from(["[" * 200, "&a [*a]", "{a: 1, a: 2}", "9" * 5000, "\ud800"])))  # fmt: skip
def test_overrides(key: str, value: str, workdir: Path) -> None:
    check_one(workdir / "fuzz.yaml", VALID_BYTES, [f"{key}={value}"])


def test_the_valid_config_passes_the_guard(workdir: Path) -> None:
    """The base of the breakage fuzz is a real config; its remaining issues are environmental
    (no ca.pem here) and reported as lines, as everything else."""
    path = workdir / "fuzz.yaml"
    path.write_bytes(VALID_BYTES)
    issues = preflight(load_config(path))
    assert issues == [f"{path}:26: mqtt.tls.ca_file: ca.pem: no such file"]
