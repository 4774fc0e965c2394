"""MediaPipe BlazeFace and BlazePose detectors: SSD-style anchors, keypoints, weighted NMS.

Anchors follow MediaPipe's SsdAnchorsCalculator with ``fixed_anchor_size`` and an
interpolated aspect ratio of 1: every layer puts two anchors per cell, and consecutive layers
of the same stride share one grid. Regressors are (cx, cy, w, h, kx0, ky0, ...) in input
pixels relative to the anchor centre.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np

from edge.decoders.base import DecodeContext, DecodeParams, to_frame
from edge.decoders.nms import weighted_nms
from edge.decoders.shapes import OutputRule, vector
from edge.errors import ModelError
from edge.types import Detections, FloatArray

FACE_STRIDES = (8, 16, 16, 16)
POSE_STRIDES = (8, 16, 32, 32, 32)


@lru_cache(maxsize=8)
def ssd_anchor_centres(input_size: int, strides: tuple[int, ...]) -> FloatArray:
    """(A, 2) anchor centres in [0, 1], in MediaPipe's order."""
    centres: list[FloatArray] = []
    i = 0
    while i < len(strides):
        stride = strides[i]
        per_cell = 0
        while i < len(strides) and strides[i] == stride:
            per_cell += 2
            i += 1
        grid = int(np.ceil(input_size / stride))
        ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
        cells = np.stack([(xs + 0.5) / grid, (ys + 0.5) / grid], axis=-1).reshape(-1, 1, 2)
        centres.append(np.repeat(cells, per_cell, axis=1).reshape(-1, 2).astype(np.float32))
    out = np.concatenate(centres)
    out.setflags(write=False)
    return out


class BlazeDecoder:
    """Shared BlazeFace/BlazePose decoding.

    ``box="detector"`` keeps the regressed box; ``box="body"`` (BlazePose) replaces it by the
    square MediaPipe derives the person from: centred on keypoint 0 (hip centre), half-side the
    distance to keypoint 1 (the full-body scale point).
    """

    def __init__(
        self,
        input_size: int,
        strides: tuple[int, ...],
        num_keypoints: int,
        params: DecodeParams,
        box: str = "detector",
    ) -> None:
        self.input_size = input_size
        self.anchors = ssd_anchor_centres(input_size, strides)
        self.num_keypoints = num_keypoints
        self.params = params
        if box not in ("detector", "body"):
            raise ModelError(f"blaze decoder: box must be 'detector' or 'body', got {box!r}")
        self.box = box
        a, width = len(self.anchors), 4 + 2 * num_keypoints
        self.output_rules: tuple[OutputRule, ...] = (
            OutputRule(f"{a} anchors x {width} regressors", ((1, a, width), (a, width))),
            OutputRule(f"{a} anchor scores", vector(a)),
        )

    def _split(self, outputs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        a = len(self.anchors)
        width = 4 + 2 * self.num_keypoints
        reg = next((o for o in outputs if o.shape[-1] == width and o.size == a * width), None)
        logit = next((o for o in outputs if o.size == a), None)
        if reg is None or logit is None:
            shapes = [o.shape for o in outputs]
            raise ModelError(f"expected outputs of {a}x{width} regressors and {a} scores, got {shapes}")
        return reg.reshape(a, width), logit.reshape(a)

    def __call__(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Detections:
        reg, logit = self._split(outputs)
        score = 1.0 / (1.0 + np.exp(-np.clip(logit.astype(np.float64), -100.0, 100.0)))
        keep = np.flatnonzero(score > self.params.score_threshold)
        if keep.size == 0:
            return Detections.empty(self.num_keypoints)
        s = float(self.input_size)
        r = reg[keep] / s
        anchor = self.anchors[keep]
        centre = r[:, :2] + anchor
        half = r[:, 2:4] / 2
        xyxy = np.concatenate([centre - half, centre + half], axis=1) * s
        raw_kps = (r[:, 4:].reshape(len(keep), self.num_keypoints, 2) + anchor[:, None, :]) * s
        boxes, scores, kps = weighted_nms(
            xyxy.astype(np.float32),
            score[keep].astype(np.float32),
            raw_kps.astype(np.float32),
            self.params.iou_threshold,
            self.params.max_detections,
        )
        if self.box == "body" and len(scores):
            half_side = np.linalg.norm(kps[:, 1] - kps[:, 0], axis=1, keepdims=True)
            boxes = np.concatenate([kps[:, 0] - half_side, kps[:, 0] + half_side], axis=1).astype(np.float32)
        return to_frame(ctx, boxes, scores, np.zeros(len(scores), np.int32), kps)
