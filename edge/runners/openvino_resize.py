"""Run a square YOLO export at another image size on OpenVINO (``models.<name>.input_size``).

Ultralytics exports its detectors with a fixed square input (640x640 by default). A 16:9
frame letterboxed into it is 44 % grey padding, and the network spends 44 % of its work
there. Ultralytics' own ``predict`` avoids that only for PyTorch weights and dynamic exports.

The network is fully convolutional; what ties a static export to its size are constants its
head was traced with:
- the anchor grid, the cell centres ``(1, 2, N)`` or ``(2, N)``;
- each anchor's stride ``(1, N)``;
- the ``Reshape`` targets that hold N, the DFL's ``(1, 4, 16, N)`` and ``(1, 4, N)``.

How a graph is rewritten:
1. The grid is recognised by value: the cell centres for strides 8, 16, 32 (and 64 for the P6
   models) at the export's size, in the order Ultralytics lays them out.
2. Those constants are rewritten for the new size.
3. OpenVINO infers every shape again.

A graph without that grid is refused with a one-line ``ModelError``: only a head recognised in
full is changed, never a graph guessed at.

Inside the picture the outputs are those of the square graph: measured on YOLOv8n at 640x384,
to 2e-5 px, for anchors 32 px or more inside the picture. Near its edge they differ as much as
a wide and a narrow grey border do.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.runners.base import one_line
from edge.types import guess_layout

# The head's strides: P3-P5 (most models), then P3-P6 (the "-p6" models).
STRIDE_SETS = ((8, 16, 32), (8, 16, 32, 64))


def anchor_grid(height: int, width: int, strides: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
    """The cell centres ``(2, N)`` (x then y, in cells) and strides ``(N,)`` of a head at this
    input size, level by level, row by row."""
    points, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(height // s) + 0.5, np.arange(width // s) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        steps.append(np.full(xs.size, s))
    return np.concatenate(points, 1).astype(np.float32), np.concatenate(steps).astype(np.float32)


# Bumped when the rewrite changes: part of the key of compiled models kept on disk.
VERSION = 1
# Which decoders read an anchor-free Ultralytics head that ``resize_graph`` was checked on.
RESIZABLE_DECODERS = frozenset({"yolov8"})


def suggested_size(
    frame_wh: tuple[int, int], input_wh: tuple[int, int], step: int = 32
) -> tuple[int, int] | None:
    """The ``input_size`` (width, height) that holds a frame of ``frame_wh`` at the scale it gets
    in ``input_wh``, each side rounded up to ``step``; None when that saves under a fifth of
    the input (a frame of about the input's shape)."""
    (fw, fh), (iw, ih) = frame_wh, input_wh
    scale = min(iw / fw, ih / fh)
    width = min(iw, math.ceil(fw * scale / step) * step)
    height = min(ih, math.ceil(fh * scale / step) * step)
    return (width, height) if width * height <= 0.8 * iw * ih else None


def image_size(model: Any) -> tuple[int | None, int | None, str] | None:
    """Height, width (None where dynamic) and layout of the model's one NCHW/NHWC image input,
    else None."""
    if len(model.inputs) != 1:
        return None
    shape = tuple(d.get_length() if d.is_static else None for d in model.inputs[0].get_partial_shape())
    layout = guess_layout(shape) if len(shape) == 4 else "other"
    if layout == "NCHW":
        return shape[2], shape[3], layout
    if layout == "NHWC":
        return shape[1], shape[2], layout
    return None


Grid = tuple[np.ndarray, np.ndarray]  # cell centres (2, N) and strides (N,)


def _offset(data: np.ndarray, points: np.ndarray) -> float | None:
    """The constant c for which ``data`` holds the cell centres plus c (0 for the grid itself,
    -0.5 for the cell corners a pose head adds keypoints to), else None."""
    values = data.astype(np.float32).reshape(points.shape) - points
    c = float(values.flat[0])
    return c if bool(np.allclose(values, c, rtol=0.0, atol=1e-3)) else None


def _replacement(
    data: np.ndarray, consumers: set[str], old: Grid, new: Grid, levels: list[tuple[int, int, int, int]]
) -> np.ndarray | None:
    """What a constant becomes at the new size, or None when it does not depend on the size.

    ``levels``: (height, width) in cells at the old size, then at the new one, per stride."""
    (points0, strides0), (points1, strides1) = old, new
    n0, n1 = strides0.size, strides1.size
    if data.dtype.kind == "f":
        if data.size == 2 * n0 and data.shape[-2:] == (2, n0):
            c = _offset(data, points0)
            if c is not None:  # the grid, or the grid shifted
                return (points1 + c).reshape(data.shape[:-2] + (2, n1)).astype(data.dtype)
        if (
            data.size == n0
            and data.shape[-1:] == (n0,)
            and np.allclose(data.astype(np.float32).ravel(), strides0, rtol=0.0, atol=1e-3)
        ):
            return strides1.reshape(data.shape[:-1] + (n1,)).astype(data.dtype)
        return None
    if data.dtype.kind not in "iu" or data.ndim != 1 or consumers != {"Reshape"}:
        return None
    # A Reshape target: the anchor count anywhere; as its last entry, a level's cell count
    # (attention over a level's cells, as in YOLO11); as its last two, a level's height and
    # width. Only the last entries: the DFL's 16 bins equal a level's cells at some sizes.
    values = data.tolist()
    out = [n1 if v == n0 else v for v in values]
    for h0, w0, h1, w1 in levels:  # matched against the original entries, the first level wins
        if len(values) >= 3 and values[-1] == h0 * w0 and values[-1] != n0:
            out[-1] = h1 * w1
            break
        if len(values) >= 4 and values[-2:] == [h0, w0]:
            out[-2:] = [h1, w1]
            break
    return None if out == values else np.array(out, dtype=data.dtype)


def resize_graph(model: Any, hw: tuple[int, int], path: Path) -> None:
    """Make ``model`` (an ``ov.Model``, changed in place) take images of ``hw`` (height, width).

    Nothing changes when it already does; a dynamic image size is only set. Raises
    ``ModelError`` naming ``path`` when:
    - the model has not one NCHW/NHWC image input;
    - no YOLO anchor grid for its size is found;
    - the new size is not a multiple of the head's largest stride;
    - OpenVINO cannot infer the shapes at the new size.
    """
    from openvino import opset13

    found = image_size(model)
    if found is None:
        raise ModelError(f"{path}: input_size needs a model with one image input (NCHW or NHWC)")
    h0, w0, layout = found
    if (h0, w0) == hw:
        return
    if h0 is None or w0 is None:  # a dynamic export: nothing to rewrite, only the size to set
        _set_size(model, hw, layout, path)
        return
    constants = [op for op in model.get_ordered_ops() if op.get_type_name() == "Constant"]
    for strides in sorted(STRIDE_SETS, key=len, reverse=True):
        if h0 % strides[-1] or w0 % strides[-1]:
            continue
        old = anchor_grid(h0, w0, strides)
        grids = [op for op in constants if op.get_output_element_type(0).is_real() and _is_grid(op, old)]
        if grids:
            break
    else:
        raise ModelError(
            f"{path}: input_size works on YOLO exports with an anchor-free head (YOLOv8, YOLO11 and "
            f"later, from Ultralytics); no anchor grid for the model's {w0}x{h0} input was found"
        )
    step = strides[-1]
    if hw[0] % step or hw[1] % step:
        raise ModelError(f"{path}: input_size must be a multiple of {step} (the model's largest stride)")
    new = anchor_grid(hw[0], hw[1], strides)
    levels = [(h0 // s, w0 // s, hw[0] // s, hw[1] // s) for s in strides]
    for op in constants:
        consumers = {t.get_node().get_type_name() for t in op.output(0).get_target_inputs()}
        value = _replacement(np.asarray(op.get_data()), consumers, old, new, levels)
        if value is not None:
            const = opset13.constant(value)
            for target in list(op.output(0).get_target_inputs()):
                target.replace_source_output(const.output(0))
    _set_size(model, hw, layout, path)


def _set_size(model: Any, hw: tuple[int, int], layout: str, path: Path) -> None:
    """Give the image input height and width ``hw`` (the batch stays as it is) and let
    OpenVINO infer every shape again."""
    import openvino as ov

    dims = list(model.inputs[0].get_partial_shape())
    first = 2 if layout == "NCHW" else 1
    dims[first : first + 2] = [ov.Dimension(hw[0]), ov.Dimension(hw[1])]
    model.inputs[0].get_node().set_partial_shape(ov.PartialShape(dims))
    try:
        model.validate_nodes_and_infer_types()
    except Exception as exc:
        raise ModelError(
            f"{path}: OpenVINO cannot run it at input_size {hw[1]}x{hw[0]} ({one_line(exc)})"
        ) from exc


def _is_grid(op: Any, old: Grid) -> bool:
    points = old[0]
    shape = tuple(op.get_output_shape(0))
    if shape[-2:] != points.shape or int(np.prod(shape)) != points.size:
        return False
    return _offset(np.asarray(op.get_data()), points) == 0.0
