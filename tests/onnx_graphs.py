"""Small ONNX graphs whose outputs are known constants, built with onnx.helper.

Each output is ``constant + 0 * mean(input)`` so the image input stays connected and the
graph runs on every backend like a real detector would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


def save_graph(graph: onnx.GraphProto, path: Path, metadata: dict[str, str] | None = None) -> Path:
    """Opset 17 / IR 8 model of ``graph`` with ``metadata_props``, checked and saved to ``path``."""
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def constant_output_model(
    path: Path,
    outputs: dict[str, np.ndarray],
    input_shape: tuple[int, ...] = (1, 3, 64, 64),
    input_dtype: int = TensorProto.FLOAT,
    metadata: dict[str, str] | None = None,
) -> Path:
    nodes = []
    inits = []
    src = "images"
    if input_dtype != TensorProto.FLOAT:
        nodes.append(helper.make_node("Cast", [src], ["images_f"], to=TensorProto.FLOAT))
        src = "images_f"
    nodes.append(helper.make_node("ReduceMean", [src], ["mean"], keepdims=0))
    inits.append(numpy_helper.from_array(np.zeros((), np.float32), "zero"))
    nodes.append(helper.make_node("Mul", ["mean", "zero"], ["nothing"]))
    graph_outputs = []
    for name, value in outputs.items():
        const = f"{name}_const"
        inits.append(numpy_helper.from_array(value.astype(np.float32), const))
        nodes.append(helper.make_node("Add", [const, "nothing"], [name]))
        graph_outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(value.shape)))
    graph = helper.make_graph(
        nodes,
        "constant_detector",
        [helper.make_tensor_value_info("images", input_dtype, list(input_shape))],
        graph_outputs,
        initializer=inits,
    )
    return save_graph(graph, path, metadata)


@dataclass(frozen=True)
class YoloV8LikeWeights:
    """The constants of a YOLOv8-shaped detector, shared by its ONNX and TFLite twins.

    ``output0 = sigmoid(reshape(conv(image)) + offsets) * scale + bias``, shape (1, 4 + nc, N):
    per grid cell a box centre inside the cell (``corner + stride * s``), a side of 8..32
    pixels, and class scores. Each (cell, class) score has its own logit offset, evenly spread
    over [-3, 3], so scores never tie and NMS decides the same on every backend; the
    convolution's weights are small so the offsets set the order.
    """

    weight: np.ndarray  # (C, 3, stride, stride), ONNX's OIHW
    offsets: np.ndarray  # (1, C, N)
    scale: np.ndarray  # (1, C, 1)
    bias: np.ndarray  # (1, C, N)
    stride: int

    @property
    def channels(self) -> int:
        return int(self.weight.shape[0])

    @property
    def cells(self) -> int:
        return int(self.offsets.shape[2])


def yolov8_like_weights(
    num_classes: int = 2, size: int = 64, stride: int = 8, seed: int = 0
) -> YoloV8LikeWeights:
    rng = np.random.default_rng(seed)
    channels, grid = 4 + num_classes, size // stride
    cells = grid * grid
    weight = (rng.standard_normal((channels, 3, stride, stride)) * 0.02).astype(np.float32)
    offsets = np.zeros((1, channels, cells), np.float32)
    spread = np.linspace(-3.0, 3.0, num_classes * cells)[rng.permutation(num_classes * cells)]
    offsets[0, 4:] = spread.reshape(num_classes, cells)
    scale = np.array([stride, stride, 24.0, 24.0] + [1.0] * num_classes, np.float32).reshape(1, channels, 1)
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    bias = np.zeros((1, channels, cells), np.float32)
    bias[0, 0], bias[0, 1] = xs.reshape(-1) * stride, ys.reshape(-1) * stride
    bias[0, 2:4] = 8.0
    return YoloV8LikeWeights(weight, offsets, scale, bias, stride)


def yolov8_like_model(
    path: Path,
    num_classes: int = 2,
    size: int = 64,
    stride: int = 8,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A YOLOv8-shaped ONNX detector: ``images`` (1, 3, size, size) -> ``output0`` (1, 4 + nc, N);
    see ``YoloV8LikeWeights``."""
    w = yolov8_like_weights(num_classes, size, stride, seed)
    inits = [
        numpy_helper.from_array(w.weight, "w"),
        numpy_helper.from_array(np.array([1, w.channels, w.cells], np.int64), "flat"),
        numpy_helper.from_array(w.offsets, "offsets"),
        numpy_helper.from_array(w.scale, "scale"),
        numpy_helper.from_array(w.bias, "bias"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["conv"], strides=[stride, stride]),
        helper.make_node("Reshape", ["conv", "flat"], ["raw"]),
        helper.make_node("Add", ["raw", "offsets"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["sig"]),
        helper.make_node("Mul", ["sig", "scale"], ["scaled"]),
        helper.make_node("Add", ["scaled", "bias"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, w.channels, w.cells])],
        initializer=inits,
    )
    return save_graph(graph, path, metadata)


