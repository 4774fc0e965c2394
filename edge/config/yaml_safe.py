"""YAML read without recursion and within bounds, for configs and model manifests.

``compose_yaml`` builds the node graph from PyYAML's event stream with an explicit stack. As
each node completes, its expanded size and depth are counted (aliases stay shared references,
memoised), so an alias bomb, a recursive alias, deep nesting, a duplicate key or an absurd
integer is refused with ``YamlProblem`` (line and path) before anything is constructed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from yaml.constructor import ConstructorError, SafeConstructor

Key = str | int
ConfigPath = tuple[Key, ...]

MAX_DEPTH = 64
"""Deepest nesting of mappings and sequences, counted through aliases."""
MAX_NODES = 50_000
"""Most YAML nodes in a document once its aliases are expanded: a real config has a few
thousand, an alias bomb millions; this many load in well under a second."""
MAX_INT_DIGITS = 100
MAX_MESSAGE = 1000

_PARSER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_INT_TAG = "tag:yaml.org,2002:int"


def one_line(text: str, limit: int = MAX_MESSAGE) -> str:
    """``text`` safe to print as one line: control and surrogate characters escaped, bounded."""
    if len(text) > limit:
        text = text[:limit] + "..."
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else ascii(c)[1:-1] for c in text)


# --- safe YAML --------------------------------------------------------------------------------


class YamlProblem(Exception):
    """A document refused before construction; ``line`` is 1-based, ``path`` where known."""

    def __init__(self, line: int | None, path: ConfigPath, message: str) -> None:
        super().__init__(message)
        self.line, self.path, self.message = line, path, message

    def issue(self, filename: str) -> str:
        where = f"{filename}:{self.line}" if self.line else filename
        dotted = ".".join(str(p) for p in self.path)
        return one_line(f"{where}: {dotted}: {self.message}" if dotted else f"{where}: {self.message}")


class _Constructor(SafeConstructor):
    """PyYAML's safe constructor; a value it cannot build (``2021-13-45``) is a marked error."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, TypeError, OverflowError) as exc:
            raise ConstructorError(None, None, f"cannot read this value: {exc}", node.start_mark) from None


@dataclass
class _Frame:
    node: yaml.SequenceNode | yaml.MappingNode
    path: ConfigPath
    size: int = 1
    depth: int = 1
    key: yaml.Node | None = None  # a mapping's key still waiting for its value

    def child_path(self) -> ConfigPath:
        if isinstance(self.node, yaml.SequenceNode):
            return self.path + (len(self.node.value),)
        if isinstance(self.key, yaml.ScalarNode):
            return self.path + (str(self.key.value),)
        return self.path


def line_of(mark: Any) -> int | None:
    return int(mark.line) + 1 if mark is not None else None


