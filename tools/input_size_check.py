"""Does ``input_size`` change what a YOLO export sees? Square graph against resized graph.

For each export: OpenVINO runs it as exported (square) and rewritten to ``--size`` (see
``edge.runners.openvino_resize``) on one frame of the clip, letterboxed both ways by edge's own
letterbox (the clip must be landscape: the picture then fills the input's width). The outputs of
the stride-8 anchors that lie at least 4 cells (32 px) inside the picture are compared, with
the vertical shift between the two letterboxes taken out of the y coordinates (box centre and
keypoints). Prints the largest difference per export, or why the export was refused::

    python tools/input_size_check.py --clip clip720.mp4 yolov8n.onnx yolo11n.onnx yolov8n-pose.onnx
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edge.buffer.preprocess import InputFormat, LetterboxPreprocessor  # noqa: E402
from edge.errors import ModelError  # noqa: E402
from edge.runners.openvino_resize import image_size, resize_graph  # noqa: E402
from edge.types import TensorSpec  # noqa: E402

STRIDE = 8
MARGIN = 4  # cells kept away from the picture's edge


def letterbox(frame: np.ndarray, height: int, width: int) -> tuple[np.ndarray, int]:
    """The input tensor edge's letterbox makes of ``frame`` (YOLO's format: RGB, /255, NCHW),
    and the picture's top row in it."""
    spec = TensorSpec("images", (1, 3, height, width), np.dtype(np.float32), "NCHW")
    pre = LetterboxPreprocessor(InputFormat(width, height), spec)
    tensor = pre.new_tensor()
    box = pre(frame, tensor)
    return tensor, round(box.pad_y)


def y_channels(channels: int, num_classes: int) -> list[int]:
    """The output rows that are y coordinates: the box centre, and each keypoint's y."""
    rows = [1]
    extra = channels - 4 - num_classes
    if extra > 0 and extra % 3 == 0:  # keypoints as (x, y, visibility)
        rows += list(range(4 + num_classes + 1, channels, 3))
    return rows


def compare(path: Path, frame: np.ndarray, hw: tuple[int, int], num_classes: int) -> str:
    import openvino as ov

    core = ov.Core()
    model = core.read_model(str(path))
    found = image_size(model)
    if found is None or found[0] is None or found[1] is None:
        return "not a static image model"
    h0, w0 = found[0], found[1]
    try:
        resize_graph(model, hw, path)
    except ModelError as exc:
        return f"refused: {exc}"
    square = core.compile_model(core.read_model(str(path)), "CPU")
    resized = core.compile_model(model, "CPU")
    xs, top_s = letterbox(frame, h0, w0)
    xr, top_r = letterbox(frame, *hw)
    ys, yr = square(xs)[0][0], resized(xr)[0][0]
    shift = top_s - top_r
    if shift % STRIDE:
        return f"the letterboxes are {shift} px apart, not a whole number of cells"
    w_cells, first, last = w0 // STRIDE, top_r // STRIDE + MARGIN, (hw[0] - top_r) // STRIDE - MARGIN
    worst = 0.0
    for row in range(first, last):
        a = ys[:, (row + shift // STRIDE) * w_cells : (row + shift // STRIDE + 1) * w_cells].copy()
        b = yr[:, row * (hw[1] // STRIDE) : row * (hw[1] // STRIDE) + w_cells]
        a[y_channels(ys.shape[0], num_classes)] -= shift
        worst = max(worst, float(np.abs(a[:, MARGIN:-MARGIN] - b[:, MARGIN:-MARGIN]).max()))
    shapes = f"outputs {tuple(ys.shape)} -> {tuple(yr.shape)}"
    return f"{w0}x{h0} -> {hw[1]}x{hw[0]}: {shapes}, largest difference {worst:.3g}"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("exports", nargs="+", type=Path, help="Ultralytics .onnx or .xml exports")
    p.add_argument("--clip", type=Path, required=True, help="a video; its 50th frame is used")
    p.add_argument("--size", default="640x384", help="WIDTHxHEIGHT to run at (default 640x384)")
    p.add_argument("--classes", type=int, default=80, help="the exports' class count (80; pose: 1)")
    args = p.parse_args()
    width, height = (int(v) for v in args.size.lower().split("x"))
    cap = cv2.VideoCapture(str(args.clip))
    frame = None
    for _ in range(50):
        ok, got = cap.read()
        frame = got if ok else frame
    if frame is None:
        raise SystemExit(f"{args.clip}: no frame could be read")
    for path in args.exports:
        print(f"{path}: {compare(path, frame, (height, width), args.classes)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
