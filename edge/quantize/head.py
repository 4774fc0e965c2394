"""The detection head: what lies between a model's outputs and its last learned layers.

A YOLO head concatenates box coordinates (0–640) and class scores (0–1) in one tensor; one
int8 scale for both wipes out the scores (see DESIGN.md). Everything after the last learned
layer on each path to an output (DFL, decode arithmetic, concat, sigmoid, reshapes) is kept
in float; the learned layers themselves are quantised. A "learned layer" is a convolution or
matrix product with constant weights, except a fixed decode kernel: weights that are the ramp
0, 1, 2, ... (YOLOv8's DFL takes the expectation of a softmax with one) count as head.
Learned layers can be small: BlazePose's score convolutions have 48 and 96 weights.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

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
    learned: bool = False


def is_ramp(values: np.ndarray) -> bool:
    """Weights 0, 1, 2, ..., n-1 in order: a fixed decode kernel, not a learned one."""
    flat = np.asarray(values, np.float64).ravel()
    return flat.size > 1 and bool(np.array_equal(flat, np.arange(flat.size)))


def head_nodes(nodes: Mapping[str, Node], outputs: Iterable[str]) -> list[str]:
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
        if node.learned:
            continue
        order.append(name)
        stack.extend(p for p in node.producers if p in nodes)
    return order


def onnx_graph(model: Any) -> tuple[dict[str, Node], list[str]]:
    """Nodes and output producers of an ``onnx.ModelProto`` (every node must have a name)."""
    from onnx import numpy_helper

    graph = model.graph
    constants = {init.name: init for init in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.attribute:
            constants[node.output[0]] = node.attribute[0].t
    producer = {out: node.name for node in graph.node if node.op_type != "Constant" for out in node.output}
    nodes: dict[str, Node] = {}
    for node in graph.node:
        if node.op_type == "Constant":
            continue
        learned = False
        if node.op_type in ONNX_LEARNED and len(node.input) > 1 and node.input[1] in constants:
            learned = not is_ramp(numpy_helper.to_array(constants[node.input[1]]))
        producers = tuple(producer[i] for i in node.input if i in producer)
        nodes[node.name] = Node(node.name, node.op_type, producers, learned)
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
        learned = kind in OPENVINO_LEARNED and _openvino_learned(op)
        nodes[op.get_friendly_name()] = Node(op.get_friendly_name(), kind, producers, learned)
    outputs = [r.input_value(0).get_node().get_friendly_name() for r in model.get_results()]
    return nodes, outputs


def _openvino_learned(op: Any) -> bool:
    """Whether the weights input leads (through decompression and reshapes) to a constant
    that is not a ramp."""
    if op.get_input_size() < 2:
        return False
    node = op.input_value(1).get_node()
    for _ in range(8):
        kind = node.get_type_name()
        if kind == "Constant":
            return not is_ramp(node.get_data())
        if kind not in OPENVINO_WEIGHT_PATH or node.get_input_size() == 0:
            return False
        node = node.input_value(0).get_node()
    return False
