"""Load a YAML config into ``EdgeConfig`` with errors that name the file, line and field.

Steps: compose the YAML safely (bounded size, nesting depth and alias expansion, no recursive
aliases, no duplicate keys; see ``compose_yaml``), substitute ``${ENV}`` references, apply
``--set dotted.key=value`` overrides, reject text no program can use (NUL, lone surrogates),
validate with pydantic, then check cross-references. Every problem becomes
``file:line: dotted.path: message`` (or ``--set key=value: ...`` for an override), one line
each; all problems are reported at once in a ``ConfigError``. What needs the filesystem or the
hardware is checked afterwards by ``edge.config.preflight``.
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
from edge.config.yaml_safe import (
    MAX_DEPTH,
    MAX_NODES,
    ConfigPath,
    Key,
    YamlProblem,
    compose_yaml,
    construct_yaml,
    line_of,
    one_line,
)
from edge.errors import ConfigError

_ENV_REF = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-(.*?))?\}")

MAX_CONFIG_BYTES = 512 * 1024
"""A config file larger than this is refused before it is parsed."""


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
        """One printable line: ``file:line: dotted.path: message``."""
        dotted = one_line(".".join(str(p) for p in path), 200)
        where = one_line(self.where(path), 300)
        message = one_line(message)
        return f"{where}: {dotted}: {message}" if dotted else f"{where}: {message}"


@dataclass(frozen=True)
class LoadedConfig:
    config: EdgeConfig
    source: SourceMap
    path: Path | None


def record_lines(node: yaml.Node, path: ConfigPath, lines: dict[ConfigPath, int]) -> None:
    """Map each key path under ``node`` to its line. Iterative; a node reached twice through
    aliases is walked once per path, and the walk stops after ``MAX_NODES`` entries."""
    todo: list[tuple[yaml.Node, ConfigPath]] = [(node, path)]
    budget = MAX_NODES
    while todo and budget > 0:
        budget -= 1
        current, where = todo.pop()
        lines.setdefault(where, current.start_mark.line + 1)
        if isinstance(current, yaml.MappingNode):
            for key_node, value_node in current.value:
                key = str(key_node.value) if isinstance(key_node, yaml.ScalarNode) else "?"
                lines.setdefault(where + (key,), key_node.start_mark.line + 1)
                if len(where) < MAX_DEPTH:
                    todo.append((value_node, where + (key,)))
        elif isinstance(current, yaml.SequenceNode) and len(where) < MAX_DEPTH:
            todo.extend((item, where + (i,)) for i, item in enumerate(current.value))


def load_yaml_value(text: str) -> Any:
    """``yaml.safe_load`` with the limits of ``compose_yaml``; raises ``ValueError``."""
    if _text_issue(text, ""):
        raise ValueError("the value is not valid Unicode (a lone surrogate, as from a non-UTF-8 byte)")
    try:
        return construct_yaml(compose_yaml(text))
    except YamlProblem as exc:
        raise ValueError(exc.message) from None
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or getattr(exc, "reason", None) or type(exc).__name__
        raise ValueError(f"value is not valid YAML: {problem}") from None


def _yaml_error_issue(exc: yaml.YAMLError, filename: str, text: str) -> str:
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    line = line_of(mark)
    if isinstance(exc, yaml.reader.ReaderError):
        line = text[: max(exc.position, 0)].count("\n") + 1
        char = exc.character if isinstance(exc.character, int) else ord(exc.character[:1] or b"\0")
        problem = f"unacceptable character #x{char:04x}: {exc.reason}"
    else:
        problem = getattr(exc, "problem", None) or str(exc)
    where = f"{filename}:{line}" if line else filename
    return one_line(f"{where}: invalid YAML: {problem}")


def _text_issue(text: str, filename: str) -> str | None:
    """Text a YAML file cannot hold: lone surrogates (from a caller's string, not a file)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        line = text[: exc.start].count("\n") + 1
        return f"{filename}:{line}: the text is not valid Unicode (a lone surrogate)"
    return None


def _bad_strings(data: Any, path: ConfigPath) -> Iterable[tuple[ConfigPath, str]]:
    """Strings with a NUL or a lone surrogate (a ``\\ud800`` escape), and binary values:
    nothing in a config can use them, and they crash the code that prints or opens them."""
    todo: list[tuple[Any, ConfigPath]] = [(data, path)]
    while todo:
        value, where = todo.pop()
        if isinstance(value, dict):
            for k, v in value.items():
                todo.append((k, where + (str(k),)) if isinstance(k, str) else (None, where))
                todo.append((v, where + (str(k),)))
        elif isinstance(value, list):
            todo.extend((v, where + (i,)) for i, v in enumerate(value))
        elif isinstance(value, bytes):
            yield where, "binary (!!binary) values are not supported"
        elif isinstance(value, str):
            if "\x00" in value:
                yield where, "text cannot contain a NUL character"
            elif any("\ud800" <= c <= "\udfff" for c in value):
                yield where, "text cannot contain a lone surrogate (an invalid \\ud800-\\udfff escape)"


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
    if len(parts) > MAX_DEPTH:
        raise ValueError(f"the key has more than {MAX_DEPTH} levels")
    value = load_yaml_value(raw) if raw.strip() else ""
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
            message = f"unknown type {one_line(repr(tag), 60)}; expected one of {err['ctx']['expected_tags']}"
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
            elif (why := rule.needs_tracking()) and not cfg.cameras[cam_name].tracking.enabled:
                yield (
                    ("rules", rule_name, "cameras", i),
                    f"camera {cam_name!r} has `tracking: {{enabled: false}}`, but {why}",
                )


def parse_config(
    text: str,
    filename: str = "<config>",
    overrides: Sequence[str] = (),
    env: dict[str, str] | None = None,
) -> LoadedConfig:
    """Parse and validate config text; raises ``ConfigError`` listing every problem."""
    source = SourceMap(filename)
    bad_text = _text_issue(text, filename)
    if bad_text:
        raise ConfigError([bad_text])
    try:
        node = compose_yaml(text)
        if node is not None:
            record_lines(node, (), source.lines)
        data = construct_yaml(node)
    except YamlProblem as exc:
        raise ConfigError([exc.issue(filename)]) from None
    except yaml.YAMLError as exc:
        raise ConfigError([_yaml_error_issue(exc, filename, text)]) from None
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
        shown = one_line(text_override, 200)
        try:
            path, value = _parse_override(text_override)
            _apply_override(data, path, value)
        except ValueError as exc:
            issues.append(f"--set {shown}: {one_line(str(exc))}")
            continue
        source.overrides[tuple(str(p) if isinstance(p, str) else p for p in path)] = shown
    bad = list(_bad_strings(data, ()))
    if bad:
        raise ConfigError(issues + [source.issue(p, m) for p, m in bad])
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
    """Read and validate a config file (see ``parse_config``); at most ``MAX_CONFIG_BYTES``,
    UTF-8. Errors start with ``str(path)`` (or ``--set``)."""
    name = str(path)
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_CONFIG_BYTES + 1)
    except (OSError, ValueError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([one_line(f"{name}: cannot read config: {reason}")]) from None
    if len(raw) > MAX_CONFIG_BYTES:
        raise ConfigError(
            [f"{name}: the config is larger than {MAX_CONFIG_BYTES // 1024} KiB; is it the right file?"]
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = f"0x{raw[exc.start]:02x}"
        raise ConfigError(
            [f"{name}:{line}: not UTF-8 text: byte {byte} at column {column}; save it as UTF-8"]
        ) from None
    loaded = parse_config(text, name, overrides, env)
    return LoadedConfig(loaded.config, loaded.source, Path(path))
