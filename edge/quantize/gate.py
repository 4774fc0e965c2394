"""The accuracy gate: does the quantised model see what the float model sees?

Both models' detections go through the model's own decoder; per frame, detections are matched
by class at IoU >= 0.5 (greedily, best IoU first). Agreement is the F1 of those matches over
all frames, class by class, and the gate takes the worst class (100 people matched and 3 cars
all lost must not pass on the pooled 0.985). For keypoint models, the share of matched
keypoints within ``kp_tolerance`` of the float keypoint (distance over the float box's
diagonal) is the second figure; the gate takes the lower of the two. Text detection is judged
by coverage instead, since one model may see a line where the other sees its two words (the
same text found, yet F1 would count three misses): a box agrees when at least half its area is
covered by the other model's boxes, and agreement is the F1 of those shares both ways.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from edge.decoders.nms import iou_matrix
from edge.types import Detections

IOU_MATCH = 0.5
KEYPOINT_TOLERANCE = 0.05


def match(ref: Detections, other: Detections, iou_min: float = IOU_MATCH) -> list[tuple[int, int, float]]:
    """Pairs (i in ref, j in other, IoU) of the same class at IoU >= ``iou_min``, best first,
    each detection used once."""
    ious = iou_matrix(ref.xyxy, other.xyxy)
    same = ref.class_id[:, None] == other.class_id[None, :]
    ious = np.where(same, ious, 0.0)
    pairs: list[tuple[int, int, float]] = []
    used_i: set[int] = set()
    used_j: set[int] = set()
    for flat in np.argsort(-ious, axis=None, kind="stable"):
        i, j = divmod(int(flat), ious.shape[1])
        if ious[i, j] < iou_min:
            break
        if i in used_i or j in used_j:
            continue
        used_i.add(i)
        used_j.add(j)
        pairs.append((i, j, float(ious[i, j])))
    return pairs


@dataclass(frozen=True)
class Agreement:
    """How closely the quantised model's detections follow the float model's."""

    frames: int
    float_detections: int
    int8_detections: int
    matched: int
    f1: float
    mean_iou: float | None
    keypoints: float | None
    """Share of matched keypoints within tolerance; None for models without keypoints."""
    coverage: float | None = None
    """Text detection: F1 of the boxes at least half covered by the other model's; else None."""
    per_class: dict[int, float] = field(default_factory=dict)
    """F1 per class id, for classes either model found."""

    @property
    def worst_class(self) -> float:
        return min(self.per_class.values()) if self.per_class else self.f1

    @property
    def score(self) -> float:
        """What the gate compares with ``--bar``: the coverage F1 for text detection, else the
        lower of the worst class's F1 and the keypoint share."""
        if self.coverage is not None:
            return self.coverage
        return self.worst_class if self.keypoints is None else min(self.worst_class, self.keypoints)


def covered(boxes: np.ndarray, by: np.ndarray, share: float = 0.5) -> int:
    """How many of ``boxes`` (xyxy) have at least ``share`` of their area under ``by``'s boxes."""
    if len(boxes) == 0 or len(by) == 0:
        return 0
    every = np.concatenate([boxes, by]).reshape(-1, 4)
    width = int(np.ceil(max(float(every[:, 2].max()), 1.0))) + 1
    height = int(np.ceil(max(float(every[:, 3].max()), 1.0))) + 1
    mask = np.zeros((height, width), bool)
    for x1, y1, x2, y2 in np.clip(np.rint(by), 0, None).astype(int):
        mask[y1:y2, x1:x2] = True
    count = 0
    for x1, y1, x2, y2 in np.clip(np.rint(boxes), 0, None).astype(int):
        area = max(x2 - x1, 0) * max(y2 - y1, 0)
        if area and mask[y1:y2, x1:x2].sum() >= share * area:
            count += 1
    return count


def agreement(
    pairs: Iterable[tuple[Detections, Detections]],
    kp_tolerance: float = KEYPOINT_TOLERANCE,
    by_coverage: bool = False,
) -> Agreement:
    """Agreement over frames of (float detections, int8 detections); ``by_coverage`` for text
    detection."""
    frames = n_ref = n_other = matched = 0
    ious: list[float] = []
    agreed_boxes = 0
    found_ref: Counter[int] = Counter()
    found_other: Counter[int] = Counter()
    matched_by: Counter[int] = Counter()
    kp_close = kp_total = 0
    has_keypoints = False
    for ref, other in pairs:
        frames += 1
        n_ref += len(ref)
        n_other += len(other)
        found = match(ref, other)
        matched += len(found)
        found_ref.update(ref.class_id.tolist())
        found_other.update(other.class_id.tolist())
        matched_by.update(int(ref.class_id[i]) for i, _, _ in found)
        if by_coverage:
            agreed_boxes += covered(ref.xyxy, other.xyxy) + covered(other.xyxy, ref.xyxy)
        ious.extend(iou for _, _, iou in found)
        if ref.keypoints is not None and other.keypoints is not None:
            has_keypoints = True
            for i, j, _ in found:
                box = ref.xyxy[i]
                diagonal = max(float(np.hypot(box[2] - box[0], box[3] - box[1])), 1e-6)
                dist = np.linalg.norm(ref.keypoints[i] - other.keypoints[j], axis=1) / diagonal
                kp_close += int((dist <= kp_tolerance).sum())
                kp_total += len(dist)
    total = n_ref + n_other
    f1 = 2 * matched / total if total else 1.0
    return Agreement(
        frames=frames,
        float_detections=n_ref,
        int8_detections=n_other,
        matched=matched,
        f1=f1,
        mean_iou=float(np.mean(ious)) if ious else None,
        keypoints=(kp_close / kp_total if kp_total else 0.0 if matched == 0 else 1.0)
        if has_keypoints
        else None,
        coverage=(agreed_boxes / total if total else 1.0) if by_coverage else None,
        per_class={
            c: 2 * matched_by[c] / (found_ref[c] + found_other[c]) for c in sorted(found_ref | found_other)
        },
    )
