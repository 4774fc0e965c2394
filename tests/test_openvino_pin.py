"""OpenVINO pins a model's dynamic input axes before compiling: the batch to
``RunnerOptions.pin_batch`` (the pipeline sets 1 where its requests in flight take one frame
each) and the image height and width to ``input_hw``. Static shapes run faster; the outputs
stay those of the dynamic graph. A size the graph cannot take is refused in one line naming
the file, and ``async_jobs: 1`` keeps the batch dynamic, so cameras still share inferences.

Real OpenVINO and ONNX Runtime on small ONNX graphs written here; real video for the pipeline.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
import yaml
from conftest import require_backend
from onnx import TensorProto, helper, numpy_helper

from edge.config import parse_config
from edge.config.schema import ModelConfig
from edge.daemon.app import Application
from edge.errors import ModelError
from edge.inference import runner_options
from edge.runners.base import RunnerOptions, load_runner

Dims = list[int | str]


def _pooled_model(path: Path, dims: Dims, reshape_to: list[int] | None = None) -> Path:
    """images ``dims`` -> (batch, 3): each channel's mean plus 1000 x its top-left pixel, so the
    output depends on every image of the batch and on where the image starts. ``reshape_to``:
    a Reshape with that constant target first (a graph traced at one size)."""
    nodes, inits = [], [numpy_helper.from_array(np.array([2, 3], np.int64), "axes")]
    source = "images"
    if reshape_to is not None:
        inits.append(numpy_helper.from_array(np.array(reshape_to, np.int64), "target"))
        nodes.append(helper.make_node("Reshape", ["images", "target"], ["fixed"]))
        source = "fixed"
    inits += [
        numpy_helper.from_array(np.array([0, 0, 0, 0], np.int64), "start"),
        numpy_helper.from_array(np.array([2**31, 3, 1, 1], np.int64), "end"),
        numpy_helper.from_array(np.array([1000.0], np.float32), "k"),
    ]
    nodes += [
        helper.make_node("ReduceMean", [source, "axes"], ["mean"], keepdims=0),  # (B, 3)
        helper.make_node("Slice", [source, "start", "end"], ["corner4"]),  # (B, 3, 1, 1)
        helper.make_node("Squeeze", ["corner4", "axes"], ["corner"]),  # (B, 3)
        helper.make_node("Mul", ["corner", "k"], ["scaled"]),
        helper.make_node("Add", ["mean", "scaled"], ["out"]),
    ]
    graph = helper.make_graph(
        nodes, "pooled",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, dims)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, [dims[0], 3])],
        initializer=inits,
    )  # fmt: skip
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    onnx.save(proto, str(path))
    return path


DYNAMIC: Dims = ["batch", 3, "height", "width"]


@pytest.mark.parametrize(
    ("dims", "pin_batch", "input_hw", "expected"),
    [
        (DYNAMIC, None, None, (None, 3, None, None)),
        (DYNAMIC, 1, None, (1, 3, None, None)),
        (DYNAMIC, None, (32, 48), (None, 3, 32, 48)),
        (DYNAMIC, 1, (32, 48), (1, 3, 32, 48)),
        (DYNAMIC, 4, (16, 16), (4, 3, 16, 16)),
        (["batch", 3, 24, 40], 1, (32, 48), (1, 3, 24, 40)),  # a static size is never changed
        ([2, 3, "height", "width"], 1, (32, 48), (2, 3, 32, 48)),  # nor a static batch
    ],
)
def test_dynamic_axes_are_pinned_and_the_outputs_stay_those_of_the_dynamic_graph(
    tmp_path: Path,
    dims: Dims,
    pin_batch: int | None,
    input_hw: tuple[int, int] | None,
    expected: tuple[int | None, ...],
) -> None:
    require_backend("openvino")
    require_backend("onnxruntime")
    path = _pooled_model(tmp_path / "m.onnx", dims)
    runner = load_runner("openvino", path, RunnerOptions(pin_batch=pin_batch, input_hw=input_hw))
    reference = load_runner("onnxruntime", path, RunnerOptions())
    try:
        assert runner.inputs[0].shape == expected
        shape = [d if isinstance(d, int) else 2 for d in expected]  # a dynamic axis: any size
        images = np.random.default_rng(0).random(shape, dtype=np.float32)
        got = runner.run({runner.inputs[0].name: images})[0]
        want = reference.run({reference.inputs[0].name: images})[0]
        np.testing.assert_allclose(got, want, rtol=1e-5)
    finally:
        runner.close()
        reference.close()


def test_a_size_the_graph_cannot_take_is_refused_naming_the_file(tmp_path: Path) -> None:
    """A dynamic input whose graph reshapes it to a constant 3x2x2 was traced at 2x2: at 4x4 it
    cannot run, and the error says so in one line."""
    require_backend("openvino")
    path = _pooled_model(tmp_path / "traced.onnx", DYNAMIC, reshape_to=[1, 3, 2, 2])
    fits = load_runner("openvino", path, RunnerOptions(pin_batch=1, input_hw=(2, 2)))
    fits.close()
    with pytest.raises(ModelError) as err:
        load_runner("openvino", path, RunnerOptions(pin_batch=1, input_hw=(4, 4)))
    message = str(err.value)
    assert message.startswith(f"{path}: OpenVINO cannot run it at input shape 1x3x4x4 (")
    assert "\n" not in message


@pytest.mark.parametrize(
    ("pipeline", "async_jobs", "pin_batch"),
    [
        (True, None, 1),  # requests in flight, one frame each
        (True, 3, 1),
        (True, 1, None),  # no requests in flight: the worker batches cameras on a dynamic axis
        (False, None, None),  # outside the pipeline: the batch is left as it is
    ],
)
def test_the_pipeline_pins_the_batch_where_each_request_takes_one_frame(
    pipeline: bool, async_jobs: int | None, pin_batch: int | None
) -> None:
    options = runner_options(ModelConfig(path="m.onnx", async_jobs=async_jobs), pipeline=pipeline)
    assert options.pin_batch == pin_batch


@pytest.mark.parametrize(
    ("async_jobs", "batch_axis", "batched"),
    [(None, 1, False), (1, None, True)],
)
def test_daemon_on_a_dynamic_batch_model(
    tmp_path: Path, demo_clip: Path, async_jobs: int | None, batch_axis: int | None, batched: bool
) -> None:
    """Two cameras on a YOLO-shaped model with dynamic axes, on OpenVINO: by default the batch
    is pinned to 1 and frames go one per request; with ``async_jobs: 1`` it stays dynamic, the
    worker runs its batched loop. Every frame is processed either way."""
    require_backend("openvino")
    _yolo_shaped(tmp_path / "model")
    jobs = "" if async_jobs is None else f", async_jobs: {async_jobs}"
    text = f"""
