"""The TensorRT runner against a FAKE TensorRT and a FAKE cuda-python.

No machine here has an NVIDIA GPU with TensorRT, so ``tests/fake_tensorrt`` holds fakes of
the documented API surface the runner calls (``tensorrt``; ``cuda.bindings.runtime`` and
``cuda.cudart``). They are put on ``sys.path`` by the ``fake`` fixture only, through
monkeypatch, and removed from ``sys.modules`` afterwards, so no other test sees them. The
fake engine runs the ONNX model through ONNX Runtime on the bytes the runner copied into
fake device memory, so the golden tests compare real outputs: a real model (PP-OCRv4 text
detector) and a YOLO-shaped graph with a dynamic batch, against the ONNX Runtime runner.
What this cannot show is how real TensorRT behaves (operator support, FP16/INT8 numerics,
build times, DLA): ``tools/jetson_check.sh`` checks that on a Jetson.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx_graphs import save_graph, yolov8_like_model

from edge.errors import BackendUnavailable, ModelError
from edge.inference import load_model
from edge.runners.base import RunnerOptions, load_runner

REPO = Path(__file__).resolve().parent.parent
FAKE_DIR = Path(__file__).resolve().parent / "fake_tensorrt"
PPOCR = "ppocr_det/ch_PP-OCRv4_det_infer.onnx"


def _fake_modules() -> list[str]:
    return [n for n in sys.modules if n == "tensorrt" or n == "cuda" or n.startswith(("tensorrt.", "cuda."))]


@dataclass
class Fake:
    trt: Any  # the fake tensorrt module (STATE: builds, configs, timing_hits, dla_cores)
    cuda: Any  # the fake cudart module (STATE: allocations, counters, fail)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> Iterator[Fake]:
    for name in _fake_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(FAKE_DIR))
    import tensorrt
    from cuda import _fake_runtime

    tensorrt.reset()
    _fake_runtime.reset()
    yield Fake(tensorrt, _fake_runtime)
    for name in _fake_modules():  # nothing after this test imports the fakes
        del sys.modules[name]


def dynamic_yolo(path: Path) -> Path:
    """``yolov8_like_model`` with a dynamic batch axis (``batch``) on input and output."""
    model = onnx.load(str(yolov8_like_model(path)))
    for vi in (model.graph.input[0], model.graph.output[0]):
        vi.type.tensor_type.shape.dim[0].dim_param = "batch"
    flat = next(t for t in model.graph.initializer if t.name == "flat")
    flat.CopyFrom(numpy_helper.from_array(np.array([0, *numpy_helper.to_array(flat)[1:]], np.int64), "flat"))
    onnx.save(model, str(path))
    return path


def qdq_yolo(path: Path) -> Path:
    """``dynamic_yolo`` with a QuantizeLinear/DequantizeLinear pair on its input (explicit int8)."""
    model = onnx.load(str(dynamic_yolo(path)))
    graph = model.graph
    graph.initializer.extend(
        [
            numpy_helper.from_array(np.array(1 / 127, np.float32), "s"),
            numpy_helper.from_array(np.array(0, np.int8), "z"),
        ]
    )
    for node in graph.node:
        node.input[:] = ["images_dq" if i == "images" else i for i in node.input]
    qdq = [
        helper.make_node("QuantizeLinear", ["images", "s", "z"], ["images_q"], name="q"),
        helper.make_node("DequantizeLinear", ["images_q", "s", "z"], ["images_dq"], name="dq"),
    ]
    nodes = qdq + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    onnx.save(model, str(path))
    return path


def custom_op_model(path: Path) -> Path:
    """A graph whose second node is an operator from a custom domain (no TensorRT importer)."""
    graph = helper.make_graph(
        [
            helper.make_node("Relu", ["x"], ["r"], name="relu"),
            helper.make_node("FancyOp", ["r"], ["y"], name="odd", domain="com.example"),
        ],
        "custom",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.example", 1)]
    )
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def static_relu(path: Path) -> Path:
    graph = helper.make_graph(
        [helper.make_node("Relu", ["x"], ["y"])],
        "relu",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])],
    )
    return save_graph(graph, path)


def dynamic_unary(path: Path, op: str = "Relu") -> Path:
    """``op`` on an input whose batch, height and width are all dynamic (like PP-OCR's)."""
    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"], name="unary")],
        "unary",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3, "h", "w"])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3, "h", "w"])],
    )
    return save_graph(graph, path)