def yolov8_like_tflite(
    path: Path,
    num_classes: int = 2,
    size: int = 64,
    stride: int = 8,
    seed: int = 0,
    metadata: dict[str, object] | None = None,
) -> Path:
    """The TFLite twin of ``yolov8_like_model`` (same weights, NHWC input), written with the
    flatbuffer schema that ai-edge-litert ships; ``metadata`` is appended as the zip holding
    ``metadata.json`` that Ultralytics adds to its TFLite exports."""
    import json
    import zipfile

    import flatbuffers
    from ai_edge_litert import schema_py_generated as tfl

    w = yolov8_like_weights(num_classes, size, stride, seed)
    c, n, g = w.channels, w.cells, size // stride
    buffers = [tfl.BufferT()]  # buffer 0: the empty sentinel for tensors without data
    tensors = []

    def tensor(
        name: str, shape: list[int], data: np.ndarray | None = None, kind: int = tfl.TensorType.FLOAT32
    ) -> int:
        t = tfl.TensorT()
        t.name, t.shape, t.type, t.buffer = name, shape, kind, 0
        if data is not None:
            b = tfl.BufferT()
            b.data = np.frombuffer(np.ascontiguousarray(data).tobytes(), np.uint8)
            buffers.append(b)
            t.buffer = len(buffers) - 1
        tensors.append(t)
        return len(tensors) - 1

    images = tensor("images", [1, size, size, 3])
    filt = tensor("filter", [c, stride, stride, 3], w.weight.transpose(0, 2, 3, 1))  # OHWI
    conv_bias = tensor("conv_bias", [c], np.zeros(c, np.float32))
    conv = tensor("conv", [1, g, g, c])
    flat_shape = tensor("flat_shape", [3], np.array([1, n, c], np.int32), tfl.TensorType.INT32)
    flat = tensor("flat", [1, n, c])
    perm = tensor("perm", [3], np.array([0, 2, 1], np.int32), tfl.TensorType.INT32)
    raw = tensor("raw", [1, c, n])
    offsets = tensor("offsets", [1, c, n], w.offsets)
    logits = tensor("logits", [1, c, n])
    sig = tensor("sig", [1, c, n])
    scale = tensor("scale", [1, c, 1], w.scale)
    scaled = tensor("scaled", [1, c, n])
    bias = tensor("bias", [1, c, n], w.bias)
    output = tensor("output0", [1, c, n])

    conv_opts = tfl.Conv2DOptionsT()
    conv_opts.padding, conv_opts.strideW, conv_opts.strideH = tfl.Padding.VALID, stride, stride
    conv_opts.dilationWFactor = conv_opts.dilationHFactor = 1
    reshape_opts = tfl.ReshapeOptionsT()
    reshape_opts.newShape = [1, n, c]
    ops_, opts_ = tfl.BuiltinOperator, tfl.BuiltinOptions
    ops = [  # (operator, inputs, outputs, options type, options)
        (ops_.CONV_2D, [images, filt, conv_bias], [conv], opts_.Conv2DOptions, conv_opts),
        (ops_.RESHAPE, [conv, flat_shape], [flat], opts_.ReshapeOptions, reshape_opts),
        (ops_.TRANSPOSE, [flat, perm], [raw], opts_.TransposeOptions, tfl.TransposeOptionsT()),
        (ops_.ADD, [raw, offsets], [logits], opts_.AddOptions, tfl.AddOptionsT()),
        (ops_.LOGISTIC, [logits], [sig], opts_.NONE, None),
        (ops_.MUL, [sig, scale], [scaled], opts_.MulOptions, tfl.MulOptionsT()),
        (ops_.ADD, [scaled, bias], [output], opts_.AddOptions, tfl.AddOptionsT()),
    ]
    codes: list[int] = []
    operators = []
    for code, inputs, outputs, opt_type, opts in ops:
        if code not in codes:
            codes.append(code)
        op = tfl.OperatorT()
        op.opcodeIndex, op.inputs, op.outputs = codes.index(code), inputs, outputs
        op.builtinOptionsType, op.builtinOptions = opt_type, opts
        operators.append(op)
    op_codes = []
    for code in codes:
        oc = tfl.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, code, 1
        op_codes.append(oc)
    sub = tfl.SubGraphT()
    sub.tensors, sub.inputs, sub.outputs, sub.operators, sub.name = (
        tensors,
        [images],
        [output],
        operators,
        "main",
    )
    model = tfl.ModelT()
    model.version, model.operatorCodes, model.subgraphs, model.buffers = 3, op_codes, [sub], buffers
    model.description = "yolov8-like test detector"
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    path.write_bytes(bytes(builder.Output()))
    if metadata is not None:
        with zipfile.ZipFile(path, "a", zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("metadata.json", json.dumps(metadata))
    return path


def ultralytics_metadata(names: list[str], size: int, task: str = "detect") -> dict[str, object]:
    """The metadata Ultralytics 8.4 writes beside an export (``metadata.yaml`` for OpenVINO)."""
    return {
        "description": "Ultralytics YOLOv8n model trained on coco.yaml",
        "author": "Ultralytics",
        "date": "2026-01-15T10:00:00",
        "version": "8.4.0",
        "license": "AGPL-3.0 License (https://ultralytics.com/license)",
        "docs": "https://docs.ultralytics.com",
        "stride": 32,
        "task": task,
        "batch": 1,
        "imgsz": [size, size],
        "names": dict(enumerate(names)),
        "args": {"batch": 1, "half": False, "int8": False, "dynamic": False, "nms": False},
        "channels": 3,
        "end2end": False,
    }


def openvino_export(
    onnx_path: Path,
    folder: Path,
    metadata: dict[str, object] | None,
    unnamed_outputs: bool = True,
    unnamed_inputs: bool = False,
) -> Path:
    """Lay out ``folder`` (``<name>_openvino_model/``) the way Ultralytics' OpenVINO export does:
    ``<name>.xml`` + ``.bin`` (f32 weights) and ``metadata.yaml``; its output tensors have no
    names, as in Ultralytics 8.4 exports."""
    import openvino as ov
    import yaml

    model = ov.convert_model(str(onnx_path))
    ports = ([model.output(i) for i in range(len(model.outputs))] if unnamed_outputs else []) + (
        [model.input(i) for i in range(len(model.inputs))] if unnamed_inputs else []
    )
    for port in ports:
        port.get_tensor().set_names(set())
    folder.mkdir(parents=True, exist_ok=True)
    xml = folder / f"{folder.name.removesuffix('_openvino_model')}.xml"
    ov.save_model(model, str(xml), compress_to_fp16=False)
    if metadata is not None:
        (folder / "metadata.yaml").write_text(yaml.safe_dump(metadata, sort_keys=False))
    return folder


def yolov8_head_model(
    path: Path,
    size: int = 128,
    num_classes: int = 1,
    metadata: dict[str, str] | None = None,
    height: int | None = None,
) -> Path:
    """A static-size detector with the head of an Ultralytics YOLOv8 export, node for node from
    the DFL on: per-level box and class maps flattened and concatenated, the DFL's
    ``Reshape (1, 4, 16, N)``, softmax and bin-weighted sum, ``Reshape (1, 4, N)``, the distances
    taken from and added to the anchor grid constant ``(1, 2, N)``, times the stride constant
    ``(1, N)``, and sigmoid class scores: ``images`` (1, 3, height or size, size) -> ``output0``
    (1, 4 + nc, N). These constants are what tie a real export to its size
    (``edge.runners.openvino_resize``). Two more kinds, from other Ultralytics heads: one copy
    of the grid is stored shifted by -0.5 (as a pose head's keypoint grid is), and the stride-32
    class map is flattened to its cells and folded back (as YOLO11's attention block does).

    What it detects is known: each anchor's class score is ``sigmoid(16 * (m - 0.6))``, ``m``
    the mean brightness of its cell, and each box is 4 cells wide and high, centred on its
    anchor. A bright blob is found where it is, at every level.
    """
    strides = (8, 16, 32)
    h, w = height or size, size
    points, steps = [], []
    for s in strides:
        ys, xs = np.meshgrid(np.arange(h // s) + 0.5, np.arange(w // s) + 0.5, indexing="ij")
        points.append(np.stack([xs.ravel(), ys.ravel()]))
        steps.append(np.full(xs.size, s))
    anchors = np.concatenate(points, 1).astype(np.float32)[None]  # (1, 2, N)
    n = anchors.shape[2]
    dfl_bias = np.full((4, 16), -10.0, np.float32)
    dfl_bias[:, 2] = 10.0  # every side 2 cells from the anchor
    inits = [
        numpy_helper.from_array(np.full((64, 3, 1, 1), 0.0, np.float32), "box_w"),
        numpy_helper.from_array(dfl_bias.ravel(), "box_b"),
        numpy_helper.from_array(np.full((num_classes, 3, 1, 1), 16.0 / 3.0, np.float32), "cls_w"),
        numpy_helper.from_array(np.full(num_classes, -9.6, np.float32), "cls_b"),
        numpy_helper.from_array(np.array([1, 64, -1], np.int64), "flat_box"),
        numpy_helper.from_array(np.array([1, num_classes, -1], np.int64), "flat_cls"),
        numpy_helper.from_array(np.array([1, 4, 16, n], np.int64), "dfl_shape"),
        numpy_helper.from_array(np.arange(16, dtype=np.float32).reshape(1, 16, 1, 1), "dfl_w"),
        numpy_helper.from_array(np.array([1, 4, n], np.int64), "dist_shape"),
        numpy_helper.from_array(anchors - 0.5, "corners"),  # the grid shifted, as a pose head has it
        numpy_helper.from_array(np.array(0.5, np.float32), "half"),
        numpy_helper.from_array(np.array([1, num_classes, (h // 32) * (w // 32)], np.int64), "tokens"),
        numpy_helper.from_array(np.array([1, num_classes, h // 32, w // 32], np.int64), "cells"),
        numpy_helper.from_array(anchors.copy(), "anchors_add"),
        numpy_helper.from_array(np.concatenate(steps).astype(np.float32)[None], "strides"),
        numpy_helper.from_array(np.array([2, 2], np.int64), "halves"),
        numpy_helper.from_array(np.array(2.0, np.float32), "two"),
    ]
    nodes = []
    for i, s in enumerate(strides):
        nodes += [
            helper.make_node("AveragePool", ["images"], [f"p{i}"], kernel_shape=[s, s], strides=[s, s]),
            helper.make_node("Conv", [f"p{i}", "box_w", "box_b"], [f"box{i}"]),
            helper.make_node("Conv", [f"p{i}", "cls_w", "cls_b"], [f"cls{i}" if s != 32 else "cls_map"]),
            helper.make_node("Reshape", [f"box{i}", "flat_box"], [f"fbox{i}"]),
            helper.make_node("Reshape", [f"cls{i}", "flat_cls"], [f"fcls{i}"]),
        ]
    nodes += [  # YOLO11's attention at stride 32 flattens a level's cells and folds them back
        helper.make_node("Reshape", ["cls_map", "tokens"], ["cls_tokens"]),
        helper.make_node("Reshape", ["cls_tokens", "cells"], ["cls2"]),
    ]
    nodes = [n for n in nodes if n.output != ["fcls2"]]  # made again below from the folded map
    nodes += [
        helper.make_node("Reshape", ["cls2", "flat_cls"], ["fcls2"]),
        helper.make_node("Concat", [f"fbox{i}" for i in range(3)], ["box"], axis=2),
        helper.make_node("Concat", [f"fcls{i}" for i in range(3)], ["cls"], axis=2),
        helper.make_node("Reshape", ["box", "dfl_shape"], ["bins"]),
        helper.make_node("Transpose", ["bins"], ["bins_t"], perm=[0, 2, 1, 3]),
        helper.make_node("Softmax", ["bins_t"], ["soft"], axis=1),
        helper.make_node("Conv", ["soft", "dfl_w"], ["dist4"]),
        helper.make_node("Reshape", ["dist4", "dist_shape"], ["dist"]),
        helper.make_node("Split", ["dist", "halves"], ["lt", "rb"], axis=1),
        helper.make_node("Add", ["corners", "half"], ["anchors_sub"]),
        helper.make_node("Sub", ["anchors_sub", "lt"], ["x1y1"]),
        helper.make_node("Add", ["anchors_add", "rb"], ["x2y2"]),
        helper.make_node("Add", ["x1y1", "x2y2"], ["csum"]),
        helper.make_node("Div", ["csum", "two"], ["cxy"]),
        helper.make_node("Sub", ["x2y2", "x1y1"], ["wh"]),
        helper.make_node("Concat", ["cxy", "wh"], ["xywh"], axis=1),
        helper.make_node("Mul", ["xywh", "strides"], ["boxes"]),
        helper.make_node("Sigmoid", ["cls"], ["scores"]),
        helper.make_node("Concat", ["boxes", "scores"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8_head",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, h, w])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, 4 + num_classes, n])],
        initializer=inits,
    )
    return save_graph(graph, path, metadata)
