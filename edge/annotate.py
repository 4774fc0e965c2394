"""Draw detections on a frame, for a person to look at (``edge infer --save-annotated``, snapshots)."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.types import Detections

_PALETTE = [(56, 56, 255), (151, 157, 255), (31, 112, 255), (29, 178, 255), (49, 210, 207), (10, 249, 72)]


def annotate(frame_bgr: np.ndarray, dets: Detections, labels: Sequence[str]) -> np.ndarray:
    """A copy of the frame with boxes, ``label score`` captions (``label #track score`` for
    tracked detections) and keypoints."""
    out: np.ndarray = frame_bgr.copy()
    thickness = max(1, round(min(out.shape[:2]) / 300))
    for i in range(len(dets)):
        cid = int(dets.class_id[i])
        colour = _PALETTE[cid % len(_PALETTE)]
        x1, y1, x2, y2 = (round(v) for v in dets.xyxy[i])
        cv2.rectangle(out, (x1, y1), (x2, y2), colour, thickness)
        name = labels[cid] if 0 <= cid < len(labels) else str(cid)
        tid = -1 if dets.tracker_id is None else int(dets.tracker_id[i])
        caption = f"{name} #{tid} {dets.score[i]:.2f}" if tid >= 0 else f"{name} {dets.score[i]:.2f}"
        (tw, th), base = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, 0.5, 1)
        ty = max(y1, th + base)
        cv2.rectangle(out, (x1, ty - th - base), (x1 + tw, ty), colour, -1)
        cv2.putText(
            out, caption, (x1, ty - base), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (255, 255, 255), 1, cv2.LINE_AA
        )
        if dets.keypoints is not None:
            for kx, ky in dets.keypoints[i]:
                cv2.circle(out, (round(kx), round(ky)), thickness + 2, colour, -1)
    return out


def with_track(dets: Detections, track_id: int | None) -> Detections:
    """The event's one detection with its track id (drawn as ``label #id``), when it has one."""
    if track_id is None:
        return dets
    return Detections(dets.xyxy, dets.score, dets.class_id, dets.keypoints, np.full(len(dets), track_id))