class _Composer:
    """Builds the node graph from parser events with an explicit stack (no recursion)."""

    def __init__(self) -> None:
        self.resolver = yaml.SafeLoader("")
        self.constructor = _Constructor()
        self.anchors: dict[str, yaml.Node] = {}
        self.measured: dict[int, tuple[int, int]] = {}  # id(node) -> (expanded size, depth)
        self.stack: list[_Frame] = []
        self.root: yaml.Node | None = None
        self.documents = 0

    def fail(self, mark: Any, message: str) -> YamlProblem:
        return YamlProblem(line_of(mark), self.stack[-1].child_path() if self.stack else (), message)

    def attach(self, node: yaml.Node, size: int, depth: int, mark: Any) -> None:
        if not self.stack:
            self.root = node
            return
        frame = self.stack[-1]
        frame.size += size
        frame.depth = max(frame.depth, depth + 1)
        if frame.size > MAX_NODES:
            raise self.fail(
                mark, f"the document expands to more than {MAX_NODES} nodes (aliases repeat too much)"
            )
        if len(self.stack) + depth > MAX_DEPTH:
            raise self.fail(mark, f"nested deeper than {MAX_DEPTH} levels (counting through aliases)")
        if isinstance(frame.node, yaml.SequenceNode):
            frame.node.value.append(node)
        elif frame.key is None:
            frame.key = node
        else:
            frame.node.value.append((frame.key, node))
            frame.key = None

    def anchor(self, event: Any, node: yaml.Node) -> None:
        if event.anchor is None:
            return
        if event.anchor in self.anchors:
            first = line_of(self.anchors[event.anchor].start_mark)
            raise self.fail(event.start_mark, f"duplicate anchor &{event.anchor} (first at line {first})")
        self.anchors[event.anchor] = node

    def tag(self, event: Any, kind: type[yaml.Node], value: str | None) -> str:
        if event.tag is None or event.tag == "!":
            return str(self.resolver.resolve(kind, value, event.implicit))  # type: ignore[no-untyped-call]
        return str(event.tag)

    def feed(self, event: Any) -> None:
        mark: Any = event.start_mark
        if isinstance(event, yaml.DocumentStartEvent):
            self.documents += 1
            if self.documents > 1:
                raise self.fail(mark, "expected one YAML document, found a second ('---')")
        elif isinstance(event, yaml.AliasEvent):
            target = self.anchors.get(str(event.anchor))
            if target is None:
                raise self.fail(mark, f"undefined alias *{event.anchor}")
            if id(target) not in self.measured:
                raise self.fail(
                    mark, f"recursive alias *{event.anchor}: it refers to a node that contains it"
                )
            self.attach(target, *self.measured[id(target)], mark)
        elif isinstance(event, yaml.ScalarEvent):
            tag = self.tag(event, yaml.ScalarNode, event.value)
            if tag == _INT_TAG and len(event.value) > MAX_INT_DIGITS:
                raise self.fail(mark, f"a number of {len(event.value)} digits is too large")
            end: Any = event.end_mark
            scalar = yaml.ScalarNode(tag, event.value, mark, end, style=event.style)
            self.anchor(event, scalar)
            self.measured[id(scalar)] = (1, 1)
            self.attach(scalar, 1, 1, mark)
        elif isinstance(event, yaml.SequenceStartEvent | yaml.MappingStartEvent):
            if len(self.stack) >= MAX_DEPTH:
                raise self.fail(mark, f"nested deeper than {MAX_DEPTH} levels")
            kind = yaml.SequenceNode if isinstance(event, yaml.SequenceStartEvent) else yaml.MappingNode
            node = kind(self.tag(event, kind, None), [], mark, None, flow_style=event.flow_style)
            self.anchor(event, node)
            self.stack.append(_Frame(node, self.stack[-1].child_path() if self.stack else ()))
        elif isinstance(event, yaml.SequenceEndEvent | yaml.MappingEndEvent):
            frame = self.stack.pop()
            frame.node.end_mark = event.end_mark
            if isinstance(frame.node, yaml.MappingNode):
                self.check_duplicate_keys(frame.node, frame.path)
            self.measured[id(frame.node)] = (frame.size, frame.depth)
            self.attach(frame.node, frame.size, frame.depth, frame.node.start_mark)

    def check_duplicate_keys(self, node: yaml.MappingNode, path: ConfigPath) -> None:
        seen: dict[str, int] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == _MERGE_TAG:
                continue
            text = str(self.constructor.construct_object(key_node))  # as the loader sees it: 1 == "1"
            line = key_node.start_mark.line + 1
            if text in seen:
                raise YamlProblem(
                    line, path + (text,), f"duplicate key {text!r} (first at line {seen[text]})"
                )
            seen[text] = line


def compose_yaml(text: str) -> yaml.Node | None:
    """Compose one YAML document from the event stream without recursion.

    Aliases stay shared references (as PyYAML composes them); the expanded size and depth of
    every node are counted as it completes (memoised), so an alias bomb, a recursive alias,
    deep nesting or a duplicate key is refused with ``YamlProblem`` before anything is
    constructed."""
    composer = _Composer()
    for event in yaml.parse(text, Loader=_PARSER):
        composer.feed(event)
    return composer.root


def construct_yaml(node: yaml.Node | None) -> Any:
    """Python data from a node of ``compose_yaml`` (safe tags only; merge keys supported)."""
    return None if node is None else _Constructor().construct_document(node)
