"""Letterbox, preprocessing and NMS: property tests where a law exists, plus concrete checks."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.buffer.preprocess import InputFormat, LetterboxPreprocessor, halvings
from edge.decoders.nms import iou_matrix, nms, weighted_nms
from edge.types import Detections, Letterbox, QuantParams, TensorSpec

sizes = st.integers(min_value=1, max_value=4000)


@given(fw=sizes, fh=sizes, iw=st.integers(16, 1280), ih=st.integers(16, 1280),
       pts=st.lists(st.tuples(st.floats(-1e4, 1e4), st.floats(-1e4, 1e4)), min_size=1, max_size=8))
def test_letterbox_round_trip(fw: int, fh: int, iw: int, ih: int, pts: list[tuple[float, float]]) -> None:
    box = Letterbox.fit((fw, fh), (iw, ih))
    xy = np.array(pts, np.float32).reshape(1, -1)
    back = box.to_frame(box.to_input(xy))
    np.testing.assert_allclose(back, xy, rtol=1e-4, atol=1e-2 / box.scale)


@given(fw=sizes, fh=sizes, iw=st.integers(16, 1280), ih=st.integers(16, 1280))
def test_letterbox_fits_inside_and_centres(fw: int, fh: int, iw: int, ih: int) -> None:
    box = Letterbox.fit((fw, fh), (iw, ih))
    corners = box.to_input(np.array([[0, 0, fw, fh]], np.float32))[0]
    assert corners[0] >= 0 and corners[1] >= 0
    assert corners[2] <= iw + 0.5 and corners[3] <= ih + 0.5
    # Whole-pixel padding and a rounded content size: centred to within 1.5 px.
    assert abs(corners[0] - (iw - corners[2])) <= 1.5 and abs(corners[1] - (ih - corners[3])) <= 1.5


@pytest.mark.parametrize(
    ("layout", "dtype", "quant"),
    [("NCHW", np.float32, None), ("NHWC", np.float32, None), ("NHWC", np.int8, QuantParams(1 / 128, 0))],
)
def test_preprocessor_places_pixels_where_the_letterbox_says(layout: str, dtype: type, quant: QuantParams | None) -> None:
    shape = (1, 3, 64, 64) if layout == "NCHW" else (1, 64, 64, 3)
    spec = TensorSpec("images", shape, np.dtype(dtype), layout, quant)  # type: ignore[arg-type]
    fmt = InputFormat(64, 64, "rgb", (127.5,) * 3, (127.5,) * 3, pad_value=0)
    pre = LetterboxPreprocessor(fmt, spec)
    frame = np.zeros((100, 200, 3), np.uint8)
    frame[40:60, 100:120] = (255, 0, 0)  # a blue square in BGR
    out = pre.new_tensor()
    box = pre(frame, out)
    assert box == Letterbox(0.32, 0.0, 16.0)
    cx, cy = box.to_input(np.array([[110.0, 50.0]], np.float32))[0]
    img = out[0].transpose(1, 2, 0) if layout == "NCHW" else out[0]
    value = img[int(cy), int(cx)].astype(np.float32)
    if quant is not None:
        value = quant.dequantize(value)
    np.testing.assert_allclose(value, [-1.0, -1.0, 1.0], atol=0.02)  # RGB order: blue is last
    pad = img[2, 2].astype(np.float32)
    if quant is not None:
        pad = quant.dequantize(pad)
    np.testing.assert_allclose(pad, [-1.0, -1.0, -1.0], atol=0.02)  # padding 0 normalised


def test_preprocessor_reuses_its_buffers() -> None:
    spec = TensorSpec("x", (1, 3, 32, 32), np.dtype(np.float32), "NCHW")
    pre = LetterboxPreprocessor(InputFormat(32, 32), spec)
    out = pre.new_tensor()
    frame = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    pre(frame, out)
    first = out.copy()
    resized = pre._resized
    pre(frame, out)
    assert pre._resized is resized
    np.testing.assert_array_equal(out, first)


boxes_strategy = st.lists(
    st.tuples(st.floats(0, 500), st.floats(0, 500), st.floats(1, 200), st.floats(1, 200),
              st.floats(0.01, 1.0), st.integers(0, 3)),
    min_size=0, max_size=40,
)


def _arrays(rows: list[tuple[float, ...]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    a = np.array(rows, np.float32).reshape(-1, 6)
    xyxy = np.concatenate([a[:, :2], a[:, :2] + a[:, 2:4]], axis=1)
    return xyxy, a[:, 4].copy(), a[:, 5].astype(np.int32)


@settings(max_examples=200)
@given(rows=boxes_strategy, iou=st.floats(0.1, 0.9))
def test_nms_is_idempotent(rows: list[tuple[float, ...]], iou: float) -> None:
    xyxy, scores, cls = _arrays(rows)
    keep = nms(xyxy, scores, cls, iou, 1000)
    again = nms(xyxy[keep], scores[keep], cls[keep], iou, 1000)
    assert sorted(keep[again].tolist()) == sorted(keep.tolist())
    # No two kept boxes of one class overlap by more than the threshold.
    for c in np.unique(cls[keep]):
        k = keep[cls[keep] == c]
        m = iou_matrix(xyxy[k], xyxy[k])
        np.fill_diagonal(m, 0)
        assert (m <= iou + 1e-5).all()


@settings(max_examples=100)
@given(rows=boxes_strategy)
def test_weighted_nms_keeps_best_scores_and_merges_inside_the_cluster(rows: list[tuple[float, ...]]) -> None:
    xyxy, scores, _ = _arrays(rows)
    kps = np.repeat(((xyxy[:, :2] + xyxy[:, 2:]) / 2)[:, None, :], 2, axis=1)
    boxes, out_scores, out_kps = weighted_nms(xyxy, scores, kps, 0.3, 1000)
    assert len(boxes) == len(out_scores) == len(out_kps) <= len(xyxy)
    if len(scores):
        assert out_scores[0] == scores.max()
        assert (np.diff(out_scores) <= 0).all()


def test_detections_validate_shapes_and_index_with_masks() -> None:
    d = Detections(np.array([[0, 0, 10, 10], [5, 5, 20, 20]]), np.array([0.9, 0.3]), np.array([1, 2]))
    assert len(d[d.score > 0.5]) == 1 and d[d.score > 0.5].class_id.tolist() == [1]
    assert d.area.tolist() == [100.0, 225.0]
    with pytest.raises(ValueError, match=r"score must have shape \(2,\)"):
        Detections(np.zeros((2, 4)), np.zeros(3), np.zeros(2))
    with pytest.raises(ValueError, match=r"xyxy must have shape \(N, 4\)"):
        Detections(np.zeros((2, 5)), np.zeros(2), np.zeros(2))


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize(
    ("color", "mean", "std"),
    [("rgb", (0.0, 0.0, 0.0), (255.0, 255.0, 255.0)), ("bgr", (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))],
)
def test_fast_normalisation_matches_a_plain_numpy_reference(layout: str, color: str, mean: tuple, std: tuple) -> None:
    import cv2

    size = 96
    shape = (1, 3, size, size) if layout == "NCHW" else (1, size, size, 3)
    spec = TensorSpec("x", shape, np.dtype(np.float32), layout)  # type: ignore[arg-type]
    pre = LetterboxPreprocessor(InputFormat(size, size, color, mean, std, pad_value=114), spec)  # type: ignore[arg-type]
    frame = np.random.default_rng(3).integers(0, 256, (240, 320, 3), dtype=np.uint8)
    out = pre.new_tensor()
    box = pre(frame, out)
    # Reference: the same geometry, then the obvious float arithmetic.
    canvas = np.full((size, size, 3), 114, np.uint8)
    nw, nh = round(320 * box.scale), round(240 * box.scale)
    resized = frame
    for w, h in [*halvings((320, 240), (nw, nh)), (nw, nh)]:  # the preprocessor's resize path
        resized = cv2.resize(resized, (w, h), interpolation=cv2.INTER_AREA)
    if color == "rgb":
        resized = resized[:, :, ::-1]
    canvas[int(box.pad_y) : int(box.pad_y) + nh, int(box.pad_x) : int(box.pad_x) + nw] = resized
    ref = (canvas.astype(np.float32) - np.array(mean, np.float32)) / np.array(std, np.float32)
    got = out[0].transpose(1, 2, 0) if layout == "NCHW" else out[0]
    np.testing.assert_allclose(got, ref, atol=1e-5)
