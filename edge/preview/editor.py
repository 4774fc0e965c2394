"""The zone editor's server side: points clicked on a frame -> a YAML snippet, the config it
would make, and that config checked with the same code as ``edge check-config``.

A drawing is a zone (a rule's ``zone``: a new rule, or a new zone for an existing rule), a line
(a ``kind: line`` rule's ``line``: a new line rule, or a new line for an existing one) or a mask
(appended to the camera's ``masks``). The candidate config is the original text with the
snippet spliced in where it belongs, so comments and layout survive; when the original's layout
does not allow a faithful splice (flow-style sections, say) the whole config is written out
again instead. Either way the result is verified to mean exactly the original plus the drawing.
Nothing is written unless the user asks, and then never over the original (``save_beside``).
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from edge.config.loader import MAX_CONFIG_BYTES, parse_config
from edge.config.preflight import preflight
from edge.errors import ConfigError

DrawingKind = Literal["zone", "line", "mask"]
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
DECIMALS = 3
MAX_POINTS = 64


@dataclass(frozen=True)
class Drawing:
    """What the user drew on ``camera``'s frame; points normalised to the frame (0..1)."""

    kind: DrawingKind
    camera: str
    points: tuple[tuple[float, float], ...]
    rule: str = ""  # zones and lines: the rule's name
    labels: tuple[str, ...] = ()  # new rules: the labels that count

    @property
    def key(self) -> str:
        """The rule's key the drawing sets (``zone`` or ``line``)."""
        return "line" if self.kind == "line" else "zone"

    @staticmethod
    def from_json(data: Any) -> Drawing:
        """From the page's JSON; raises ValueError with a message for the page."""
        if not isinstance(data, dict):
            raise ValueError("expected a JSON object")
        kind = data.get("kind")
        if kind not in ("zone", "line", "mask"):
            raise ValueError("kind must be 'zone', 'line' or 'mask'")
        camera = str(data.get("camera", ""))
        raw = data.get("points")
        if not isinstance(raw, list) or len(raw) > MAX_POINTS:
            raise ValueError(f"points must be a list of at most {MAX_POINTS} [x, y] pairs")
        points = []
        for p in raw:
            if not (isinstance(p, list) and len(p) == 2 and all(isinstance(v, (int, float)) for v in p)):
                raise ValueError("each point must be [x, y] with numbers")
            points.append((_clamp(p[0]), _clamp(p[1])))
        labels = data.get("labels") or []
        if isinstance(labels, str):
            labels = [s.strip() for s in labels.split(",") if s.strip()]
        if not isinstance(labels, list) or not all(isinstance(s, str) for s in labels):
            raise ValueError("labels must be a list of names")
        return Drawing(kind, camera, tuple(points), str(data.get("rule", "")).strip(), tuple(labels))


def _clamp(v: float) -> float:
    return round(min(1.0, max(0.0, float(v))), DECIMALS)


def _flow_points(points: Sequence[tuple[float, float]]) -> str:
    return "[" + ", ".join(f"[{x:g}, {y:g}]" for x, y in points) + "]"


def scalar(text: str) -> str:
    """``text`` as a YAML scalar that reads back as that string: plain when it can be (``door``),
    quoted when plain would mean something else (``on`` is true, ``a: b`` a mapping)."""
    if text and text.strip() == text and not any(c in text for c in ",[]{}#&*!|>'\"%@`"):
        try:
            if yaml.safe_load(text) == text:
                return text
        except yaml.YAMLError:
            pass
    return json.dumps(text)


def _flow_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(scalar(i) for i in items) + "]"


def snippet(drawing: Drawing, existing_rule: bool) -> str:
    """The YAML a person pastes into the config (top-level keys included)."""
    pts = _flow_points(drawing.points)
    cam = scalar(drawing.camera)
    if drawing.kind == "mask":
        return f"cameras:\n  {cam}:\n    masks:\n      - {pts}\n"
    lines = ["rules:", f"  {scalar(drawing.rule) if drawing.rule else 'RULE_NAME'}:"]
    if not existing_rule:
        if drawing.kind == "line":
            lines.append("    kind: line")
        lines.append(f"    cameras: {_flow_list([drawing.camera])}")
        if drawing.labels:
            lines.append(f"    labels: {_flow_list(drawing.labels)}")
    lines.append(f"    {drawing.key}: {pts}")
    return "\n".join(lines) + "\n"