state_dir: "{tmp_path / "state"}"
status_interval: 1h
models: {{m: {{path: "{tmp_path / "model"}", runner: openvino{jobs}}}}}
cameras:
  a: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless}}
  b: {{source: {{type: file, path: "{demo_clip}"}}, model: m, buffer: lossless}}
mqtt: {{enabled: false}}
actions: {{event_log: false}}
"""
    frames = 40
    app = Application(parse_config(text, "pin.yaml"), max_frames=frames)
    app.start()
    try:
        result = app.run()
        model = app.models["m"]
        assert model.input_spec.shape == (batch_axis, 64, 64, 3)  # uint8 BGR in: preprocessing folded
        worker = app.workers["m"]
        assert result.frames == frames
        # No requests: the batched loop, whose batches the first test shows OpenVINO takes
        # (whether both cameras have a frame ready at once here is up to the machine).
        assert (worker.async_requests is None) is batched
    finally:
        app.stop()


def _yolo_shaped(folder: Path) -> None:
    """A model package whose ONNX graph takes (batch, 3, height, width) and gives a YOLOv8
    head's (batch, 6, 4): two classes, four candidates, a box that follows the image's mean."""
    folder.mkdir()
    const = np.zeros((1, 6, 4), np.float32)
    const[0, :4] = [[32.0], [32.0], [20.0], [10.0]]
    const[0, 4, 0] = 0.9
    graph = helper.make_graph(
        [
            helper.make_node("ReduceMean", ["images", "axes"], ["m"], keepdims=1),  # (B, 1, 1, 1)
            helper.make_node("Reshape", ["m", "shape"], ["m3"]),  # (B, 1, 1)
            helper.make_node("Add", ["const", "m3"], ["output0"]),  # (B, 6, 4)
        ],
        "yolo_shaped",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, DYNAMIC)],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, ["batch", 6, 4])],
        initializer=[
            numpy_helper.from_array(np.array([1, 2, 3], np.int64), "axes"),
            numpy_helper.from_array(np.array([-1, 1, 1], np.int64), "shape"),
            numpy_helper.from_array(const, "const"),
        ],
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    proto.ir_version = 8
    onnx.save(proto, str(folder / "m.onnx"))
    manifest = {
        "name": "yolo_shaped",
        "task": "detect",
        "decoder": "yolov8",
        "labels": ["person", "car"],
        "input": {"size": [64, 64]},
        "files": {"onnx": {"path": "m.onnx"}},
    }
    (folder / "model.yaml").write_text(yaml.safe_dump(manifest))
