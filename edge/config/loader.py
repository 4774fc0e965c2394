"""Load a YAML config into ``EdgeConfig`` with errors that name the file, line and field.

Steps: parse YAML keeping each node's line, substitute ``${ENV}`` references, apply
``--set dotted.key=value`` overrides, validate with pydantic, then check cross-references.
Every problem becomes ``file:line: dotted.path: message`` (or ``--set key=value: ...`` for
an override); all problems are reported at once in a ``ConfigError``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from edge.config.schema import EdgeConfig
from edge.errors import ConfigError

Key = str | int
ConfigPath = tuple[Key, ...]

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")


@dataclass
class SourceMap:
    """Where each value of a loaded config came from: a file line or an override."""

    filename: str
    lines: dict[ConfigPath, int] = field(default_factory=dict)
    overrides: dict[ConfigPath, str] = field(default_factory=dict)

    def where(self, path: ConfigPath) -> str:
        """``file:line`` (or ``--set k=v``) of the deepest known prefix of ``path``."""
        for n in range(len(path), -1, -1):
            prefix = path[:n]
            if prefix in self.overrides:
                return f"--set {self.overrides[prefix]}"
            if prefix in self.lines:
                return f"{self.filename}:{self.lines[prefix]}"
        return self.filename

    def issue(self, path: ConfigPath, message: str) -> str:
        dotted = ".".join(str(p) for p in path)
        return f"{self.where(path)}: {dotted}: {message}" if dotted else f"{self.where(path)}: {message}"


@dataclass(frozen=True)
class LoadedConfig:
    config: EdgeConfig
    source: SourceMap
    path: Path | None


def record_lines(node: yaml.Node, path: ConfigPath, lines: dict[ConfigPath, int]) -> None:
    lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = str(key_node.value)
            lines[path + (key,)] = key_node.start_mark.line + 1
            record_lines(value_node, path + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            record_lines(item, path + (i,), lines)


def _normalise_keys(data: Any) -> Any:
    """YAML may give int or bool keys (``1883:``); the schema and the line map use strings."""
    if isinstance(data, dict):
        return {str(k): _normalise_keys(v) for k, v in data.items()}
    if isinstance(data, list):
        return [_normalise_keys(v) for v in data]
    return data


def _substitute_env(
    data: Any, path: ConfigPath, env: dict[str, str], issues: list[tuple[ConfigPath, str]]
) -> Any:
    if isinstance(data, dict):
        return {k: _substitute_env(v, path + (k,), env, issues) for k, v in data.items()}
    if isinstance(data, list):
        return [_substitute_env(v, path + (i,), env, issues) for i, v in enumerate(data)]
    if isinstance(data, str) and "$" in data:

        def replace(match: re.Match[str]) -> str:
            if match.group(0) == "$$":
                return "$"
            name, default = match.group(1), match.group(2)
            if name in env:
                return env[name]
            if default is not None:
                return default
            issues.append(
                (path, f"environment variable {name} is not set (write ${{{name}:-default}} for a default)")
            )
            return ""

        return _ENV_REF.sub(replace, data)
    return data


def _parse_override(text: str) -> tuple[ConfigPath, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError("expected dotted.key=value")
    parts: list[Key] = [int(p) if p.isdigit() else p for p in key.strip().split(".")]
    if any(p == "" for p in parts):
        raise ValueError("empty key segment")
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as exc:
        raise ValueError(f"value is not valid YAML: {exc}") from None
    return tuple(parts), value


def _apply_override(data: dict[str, Any], path: ConfigPath, value: Any) -> None:
    node: Any = data
    for i, key in enumerate(path[:-1]):
        nxt = path[i + 1]
        if isinstance(node, list) and isinstance(key, int):
            if key >= len(node):
                raise ValueError(f"index {key} is past the end of {'.'.join(map(str, path[:i]))}")
            node = node[key]
            continue
        if not isinstance(node, dict):
            raise ValueError(f"{'.'.join(map(str, path[:i]))} is not a mapping")
        if str(key) not in node or node[str(key)] is None:
            node[str(key)] = [] if isinstance(nxt, int) else {}
        node = node[str(key)]
    last = path[-1]
    if isinstance(node, list) and isinstance(last, int):
        if last >= len(node):
            raise ValueError(f"index {last} is past the end of the list")
        node[last] = value
    elif isinstance(node, dict):
        node[str(last)] = value
    else:
        raise ValueError(f"{'.'.join(map(str, path[:-1]))} is not a mapping")


def _data_path(data: Any, loc: Sequence[Key]) -> ConfigPath:
    """Map a pydantic ``loc`` onto the data: skip union tags and ``[key]`` markers it adds."""
    out: list[Key] = []
    node = data
    for part in loc:
        if isinstance(node, dict) and str(part) in node:
            out.append(str(part))
            node = node[str(part)]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
            out.append(part)
            node = node[part]
        elif part == "[key]" or (isinstance(node, dict) and node.get("type") == part):
            continue
        else:
            out.append(part)  # a missing field: named, at its parent's line
            break
    return tuple(out)


def pydantic_problems(exc: ValidationError, data: Any) -> list[tuple[ConfigPath, str]]:
    out = []
    for err in exc.errors(include_url=False):
        path = _data_path(data, err["loc"])
        message = err["msg"]
        if err["type"] == "extra_forbidden":
            message = "unknown key (check the spelling; `edge schema` lists the keys)"
        elif err["type"] == "union_tag_invalid":
            given = err.get("input")
            tag = given.get("type") if isinstance(given, dict) else given
            message = f"unknown type {tag!r}; expected one of {err['ctx']['expected_tags']}"
            if isinstance(given, dict) and "type" in given:
                path = (*path, "type")
        elif message.startswith("Value error, "):
            message = message[len("Value error, ") :]
        out.append((path, message))
    return out


def _cross_reference_issues(cfg: EdgeConfig) -> Iterable[tuple[ConfigPath, str]]:
    for cam_name, cam in cfg.cameras.items():
        if cam.model not in cfg.models:
            known = ", ".join(sorted(cfg.models)) or "none"
            yield ("cameras", cam_name, "model"), f"unknown model {cam.model!r} (models: {known})"
    for rule_name, rule in cfg.rules.items():
        for i, cam_name in enumerate(rule.cameras):
            if cam_name not in cfg.cameras:
                known = ", ".join(sorted(cfg.cameras)) or "none"
                yield ("rules", rule_name, "cameras", i), f"unknown camera {cam_name!r} (cameras: {known})"


def parse_config(
    text: str,
    filename: str = "<config>",
    overrides: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> LoadedConfig:
    """Parse and validate config text; raises ``ConfigError`` listing every problem."""
    source = SourceMap(filename)
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc)
        raise ConfigError([f"{filename}{line}: invalid YAML: {problem}"]) from None
    if node is not None:
        record_lines(node, (), source.lines)
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            [f"{filename}:1: the top level must be a mapping of sections, got {type(data).__name__}"]
        )
    data = _normalise_keys(data)

    problems: list[tuple[ConfigPath, str]] = []
    data = _substitute_env(data, (), dict(os.environ) if env is None else env, problems)
    issues = [source.issue(p, m) for p, m in problems]

    for text_override in overrides:
        try:
            path, value = _parse_override(text_override)
            _apply_override(data, path, value)
        except ValueError as exc:
            issues.append(f"--set {text_override}: {exc}")
            continue
        source.overrides[tuple(str(p) if isinstance(p, str) else p for p in path)] = text_override
    try:
        cfg = EdgeConfig.model_validate(data)
    except ValidationError as exc:
        # An unset ${ENV} leaves "" behind: report the variable, not the empty value it caused.
        env_paths = {p for p, _ in problems}
        issues += [source.issue(p, m) for p, m in pydantic_problems(exc, data) if p not in env_paths]
        raise ConfigError(issues) from None
    if issues:
        raise ConfigError(issues)
    cross = [source.issue(p, m) for p, m in _cross_reference_issues(cfg)]
    if cross:
        raise ConfigError(cross)
    return LoadedConfig(cfg, source, None)


def load_config(
    path: Path | str, overrides: Sequence[str] = (), env: dict[str, str] | None = None
) -> LoadedConfig:
    """Read and validate a config file (see ``parse_config``)."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError([f"{p}: cannot read config: {exc.strerror or exc}"]) from None
    loaded = parse_config(text, str(path), overrides, env)
    return LoadedConfig(loaded.config, loaded.source, p)