def merged(data: dict[str, Any], drawing: Drawing) -> dict[str, Any]:
    """The config data with the drawing applied (``data`` is not changed)."""
    out = copy.deepcopy(data)
    pts = [[x, y] for x, y in drawing.points]
    if drawing.kind == "mask":
        cams = out.setdefault("cameras", {})
        cam = cams.setdefault(drawing.camera, {}) if isinstance(cams, dict) else {}
        if isinstance(cam, dict):
            masks = cam.get("masks")
            cam["masks"] = [*masks, pts] if isinstance(masks, list) else [pts]
        return out
    rules = out.get("rules")
    if not isinstance(rules, dict):
        rules = out["rules"] = {}
    rule = rules.get(drawing.rule)
    if isinstance(rule, dict):
        rule[drawing.key] = pts
    else:
        new: dict[str, Any] = {"kind": "line"} if drawing.kind == "line" else {}
        new["cameras"] = [drawing.camera]
        if drawing.labels:
            new["labels"] = list(drawing.labels)
        new[drawing.key] = pts
        rules[drawing.rule] = new
    return out


# -- splicing the snippet into the original text -------------------------------------------------


def _mapping_get(node: yaml.Node, key: str) -> tuple[yaml.Node, yaml.Node] | None:
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return k, v
    return None


def _line_end(text: str, index: int) -> int:
    """Index just after the end of the line holding ``index - 1`` (where a new line may go)."""
    if index > 0 and text[index - 1] == "\n":
        return index
    nl = text.find("\n", index)
    return len(text) if nl < 0 else nl + 1


def _insert_block(text: str, parent: yaml.MappingNode, lines: list[str]) -> str:
    """Insert ``lines`` (already indented) after the last entry of a block mapping."""
    end = _line_end(text, parent.value[-1][1].end_mark.index)
    # Trailing comment lines and blank lines belong to what follows; insert before them.
    body = text[:end]
    if not body.endswith("\n"):
        body += "\n"
    return body + "".join(line + "\n" for line in lines) + text[end:]


def _splice(text: str, drawing: Drawing) -> str:
    root = yaml.compose(text)
    if not isinstance(root, yaml.MappingNode) or root.flow_style:
        raise ValueError("the top level is not a block mapping")
    pts = _flow_points(drawing.points)
    if drawing.kind == "mask":
        cams = _mapping_get(root, "cameras")
        cam = _mapping_get(cams[1], drawing.camera) if cams else None
        if cam is None or not isinstance(cam[1], yaml.MappingNode) or cam[1].flow_style:
            raise ValueError("the camera is not a block mapping")
        indent = " " * cam[1].value[0][0].start_mark.column
        masks = _mapping_get(cam[1], "masks")
        if masks is None:
            return _insert_block(text, cam[1], [f"{indent}masks:", f"{indent}  - {pts}"])
        seq = masks[1]
        if not isinstance(seq, yaml.SequenceNode) or seq.flow_style or not seq.value:
            raise ValueError("masks is not a block sequence")
        item_indent = " " * (seq.start_mark.column)
        end = _line_end(text, seq.value[-1].end_mark.index)
        return text[:end] + f"{item_indent}- {pts}\n" + text[end:]
    rules = _mapping_get(root, "rules")
    if rules is not None and isinstance(rules[1], yaml.MappingNode) and rules[1].value:
        if rules[1].flow_style:
            raise ValueError("rules is a flow mapping")
        existing = _mapping_get(rules[1], drawing.rule)
        if existing is not None:
            rule = existing[1]
            shape = _mapping_get(rule, drawing.key)
            if shape is not None:
                node = shape[1]
                start = node.start_mark.index
                if isinstance(node, yaml.SequenceNode) and not node.flow_style and node.value:
                    end = _line_end(text, node.value[-1].end_mark.index)  # a block list: whole lines
                    return text[:start] + pts + "\n" + text[end:]
                return text[:start] + pts + text[node.end_mark.index :]
            if not isinstance(rule, yaml.MappingNode) or rule.flow_style:
                raise ValueError("the rule is not a block mapping")
            indent = " " * rule.value[0][0].start_mark.column
            return _insert_block(text, rule, [f"{indent}{drawing.key}: {pts}"])
        indent = " " * rules[1].value[0][0].start_mark.column
        body = snippet(drawing, existing_rule=False).splitlines()[1:]
        return _insert_block(text, rules[1], [indent + line[2:] for line in body])
    if rules is not None:
        raise ValueError("rules is empty or not a mapping")
    sep = "" if text.endswith("\n") or not text else "\n"
    return text + sep + snippet(drawing, existing_rule=False)


REWRITTEN = "# written by edge preview: the original's comments could not be kept\n"