def opts(tmp_path: Path, **kw: Any) -> RunnerOptions:
    return RunnerOptions(cache_dir=tmp_path / "cache", **kw)


def text_image() -> np.ndarray:
    img = np.full((480, 640, 3), 255, np.uint8)
    cv2.putText(img, "GATE 7 OPEN", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 5)
    cv2.putText(img, "NO PARKING", (60, 320), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (20, 20, 20), 4)
    return img


def test_ppocr_det_matches_onnxruntime(fake: Fake, models_dir: Path, tmp_path: Path) -> None:
    """The real PP-OCRv4 detector package through load_model: same probability map and boxes."""
    options = opts(tmp_path, input_hw=(640, 640))
    trt_model = load_model("ppocr_det", "tensorrt", options=options, search_dirs=[models_dir])
    ort_model = load_model("ppocr_det", "onnxruntime", search_dirs=[models_dir])
    try:
        assert trt_model.runner.backend == "tensorrt" and trt_model.runner.built  # type: ignore[attr-defined]
        assert trt_model.input_spec.shape == (None, 3, 640, 640)  # the profile pins the size
        tensor = trt_model.preprocessor().new_tensor()
        trt_model.preprocessor()(text_image(), tensor)
        prob_trt, prob_ort = trt_model.run_tensor(tensor)[0], ort_model.run_tensor(tensor)[0]
        assert prob_trt.shape == prob_ort.shape == (1, 1, 640, 640) and prob_trt.dtype == np.float32
        np.testing.assert_allclose(prob_trt, prob_ort, atol=1e-5)
        a, b = trt_model.infer(text_image()), ort_model.infer(text_image())
        assert len(a) == len(b) == 2
        np.testing.assert_allclose(a.xyxy, b.xyxy, atol=0.5)
    finally:
        trt_model.close()
        ort_model.close()
    assert fake.cuda.STATE.live() == 0


@pytest.mark.parametrize(("batches", "max_batch"), [([1], 4), ([3, 1, 4], 4), ([6], 4), ([2, 5], 2)])
def test_dynamic_batch_through_the_profile(
    fake: Fake, tmp_path: Path, batches: list[int], max_batch: int
) -> None:
    """Batch 1..max_batch in one inference; larger batches in chunks; outputs equal ONNX Runtime's."""
    model = dynamic_yolo(tmp_path / "yolo.onnx")
    runner = load_runner("tensorrt", model, opts(tmp_path, max_batch=max_batch))
    ort = load_runner("onnxruntime", model)
    assert runner.inputs[0].shape == (None, 3, 64, 64)
    assert fake.trt.STATE.configs[0]["profile"]["images"] == (
        (1, 3, 64, 64),
        (1, 3, 64, 64),
        (max_batch, 3, 64, 64),
    )
    rng = np.random.default_rng(1)
    for n in batches:
        x = rng.random((n, 3, 64, 64), dtype=np.float32)
        (got,), (want,) = runner.run({"images": x}), ort.run({"images": x})
        assert got.shape == (n, 6, 64)
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    runner.close()
    ort.close()
    state = fake.cuda.STATE
    assert state.live() == 0 and state.mallocs == state.frees and state.host_mallocs == state.host_frees
    assert not state.streams


