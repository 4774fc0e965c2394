"""The config file's JSON Schema, for editors (``edge schema > edge.schema.json``).

Pydantic's schema of ``EdgeConfig``, made portable to JSON Schema draft-07, the draft the YAML
language server (VS Code's YAML extension) reads fully: tuples use ``items: [...]`` rather than
2020-12's ``prefixItems``, definitions live under ``definitions``, pydantic's OpenAPI-only
``discriminator`` is dropped, and a dict keyed by names rejects other keys. Every value that is
not free text also accepts a string holding a ``${NAME}`` or ``${NAME:-default}`` reference,
because the loader substitutes those (in every string) before validating. What a schema cannot
express (cross-references, polygons crossing themselves, a duration string's upper bound) is
left to ``edge check-config``.
"""

from __future__ import annotations

from typing import Any

from edge.config.schema import EdgeConfig

DRAFT = "http://json-schema.org/draft-07/schema#"
ENV_REF_PATTERN = r"\$\{[A-Za-z_][A-Za-z0-9_]*(:-[^}]*)?\}"
"""A string holding at least one ``${NAME}`` / ``${NAME:-default}`` (as the loader reads them)."""

_ENV_STRING: dict[str, Any] = {
    "type": "string",
    "pattern": ENV_REF_PATTERN,
    "description": "Substituted from the environment when the config is loaded.",
}
_ANNOTATIONS = ("title", "description", "default", "examples", "deprecated", "readOnly", "writeOnly")
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf")


def config_json_schema() -> dict[str, Any]:
    """The draft-07 JSON Schema of an edge config file (a new dict on each call)."""
    raw = EdgeConfig.model_json_schema(ref_template="#/definitions/{model}")
    defs: dict[str, Any] = raw.pop("$defs", {})
    body = _convert(raw, value=False)
    body.pop("title", None)
    return {
        "$schema": DRAFT,
        "title": "edge config file",
        **body,
        "definitions": {name: _convert(d, value=False) for name, d in sorted(defs.items())},
    }


def _convert(node: dict[str, Any], value: bool) -> dict[str, Any]:
    """A portable copy of ``node``; ``value``: it is a property's, an item's or a dict value's
    schema, where a ``${NAME}`` string must also be accepted."""
    out = {k: v for k, v in node.items() if k != "discriminator"}
    if "prefixItems" in out:
        extra = out.pop("items", False)
        out["items"] = out.pop("prefixItems")
        out["additionalItems"] = extra
    if "patternProperties" in out:
        out.setdefault("additionalProperties", False)
    for key in ("properties", "patternProperties"):
        if key in out:
            out[key] = {name: _convert(sub, value=True) for name, sub in out[key].items()}
    for key in ("additionalProperties", "additionalItems"):
        if isinstance(out.get(key), dict):
            out[key] = _convert(out[key], value=True)
    items = out.get("items")
    if isinstance(items, dict):
        out["items"] = _convert(items, value=True)
    elif isinstance(items, list):
        out["items"] = [_convert(sub, value=True) for sub in items]
    for key in _SUBSCHEMA_LISTS:
        if key in out:
            out[key] = [_convert(sub, value=False) for sub in out[key]]
    return _allow_env(out) if value else out


def _accepts_env(node: dict[str, Any]) -> bool:
    """Whether a string such as ``"${NAME}"`` validates against ``node``, as far as a value's
    schema here goes (references are to objects, which never take one)."""
    if "$ref" in node or "oneOf" in node:
        return False
    if "anyOf" in node:
        return any(_accepts_env(sub) for sub in node["anyOf"])
    if any(k in node for k in ("enum", "const", "pattern")):
        return False
    kind = node.get("type", "string")
    return kind == "string" or (isinstance(kind, list) and "string" in kind)


def _scalar(node: dict[str, Any]) -> bool:
    """A number, integer, boolean, string or enum: what a substituted string can be parsed into
    (a list or an object cannot come from a ``${NAME}`` string)."""
    return "enum" in node or "const" in node or node.get("type") in ("number", "integer", "boolean", "string")


def _allow_env(node: dict[str, Any]) -> dict[str, Any]:
    if _accepts_env(node):
        return node
    if "anyOf" in node:
        if any(_scalar(sub) for sub in node["anyOf"]):
            return {**node, "anyOf": [*node["anyOf"], _ENV_STRING]}
        return node
    if not _scalar(node):
        return node
    outer = {k: v for k, v in node.items() if k in _ANNOTATIONS}
    core = {k: v for k, v in node.items() if k not in _ANNOTATIONS}
    return {**outer, "anyOf": [core, _ENV_STRING]}
