"""int8/uint8 tensors: feeds are quantised and outputs dequantised with the model's own
parameters. No quantised-I/O model ships in the pinned wheels, so the LiteRT tensor-detail
parsing is checked on the detail dicts the interpreter returns (same keys and types)."""

from __future__ import annotations

import numpy as np
import pytest

from edge.runners.base import finish_output, prepare_feed
from edge.runners.litert import _spec
from edge.types import QuantParams, TensorSpec

Q = QuantParams(scale=0.5, zero_point=-3)


@pytest.mark.parametrize(
    ("dtype", "real", "expected"),
    [
        (np.int8, [0.0, 1.0, -1.0, 100.0, -100.0], [-3, -1, -5, 127, -128]),
        (np.uint8, [0.0, 1.0, 200.0], [0, 0, 255]),  # zero point -3 pushes small values below 0
    ],
)
def test_quantize_clips_to_the_dtype(dtype: type, real: list[float], expected: list[int]) -> None:
    got = Q.quantize(np.array(real, np.float32), np.dtype(dtype))  # type: ignore[arg-type]
    assert got.dtype == dtype and got.tolist() == expected


def test_feed_and_output_round_trip() -> None:
    spec = TensorSpec("x", (1, 4), np.dtype(np.int8), "NC", Q)
    real = np.array([[-2.0, 0.0, 1.5, 10.0]], np.float32)
    q = prepare_feed(spec, real)
    assert q.dtype == np.int8
    np.testing.assert_allclose(finish_output(spec, q), real)
    # An already-quantised feed passes untouched; a float output spec is left alone.
    assert prepare_feed(spec, q) is q
    f = TensorSpec("y", (1, 4), np.dtype(np.float32))
    assert finish_output(f, real) is real


def test_litert_details_become_specs_with_quantisation() -> None:
    detail = {
        "name": "input", "index": 0, "shape": np.array([1, 224, 224, 3]),
        "shape_signature": np.array([-1, 224, 224, 3]), "dtype": np.uint8,
        "quantization": (0.0078125, 128),
        "quantization_parameters": {"scales": np.array([0.0078125], np.float32),
                                    "zero_points": np.array([128]), "quantized_dimension": 0},
    }
    spec = _spec(detail)
    assert spec.shape == (None, 224, 224, 3) and spec.layout == "NHWC" and spec.has_dynamic_batch
    assert spec.quant == QuantParams(0.0078125, 128) and spec.is_quantized
    float_detail = {**detail, "dtype": np.float32,
                    "quantization_parameters": {"scales": np.array([]), "zero_points": np.array([])}}
    assert _spec(float_detail).quant is None