def test_buffers_are_allocated_at_load_and_freed_by_close(fake: Fake, tmp_path: Path) -> None:
    runner = load_runner("tensorrt", dynamic_yolo(tmp_path / "yolo.onnx"), opts(tmp_path))
    state = fake.cuda.STATE
    allocated = (state.mallocs, state.host_mallocs)
    assert allocated == (2, 2)  # one device and one pinned host buffer per tensor
    x = np.zeros((1, 3, 64, 64), np.float32)
    for _ in range(5):
        runner.run({"images": x})
    assert (state.mallocs, state.host_mallocs) == allocated  # frames never allocate
    runner.run({"images": np.zeros((3, 3, 64, 64), np.float32)})  # a larger batch grows them once
    runner.run({"images": np.zeros((2, 3, 64, 64), np.float32)})
    assert (state.mallocs, state.host_mallocs) == (4, 4)
    runner.close()
    runner.close()  # twice is harmless
    assert state.live() == 0 and state.frees == 4 and state.host_frees == 4


@pytest.mark.parametrize(
    ("change", "rebuilds"),
    [
        ("nothing", False),
        ("tensorrt version", True),
        ("gpu", True),
        ("input shape", True),
        ("max batch", True),
        ("precision", True),
        ("dla core", True),
        ("onnx file", True),
    ],
)
def test_engine_cache_key(
    fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, change: str, rebuilds: bool
) -> None:
    """A second load with the same key never builds; each part of the key makes a new engine."""
    model = dynamic_unary(tmp_path / "unary.onnx")
    options = opts(tmp_path)
    first = load_runner("tensorrt", model, options)
    first_file = first.engine_file  # type: ignore[attr-defined]
    first.close()
    if change == "tensorrt version":
        monkeypatch.setattr(fake.trt, "__version__", "10.4.0")
    elif change == "gpu":
        fake.cuda.STATE.gpu_name = "Xavier"
    elif change == "input shape":
        options = replace(options, input_hw=(64, 96))
    elif change == "max batch":
        options = replace(options, max_batch=8)
    elif change == "precision":
        options = replace(options, precision="f32")
    elif change == "dla core":
        options = replace(options, dla_core=0)
    elif change == "onnx file":
        dynamic_unary(model, "Sigmoid")  # same name, other content
    second = load_runner("tensorrt", model, options)
    assert second.built is rebuilds  # type: ignore[attr-defined]
    assert fake.trt.STATE.builds == (2 if rebuilds else 1)
    assert (second.engine_file != first_file) is rebuilds  # type: ignore[attr-defined]
    second.close()
    engines = sorted(p.name for p in (tmp_path / "cache").glob("*.engine"))
    assert len(engines) == (2 if rebuilds else 1)
    key = json.loads(first_file.with_suffix(".json").read_text())
    assert key["tensorrt"] == "10.3.0" and key["gpu"] == "Orin (nvgpu) sm_87" and key["flags"] == ["FP16"]
    # Same TensorRT and GPU: the new build reuses the timing cache the first one wrote.
    if change in ("precision", "max batch", "dla core", "input shape"):
        assert fake.trt.STATE.timing_hits > 0


def test_a_corrupt_cached_engine_is_rebuilt(fake: Fake, tmp_path: Path) -> None:
    model = static_relu(tmp_path / "relu.onnx")
    first = load_runner("tensorrt", model, opts(tmp_path))
    first.close()
    first.engine_file.write_bytes(b"garbage")  # type: ignore[attr-defined]
    second = load_runner("tensorrt", model, opts(tmp_path))
    assert second.built and fake.trt.STATE.builds == 2  # type: ignore[attr-defined]
    second.close()