def candidate_text(text: str, drawing: Drawing) -> str:
    """The original config text with the drawing added, verified to mean exactly that; when
    the original's layout allows no faithful splice, the whole config written out again (it
    then starts with ``REWRITTEN``)."""
    data = _load(text)
    want = merged(data, drawing)
    try:
        out = _splice(text, drawing)
        if yaml.safe_load(out) == want:
            return out
    except (ValueError, yaml.YAMLError, IndexError):
        pass
    return REWRITTEN + yaml.safe_dump(want, sort_keys=False, default_flow_style=None, allow_unicode=True)


def _load(text: str) -> dict[str, Any]:
    """The config's data; ValueError when it is not YAML or not a mapping any more."""
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark is not None else ""
        raise ValueError(f"the config no longer parses as YAML{where}; fix it first") from None
    if not isinstance(data, dict):
        raise ValueError("the config's top level is not a mapping")
    return data


def read_config_text(path: Path) -> str:
    """The config file's text, within the loader's size limit."""
    with path.open("rb") as fh:
        raw = fh.read(MAX_CONFIG_BYTES + 1)
    if len(raw) > MAX_CONFIG_BYTES:
        raise ValueError(f"larger than {MAX_CONFIG_BYTES // 1024} KiB")
    return raw.decode("utf-8")


@dataclass(frozen=True)
class CheckResult:
    snippet: str
    problems: tuple[str, ...]
    candidate: str
    note: str = ""  # what the person should know besides problems (other cameras, comments lost)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_drawing(
    text: str, config_name: str, drawing: Drawing, overrides: Sequence[str] = (), check_models: bool = True
) -> CheckResult:
    """The snippet for the drawing, and the problems ``edge check-config`` would report for the
    config with the drawing added (config problems name ``config_name``)."""
    problems: list[str] = []
    if drawing.kind == "line" and len(drawing.points) != 2:
        problems.append(f"a line is 2 points (its start and its end), not {len(drawing.points)}")
    elif drawing.kind != "line" and len(drawing.points) < 3:
        problems.append(f"a {drawing.kind} needs at least 3 points; click more")
    if drawing.kind != "mask" and not _NAME.match(drawing.rule):
        problems.append("the rule needs a name: letters, digits, '_' or '-' (at most 64)")
    try:
        data = _load(text)
    except ValueError as exc:
        return CheckResult("", (f"{config_name}: {exc}",), "")
    rules = data.get("rules")
    rule = rules.get(drawing.rule) if isinstance(rules, dict) and drawing.kind != "mask" else None
    snip = snippet(drawing, existing_rule=rule is not None)
    note = ""
    if isinstance(rule, dict):
        cams = [str(c) for c in rule.get("cameras") or []]
        is_line = rule.get("kind") == "line"
        if is_line != (drawing.kind == "line"):
            problems.append(
                f"rule {drawing.rule!r} is of kind {rule.get('kind') or 'presence'}: it takes "
                f"{'a line' if is_line else 'a zone'}; pick another name for a new rule"
            )
        elif drawing.camera not in cams:
            problems.append(
                f"rule {drawing.rule!r} does not watch camera {drawing.camera!r} (its cameras: "
                f"{', '.join(cams) or 'none'}); pick another name for a new rule"
            )
        elif len(cams) > 1:
            others = ", ".join(c for c in cams if c != drawing.camera)
            note = f"rule {drawing.rule!r} also uses this {drawing.key} on camera(s) {others}"
    if problems:
        return CheckResult(snip, tuple(problems), "", note)
    cand = candidate_text(text, drawing)
    if cand.startswith(REWRITTEN):
        note = "; ".join(
            filter(None, [note, "the saved file is the config written out again: its comments are not kept"])
        )
    try:
        loaded = parse_config(cand, config_name, overrides)
        problems = preflight(loaded, check_models=check_models)
    except ConfigError as exc:
        problems = list(exc.issues)
    return CheckResult(snip, tuple(problems), cand, note)


def save_beside(config: Path, text: str, clock: float | None = None) -> Path:
    """Write ``text`` to a new file beside ``config`` (``<stem>.preview-<time>.yaml``), never
    over an existing file, readable by no one the config is not readable by (its mode); raises
    OSError when the folder is not writable."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock))
    mode = config.stat().st_mode & 0o666
    for n in range(100):
        suffix = f"-{n}" if n else ""
        out = config.with_name(f"{config.stem}.preview-{stamp}{suffix}.yaml")
        try:
            fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        except FileExistsError:
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.chmod(out, mode)  # the umask may have taken bits away; never more than the config
        return out
    raise OSError(f"{config.parent}: too many preview files named {config.stem}.preview-{stamp}-*.yaml")
