"""``edge probe``: what this machine has and which runner a model would get.

With ``--model`` and ``--runner auto`` it also measures (``edge.runners.autotune``, unless
``--no-measure``): every candidate backend timed on the model, with its accuracy against the
reference backend, and the one ``runner: auto`` with ``autotune`` would choose, and why. The
probe measures afresh each time (it has no state directory), as ``edge run`` does: in a child
process, with the options of a config that sets nothing but the model (OpenVINO compiled for
throughput, its requests in flight).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from edge.models import ModelPackage, resolve_model
from edge.runners.autotune import BACKEND_BUDGET_S, RUNS, TOLERANCE, WARM_RUNS, Choice
from edge.runners.select import TENSORRT_UNVERIFIED, HardwareInfo, probe_hardware, select_runner


def measured(package: ModelPackage, hw: HardwareInfo) -> dict[str, Any]:
    """The autotune table for ``package`` as a JSON-ready mapping."""
    from edge.config.schema import ModelConfig
    from edge.inference import filled_options, measure_in_child, runner_options

    options = filled_options(package, runner_options(ModelConfig(path=str(package.origin))))
    choice: Choice | None = measure_in_child(package, hw, options, None, None)
    method = (
        f"{WARM_RUNS} warm-up runs, then up to {RUNS} timed runs or {BACKEND_BUDGET_S:.0f} s per backend; "
        f"accurate: 99.9th-percentile error within {TOLERANCE:.0%} of each output's range vs the reference"
    )
    if choice is None:
        return {"method": method, "runner": None, "rows": [], "reason": "no candidate could be measured"}
    return {
        "method": method,
        "runner": choice.backend,
        "file": choice.file,
        "int8": choice.int8,
        "seconds": round(choice.seconds, 2),
        "rows": [asdict(r) for r in choice.rows],
        "reason": choice.reason,
    }


def probe_report(
    model: str | None = None, runner: str = "auto", measure_runners: bool = True
) -> dict[str, Any]:
    """The hardware, and with ``model`` the heuristics' choice and (``runner`` auto and
    ``measure_runners``) the measured table under ``model.autotune``."""
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
        if runner == "auto" and measure_runners:
            report["model"]["autotune"] = measured(package, hw)
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
        if "autotune" in m:
            lines.extend(format_table(m["autotune"]))
    return "\n".join(lines)


def format_table(tuned: dict[str, Any]) -> list[str]:
    """The measured table: one row per candidate, then the choice and its reason."""
    lines = [f"measured (runner: auto, autotune: true; {tuned['method']}):"]
    head = ("backend", "file", "int8", "load ms", "median ms", "accuracy", "verdict")
    rows = [
        (
            r["backend"],
            r["file"],
            "yes" if r["int8"] else "no",
            "-" if r["load_ms"] is None else f"{r['load_ms']:.0f}",
            "-" if r["median_ms"] is None else f"{r['median_ms']:.2f} ({r['runs']} runs)",
            r["accuracy"],
            r["verdict"],
        )
        for r in tuned["rows"]
    ]
    widths = [max(len(str(row[i])) for row in [head, *rows]) for i in range(len(head))]
    for row in [head, *rows]:
        lines.append("  " + "  ".join(str(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip())
    chosen = tuned["runner"] or "none (vendor heuristics apply)"
    lines.append(f"  autotune choice: {chosen}: {tuned['reason']}")
    return lines


def cmd_probe(model: str | None, runner: str, as_json: bool, measure_runners: bool = True) -> int:
    report = probe_report(model, runner, measure_runners)
    print(json.dumps(report, indent=2) if as_json else format_report(report))
    return 0