def ultralytics_header(meta: dict[str, Any]) -> bytes:
    text = json.dumps(meta).encode()
    return len(text).to_bytes(4, "little", signed=True) + text


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("plain", None),
        ("ultralytics header", None),
        (
            "corrupt",
            "cannot load it as an engine (1: [runtime.cpp::parsePlan::314] Error Code 1: Serialization",
        ),
        ("other tensorrt", "Version tag does not match"),
        ("other gpu", "incompatible device"),
        ("header only", "cannot load it as an engine"),
        ("empty", "is empty (0 bytes); expected a TensorRT engine"),
    ],
)
def test_prebuilt_engine_files(
    fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, kind: str, error: str | None
) -> None:
    model = dynamic_yolo(tmp_path / "yolo.onnx")
    built = load_runner("tensorrt", model, opts(tmp_path))
    blob = built.engine_file.read_bytes()  # type: ignore[attr-defined]
    built.close()
    header = ultralytics_header({"task": "detect", "names": {"0": "a", "1": "b"}, "imgsz": [64, 64]})
    data = {
        "plain": blob,
        "ultralytics header": header + blob,
        "corrupt": os.urandom(2048),
        "other tensorrt": blob,
        "other gpu": blob,
        "header only": header,
        "empty": b"",
    }[kind]
    if kind == "other tensorrt":
        monkeypatch.setattr(fake.trt, "__version__", "10.7.0")
    if kind == "other gpu":
        fake.cuda.STATE.gpu_name = "NVIDIA GeForce RTX 4090"
    engine = tmp_path / "yolo.engine"
    engine.write_bytes(data)
    builds = fake.trt.STATE.builds
    if error is not None:
        with pytest.raises(ModelError) as info:
            load_runner("tensorrt", engine, opts(tmp_path))
        message = str(info.value)
        assert message.startswith(str(engine)) and error in message and "\n" not in message
        assert fake.cuda.STATE.live() == 0
        return
    runner = load_runner("tensorrt", engine, opts(tmp_path))
    assert fake.trt.STATE.builds == builds  # an .engine is never built
    x = np.random.default_rng(2).random((2, 3, 64, 64), dtype=np.float32)
    ort = load_runner("onnxruntime", model)
    np.testing.assert_allclose(runner.run({"images": x})[0], ort.run({"images": x})[0], atol=1e-6)
    runner.close()
    ort.close()


@pytest.mark.parametrize(
    ("model", "options", "version", "flags", "device"),
    [
        ("yolo", {}, "10.3.0", ["FP16"], "GPU"),
        ("yolo", {"precision": "f16"}, "10.3.0", ["FP16"], "GPU"),
        ("yolo", {"precision": "f32"}, "10.3.0", [], "GPU"),
        ("yolo", {"precision": "bf16"}, "10.3.0", ["BF16"], "GPU"),
        ("qdq", {}, "10.3.0", ["FP16", "INT8"], "GPU"),
        ("qdq", {"precision": "f32"}, "10.3.0", ["INT8"], "GPU"),
        ("yolo", {"dla_core": 1}, "10.3.0", ["FP16", "GPU_FALLBACK"], "DLA"),
        ("qdq", {"dla_core": 0, "precision": "f32"}, "10.3.0", ["GPU_FALLBACK", "INT8"], "DLA"),
        ("yolo", {}, "11.0.0", [], "GPU"),  # strongly typed: no precision flags exist
        ("qdq", {"precision": "f16"}, "11.0.0", [], "GPU"),
        ("qdq", {"dla_core": 0}, "11.0.0", ["GPU_FALLBACK"], "DLA"),
        ("yolo", {}, "8.6.1", ["FP16"], "GPU"),  # needs the EXPLICIT_BATCH network flag
    ],
)
def test_builder_flags(
    fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    model: str, options: dict[str, Any], version: str, flags: list[str], device: str,
) -> None:  # fmt: skip
    monkeypatch.setattr(fake.trt, "__version__", version)
    if version.startswith("11"):
        monkeypatch.setattr(fake.trt, "BuilderFlag", fake.trt.BuilderFlagV11)
    path = (qdq_yolo if model == "qdq" else dynamic_yolo)(tmp_path / f"{model}.onnx")
    runner = load_runner("tensorrt", path, opts(tmp_path, **options))
    config = fake.trt.STATE.configs[-1]
    assert (config["flags"], config["device"]) == (flags, device)
    assert config["network_flags"] == (1 if version.startswith("8") else 0)
    if "dla_core" in options:
        assert config["dla_core"] == options["dla_core"]
        assert fake.trt.STATE.runtimes_dla[-1] == options["dla_core"]  # the runtime is told too
    x = np.random.default_rng(3).random((1, 3, 64, 64), dtype=np.float32)
    ort = load_runner("onnxruntime", path)
    np.testing.assert_allclose(runner.run({"images": x})[0], ort.run({"images": x})[0], atol=1e-6)
    runner.close()
    ort.close()


