#!/usr/bin/env python3
"""Golden outputs of BlazeFace and BlazePose on LiteRT, x86 against arm64 (tools/arm64_check.sh).

    golden.py reference REF.npz [--image astronaut.png]   # on x86 (the host's venv, scikit-image)
    golden.py dump REF.npz OUT.npz                        # in the arm64 root (edge's venv there)
    golden.py compare REF.npz OUT.npz                     # on x86: differences and PASS/FAIL

``reference`` stores the input image (scikit-image's astronaut, BGR) and, per model, the
preprocessed input tensor, the raw output tensors and the decoded detections. ``dump`` runs the
same models on the other machine: the raw outputs on the reference's own input tensor (so only
the model's arithmetic is compared), its own preprocessing of the image, and the decoded
detections of the whole path (preprocess, run, decode). ``compare`` checks them against the
tolerances in ``TOLERANCES`` and exits non-zero when one is exceeded.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import numpy as np

MODELS = ("blazeface", "blazepose")
# Stated tolerances. Raw tensors: the same flatbuffer on the same input tensor through XNNPACK's
# x86 (AVX2/FMA) and Arm (NEON) kernels, which differ in float summation order; measured under
# qemu (cortex-a72) against an AMD EPYC: at most 1.4e-6 of the tensor's largest magnitude
# (BlazePose's box regressors reach 744, their worst difference 9.5e-4). Input tensor: OpenCV's
# uint8 resize is bit-exact across platforms (measured: identical); one grey level is 1/127.5
# after the manifests' normalisation. Decoded detections: measured within 5e-5 px.
TOLERANCES = {
    "raw_rel": 1e-5,  # max |arm - x86| <= raw_rel * max |x86|, per output tensor
    "tensor_atol": 1.0 / 127.5 + 1e-6,  # at most one grey level anywhere
    "box_atol": 0.01,  # pixels of the 512x512 image, box corners and keypoints
    "score_atol": 1e-4,
}


def _run(image: np.ndarray, tensors: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """Per model: input tensor, raw outputs (on ``tensors[name]`` when given) and detections."""
    from edge.inference import load_model
    from edge.runners.base import RunnerOptions

    out: dict[str, np.ndarray] = {}
    for name in MODELS:
        model = load_model(name, "litert", options=RunnerOptions(threads=1))
        pre = model.preprocessor()
        tensor = pre.new_tensor()
        pre(image, tensor)
        feed = tensors[name] if tensors is not None else tensor
        for i, arr in enumerate(model.run_tensor(feed)):
            out[f"{name}/raw{i}"] = np.asarray(arr)
        dets = model.infer(image)
        out[f"{name}/tensor"] = tensor.copy()
        out[f"{name}/xyxy"] = dets.xyxy
        out[f"{name}/score"] = dets.score
        out[f"{name}/class_id"] = dets.class_id
        if dets.keypoints is not None:
            out[f"{name}/keypoints"] = dets.keypoints
        model.close()
        print(f"{name}: {len(dets)} detection(s), scores {np.round(dets.score, 4).tolist()}", file=sys.stderr)
    return out


def reference(ref: Path, image_file: Path | None) -> int:
    import cv2

    if image_file is not None:
        image = cv2.imread(str(image_file), cv2.IMREAD_COLOR)
        if image is None:
            print(f"{image_file}: not a readable image", file=sys.stderr)
            return 1
    else:
        import skimage.data

        image = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)  # type: ignore[no-untyped-call]
    out = _run(image, None)
    arrays: dict[str, Any] = {"image": image, **out}
    np.savez(ref, **arrays)
    return 0


def dump(ref: Path, dest: Path) -> int:
    with np.load(ref) as data:
        image = data["image"]
        tensors = {name: data[f"{name}/tensor"] for name in MODELS}
    arrays: dict[str, Any] = dict(_run(image, tensors))
    np.savez(dest, **arrays)
    return 0


def _worst(ref: np.ndarray, got: np.ndarray, atol: float) -> tuple[float, bool]:
    diff = np.abs(got.astype(np.float64) - ref.astype(np.float64))
    worst = float(diff.max()) if diff.size else 0.0
    return worst, worst <= atol


def compare(ref_file: Path, got_file: Path) -> int:
    t = TOLERANCES
    failures = 0
    with np.load(ref_file) as ref, np.load(got_file) as got:
        keys = sorted(k for k in ref.files if k != "image")
        missing = [k for k in keys if k not in got.files]
        for key in missing:
            print(f"FAIL {key}: missing from {got_file}")
        failures += len(missing)
        for key in (k for k in keys if k in got.files):
            a, b = ref[key], got[key]
            if a.shape != b.shape:
                print(f"FAIL {key}: shape {b.shape}, x86 has {a.shape}")
                failures += 1
                continue
            field = key.split("/", 1)[1]
            if field.startswith("raw"):
                scale = float(np.abs(a).max()) if a.size else 0.0
                worst, ok = _worst(a, b, t["raw_rel"] * scale)
                limit = f"{t['raw_rel']:g} * max|x86| = {t['raw_rel'] * scale:.3g}"
            elif field == "tensor":
                worst, ok = _worst(a, b, t["tensor_atol"])
                limit = f"{t['tensor_atol']:.4g}"
            elif field in ("xyxy", "keypoints"):
                worst, ok = _worst(a, b, t["box_atol"])
                limit = f"{t['box_atol']:g} px"
            elif field == "score":
                worst, ok = _worst(a, b, t["score_atol"])
                limit = f"{t['score_atol']:g}"
            else:  # class_id
                worst, ok = _worst(a, b, 0.0)
                limit = "exact"
            mark = "ok  " if ok else "FAIL"
            print(f"{mark} {key:22} {a.shape!s:16} max |arm64 - x86| = {worst:.3g} (limit {limit})")
            failures += not ok
        for name in MODELS:
            n = ref[f"{name}/score"].shape[0]
            if n == 0:
                print(f"FAIL {name}: no detection on the reference image (the golden needs one)")
                failures += 1
    print(f"golden: {'PASS' if failures == 0 else f'FAIL ({failures} check(s))'}")
    return 1 if failures else 0


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("reference", help="x86: write the reference outputs")
    p.add_argument("ref", type=Path)
    p.add_argument("--image", type=Path, help="an image file instead of scikit-image's astronaut")
    p = sub.add_parser("dump", help="arm64: run on the reference's inputs")
    p.add_argument("ref", type=Path)
    p.add_argument("out", type=Path)
    p = sub.add_parser("compare", help="compare a dump with the reference")
    p.add_argument("ref", type=Path)
    p.add_argument("out", type=Path)
    args = parser.parse_args()
    if args.command == "reference":
        return reference(args.ref, args.image)
    if args.command == "dump":
        return dump(args.ref, args.out)
    return compare(args.ref, args.out)


if __name__ == "__main__":
    sys.exit(main())
