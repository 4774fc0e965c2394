"""``edge infer``: one model on still images; text or JSON lines, optional annotated copies."""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

import cv2

from edge.annotate import annotate
from edge.inference import LoadedModel, load_model
from edge.runners.base import RunnerOptions
from edge.types import Detections


def detection_records(image: str, dets: Detections, model: LoadedModel) -> list[dict[str, Any]]:
    records = []
    for i in range(len(dets)):
        rec: dict[str, Any] = {
            "image": image,
            "label": model.label(int(dets.class_id[i])),
            "class_id": int(dets.class_id[i]),
            "score": round(float(dets.score[i]), 4),
            "box": [round(float(v), 1) for v in dets.xyxy[i]],
        }
        if dets.keypoints is not None:
            rec["keypoints"] = [[round(float(x), 1), round(float(y), 1)] for x, y in dets.keypoints[i]]
        records.append(rec)
    return records


def cmd_infer(args: argparse.Namespace) -> int:
    options = RunnerOptions(device=args.device, precision=args.precision, threads=args.threads)
    overrides = {"score_threshold": args.score} if args.score is not None else None
    model = load_model(args.model, args.runner, options=options, overrides=overrides)
    print(
        f"model {model.package.name} on {model.selection.backend} ({model.selection.path.name}), "
        f"loaded in {model.load_seconds * 1000:.0f} ms",
        file=sys.stderr,
    )
    if args.save_annotated:
        args.save_annotated.mkdir(parents=True, exist_ok=True)
    failed = 0
    try:
        for path in args.images:
            frame = cv2.imread(str(path), cv2.IMREAD_COLOR)
            if frame is None:
                print(f"edge: error: {path}: cannot read as an image", file=sys.stderr)
                failed += 1
                continue
            dets = model.infer(frame)
            records = detection_records(str(path), dets, model)
            if args.json:
                for rec in records:
                    print(json.dumps(rec))
            else:
                print(f"{path}: {len(records)} detection(s)")
                for rec in records:
                    print(f"  {rec['label']:<12} {rec['score']:.3f}  box {rec['box']}")
            if args.save_annotated:
                out = args.save_annotated / f"{path.stem}.jpg"
                cv2.imwrite(str(out), annotate(frame, dets, model.labels))
    finally:
        model.close()
    return 1 if failed else 0
