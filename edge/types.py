"""Value types shared by runners, preprocessors and decoders.

Everything here is immutable (frozen dataclasses) so it can cross threads safely.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Layout = Literal["NCHW", "NHWC", "NC", "other"]
FloatArray = npt.NDArray[np.float32]
IntArray = npt.NDArray[np.int32]


@dataclass(frozen=True)
class QuantParams:
    """Affine int8/uint8 quantisation: ``real = scale * (q - zero_point)``."""

    scale: float
    zero_point: int

    def quantize(self, real: npt.NDArray[np.floating], dtype: np.dtype[np.integer]) -> np.ndarray:
        info = np.iinfo(dtype)
        q = np.rint(np.asarray(real, dtype=np.float32) / self.scale) + self.zero_point
        out: np.ndarray = np.clip(q, info.min, info.max).astype(dtype)
        return out

    def dequantize(self, q: np.ndarray) -> FloatArray:
        real: FloatArray = (q.astype(np.float32) - np.float32(self.zero_point)) * np.float32(self.scale)
        return real.astype(np.float32)


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape, dtype and layout of one model input or output.

    ``shape`` holds ``None`` for dynamic axes (batch, or image size of fully convolutional
    models). ``quant`` is set only for quantised integer tensors.
    """

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype[np.generic]
    layout: Layout = "other"
    quant: QuantParams | None = None

    @property
    def is_quantized(self) -> bool:
        return self.quant is not None and np.issubdtype(self.dtype, np.integer)

    @property
    def has_dynamic_batch(self) -> bool:
        return len(self.shape) > 0 and self.shape[0] is None

    def image_hw(self) -> tuple[int, int] | None:
        """Height and width for NCHW/NHWC image inputs when they are static."""
        if self.layout == "NCHW" and len(self.shape) == 4:
            h, w = self.shape[2], self.shape[3]
        elif self.layout == "NHWC" and len(self.shape) == 4:
            h, w = self.shape[1], self.shape[2]
        else:
            return None
        if h is None or w is None:
            return None
        return h, w


def guess_layout(shape: tuple[int | None, ...]) -> Layout:
    """Image layout from a 4-D shape: channels of 1 or 3 (or 4) decide."""
    if len(shape) == 4:
        if shape[1] in (1, 3, 4) and shape[3] not in (1, 3, 4):
            return "NCHW"
        if shape[3] in (1, 3, 4):
            return "NHWC"
        if shape[1] in (1, 3, 4):
            return "NCHW"
    if len(shape) == 2:
        return "NC"
    return "other"


@dataclass(frozen=True)
class Letterbox:
    """How a frame was fitted into the model input: ``input = frame * scale + pad``."""

    scale: float
    pad_x: float
    pad_y: float

    @staticmethod
    def fit(frame_wh: tuple[int, int], input_wh: tuple[int, int]) -> Letterbox:
        """Uniform scale that fits the frame inside the input, centred with padding."""
        fw, fh = frame_wh
        iw, ih = input_wh
        if fw <= 0 or fh <= 0 or iw <= 0 or ih <= 0:
            raise ValueError(f"sizes must be positive, got frame {frame_wh} and input {input_wh}")
        scale = min(iw / fw, ih / fh)
        new_w, new_h = round(fw * scale), round(fh * scale)
        # Whole-pixel padding: the image is pasted at an integer offset.
        return Letterbox(scale=scale, pad_x=float((iw - new_w) // 2), pad_y=float((ih - new_h) // 2))

    def to_frame(self, xy: FloatArray) -> FloatArray:
        """Map input-tensor pixel coordinates (..., 2k) back to frame pixels; returns a new array."""
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] = (out[..., 0::2] - self.pad_x) / self.scale
        out[..., 1::2] = (out[..., 1::2] - self.pad_y) / self.scale
        return out

    def to_input(self, xy: FloatArray) -> FloatArray:
        out = np.array(xy, dtype=np.float32, copy=True)
        out[..., 0::2] = out[..., 0::2] * self.scale + self.pad_x
        out[..., 1::2] = out[..., 1::2] * self.scale + self.pad_y
        return out


def _empty_f32(*shape: int) -> FloatArray:
    return np.zeros(shape, dtype=np.float32)


@dataclass(frozen=True)
class Detections:
    """Detections of one frame, one numpy array per field, in frame pixels.

    ``xyxy`` is (N, 4); ``score`` (N,); ``class_id`` (N,); ``keypoints`` (N, K, 2) or None;
    ``tracker_id`` (N,) or None. Index with a boolean mask or an index array:
    ``dets[dets.score > 0.5]``.
    """

    xyxy: FloatArray = field(default_factory=lambda: _empty_f32(0, 4))
    score: FloatArray = field(default_factory=lambda: _empty_f32(0))
    class_id: IntArray = field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    keypoints: FloatArray | None = None
    tracker_id: IntArray | None = None

    def __post_init__(self) -> None:
        xyxy = np.asarray(self.xyxy, dtype=np.float32)
        if xyxy.ndim != 2 or xyxy.shape[1] != 4:
            raise ValueError(f"xyxy must have shape (N, 4), got {xyxy.shape}")
        n = xyxy.shape[0]
        object.__setattr__(self, "xyxy", xyxy)
        score = np.asarray(self.score, dtype=np.float32)
        class_id = np.asarray(self.class_id, dtype=np.int32)
        for name, arr in (("score", score), ("class_id", class_id)):
            if arr.shape != (n,):
                raise ValueError(f"{name} must have shape ({n},), got {arr.shape}")
        object.__setattr__(self, "score", score)
        object.__setattr__(self, "class_id", class_id)
        if self.keypoints is not None:
            kp = np.asarray(self.keypoints, dtype=np.float32)
            if kp.ndim != 3 or kp.shape[0] != n or kp.shape[2] != 2:
                raise ValueError(f"keypoints must have shape ({n}, K, 2), got {kp.shape}")
            object.__setattr__(self, "keypoints", kp)
        if self.tracker_id is not None:
            tid = np.asarray(self.tracker_id, dtype=np.int32)
            if tid.shape != (n,):
                raise ValueError(f"tracker_id must have shape ({n},), got {tid.shape}")
            object.__setattr__(self, "tracker_id", tid)

    def __len__(self) -> int:
        return int(self.xyxy.shape[0])

    def __getitem__(self, index: npt.NDArray[np.bool_] | npt.NDArray[np.integer] | slice) -> Detections:
        return Detections(
            xyxy=self.xyxy[index],
            score=self.score[index],
            class_id=self.class_id[index],
            keypoints=None if self.keypoints is None else self.keypoints[index],
            tracker_id=None if self.tracker_id is None else self.tracker_id[index],
        )

    @property
    def area(self) -> FloatArray:
        wh = np.clip(self.xyxy[:, 2:] - self.xyxy[:, :2], 0, None)
        out: FloatArray = (wh[:, 0] * wh[:, 1]).astype(np.float32)
        return out

    def clip(self, width: int, height: int) -> Detections:
        """Boxes clipped to the frame (keypoints are left as predicted)."""
        xyxy = self.xyxy.copy()
        np.clip(xyxy[:, 0::2], 0, width, out=xyxy[:, 0::2])
        np.clip(xyxy[:, 1::2], 0, height, out=xyxy[:, 1::2])
        return Detections(xyxy, self.score, self.class_id, self.keypoints, self.tracker_id)

    @staticmethod
    def empty(num_keypoints: int = 0) -> Detections:
        kp = _empty_f32(0, num_keypoints, 2) if num_keypoints else None
        return Detections(keypoints=kp)
