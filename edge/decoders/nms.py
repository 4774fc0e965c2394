"""Non-maximum suppression: class-aware hard NMS (OpenCV) and MediaPipe's weighted NMS."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from edge.types import FloatArray

# OpenCV's stubs want Python sequences; the bindings take numpy arrays directly (no copies).
_DNN: Any = cv2.dnn


def iou_matrix(a: FloatArray, b: FloatArray) -> FloatArray:
    """Pairwise IoU of xyxy boxes: (N, 4) x (M, 4) -> (N, M)."""
    tl = np.maximum(a[:, None, :2], b[None, :, :2])
    br = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(br - tl, 0, None), axis=2)
    area_a = np.prod(np.clip(a[:, 2:] - a[:, :2], 0, None), axis=1)
    area_b = np.prod(np.clip(b[:, 2:] - b[:, :2], 0, None), axis=1)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0).astype(np.float32)


def nms(
    xyxy: FloatArray,
    scores: FloatArray,
    class_ids: npt.NDArray[np.int32] | None,
    iou_threshold: float,
    max_detections: int,
) -> npt.NDArray[np.intp]:
    """Indices kept by hard NMS, best score first; per class when ``class_ids`` is given."""
    if len(xyxy) == 0:
        return np.zeros(0, dtype=np.intp)
    xywh = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).astype(np.float64)
    if class_ids is None:
        keep = _DNN.NMSBoxes(xywh, scores.astype(np.float32), 0.0, iou_threshold, top_k=max_detections)
    else:
        keep = _DNN.NMSBoxesBatched(
            xywh,
            scores.astype(np.float32),
            class_ids.astype(np.int32),
            0.0,
            iou_threshold,
            top_k=max_detections,
        )
    idx = np.asarray(keep, dtype=np.intp).reshape(-1)
    order = np.argsort(-scores[idx], kind="stable")
    return idx[order][:max_detections]


def weighted_nms(
    xyxy: FloatArray, scores: FloatArray, keypoints: FloatArray, iou_threshold: float, max_detections: int
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """MediaPipe's WEIGHTED overlap suppression.

    Take the best remaining box; every remaining box overlapping it by more than the threshold
    (itself included) is merged into a score-weighted average of boxes and keypoints; the merged
    detection keeps the best score.
    """
    order = np.argsort(-scores, kind="stable")
    boxes: list[FloatArray] = []
    kps: list[FloatArray] = []
    out_scores: list[float] = []
    remaining = order
    while remaining.size and len(out_scores) < max_detections:
        best = remaining[0]
        ious = iou_matrix(xyxy[best : best + 1], xyxy[remaining])[0]
        cluster = remaining[ious > iou_threshold]
        if cluster.size == 0:
            cluster = remaining[:1]
        w = scores[cluster][:, None]
        total = float(w.sum())
        boxes.append((xyxy[cluster] * w).sum(axis=0) / total)
        kps.append((keypoints[cluster] * w[:, :, None]).sum(axis=0) / total)
        out_scores.append(scores[best])
        remaining = remaining[ious <= iou_threshold]
        remaining = remaining[remaining != best]
    k = keypoints.shape[1] if keypoints.ndim == 3 else 0
    if not out_scores:
        return np.zeros((0, 4), np.float32), np.zeros(0, np.float32), np.zeros((0, k, 2), np.float32)
    return (
        np.asarray(boxes, dtype=np.float32),
        np.asarray(out_scores, dtype=np.float32),
        np.asarray(kps, dtype=np.float32).reshape(len(out_scores), k, 2),
    )
