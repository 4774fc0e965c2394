"""Letterbox, colour order, normalisation, layout and int8 quantisation, written into a given tensor.

A ``LetterboxPreprocessor`` is built once per (model input, camera) and keeps its scratch
buffers, so the per-frame path allocates no tensor-sized arrays: it resizes into a cached
buffer, copies into a padded canvas, then normalises straight into the caller's slot.

``BgrConverter`` turns what some V4L2 cameras deliver (GREY/Y16 sensors: 2-D frames; BGRA;
16-bit samples) into BGR uint8, into a buffer it is given or keeps, so nothing after capture
has to know.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import cv2
import numpy as np

from edge.types import Letterbox, TensorSpec

ColorOrder = Literal["rgb", "bgr"]
_CV: Any = cv2  # OpenCV's stubs reject Scalar tuples that its bindings accept


@dataclass(frozen=True)
class InputFormat:
    """What the model expects, from its manifest: size, colour order and ``(x - mean) / std``."""

    width: int
    height: int
    color: ColorOrder = "rgb"
    mean: tuple[float, float, float] = (0.0, 0.0, 0.0)
    std: tuple[float, float, float] = (255.0, 255.0, 255.0)
    pad_value: int = 114


_FRAME_CONVERSIONS = {1: cv2.COLOR_GRAY2BGR, 4: cv2.COLOR_BGRA2BGR}


def is_bgr8(frame: np.ndarray) -> bool:
    """An (H, W, 3) uint8 frame: what everything after capture expects."""
    return frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8


class BgrConverter:
    """Grey ``(H, W)``/``(H, W, 1)``, BGR or BGRA frames of 8 or 16 bits -> BGR uint8.

    A BGR uint8 frame is returned as it is. Otherwise the result goes into ``out`` when it is
    an (H, W, 3) uint8 array distinct from the frame, else into a buffer kept here; a 16-bit
    frame is first scaled to 8 bits (full range: 65535 -> 255) into a kept scratch buffer. So
    after the first frame of a given size nothing is allocated.
    """

    def __init__(self) -> None:
        self._out: np.ndarray | None = None
        self._scratch: np.ndarray | None = None

    def __call__(self, frame: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        if is_bgr8(frame):
            return frame
        channels = 1 if frame.ndim == 2 else frame.shape[2] if frame.ndim == 3 else 0
        if channels not in (1, 3, 4) or frame.dtype not in (np.uint8, np.uint16):
            raise ValueError(
                f"expected a grey, BGR or BGRA frame of 8 or 16 bits, got shape {frame.shape} {frame.dtype}"
            )
        h, w = frame.shape[:2]
        if out is None or not _fits(out, (h, w, 3)) or np.shares_memory(out, frame):
            if self._out is None or not _fits(self._out, (h, w, 3)):
                self._out = np.empty((h, w, 3), np.uint8)
            out = self._out
        if frame.dtype == np.uint16:
            if channels == 3:
                cv2.convertScaleAbs(frame, dst=out, alpha=1 / 257)
                return out
            shape = (h, w) if channels == 1 else (h, w, channels)
            if self._scratch is None or not _fits(self._scratch, shape):
                self._scratch = np.empty(shape, np.uint8)
            cv2.convertScaleAbs(frame, dst=self._scratch, alpha=1 / 257)
            frame = self._scratch
        cv2.cvtColor(frame, _FRAME_CONVERSIONS[channels], dst=out)
        return out


def _fits(array: np.ndarray, shape: tuple[int, ...]) -> bool:
    return array.shape == shape and array.dtype == np.uint8 and array.flags.c_contiguous


def halvings(src_wh: tuple[int, int], dst_wh: tuple[int, int]) -> list[tuple[int, int]]:
    """Sizes of the successive exact halvings of ``src_wh`` that stay at least ``dst_wh``."""
    (w, h), (tw, th) = src_wh, dst_wh
    out = []
    while w % 2 == 0 and h % 2 == 0 and w // 2 >= tw and h // 2 >= th:
        w, h = w // 2, h // 2
        out.append((w, h))
    return out


class LetterboxPreprocessor:
    """Fits BGR uint8 frames into one model input tensor (grey, BGRA or 16-bit frames are
    converted to BGR first, into a buffer kept for the next frame)."""

    def __init__(self, fmt: InputFormat, spec: TensorSpec) -> None:
        if spec.layout not in ("NCHW", "NHWC"):
            raise ValueError(f"input {spec.name!r}: layout {spec.layout} is not an image layout")
        self.fmt = fmt
        self.spec = spec
        self._canvas = np.full((fmt.height, fmt.width, 3), fmt.pad_value, dtype=np.uint8)
        self._resized: np.ndarray | None = None
        self._pyramid: list[np.ndarray] = []
        self._geometry: tuple[int, int, int, int, int, int] | None = None
        self._mean = np.asarray(fmt.mean, dtype=np.float32)
        self._inv_std = (1.0 / np.asarray(fmt.std, dtype=np.float32)).astype(np.float32)
        self._float_scratch: np.ndarray | None = None
        self._planes = [np.empty((fmt.height, fmt.width), dtype=np.uint8) for _ in range(3)]
        self._to_bgr = BgrConverter()
        self._uniform = len(set(fmt.mean)) == 1 and len(set(fmt.std)) == 1
        self._raw_uint8 = spec.dtype == np.uint8 and spec.quant is None
        if spec.is_quantized:
            self._float_scratch = np.empty((fmt.height, fmt.width, 3), dtype=np.float32)
        elif not self._raw_uint8 and not np.issubdtype(spec.dtype, np.floating):
            raise ValueError(
                f"input {spec.name!r}: dtype {spec.dtype} without quantisation parameters "
                "cannot take a normalised image"
            )

    def new_tensor(self) -> np.ndarray:
        """A zeroed tensor of the input's shape with batch 1, for one slot."""
        h, w = self.fmt.height, self.fmt.width
        shape = (1, 3, h, w) if self.spec.layout == "NCHW" else (1, h, w, 3)
        return np.zeros(shape, dtype=self.spec.dtype)

    def _hwc_view(self, out: np.ndarray) -> np.ndarray:
        img: np.ndarray = out[0]
        return img.transpose(1, 2, 0) if self.spec.layout == "NCHW" else img

    def __call__(self, frame_bgr: np.ndarray, out: np.ndarray) -> Letterbox:
        """Write ``frame_bgr`` (H, W, 3) uint8 into ``out`` (batch 1) and return its letterbox.

        Grey, BGRA and 16-bit frames are accepted too (see ``BgrConverter``); anything else
        raises ValueError.
        """
        frame_bgr = self._to_bgr(frame_bgr)
        fh, fw = frame_bgr.shape[:2]
        box = Letterbox.fit((fw, fh), (self.fmt.width, self.fmt.height))
        new_w, new_h = round(fw * box.scale), round(fh * box.scale)
        px, py = int(box.pad_x), int(box.pad_y)
        geometry = (fw, fh, new_w, new_h, px, py)
        if geometry != self._geometry:
            self._canvas[:] = self.fmt.pad_value
            self._resized = np.empty((new_h, new_w, 3), dtype=np.uint8)
            self._pyramid = [
                np.empty((h, w, 3), dtype=np.uint8) for w, h in halvings((fw, fh), (new_w, new_h))
            ]
            self._geometry = geometry
        assert self._resized is not None
        if (new_w, new_h) == (fw, fh):
            np.copyto(self._resized, frame_bgr)
        elif box.scale >= 1:
            cv2.resize(frame_bgr, (new_w, new_h), dst=self._resized, interpolation=cv2.INTER_LINEAR)
        else:
            # INTER_AREA at a large non-integer factor is slow (3.5 ms for 720p -> 224); halving
            # with its fast 2x2 path first, then one short area step, costs ~0.3 ms.
            src = frame_bgr
            for level in self._pyramid:
                cv2.resize(src, (level.shape[1], level.shape[0]), dst=level, interpolation=cv2.INTER_AREA)
                src = level
            cv2.resize(src, (new_w, new_h), dst=self._resized, interpolation=cv2.INTER_AREA)
        roi = self._canvas[py : py + new_h, px : px + new_w]
        if self.fmt.color == "rgb":
            cv2.cvtColor(self._resized, cv2.COLOR_BGR2RGB, dst=self._resized)
        np.copyto(roi, self._resized)

        if self._raw_uint8:
            np.copyto(self._hwc_view(out), self._canvas)
        elif self._float_scratch is not None:
            scratch = self._float_scratch
            self._normalise_hwc(scratch)
            assert self.spec.quant is not None
            info = np.iinfo(self.spec.dtype)  # type: ignore[type-var]
            np.divide(scratch, np.float32(self.spec.quant.scale), out=scratch)
            np.rint(scratch, out=scratch)
            np.add(scratch, np.float32(self.spec.quant.zero_point), out=scratch)
            np.clip(scratch, info.min, info.max, out=scratch)
            np.copyto(self._hwc_view(out), scratch, casting="unsafe")
        elif self.spec.layout == "NCHW":
            # Broadcasting a 3-element mean over interleaved pixels runs numpy's inner loop 3
            # elements at a time (7 ms at 640x640); per plane it is a scalar op (0.7 ms).
            cv2.split(self._canvas, self._planes)
            for c, plane in enumerate(self._planes):
                dst = out[0, c]
                np.subtract(plane, self._mean[c], out=dst, casting="unsafe")
                np.multiply(dst, self._inv_std[c], out=dst, casting="unsafe")
        else:
            self._normalise_hwc(out[0])
        return box

    def _normalise_hwc(self, dst: np.ndarray) -> None:
        """``(canvas - mean) / std`` into a contiguous (H, W, 3) float array."""
        if self._uniform:
            flat = dst.reshape(-1)
            np.subtract(self._canvas.reshape(-1), self._mean[0], out=flat, casting="unsafe")
            np.multiply(flat, self._inv_std[0], out=flat, casting="unsafe")
        else:
            # OpenCV handles interleaved channels with a per-channel scalar natively.
            _CV.subtract(self._canvas, (*self.fmt.mean, 0.0), dst=dst, dtype=cv2.CV_32F)
            _CV.multiply(dst, (*(float(v) for v in self._inv_std), 1.0), dst=dst)
