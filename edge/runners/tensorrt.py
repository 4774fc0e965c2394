"""TensorRT runner (Jetson): an engine built once from ONNX and cached, or a prebuilt ``.engine``.

**Unverified on hardware.** No machine this was written on has an NVIDIA GPU: the code
follows the documented TensorRT 10 Python API (and 8.6/11 where they differ) and cuda-python,
and is tested against a fake of exactly that surface (``tests/fake_tensorrt``, whose engine
runs the ONNX model through ONNX Runtime). ``tools/jetson_check.sh`` builds and checks it on a
real Jetson.

- **From ONNX**: the network is parsed (cheap), then the engine is looked up in the cache
  folder under a key made of the ONNX file's sha256, the TensorRT version, the GPU, the
  optimisation profile's shapes and the precision flags and DLA core; only a miss builds
  (minutes on a Jetson), with a timing cache per TensorRT version and GPU. Cached files are
  written atomically. Precision: FP16 unless ``precision: f32`` (or bf16); INT8 is switched
  on when the model has Q/DQ nodes (explicit quantisation). TensorRT 11 has no precision
  flags (strongly typed networks): there the ONNX's own types decide.
- **Prebuilt ``.engine``**: read as is, after the JSON metadata header Ultralytics writes
  in front (``<int32 length><json>``; ``edge.models`` reads that header).
- **Execution**: ``execute_async_v3`` on one CUDA stream; device and pinned host buffers
  are allocated at load for the usual shape and only grow if a larger one arrives. Dynamic
  axes come from optimisation profile 0: batch 1..``max_batch`` (larger batches run in
  chunks), image height and width pinned to ``input_hw`` when given, else 32..1280.
"""

from __future__ import annotations

import ctypes
import hashlib
import importlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import BackendUnavailable, EdgeError, ModelError
from edge.runners.base import (
    RunnerOptions,
    file_sha256,
    fixed_size_error,
    missing_backend,
    one_line,
    prepare_feed,
    require_model_file,
)
from edge.statefiles import write_atomic
from edge.types import TensorSpec, guess_layout

log = logging.getLogger(__name__)

EXPECTED_ENGINE = "a TensorRT engine (.engine, optionally with Ultralytics' JSON header)"
IMAGE_RANGE = (32, 640, 1280)  # min, opt, max of a dynamic image height or width
OTHER_RANGE = (1, 64, 1024)  # any other dynamic axis
_DTYPES = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "UINT8": np.uint8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
}


def import_tensorrt() -> Any:
    try:
        return importlib.import_module("tensorrt")
    except ImportError as exc:
        raise missing_backend("tensorrt", exc) from exc


def import_cudart() -> Any:
    """cuda-python's runtime API: ``cuda.bindings.runtime`` (12.6+), else ``cuda.cudart``."""
    try:
        return importlib.import_module("cuda.bindings.runtime")
    except ImportError:
        pass
    try:
        return importlib.import_module("cuda.cudart")
    except ImportError as exc:
        raise BackendUnavailable(
            "runner 'tensorrt' needs cuda-python (cuda.bindings.runtime or cuda.cudart), which is not "
            f"installed ({exc}); pip install 'edge-runtime[tensorrt]' (on Jetson: cuda-python for "
            "JetPack's CUDA version)"
        ) from exc


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "edge" / "tensorrt"


