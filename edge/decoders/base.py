"""What every decoder shares: the call signature, thresholds, and the letterbox undo."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from edge.decoders.shapes import OutputRule
from edge.types import Detections, FloatArray, Letterbox


@dataclass(frozen=True)
class DecodeParams:
    """Thresholds, from the model manifest's ``options`` and overridden by the config."""

    score_threshold: float = 0.25
    iou_threshold: float = 0.45
    max_detections: int = 300


@dataclass(frozen=True)
class DecodeContext:
    """Per-frame facts a decoder needs besides the raw outputs."""

    letterbox: Letterbox
    frame_wh: tuple[int, int]


class Decoder(Protocol):
    """Raw output tensors of one frame -> ``Detections`` in frame pixels.

    ``output_rules`` says which outputs it reads and what shapes fit; ``load_model`` checks
    them against the model once, after warm-up.
    """

    num_keypoints: int
    output_rules: tuple[OutputRule, ...]

    def __call__(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Detections: ...


def to_frame(
    ctx: DecodeContext,
    xyxy: FloatArray,
    score: FloatArray,
    class_id: np.ndarray,
    keypoints: FloatArray | None = None,
) -> Detections:
    """Undo the letterbox on boxes (and keypoints) in input pixels, clip boxes to the frame."""
    boxes = ctx.letterbox.to_frame(xyxy)
    # Keypoints are (N, K, 2): the letterbox maps the last axis' (x, y) pairs, also when N is 0.
    kps = None if keypoints is None else ctx.letterbox.to_frame(keypoints)
    dets = Detections(boxes, score, class_id.astype(np.int32), kps)
    return dets.clip(*ctx.frame_wh)


def cxcywh_to_xyxy(b: FloatArray) -> FloatArray:
    half = b[:, 2:4] / 2
    return np.concatenate([b[:, :2] - half, b[:, :2] + half], axis=1).astype(np.float32)
