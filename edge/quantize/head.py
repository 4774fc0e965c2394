"""The detection head: what lies between a model's outputs and its last learned layers.

A YOLO head concatenates box coordinates (0–640) and class scores (0–1) in one tensor; one
int8 scale for both wipes out the scores (see DESIGN.md). Everything after the last learned
layer on each path to an output (DFL, decode arithmetic, concat, sigmoid, reshapes) is kept
in float; the learned layers themselves are quantised. A "learned layer" is a convolution or
matrix product whose constant weights have at least ``min_weights`` elements, so small fixed
kernels such as YOLOv8's DFL (16 weights) count as head.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

MIN_WEIGHTS = 256
ONNX_LEARNED = frozenset({"Conv", "ConvTranspose", "Gemm", "MatMul"})
OPENVINO_LEARNED = frozenset(
    {"Convolution", "GroupConvolution", "ConvolutionBackpropData", "GroupConvolutionBackpropData", "MatMul"}
)
# Nodes between a learned layer and its constant weights (decompression, reshapes).
OPENVINO_WEIGHT_PATH = frozenset(
    {"Convert", "Reshape", "Unsqueeze", "Squeeze", "Multiply", "Subtract", "Transpose", "FakeConvert"}
)


@dataclass(frozen=True)
class Node:
    """A graph node as the walk sees it: producers of its inputs and its weights' size."""

    name: str
    op: str
    producers: tuple[str, ...]
    weights: int = 0


def head_nodes(
    nodes: Mapping[str, Node], outputs: Iterable[str], min_weights: int = MIN_WEIGHTS
) -> list[str]:
    """Names of the nodes reachable backwards from ``outputs`` (producer node names) without
    crossing a learned layer, in a stable order."""
    seen: set[str] = set()
    order: list[str] = []
    stack = [o for o in outputs if o in nodes]
    while stack:
        name = stack.pop()
        if name in seen:
            continue
        seen.add(name)
        node = nodes[name]
        if node.weights >= min_weights:
            continue
        order.append(name)
        stack.extend(p for p in node.producers if p in nodes)
    return order


def onnx_graph(model: Any) -> tuple[dict[str, Node], list[str]]:
    """Nodes and output producers of an ``onnx.ModelProto`` (every node must have a name)."""
    from onnx import numpy_helper

    graph = model.graph
    sizes = {init.name: int(np.prod(init.dims)) for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            sizes[node.output[0]] = int(numpy_helper.to_array(node.attribute[0].t).size)
    producer = {out: node.name for node in graph.node for out in node.output}
    nodes: dict[str, Node] = {}
    for node in graph.node:
        weights = 0
        if node.op_type in ONNX_LEARNED and len(node.input) > 1:
            weights = sizes.get(node.input[1], 0)
        if node.op_type == "Constant":
            continue
        producers = tuple(producer[i] for i in node.input if i in producer)
        nodes[node.name] = Node(node.name, node.op_type, producers, weights)
    outputs = [producer[o.name] for o in graph.output if o.name in producer]
    return nodes, outputs


def openvino_graph(model: Any) -> tuple[dict[str, Node], list[str]]:
    """Nodes and output producers of an ``openvino.Model``, by friendly name."""
    nodes: dict[str, Node] = {}
    for op in model.get_ordered_ops():
        kind = op.get_type_name()
        if kind in ("Constant", "Parameter", "Result"):
            continue
        producers = tuple(
            v.get_node().get_friendly_name()
            for v in op.input_values()
            if v.get_node().get_type_name() not in ("Constant", "Parameter")
        )
        weights = _openvino_weights(op) if kind in OPENVINO_LEARNED else 0
        nodes[op.get_friendly_name()] = Node(op.get_friendly_name(), kind, producers, weights)
    outputs = [r.input_value(0).get_node().get_friendly_name() for r in model.get_results()]
    return nodes, outputs


def _openvino_weights(op: Any) -> int:
    if op.get_input_size() < 2:
        return 0
    node = op.input_value(1).get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return int(np.prod(list(node.get_output_shape(0))))
        if kind not in OPENVINO_WEIGHT_PATH:
            return 0
        node = node.input_value(0).get_node()
    return 0
