"""``tools/bench.py quantize``: ``edge quantize`` on the shipped models, one run each, with the
gate's figures and the INT8/float speed of each runner measured in that run.

BlazePose (its .tflite) to OpenVINO INT8, calibrated and evaluated on the demo clip; the PP-OCR
detector to ONNX Runtime QDQ and to OpenVINO INT8 on signs from ``tools/make_signs.py``
(calibration seed 1, evaluation seed 2). Everything is written into a temporary folder.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

CASES = [
    ("blazepose", "openvino-int8", "clip"),
    ("ppocr_det", "onnx-int8", "signs"),
    ("ppocr_det", "openvino-int8", "signs"),
]


def bench_quantize(clip: Path, calib_frames: int, eval_frames: int) -> list[dict[str, Any]]:
    from make_signs import make_signs

    rows = []
    with tempfile.TemporaryDirectory(prefix="edge-quantize-bench-") as tmp:
        root = Path(tmp)
        sources = {
            "clip": (clip, clip),
            "signs": (make_signs(root / "calib", 1, calib_frames), make_signs(root / "eval", 2, eval_frames)),
        }
        for model, target, data in CASES:
            calib, evaluation = sources[data]
            argv = [
                sys.executable, "-m", "edge", "quantize", model, "--to", target, "--calib", str(calib),
                "--eval", str(evaluation), "--calib-frames", str(calib_frames),
                "--eval-frames", str(eval_frames), "--out", str(root / f"{model}-{target}"), "--json",
            ]  # fmt: skip
            done = subprocess.run(argv, capture_output=True, text=True, check=False)
            if done.returncode not in (0, 3):
                last = (done.stderr.strip().splitlines() or [f"exit {done.returncode}"])[-1]
                raise SystemExit(f"{model} {target}: {last}")
            rows.append({"model": model, "target": target, **json.loads(done.stdout)})
    return rows


def format_quantize(rows: list[dict[str, Any]]) -> str:
    lines = [
        f"{'model':<10} {'target':<14} {'agreement':>9} {'F1':>6} {'kp':>6} {'float ms':>9} {'int8 ms':>8} "
        f"{'int8/float speed':>16} {'float MB':>8} {'int8 MB':>8}  cpu"
    ]
    for r in rows:
        kp = "-" if r["keypoints"] is None else f"{r['keypoints']:.3f}"
        lines.append(
            f"{r['model']:<10} {r['target']:<14} {r['agreement']:>9.3f} {r['f1']:>6.3f} {kp:>6} "
            f"{r['float_ms']:>9.2f} {r['int8_ms']:>8.2f} {r['speedup']:>15.2f}x "
            f"{r['float_bytes'] / 1e6:>8.2f} {r['int8_bytes'] / 1e6:>8.2f}  {r['cpu']}"
            + ("" if r["passed"] else "  (refused by the gate)")
        )
    return "\n".join(lines)
