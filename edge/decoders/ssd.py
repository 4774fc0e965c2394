"""SSD with TFLite's detection post-processing: boxes, classes, scores, count."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from edge.decoders.base import DecodeContext, DecodeParams, to_frame
from edge.decoders.shapes import OutputRule, Shape
from edge.errors import ModelError
from edge.types import Detections, TensorSpec

ROLES = ("boxes", "classes", "scores", "count")
SHAPES: dict[str, tuple[Shape, ...]] = {
    "boxes": ((1, None, 4), (None, 4)),
    "classes": ((1, None), (None,)),
    "scores": ((1, None), (None,)),
    "count": ((1,), (), (1, 1)),
}


def output_roles(specs: Sequence[TensorSpec], order: Sequence[str] | None = None) -> dict[str, int]:
    """Which output is which. Exporters disagree on the order (TF1: boxes, classes, scores, count;
    TF2: scores, boxes, count, classes), so ``order`` from the manifest wins, then names, then shapes."""
    if order is not None:
        if sorted(order) != sorted(ROLES):
            raise ModelError(f"ssd output_order must name each of {ROLES}, got {list(order)}")
        return {role: i for i, role in enumerate(order)}
    if len(specs) != 4:
        raise ModelError(f"ssd decoder expects 4 outputs (boxes, classes, scores, count), got {len(specs)}")
    roles: dict[str, int] = {}
    for i, s in enumerate(specs):
        name = s.name.lower()
        for role, hints in (
            ("boxes", ("box",)),
            ("classes", ("class",)),
            ("scores", ("score",)),
            ("count", ("num", "count")),
        ):
            if any(h in name for h in hints) and role not in roles:
                roles[role] = i
    if len(roles) == 4:
        return roles
    # Positional TF1 default; the box tensor is the only one ending in 4.
    boxes = [i for i, s in enumerate(specs) if len(s.shape) == 3 and s.shape[-1] == 4]
    count = [i for i, s in enumerate(specs) if int(np.prod([d or 1 for d in s.shape])) == 1]
    rest = [i for i in range(4) if i not in boxes + count]
    if len(boxes) != 1 or len(count) != 1 or len(rest) != 2:
        raise ModelError("cannot tell the ssd outputs apart; set options.output_order in model.yaml")
    return {"boxes": boxes[0], "count": count[0], "classes": rest[0], "scores": rest[1]}


class SsdDecoder:
    """Boxes are (ymin, xmin, ymax, xmax) normalised to the input; classes index ``labels``
    after ``label_offset`` (some label maps start with a background entry)."""

    num_keypoints = 0

    def __init__(
        self, roles: dict[str, int], input_wh: tuple[int, int], params: DecodeParams, label_offset: int = 0
    ) -> None:
        self.roles = roles
        self.output_rules: tuple[OutputRule, ...] = tuple(
            OutputRule(role, SHAPES[role], roles[role]) for role in ROLES
        )
        self.input_wh = input_wh
        self.params = params
        self.label_offset = label_offset

    def __call__(self, outputs: Sequence[np.ndarray], ctx: DecodeContext) -> Detections:
        boxes = outputs[self.roles["boxes"]].reshape(-1, 4)
        classes = outputs[self.roles["classes"]].reshape(-1)
        scores = outputs[self.roles["scores"]].reshape(-1).astype(np.float32)
        count = int(outputs[self.roles["count"]].reshape(-1)[0])
        n = min(count, len(scores))
        boxes, classes, scores = boxes[:n], classes[:n], scores[:n]
        keep = scores > self.params.score_threshold
        boxes, classes, scores = boxes[keep], classes[keep], scores[keep]
        order = np.argsort(-scores, kind="stable")[: self.params.max_detections]
        w, h = self.input_wh
        yxyx = boxes[order]
        xyxy = np.stack([yxyx[:, 1] * w, yxyx[:, 0] * h, yxyx[:, 3] * w, yxyx[:, 2] * h], axis=1)
        class_id = np.rint(classes[order]).astype(np.int32) + self.label_offset
        return to_frame(ctx, xyxy.astype(np.float32), scores[order], class_id)
