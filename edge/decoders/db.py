"""DB (differentiable binarisation) text detection, as PP-OCR's detector outputs it.

The model gives a (1, 1, H, W) text probability map; regions above ``binary_threshold``
become boxes, scored by their mean probability and grown by the unclip ratio (the model
predicts shrunk text kernels).
"""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from edge.decoders.base import DecodeContext, DecodeParams, to_frame
from edge.decoders.shapes import OutputRule
from edge.types import Detections


class DbTextDecoder:
    num_keypoints = 0

    def __init__(
        self,
        params: DecodeParams,
        binary_threshold: float = 0.3,
        unclip_ratio: float = 1.6,
        min_side: float = 3.0,
        input_wh: tuple[int, int] | None = None,
    ) -> None:
        self.params = params
        # The map must cover the input pixel for pixel: its boxes are read as input pixels.
        w, h = input_wh or (None, None)
        self.output_rules: tuple[OutputRule, ...] = (
            OutputRule("a text probability map the size of the input", ((1, 1, h, w), (1, h, w)), 0),
        )
        self.binary_threshold = binary_threshold
        self.unclip_ratio = unclip_ratio
        self.min_side = min_side

    def __call__(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Detections:
        prob = outputs[0].reshape(outputs[0].shape[-2:]).astype(np.float32)
        mask = (prob > self.binary_threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes, scores = [], []
        for contour in contours:
            x, y, w, h = cv2.boundingRect(contour)
            if min(w, h) < self.min_side:
                continue
            region = np.zeros((h, w), np.uint8)
            cv2.drawContours(region, [contour - [x, y]], -1, 1, thickness=-1)
            score = float(prob[y : y + h, x : x + w][region > 0].mean())
            if score <= self.params.score_threshold:
                continue
            area, perimeter = float(cv2.contourArea(contour)), float(cv2.arcLength(contour, True))
            grow = area * self.unclip_ratio / max(perimeter, 1e-6)
            boxes.append([x - grow, y - grow, x + w + grow, y + h + grow])
            scores.append(score)
        if not boxes:
            return Detections.empty()
        xyxy = np.asarray(boxes, np.float32)
        sc = np.asarray(scores, np.float32)
        order = np.argsort(-sc, kind="stable")[: self.params.max_detections]
        return to_frame(ctx, xyxy[order], sc[order], np.zeros(len(order), np.int32))