def _hide(*names: str) -> None:
    """None in sys.modules makes the import raise ImportError; the ``fake`` fixture removes
    these entries afterwards (monkeypatch would put the fake modules back)."""
    for name in names:
        sys.modules[name] = None  # type: ignore[assignment]


@pytest.mark.parametrize(
    ("case", "error", "message"),
    [
        ("garbage onnx", ModelError, "TensorRT 10.3.0 cannot parse it (Failed to parse ONNX model."),
        (
            "custom operator",
            ModelError,
            "cannot parse it (node 1 'odd' (FancyOp): No importer registered for op: FancyOp.",
        ),
        ("no tensorrt", BackendUnavailable, "runner 'tensorrt' needs tensorrt, which is not installed"),
        (
            "no cuda-python",
            BackendUnavailable,
            "runner 'tensorrt' needs cuda-python (cuda.bindings.runtime or cuda.cudart)",
        ),
        ("old cuda-python", None, ""),
        ("dla core absent", ModelError, "dla_core 2 asked for, but this device has 2 DLA core(s)"),
        ("dla in f32", ModelError, "a DLA runs f16 or int8 only"),
        ("cudaMalloc fails", ModelError, "CUDA cudaMalloc failed (cudaErrorMemoryAllocation)"),
        ("cudaMallocHost fails", ModelError, "CUDA cudaMallocHost failed (cudaErrorMemoryAllocation)"),
        ("bad precision", ModelError, "TensorRT precision 'int4' is not one of f16, f32, bf16"),
        (
            "input_size on a static model",
            ModelError,
            "its input is fixed at 8x8; tensorrt cannot run it at input_size 16x8 (runner: openvino can",
        ),
    ],
)
def test_load_errors(
    fake: Fake,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    case: str,
    error: type[Exception] | None,
    message: str,
) -> None:
    """Every failure is one line naming the file (or the missing library and its extra)."""
    path = static_relu(tmp_path / "model.onnx")
    options = opts(tmp_path)
    if case == "garbage onnx":
        path.write_bytes(b"\x08\x01not an onnx model")
    elif case == "custom operator":
        custom_op_model(path)
    elif case == "no tensorrt":
        _hide("tensorrt")
    elif case == "no cuda-python":
        _hide("cuda", "cuda.bindings", "cuda.bindings.runtime", "cuda.cudart")
    elif case == "old cuda-python":
        _hide("cuda.bindings", "cuda.bindings.runtime")
    elif case == "dla core absent":
        options = replace(options, dla_core=2)
    elif case == "dla in f32":
        options = replace(options, dla_core=0, precision="f32")
    elif case in ("cudaMalloc fails", "cudaMallocHost fails"):
        fake.cuda.STATE.fail[case.split(maxsplit=1)[0]] = fake.cuda.cudaError_t.cudaErrorMemoryAllocation
    elif case == "bad precision":
        options = replace(options, precision="int4")
    elif case == "input_size on a static model":
        options = replace(options, graph_hw=(8, 16))
    if error is None:  # cuda-python before 12.6: only cuda.cudart
        runner = load_runner("tensorrt", path, options)
        assert runner.run({"x": -np.ones((1, 3, 8, 8), np.float32)})[0].max() == 0.0
        runner.close()
        return
    with pytest.raises(error) as info:
        load_runner("tensorrt", path, options)
    text = str(info.value)
    assert message in text and "\n" not in text
    if error is BackendUnavailable:
        assert "pip install 'edge-runtime[tensorrt]'" in text
    else:
        assert text.startswith(str(path))
    assert fake.cuda.STATE.live() == 0 and not fake.cuda.STATE.streams
    if case == "input_size on a static model":  # refused before a build, not after
        assert options.cache_dir is not None and not list(options.cache_dir.glob("*.engine"))


