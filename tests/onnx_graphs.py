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
