"""``edge models fetch|list``."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from edge.errors import ModelError
from edge.fetch import fetch_models
from edge.models import MANIFEST, default_search_dirs, read_manifest


def cmd_models_fetch(dest: Path | None, cache: Path | None, packages: Sequence[str]) -> int:
    results = fetch_models(dest, cache, list(packages) or None)
    extracted = sum(r.action == "extracted" for r in results)
    print(f"{len(results)} file(s) ready ({extracted} extracted, {len(results) - extracted} already present)")
    return 0


def cmd_models_list(as_json: bool) -> int:
    rows: list[dict[str, Any]] = []
    seen: set[str] = set()
    for d in default_search_dirs():
        for manifest in sorted(d.glob(f"*/{MANIFEST}")):
            try:
                package = read_manifest(manifest)
            except ModelError as exc:
                rows.append(
                    {"name": manifest.parent.name, "origin": str(manifest), "status": f"invalid: {exc}"}
                )
                continue
            if package.name in seen:
                continue
            seen.add(package.name)
            status = "ok"
            variants = [(f, False) for f in package.files] + [(f, True) for f in package.int8_files]
            for fmt, int8 in variants:
                try:
                    package.verified_file(fmt, int8)
                except ModelError as exc:
                    status = f"{fmt}: {exc}"
                    break
            rows.append(
                {
                    "name": package.name,
                    "task": package.task,
                    "decoder": package.decoder,
                    "formats": package.formats(),
                    "int8": list(package.int8_files),
                    "labels": len(package.labels),
                    "origin": str(manifest),
                    "status": status,
                }
            )
    if as_json:
        print(json.dumps(rows, indent=2))
    else:
        for r in rows:
            fmts = ",".join(f + ("+int8" if f in r.get("int8", []) else "") for f in r.get("formats", []))
            print(f"{r['name']:<14} {r.get('task', ''):<9} {fmts:<14} {r['status']}")
    return 0
