"""Small ONNX graphs whose outputs are known constants, built with onnx.helper.

Each output is ``constant + 0 * mean(input)`` so the image input stays connected and the
graph runs on every backend like a real detector would.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper


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
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
    return path


def yolov8_like_model(
    path: Path,
    num_classes: int = 2,
    size: int = 64,
    stride: int = 8,
    seed: int = 0,
    metadata: dict[str, str] | None = None,
) -> Path:
    """A YOLOv8-shaped detector: image ``(1, 3, size, size)`` -> ``output0`` ``(1, 4 + nc, N)``.

    One strided convolution gives, per grid cell, a box (cx, cy inside the cell, w and h of
    8..32 pixels) and class scores, all depending on the image. Each (cell, class) score has
    its own logit offset (evenly spread over [-3, 3]), so scores never tie and NMS decides the same on every
    backend; the convolution's weights are small so the offsets set the order.
    """
    rng = np.random.default_rng(seed)
    channels = 4 + num_classes
    grid = size // stride
    cells = grid * grid
    weight = (rng.standard_normal((channels, 3, stride, stride)) * 0.02).astype(np.float32)
    offsets = np.zeros((1, channels, cells), np.float32)
    spread = np.linspace(-3.0, 3.0, num_classes * cells)[rng.permutation(num_classes * cells)]
    offsets[0, 4:] = spread.reshape(num_classes, cells)
    ys, xs = np.meshgrid(np.arange(grid), np.arange(grid), indexing="ij")
    corner = np.stack([xs.reshape(-1), ys.reshape(-1)])[None].astype(np.float32) * stride  # (1, 2, N)
    inits = [
        numpy_helper.from_array(weight, "w"),
        numpy_helper.from_array(np.array([1, channels, cells], np.int64), "flat"),
        numpy_helper.from_array(offsets, "offsets"),
        numpy_helper.from_array(corner, "corner"),
        numpy_helper.from_array(np.float32(stride), "stride"),
        numpy_helper.from_array(np.float32(24.0), "span"),
        numpy_helper.from_array(np.float32(8.0), "min_side"),
        numpy_helper.from_array(np.array([2, 2, num_classes], np.int64), "split"),
    ]
    nodes = [
        helper.make_node("Conv", ["images", "w"], ["conv"], strides=[stride, stride]),
        helper.make_node("Reshape", ["conv", "flat"], ["raw"]),
        helper.make_node("Add", ["raw", "offsets"], ["logits"]),
        helper.make_node("Sigmoid", ["logits"], ["sig"]),
        helper.make_node("Split", ["sig", "split"], ["xy", "wh", "cls"], axis=1),
        helper.make_node("Mul", ["xy", "stride"], ["xy_px"]),
        helper.make_node("Add", ["xy_px", "corner"], ["centre"]),
        helper.make_node("Mul", ["wh", "span"], ["wh_px"]),
        helper.make_node("Add", ["wh_px", "min_side"], ["side"]),
        helper.make_node("Concat", ["centre", "side", "cls"], ["output0"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "yolov8_like",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, channels, cells])],
        initializer=inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    for key, value in (metadata or {}).items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.checker.check_model(model)
    onnx.save(model, str(path))
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
