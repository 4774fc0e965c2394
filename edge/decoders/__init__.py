"""Decoders turn raw output tensors into ``Detections`` in frame pixels.

The model manifest names the decoder; ``build_decoder`` wires it from the manifest's options,
the config's threshold overrides and the runner's tensor specs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from edge.decoders.base import DecodeContext, DecodeParams, Decoder
from edge.decoders.blaze import FACE_STRIDES, POSE_STRIDES, BlazeDecoder
from edge.decoders.classify import ClassifyDecoder
from edge.decoders.db import DbTextDecoder
from edge.decoders.shapes import OutputRule, check_outputs
from edge.decoders.ssd import SsdDecoder, output_roles
from edge.decoders.yolo import YoloV5Decoder, YoloV8Decoder, YoloV10Decoder
from edge.errors import ModelError
from edge.models import ModelPackage
from edge.types import TensorSpec

__all__ = [
    "DecodeContext",
    "DecodeParams",
    "Decoder",
    "OutputRule",
    "build_decoder",
    "check_outputs",
    "decode_params",
]

_DEFAULTS: dict[str, DecodeParams] = {
    "blazeface": DecodeParams(0.5, 0.3, 100),
    "blazepose": DecodeParams(0.5, 0.3, 20),
    "classify": DecodeParams(0.0, 0.0, 5),
    "db": DecodeParams(0.6, 0.0, 500),
}


def decode_params(package: ModelPackage, overrides: Mapping[str, Any] | None = None) -> DecodeParams:
    """Thresholds: decoder defaults < manifest options < config overrides (None = not set)."""
    base = _DEFAULTS.get(package.decoder, DecodeParams())
    merged = {
        "score_threshold": base.score_threshold,
        "iou_threshold": base.iou_threshold,
        "max_detections": base.max_detections,
    }
    for source in (package.options, overrides or {}):
        for key in merged:
            if source.get(key) is not None:
                merged[key] = source[key]
    return DecodeParams(
        float(merged["score_threshold"]), float(merged["iou_threshold"]), int(merged["max_detections"])
    )


def build_decoder(
    package: ModelPackage,
    input_wh: tuple[int, int],
    output_specs: Sequence[TensorSpec],
    params: DecodeParams,
) -> Decoder:
    opts = package.options
    nc = len(package.labels)
    name = package.decoder
    if name == "yolov8":
        kpt = opts.get("kpt_shape")
        return YoloV8Decoder(nc, params, kpt if isinstance(kpt, list | tuple) else None)
    if name == "yolov5":
        return YoloV5Decoder(nc, params)
    if name == "yolov10":
        return YoloV10Decoder(nc, params)
    if name == "ssd":
        order = opts.get("output_order")
        roles = output_roles(output_specs, str(order).split(",") if isinstance(order, str) else None)
        return SsdDecoder(roles, input_wh, params, int(opts.get("label_offset", 0)))
    if name == "classify":
        return ClassifyDecoder(params, int(opts.get("top_k", 5)), nc)
    if name in ("blazeface", "blazepose"):
        if input_wh[0] != input_wh[1]:
            raise ModelError(f"{package.origin}: {name} needs a square input, got {input_wh}")
        if name == "blazeface":
            return BlazeDecoder(input_wh[0], FACE_STRIDES, 6, params, str(opts.get("box", "detector")))
        return BlazeDecoder(input_wh[0], POSE_STRIDES, 4, params, str(opts.get("box", "body")))
    if name == "db":
        return DbTextDecoder(
            params,
            float(opts.get("binary_threshold", 0.3)),
            float(opts.get("unclip_ratio", 1.6)),
            input_wh=input_wh,
        )
    raise ModelError(f"{package.origin}: unknown decoder {name!r}")