@pytest.mark.parametrize(
    ("feed", "message"),
    [
        (
            np.zeros((1, 3, 32, 32), np.float32),
            "input 'images' of shape (1, 3, 32, 32) is outside the engine's profile",
        ),
        (np.zeros((1, 3, 64, 64), np.float32), None),
    ],
)
def test_run_errors(fake: Fake, tmp_path: Path, feed: np.ndarray, message: str | None) -> None:
    runner = load_runner("tensorrt", dynamic_yolo(tmp_path / "yolo.onnx"), opts(tmp_path))
    try:
        if message is None:
            fake.cuda.STATE.fail["cudaStreamSynchronize"] = fake.cuda.cudaError_t.cudaErrorInvalidValue
            message = "CUDA cudaStreamSynchronize failed (cudaErrorInvalidValue)"
        with pytest.raises(ModelError) as info:
            runner.run({"images": feed})
        assert str(info.value).startswith(str(tmp_path / "yolo.onnx")) and message in str(info.value)
    finally:
        runner.close()


def test_jetson_check_script_reports_with_the_fake(fake: Fake, models_dir: Path, tmp_path: Path) -> None:
    """tools/jetson_check.sh end to end, with the fakes on PYTHONPATH: it builds, compares and
    says that this was not a Jetson and which tensorrt module it used."""
    extra = dynamic_yolo(tmp_path / "extra.onnx")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(FAKE_DIR), str(REPO)]), "PYTHON": sys.executable}
    proc = subprocess.run(
        ["bash", str(REPO / "tools" / "jetson_check.sh"), "--allow-non-jetson", "--runs", "2",
         "--cache-dir", str(tmp_path / "cache"), str(extra)],
        capture_output=True, text=True, env=env, timeout=600, cwd=REPO,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "NOT a Jetson" in out and str(FAKE_DIR) in out
    assert out.count("| PASS |") == 2 and PPOCR.split("/")[1] in out and "extra.onnx" in out
    assert out.count("| from the cache (") == 2 and "a FAKE test double" in out


@pytest.mark.parametrize(
    ("section", "state_dir", "expected"),
    [
        ({}, None, {"cache_dir": None, "dla_core": None, "max_batch": 4}),
        ({"dla_core": 1, "max_batch": 2}, Path("/var/lib/edge"),
         {"cache_dir": Path("/var/lib/edge/tensorrt"), "dla_core": 1, "max_batch": 2}),
        ({"dla_core": -1}, None, ValueError),
        ({"max_batch": 0}, None, ValueError),
    ],
)  # fmt: skip
def test_runner_options_from_the_config(
    section: dict[str, Any], state_dir: Path | None, expected: Any
) -> None:
    """``models.<name>.dla_core`` / ``max_batch`` and the daemon's state_dir reach RunnerOptions."""
    from edge.config.schema import ModelConfig
    from edge.inference import runner_options

    if expected is ValueError:
        with pytest.raises(ValueError):
            ModelConfig(path="m", **section)
        return
    got = runner_options(ModelConfig(path="m", **section), state_dir=state_dir)
    assert {k: getattr(got, k) for k in expected} == expected


def test_default_cache_dir_follows_xdg(fake: Fake, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    runner = load_runner("tensorrt", static_relu(tmp_path / "relu.onnx"), RunnerOptions())
    assert runner.engine_file.parent == tmp_path / "xdg" / "edge" / "tensorrt"  # type: ignore[attr-defined]
    assert sorted(p.suffix for p in runner.engine_file.parent.iterdir()) == [".cache", ".engine", ".json"]  # type: ignore[attr-defined]
    runner.close()