def engine_bytes(path: Path) -> bytes:
    """An engine file's bytes without the ``<int32 little-endian length><JSON>`` header that
    Ultralytics writes in front (the same test as ``edge.models``)."""
    require_model_file(path, EXPECTED_ENGINE)
    data = path.read_bytes()
    length = int.from_bytes(data[:4], "little", signed=True) if len(data) >= 4 else 0
    if 0 < length < 1 << 20 and len(data) > 4 + length:
        try:
            meta = json.loads(data[4 : 4 + length].decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            meta = None
        if isinstance(meta, dict):
            return data[4 + length :]
    return data


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


class Cuda:
    """cuda-python's runtime calls with their ``(err, value...)`` tuples checked."""

    def __init__(self, cudart: Any, path: Path) -> None:
        self.rt = cudart
        self.path = path
        self.success = cudart.cudaError_t.cudaSuccess

    def __call__(self, fn: str, *args: Any) -> Any:
        result = getattr(self.rt, fn)(*args)
        err, values = result[0], result[1:]
        if err != self.success:
            raise ModelError(f"{self.path}: CUDA {fn} failed ({getattr(err, 'name', err)})")
        return values[0] if len(values) == 1 else (values or None)

    def gpu_name(self) -> str:
        device = self("cudaGetDevice")
        prop = self("cudaGetDeviceProperties", device)
        name = prop.name.split(b"\0")[0].decode() if isinstance(prop.name, bytes) else str(prop.name)
        return f"{name.strip()} sm_{prop.major}{prop.minor}"


def make_logger(trt: Any) -> Any:
    """A ``trt.ILogger`` that keeps errors (for one-line messages) and forwards the rest."""

    class Logger(trt.ILogger):  # type: ignore[misc]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []

        def log(self, severity: Any, msg: str) -> None:
            sev = trt.ILogger.Severity
            if severity in (sev.ERROR, sev.INTERNAL_ERROR):
                self.errors.append(_flat(msg))
            elif severity == sev.WARNING:
                log.warning("TensorRT: %s", _flat(msg))

        def last(self, default: str) -> str:
            return self.errors[-1] if self.errors else default

    return Logger()


@dataclass(frozen=True)
class BuildKey:
    """Everything an engine built from ONNX depends on; its hash names the cached file."""

    onnx_sha256: str
    tensorrt: str
    gpu: str
    profile: tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]
    flags: tuple[str, ...]
    dla_core: int | None

    def digest(self) -> str:
        text = json.dumps(asdict(self), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def axis_range(shape: Sequence[int], axis: int, options: RunnerOptions) -> tuple[int, int, int]:
    """min, opt, max of dynamic ``axis`` of an input of ``shape``."""
    if axis == 0:
        return 1, 1, max(1, options.max_batch)
    layout = guess_layout(tuple(None if d < 0 else d for d in shape))
    image_axes = {"NCHW": (2, 3), "NHWC": (1, 2)}.get(layout, ()) if len(shape) == 4 else ()
    if axis in image_axes:
        if options.input_hw is not None:
            size = options.input_hw[image_axes.index(axis)]
            return size, size, size
        return IMAGE_RANGE
    return OTHER_RANGE


def refuse_static_size(network: Any, hw: tuple[int, int], path: Path) -> None:
    """Before a build: an image input fixed at another size than ``input_size`` cannot be run
    at it by TensorRT (no engine is built to be refused after)."""
    for i in range(network.num_inputs):
        shape = tuple(int(d) for d in network.get_input(i).shape)
        layout = guess_layout(tuple(None if d < 0 else d for d in shape)) if len(shape) == 4 else ""
        axes = {"NCHW": (2, 3), "NHWC": (1, 2)}.get(layout)
        if axes is None or any(shape[a] < 0 for a in axes):
            continue
        if (shape[axes[0]], shape[axes[1]]) != hw:
            raise fixed_size_error(path, "tensorrt", (shape[axes[0]], shape[axes[1]]), hw)


def profile_shapes(
    network: Any, options: RunnerOptions
) -> tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]:
    rows = []
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        shape = tuple(int(d) for d in tensor.shape)
        if all(d >= 0 for d in shape):
            continue
        ranges = [(d, d, d) if d >= 0 else axis_range(shape, ax, options) for ax, d in enumerate(shape)]
        lo, opt, hi = (tuple(r[k] for r in ranges) for k in range(3))
        rows.append((str(tensor.name), lo, opt, hi))
    return tuple(rows)


def has_qdq(trt: Any, network: Any) -> bool:
    kinds = (trt.LayerType.QUANTIZE, trt.LayerType.DEQUANTIZE)
    return any(network.get_layer(i).type in kinds for i in range(network.num_layers))


def precision_flags(trt: Any, precision: str | None, qdq: bool, path: Path) -> tuple[str, ...]:
    """Builder flags for ``precision`` (None means f16) and Q/DQ; () on TensorRT 11."""
    if not hasattr(trt.BuilderFlag, "FP16"):
        if precision not in (None, "f32"):
            log.warning(
                "%s: TensorRT %s builds strongly typed: the ONNX's types decide", path, trt.__version__
            )
        return ()
    flags = {None: ("FP16",), "f16": ("FP16",), "bf16": ("BF16",), "f32": ()}.get(precision)
    if flags is None:
        raise ModelError(f"{path}: TensorRT precision {precision!r} is not one of f16, f32, bf16")
    return flags + (("INT8",) if qdq else ())


