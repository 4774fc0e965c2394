"""Image classification: top-k classes as full-frame detections."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.decoders.base import DecodeContext, DecodeParams
from edge.decoders.shapes import OutputRule, vector
from edge.types import Detections


def probabilities(logits: np.ndarray) -> np.ndarray:
    """Softmax unless the vector already is a probability distribution."""
    x = logits.astype(np.float64).reshape(-1)
    if x.min() >= 0.0 and abs(x.sum() - 1.0) < 1e-3:
        p: np.ndarray = x.astype(np.float32)
        return p
    e = np.exp(x - x.max())
    p = (e / e.sum()).astype(np.float32)
    return p


class ClassifyDecoder:
    """One detection per class among the top ``top_k`` above the score threshold; the box is the frame."""

    num_keypoints = 0

    def __init__(self, params: DecodeParams, top_k: int = 5, num_classes: int | None = None) -> None:
        self.params = params
        self.top_k = top_k
        self.output_rules: tuple[OutputRule, ...] = (
            ()
            if num_classes is None
            else (OutputRule(f"one score per label ({num_classes})", vector(num_classes), 0),)
        )

    def __call__(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Detections:
        p = probabilities(outputs[0])
        order = np.argsort(-p, kind="stable")[: min(self.top_k, self.params.max_detections)]
        order = order[p[order] >= self.params.score_threshold]
        w, h = ctx.frame_wh
        boxes = np.tile(np.array([[0, 0, w, h]], dtype=np.float32), (len(order), 1))
        return Detections(boxes, p[order], order.astype(np.int32))
