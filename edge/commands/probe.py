"""``edge probe``: what this machine has and which runner a model would get."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from edge.models import resolve_model
from edge.runners.select import TENSORRT_UNVERIFIED, probe_hardware, select_runner


def probe_report(model: str | None = None, runner: str = "auto") -> dict[str, Any]:
    hw = probe_hardware()
    report: dict[str, Any] = {"hardware": asdict(hw)}
    if model:
        package = resolve_model(model)
        sel = select_runner(package, hw, runner)
        report["model"] = {
            "name": package.name,
            "origin": str(package.origin),
            "formats": package.formats(),
            "runner": sel.backend,
            "file": str(sel.path),
            "int8": sel.int8,
            "int8_files": {f: str(p) for f, p in package.int8_files.items()},
            "quantization": {f: dict(r) for f, r in package.quantization.items()},
            "reasons": list(sel.reasons),
        }
    return report


def format_report(report: dict[str, Any]) -> str:
    hw = report["hardware"]
    lines = [
        f"cpu:       {hw['cpu_model']} ({hw['cpu_vendor']}, {hw['arch']})",
        f"cpu flags: {', '.join(hw['cpu_flags']) or 'none of interest'}",
        f"board:     {hw['board'] or 'generic PC / unknown'}"
        + (" [Jetson]" if hw["is_jetson"] else "")
        + (" [Raspberry Pi]" if hw["is_raspberry_pi"] else ""),
        "backends:",
    ]
    for name, version in hw["backends"].items():
        note = f" ({TENSORRT_UNVERIFIED})" if name == "tensorrt" and version else ""
        lines.append(f"  {name:<12} {version or 'not installed'}{note}")
    devices = ", ".join(f"{k} ({v})" for k, v in hw["openvino_devices"].items())
    lines.append(f"openvino devices: {devices or 'none'}")
    lines.append(f"onnxruntime providers: {', '.join(hw['ort_providers']) or 'none'}")
    if "model" in report:
        m = report["model"]
        lines.append(f"model {m['name']} ({m['origin']}), formats: {', '.join(m['formats'])}")
        lines.append(f"  runner: {m['runner']}  file: {m['file']}{'  (int8)' if m['int8'] else ''}")
        for fmt, r in m["quantization"].items():
            lines.append(
                f"  int8 {fmt}: agreement {r.get('agreement')} (bar {r.get('bar')}), "
                f"{r.get('speedup')}x float's speed on {r.get('runner')} / {r.get('cpu')}"
            )
        lines.extend(f"  - {r}" for r in m["reasons"])
    return "\n".join(lines)


def cmd_probe(model: str | None, runner: str, as_json: bool) -> int:
    report = probe_report(model, runner)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