def parse_onnx(trt: Any, builder: Any, logger: Any, path: Path) -> tuple[Any, Any]:
    major = int(str(trt.__version__).split(".")[0])
    flags = 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH) if major < 10 else 0
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(path)):
        problems = []
        for i in range(parser.num_errors):
            err = parser.get_error(i)
            node = int(err.node())
            if node < 0:
                problems.append(_flat(err.desc()))
                continue
            name = err.node_name() if hasattr(err, "node_name") else ""
            op = err.node_operator() if hasattr(err, "node_operator") else ""
            problems.append(f"node {node} {name!r} ({op}): {_flat(err.desc())}")
        what = "; ".join(problems) or logger.last("the parser gave no reason")
        raise ModelError(f"{path}: TensorRT {trt.__version__} cannot parse it ({what})")
    return network, parser


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.]+", "-", text).strip("-")


def engine_for_onnx(
    trt: Any, logger: Any, path: Path, gpu: str, options: RunnerOptions
) -> tuple[bytes, Path, bool]:
    """The serialized engine for ONNX ``path``: from the cache, or built and cached.
    Returns (engine, cached file, whether it was built now)."""
    require_model_file(path, "an ONNX model")
    builder = trt.Builder(logger)
    network, _parser = parse_onnx(trt, builder, logger, path)
    if options.graph_hw is not None:
        refuse_static_size(network, options.graph_hw, path)
    flags = precision_flags(trt, options.precision, has_qdq(trt, network), path)
    profile = profile_shapes(network, options)
    key = BuildKey(file_sha256(path), str(trt.__version__), gpu, profile, flags, options.dla_core)
    cache_dir = options.cache_dir or default_cache_dir()
    engine_file = cache_dir / f"{path.stem}-{key.digest()}.engine"
    if engine_file.is_file() and engine_file.stat().st_size > 0:
        return engine_file.read_bytes(), engine_file, False
    config = builder.create_builder_config()
    for flag in flags:
        config.set_flag(getattr(trt.BuilderFlag, flag))
    if options.dla_core is not None:
        cores = int(builder.num_DLA_cores)
        if not 0 <= options.dla_core < cores:
            raise ModelError(
                f"{path}: dla_core {options.dla_core} asked for, but this device has {cores} DLA core(s)"
            )
        if not flags and hasattr(trt.BuilderFlag, "FP16"):  # TensorRT 11: the ONNX's types decide
            raise ModelError(
                f"{path}: a DLA runs f16 or int8 only; set precision f16 (the default) for dla_core"
            )
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = options.dla_core
        config.set_flag(trt.BuilderFlag.GPU_FALLBACK)
    if profile:
        opt_profile = builder.create_optimization_profile()
        for name, lo, opt, hi in profile:
            opt_profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(opt_profile)
    timing_file = cache_dir / f"timing-{_slug(key.tensorrt)}-{_slug(gpu)}.cache"
    timing = config.create_timing_cache(timing_file.read_bytes() if timing_file.is_file() else b"")
    config.set_timing_cache(timing, False)
    log.info("%s: building a TensorRT engine (%s); this takes minutes on a Jetson, once", path, key)
    started = time.perf_counter()
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(
            f"{path}: TensorRT {trt.__version__} could not build an engine ({logger.last('no reason given')})"
        )
    data = bytes(memoryview(serialized))
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        write_atomic(engine_file, data)
        write_atomic(engine_file.with_suffix(".json"), json.dumps(asdict(key), indent=1).encode())
        write_atomic(timing_file, memoryview(config.get_timing_cache().serialize()))
    except OSError as exc:
        log.warning("%s: cannot cache the engine in %s (%s): it will be built again", path, cache_dir, exc)
    log.info("%s: engine built in %.0f s, cached as %s", path, time.perf_counter() - started, engine_file)
    return data, engine_file, True


def _np_dtype(trt: Any, dtype: Any, name: str, path: Path) -> np.dtype[Any]:
    for key, np_type in _DTYPES.items():
        if hasattr(trt.DataType, key) and dtype == getattr(trt.DataType, key):
            return np.dtype(np_type)
    raise ModelError(f"{path}: tensor {name!r} has type {dtype}; expected one of {', '.join(_DTYPES)}")


