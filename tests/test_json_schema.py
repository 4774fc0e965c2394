"""``edge schema``: the JSON Schema an editor (VS Code's YAML extension, draft-07) validates
configs with accepts every shipped config and README example, rejects what ``edge`` rejects,
and agrees with the loader on a table of values."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from edge.config.json_schema import ENV_REF_PATTERN, config_json_schema
from edge.config.loader import parse_config
from edge.config.schema import BYTE_SIZE_PATTERN, DURATION_PATTERN, EdgeConfig, parse_duration
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent
SCHEMA = config_json_schema()
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
BASE: dict[str, Any] = {"models": {"m": {"path": "blazeface"}}}
CAMERA = {"source": {"type": "file", "path": "clip.mp4"}, "model": "m"}
ENV = {"PORT": "1884", "PASS": "secret", "COOLDOWN": "30s", "RUNNER": "litert"}


def schema_errors(data: Any) -> list[str]:
    return [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(data)]


def with_base(fragment: dict[str, Any]) -> dict[str, Any]:
    """``fragment`` merged one level deep into a minimal valid config."""
    out = json.loads(json.dumps(BASE))
    for key, value in fragment.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = {**out[key], **value}
        else:
            out[key] = value
    return out


def test_schema_is_valid_draft07_with_schema_and_title() -> None:
    jsonschema.Draft7Validator.check_schema(SCHEMA)
    jsonschema.Draft201909Validator.check_schema(SCHEMA)
    assert SCHEMA["$schema"] == "http://json-schema.org/draft-07/schema#"
    assert SCHEMA["title"] == "edge config file"
    assert SCHEMA["additionalProperties"] is False


def _keys(node: Any) -> set[str]:
    if isinstance(node, dict):
        return set(node).union(*(_keys(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(_keys(v) for v in node))
    return set()


def test_schema_has_no_pydantic_only_or_2020_keywords() -> None:
    leaked = _keys(SCHEMA) & {"ge", "gt", "le", "lt", "prefixItems", "discriminator", "$defs"}
    assert not leaked


def test_cli_prints_the_schema() -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    out = subprocess.run(
        [sys.executable, "-m", "edge", "schema"], capture_output=True, text=True, env=env, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == SCHEMA


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_validate(path: Path) -> None:
    assert schema_errors(yaml.safe_load(path.read_text())) == []


def readme_configs() -> list[tuple[str, dict[str, Any]]]:
    """The README's ```yaml blocks that are configs (whole, or sections of one, embedded into a
    minimal config); other YAML (model manifests) is left out."""
    blocks = re.findall(r"^```yaml\n(.*?)^```", (REPO / "README.md").read_text(), re.M | re.S)
    out = []
    for i, text in enumerate(blocks):
        data = yaml.safe_load(text)
        if isinstance(data, dict) and set(data) <= set(EdgeConfig.model_fields):
            out.append((f"block{i}:{','.join(data)}", data if "models" in data else with_base(data)))
    return out


def test_readme_has_config_examples() -> None:
    assert len(readme_configs()) >= 2


@pytest.mark.parametrize(("name", "data"), readme_configs(), ids=[n for n, _ in readme_configs()])
def test_readme_examples_validate(name: str, data: dict[str, Any]) -> None:
    assert schema_errors(data) == []


# (fragment, accepted): the schema and the loader (parse_config with ENV) must both give the verdict.
CASES: list[tuple[str, dict[str, Any], bool]] = [
    ("duration string", {"status_interval": "30s"}, True),
    ("duration minutes", {"cameras": {"c": CAMERA}, "rules": {"r": {"cameras": ["c"], "cooldown": "1.5m"}}}, True),
    ("duration ms", {"status_interval": "500ms"}, True),
    ("duration number", {"status_interval": 2.5}, True),
    ("duration env", {"cameras": {"c": CAMERA}, "rules": {"r": {"cameras": ["c"], "cooldown": "${COOLDOWN}"}}}, True),
    ("negative duration", {"status_interval": "-5s"}, False),
    ("negative number", {"status_interval": -5}, False),
    ("duration unit days", {"status_interval": "5d"}, False),
    ("duration garbage", {"status_interval": "soon"}, False),
    ("duration over bound", {"status_interval": 90000}, False),
    ("byte size MiB", {"actions": {"event_log_max_bytes": "16MiB"}}, True),
    ("byte size spaced", {"actions": {"snapshots": {"max_bytes": "512 MB"}}}, True),
    ("byte size int", {"actions": {"snapshots": {"max_bytes": 2_000_000}}}, True),
    ("byte size too small", {"actions": {"snapshots": {"max_bytes": 1000}}}, False),
    ("byte size bad unit", {"actions": {"event_log_max_bytes": "16 furlongs"}}, False),
    ("byte size negative", {"actions": {"event_log_max_bytes": -1}}, False),
    ("secret from env", {"mqtt": {"username": "edge", "password": "${PASS}"}}, True),
    ("port from env", {"mqtt": {"port": "${PORT}"}}, True),
    ("enum from env", {"models": {"m": {"path": "blazeface", "runner": "${RUNNER}"}}}, True),
    ("env with default", {"mqtt": {"port": "${NOPE:-1885}"}}, True),
    ("unknown top key", {"camras": {}}, False),
    ("unknown nested key", {"mqtt": {"hots": "x"}}, False),
    ("port wrong type", {"mqtt": {"port": "abc"}}, False),
    ("port out of range", {"mqtt": {"port": 70000}}, False),
    ("runner not a choice", {"models": {"m": {"path": "blazeface", "runner": "tpu"}}}, False),
    ("model name with space", {"models": {"my model": {"path": "blazeface"}}}, False),
    ("source type unknown", {"cameras": {"c": {**CAMERA, "source": {"type": "ftp", "path": "x"}}}}, False),
    ("source key of another type", {"cameras": {"c": {**CAMERA, "source": {"type": "file", "path": "x", "url": "y"}}}}, False),
    ("zone point of three", {"cameras": {"c": CAMERA}, "rules": {"r": {"cameras": ["c"], "zone": [[0, 0, 0], [1, 0], [1, 1]]}}}, False),
    ("score above 1", {"models": {"m": {"path": "blazeface", "score_threshold": 1.5}}}, False),
    ("models null", {"models": None}, False),
]  # fmt: skip


@pytest.mark.parametrize(
    ("fragment", "accepted"), [(f, a) for _, f, a in CASES], ids=[n for n, _, _ in CASES]
)
def test_schema_and_loader_agree(fragment: dict[str, Any], accepted: bool) -> None:
    data = with_base(fragment)
    assert (schema_errors(data) == []) is accepted, schema_errors(data)
    try:
        parse_config(yaml.safe_dump(data), env=ENV)
        loader_ok = True
    except ConfigError:
        loader_ok = False
    assert loader_ok is accepted


@pytest.mark.parametrize(
    "text", ["10", "2.5", ".5", "1e3", "+3s", "500ms", "10 s", " 5m ", "1h", "-5s", "-0.1", "5d", "s", "", "1.2.3s", "10 sec"]
)  # fmt: skip
def test_duration_pattern_matches_what_parse_duration_accepts(text: str) -> None:
    try:
        seconds = parse_duration(text)
        parsed = isinstance(seconds, float) and seconds >= 0
    except ValueError:
        parsed = False
    assert (re.search(DURATION_PATTERN, text) is not None) is parsed


@pytest.mark.parametrize(
    ("text", "valid"),
    [("512", True), ("16MiB", True), ("16mib", True), ("1.5 GB", True), ("1g", True), ("2k", True), ("8bit", True),
     ("1kibit", True), ("3 TiB", True), ("16 furlongs", False), ("MiB", False), ("", False),
     # pydantic reads a number and a unit from the start and ignores the rest; the schema does not
     ("16MiB x", False), ("1..5MB", False)],
)  # fmt: skip
def test_byte_size_pattern(text: str, valid: bool) -> None:
    """The schema accepts a size string only where pydantic does (never a false green)."""
    from pydantic import ByteSize, TypeAdapter, ValidationError

    matches = re.search(BYTE_SIZE_PATTERN, text) is not None
    assert matches is valid
    if matches:
        try:
            TypeAdapter(ByteSize).validate_python(text)
        except ValidationError as exc:
            pytest.fail(f"the schema accepts {text!r}, pydantic does not: {exc}")


@pytest.mark.parametrize(
    ("text", "is_ref"), [("${A}", True), ("x${A_1}y", True), ("${A:-}", True), ("${A:-x y}", True), ("$A", False), ("${1A}", False), ("${}", False), ("$${A}", True)]
)  # fmt: skip
def test_env_pattern_finds_the_loaders_references(text: str, is_ref: bool) -> None:
    assert (re.search(ENV_REF_PATTERN, text) is not None) is is_ref