class Buffer:
    """One tensor's device buffer and its pinned host twin, grown only when a larger shape arrives."""

    def __init__(self, cuda: Cuda, name: str, dtype: np.dtype[Any]) -> None:
        self.cuda, self.name, self.dtype = cuda, name, dtype
        self.capacity = 0
        self.device = 0
        self.host_ptr = 0
        self.host = np.empty(0, np.uint8)

    def ensure(self, nbytes: int) -> None:
        if nbytes <= self.capacity:
            return
        self.free()
        size = max(nbytes, 256)
        device = int(self.cuda("cudaMalloc", size))
        try:
            self.host_ptr = int(self.cuda("cudaMallocHost", size))
        except BaseException:
            self.cuda("cudaFree", device)
            raise
        self.device, self.capacity = device, size
        raw = ctypes.cast(self.host_ptr, ctypes.POINTER(ctypes.c_uint8))
        self.host = np.ctypeslib.as_array(raw, shape=(size,))

    def free(self) -> None:
        if self.capacity:
            self.host = np.empty(0, np.uint8)
            self.cuda("cudaFree", self.device)
            self.cuda("cudaFreeHost", self.host_ptr)
            self.capacity = self.device = self.host_ptr = 0


class TensorRtRunner:
    """One engine, one execution context, one CUDA stream. Not thread-safe (one per worker)."""

    backend = "tensorrt"
    takes_bgr8 = False

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        trt = import_tensorrt()
        cudart = import_cudart()
        self.path = path
        if path.suffix not in (".engine", ".onnx"):
            raise ModelError(f"{path}: TensorRT reads .engine and .onnx files, not {path.suffix!r}")
        self._trt = trt
        self._cuda = Cuda(cudart, path)
        self._logger = make_logger(trt)
        self.tensorrt_version = str(trt.__version__)
        self.gpu = self._cuda.gpu_name()
        self.built = False
        if path.suffix == ".engine":
            blob, self.engine_file = engine_bytes(path), path
        else:
            blob, self.engine_file, self.built = engine_for_onnx(trt, self._logger, path, self.gpu, options)
        runtime = trt.Runtime(self._logger)
        if options.dla_core is not None:
            runtime.DLA_core = options.dla_core
        engine = runtime.deserialize_cuda_engine(blob)
        if engine is None and not self.built and path.suffix == ".onnx":
            log.warning("%s: cached engine %s is unreadable; building again", path, self.engine_file)
            self.engine_file.unlink(missing_ok=True)
            blob, self.engine_file, self.built = engine_for_onnx(trt, self._logger, path, self.gpu, options)
            engine = runtime.deserialize_cuda_engine(blob)
        if engine is None:
            raise ModelError(
                f"{self.engine_file}: TensorRT {self.tensorrt_version} cannot load it as an engine "
                f"({self._logger.last('not an engine')}); expected an engine built by this TensorRT "
                f"version on this device ({self.gpu})"
            )
        self._runtime, self._engine = runtime, engine
        self.inputs: list[TensorSpec] = []
        self.outputs: list[TensorSpec] = []
        self._limits: dict[str, tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...]]] = {}
        self._buffers: dict[str, Buffer] = {}
        self._stream: Any = None
        self._read_io()
        self._context = engine.create_execution_context()
        if self._context is None:
            raise ModelError(
                f"{path}: TensorRT could not create an execution context ({self._logger.last('')})"
            )
        self._stream = self._cuda("cudaStreamCreate")
        self._shapes: dict[str, tuple[int, ...]] = {}
        try:
            for spec in self.inputs:  # buffers for the usual shape now, so frames never allocate
                limits = self._limits.get(spec.name)
                usual = limits[1] if limits else tuple(int(d or 0) for d in spec.shape)
                self._set_shape(spec.name, usual)
                self._buffers[spec.name].ensure(int(np.prod(usual)) * spec.dtype.itemsize)
            self._fit_outputs()
        except BaseException:
            self.close()
            raise

    def _read_io(self) -> None:
        trt, engine = self._trt, self._engine
        for i in range(engine.num_io_tensors):
            name = str(engine.get_tensor_name(i))
            dims = tuple(int(d) for d in engine.get_tensor_shape(name))
            dtype = _np_dtype(trt, engine.get_tensor_dtype(name), name, self.path)
            is_input = engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT
            shape: tuple[int | None, ...] = tuple(d if d >= 0 else None for d in dims)
            if is_input and None in shape:
                lo, opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
                self._limits[name] = (lo, opt, hi)
                # An axis the profile pins (min == max) is static for the caller.
                shape = tuple(a if a == b else None for a, b in zip(lo, hi, strict=True))
            spec = TensorSpec(name, shape, dtype, guess_layout(shape))
            (self.inputs if is_input else self.outputs).append(spec)
            self._buffers[name] = Buffer(self._cuda, name, dtype)

    @property
    def max_batch(self) -> int | None:
        """The engine's largest batch when its batch axis is dynamic."""
        his = [hi[0] for name, (_, _, hi) in self._limits.items() if self._batch_dynamic(name)]
        return min(his) if his else None

    def _batch_dynamic(self, name: str) -> bool:
        lo, _, hi = self._limits.get(name, ((), (), ()))
        return bool(lo) and lo[0] != hi[0]

    def _set_shape(self, name: str, shape: tuple[int, ...]) -> None:
        if self._shapes.get(name) == shape:
            return
        if not self._context.set_input_shape(name, shape):
            lo, _, hi = self._limits.get(name, (shape, shape, shape))
            raise ModelError(
                f"{self.path}: input {name!r} of shape {shape} is outside the engine's profile {lo}..{hi} "
                f"({self._logger.last('set_input_shape refused it')})"
            )
        self._shapes[name] = shape

    def _fit_outputs(self) -> list[tuple[int, ...]]:
        shapes = []
        for spec in self.outputs:
            shape = tuple(int(d) for d in self._context.get_tensor_shape(spec.name))
            if any(d < 0 for d in shape):
                raise ModelError(
                    f"{self.path}: output {spec.name!r} has a data-dependent shape {shape}; not supported"
                )
            self._buffers[spec.name].ensure(int(np.prod(shape)) * spec.dtype.itemsize)
            shapes.append(shape)
        return shapes

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        prepared = {s.name: np.ascontiguousarray(prepare_feed(s, feeds[s.name])) for s in self.inputs}
        limit = self.max_batch
        batch = next((a.shape[0] for a in prepared.values() if a.ndim), 1)
        if limit is None or batch <= limit:
            return self._run_once(prepared)
        parts = [
            self._run_once({k: v[start : start + limit] for k, v in prepared.items()})
            for start in range(0, batch, limit)
        ]
        return [np.concatenate(chunk, axis=0) for chunk in zip(*parts, strict=True)]

    def _run_once(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        cuda, context, stream = self._cuda, self._context, self._stream
        h2d, d2h = (
            self._cuda.rt.cudaMemcpyKind.cudaMemcpyHostToDevice,
            self._cuda.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost,
        )
        for spec in self.inputs:
            array = feeds[spec.name]
            self._set_shape(spec.name, tuple(int(d) for d in array.shape))
            buf = self._buffers[spec.name]
            buf.ensure(array.nbytes)
            buf.host[: array.nbytes] = array.reshape(-1).view(np.uint8)
            cuda("cudaMemcpyAsync", buf.device, buf.host_ptr, array.nbytes, h2d, stream)
        shapes = self._fit_outputs()
        for name, buf in self._buffers.items():
            if not context.set_tensor_address(name, buf.device):
                raise ModelError(
                    f"{self.path}: TensorRT refused the address of {name!r} ({self._logger.last('')})"
                )
        if not context.execute_async_v3(int(stream)):
            raise ModelError(
                f"{self.path}: TensorRT inference failed ({self._logger.last('no reason given')})"
            )
        sizes = [int(np.prod(s)) * spec.dtype.itemsize for s, spec in zip(shapes, self.outputs, strict=True)]
        for spec, nbytes in zip(self.outputs, sizes, strict=True):
            buf = self._buffers[spec.name]
            cuda("cudaMemcpyAsync", buf.host_ptr, buf.device, nbytes, d2h, stream)
        cuda("cudaStreamSynchronize", stream)
        results = []
        for spec, shape, nbytes in zip(self.outputs, shapes, sizes, strict=True):
            out = self._buffers[spec.name].host[:nbytes].view(spec.dtype).reshape(shape).copy()
            results.append(out.astype(np.float32) if out.dtype == np.float16 else out)
        return results

    def close(self) -> None:
        """Free every device and pinned buffer and the stream; safe to call twice."""
        for buf in self._buffers.values():
            buf.free()
        if self._stream is not None:
            stream, self._stream = self._stream, None
            self._cuda("cudaStreamDestroy", stream)
        self._context = None
        self._engine = None
        self._runtime = None


def load(path: Path, options: RunnerOptions) -> TensorRtRunner:
    try:
        return TensorRtRunner(path, options)
    except EdgeError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: TensorRT could not load it ({one_line(exc)})") from exc
