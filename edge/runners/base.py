"""The ``ModelRunner`` protocol, runner options and the backend registry.

Runners return raw output tensors only (float32, dequantised when the model is quantised);
decoding is the job of ``edge.decoders`` and is chosen by the model manifest, never here.
Backends are imported lazily: a missing library raises ``BackendUnavailable`` naming the
extra to install.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import stat
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from edge.buffer.preprocess import InputFormat
from edge.errors import BackendUnavailable, EdgeError, ModelError
from edge.types import TensorSpec


@dataclass(frozen=True)
class RunnerOptions:
    """Backend settings from the config's ``models.<name>`` section.

    ``device``: OpenVINO device (CPU, GPU, NPU, AUTO). ``precision``: OpenVINO
    ``INFERENCE_PRECISION_HINT`` (f32, f16, bf16), None leaves OpenVINO's default.
    ``threads``: intra-op threads (ORT), XNNPACK threads (LiteRT), inference threads (OpenVINO).
    ``providers``: ONNX Runtime execution providers in order, None picks what is installed.
    ``performance_hint``: OpenVINO ``PERFORMANCE_HINT`` (LATENCY or THROUGHPUT).
    TensorRT reads ``precision`` too (f16 when None, f32, bf16) and these:
    ``cache_dir``: where engines built from ONNX and the timing cache are kept (the daemon
    passes ``<state_dir>/tensorrt``); None: ``$XDG_CACHE_HOME/edge/tensorrt``.
    ``openvino_cache``: where OpenVINO keeps compiled models for the next start (the daemon
    passes ``<state_dir>/openvino``); None compiles at every load.
    ``dla_core``: run on this DLA core (Jetson Orin/Xavier), GPU fallback for the rest.
    ``max_batch``: the largest batch a dynamic-batch engine is built for; larger batches run in chunks.
    ``input_hw``: height and width frames will have; pins a dynamic image size in the engine.
    ``pin_batch``: OpenVINO gives a dynamic batch axis this size before compiling; static
    shapes run faster (about 10 % on YOLOv8n). The pipeline sets 1 where its requests in flight
    take one frame each; None keeps the axis dynamic (the worker's batched loop needs it).
    OpenVINO also pins a dynamic image height and width to ``input_hw``.
    ``graph_hw``: run the graph at this height and width instead of its own static size
    (``models.<name>.input_size``): OpenVINO rewrites a YOLO head for it
    (``edge.runners.openvino_resize``); other runners take it only where the graph's image
    size is dynamic, and refuse a static graph of another size.
    ``preprocess``: the model's colour order and ``(x - mean) / std`` (from its manifest). A
    runner that can fold them and the layout into its compiled graph (OpenVINO) does so when
    ``graph_preprocess`` is on, and then takes the letterboxed frame as uint8 NHWC BGR: its
    input spec says so and it sets ``takes_bgr8`` (the capture thread then only resizes and copies).
    """

    device: str = "CPU"
    precision: str | None = None
    threads: int | None = None
    providers: tuple[str, ...] | None = None
    performance_hint: str | None = None
    warmup: bool = True
    cache_dir: Path | None = None
    openvino_cache: Path | None = None
    dla_core: int | None = None
    max_batch: int = 4
    input_hw: tuple[int, int] | None = None
    pin_batch: int | None = None
    graph_hw: tuple[int, int] | None = None
    preprocess: InputFormat | None = None
    graph_preprocess: bool = True


@runtime_checkable
class ModelRunner(Protocol):
    """One loaded model on one backend."""

    backend: str
    path: Path
    inputs: list[TensorSpec]
    outputs: list[TensorSpec]
    takes_bgr8: bool  # colour, normalisation and layout are in its graph (RunnerOptions.preprocess)

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        """Run one inference; returns the outputs in ``self.outputs`` order, as float32."""
        ...

    def close(self) -> None: ...


RunnerLoader = Callable[[Path, RunnerOptions], ModelRunner]


@dataclass(frozen=True)
class BackendInfo:
    """A registry row: where a backend lives and what it can read."""

    name: str
    module: str
    extra: str
    suffixes: tuple[str, ...]
    libraries: tuple[str, ...]


BACKENDS: dict[str, BackendInfo] = {
    "onnxruntime": BackendInfo(
        "onnxruntime", "edge.runners.onnxruntime", "core (onnxruntime)", (".onnx",), ("onnxruntime",)
    ),
    "openvino": BackendInfo(
        "openvino", "edge.runners.openvino", "openvino", (".xml", ".onnx", ".tflite"), ("openvino",)
    ),
    "litert": BackendInfo(
        "litert",
        "edge.runners.litert",
        "litert",
        (".tflite",),
        ("ai_edge_litert", "tflite_runtime", "tensorflow"),
    ),
    # Jetson: builds an engine from ONNX once (cached) or loads a prebuilt .engine; unverified on hardware.
    "tensorrt": BackendInfo(
        "tensorrt", "edge.runners.tensorrt", "tensorrt", (".engine", ".onnx"), ("tensorrt",)
    ),
}


def backend_info(name: str) -> BackendInfo:
    try:
        return BACKENDS[name]
    except KeyError:
        raise BackendUnavailable(
            f"unknown runner {name!r}; choose one of: auto, {', '.join(BACKENDS)}"
        ) from None


# Distributions that install each backend library's top-level module (package metadata names).
DISTRIBUTIONS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml"),
    "openvino": ("openvino",),
    "ai_edge_litert": ("ai-edge-litert", "ai-edge-litert-nightly"),
    "tflite_runtime": ("tflite-runtime",),
    "tensorflow": ("tensorflow", "tensorflow-cpu", "tensorflow-aarch64"),
    "tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13"),
}


def _installed_version(module: str) -> str | None:
    """The version in the package metadata of the distribution that installs ``module``
    (nothing is imported), or None when none of the known ones is installed."""
    from importlib import metadata

    for dist in DISTRIBUTIONS.get(module, ()):
        try:
            return metadata.version(dist)
        except metadata.PackageNotFoundError:
            continue
    return None


def backend_version(name: str) -> str | None:
    """The version of the first installed library of a backend, or None.

    Read from package metadata, so probing does not import every backend (OpenVINO, ONNX
    Runtime and LiteRT together are about 45 MB resident in a daemon that uses one of them).
    A module on the path without metadata (a vendor build, Jetson's ``tensorrt`` from apt) is
    imported to read its ``__version__``; one that fails to import counts as absent."""
    for lib in backend_info(name).libraries:
        if importlib.util.find_spec(lib) is None:
            continue
        version = _installed_version(lib)
        if version is not None:
            return version
        try:
            mod = importlib.import_module(lib)
        except Exception:  # noqa: S112 - a broken install counts as absent
            continue
        return str(getattr(mod, "__version__", "unknown"))
    return None


def load_runner(backend: str, path: Path, options: RunnerOptions | None = None) -> ModelRunner:
    """Load ``path`` on ``backend``, warm it up (unless ``options.warmup`` is off), return the runner.

    Whatever the backend library raises while reading the file becomes a one-line
    ``ModelError`` naming the file.
    """
    info = backend_info(backend)
    if path.suffix not in info.suffixes:
        raise BackendUnavailable(
            f"runner {backend!r} cannot read {path.name}; it reads {', '.join(info.suffixes)}"
        )
    try:
        module = importlib.import_module(info.module)
    except ModuleNotFoundError as exc:
        if exc.name == info.module:
            raise BackendUnavailable(f"runner {backend!r} is not built into this version of edge") from exc
        raise
    loader: RunnerLoader = module.load
    opts = options or RunnerOptions()
    try:
        runner = loader(path, opts)
    except EdgeError:
        raise
    except Exception as exc:
        raise ModelError(f"{path}: {backend} could not load it ({one_line(exc)})") from exc
    if opts.graph_hw is not None:
        _check_graph_size(runner, opts.graph_hw, backend)
    if opts.warmup:
        try:
            warm_up(runner)
        except BaseException:
            runner.close()
            raise
    return runner


def missing_backend(backend: str, exc: BaseException) -> BackendUnavailable:
    info = backend_info(backend)
    hint = (
        "reinstall edge-runtime"
        if info.extra.startswith("core")
        else f"pip install 'edge-runtime[{info.extra}]'"
    )
    return BackendUnavailable(
        f"runner {backend!r} needs {info.libraries[0]}, which is not installed ({exc}); {hint}"
    )


def _check_graph_size(runner: ModelRunner, hw: tuple[int, int], backend: str) -> None:
    """A runner asked for ``graph_hw`` whose image input is static at another size cannot
    honour it: closed, and a ``ModelError`` that says which runner can."""
    sizes = {size for spec in runner.inputs if (size := spec.image_hw()) is not None}
    if sizes and sizes != {hw}:
        runner.close()
        raise fixed_size_error(runner.path, backend, sizes.pop(), hw)


def fixed_size_error(path: Path, backend: str, fixed_hw: tuple[int, int], hw: tuple[int, int]) -> ModelError:
    """A model whose image input is fixed at ``fixed_hw``, asked to run at input_size ``hw``
    (both height, width) on a backend that cannot resize it."""
    return ModelError(
        f"{path}: its input is fixed at {fixed_hw[1]}x{fixed_hw[0]}; {backend} cannot run it at "
        f"input_size {hw[1]}x{hw[0]} (runner: openvino can, for YOLO detectors)"
    )


def jobs_for(optimal: int) -> int:
    """Requests in flight for a runner that advises ``optimal`` (OpenVINO: its streams): one
    more, within 2..5. The extra request keeps every stream fed while the worker decodes, tracks
    and rules on a finished frame in Python: BlazePose's pipeline ran 68 -> 76 FPS with 3
    requests instead of 2 on a 2-core machine (README: Performance). It costs that request's
    buffers, and each camera's ring then keeps at least ``jobs + 2`` frames (about 2.6 MiB
    each at 720p)."""
    return min(max(optimal + 1, 2), 5)


def default_jobs(runner: object) -> int:
    """Requests in flight a runner is run with when ``async_jobs`` is not set: ``jobs_for`` its
    ``optimal_jobs``; 1 (synchronous) for a runner without requests."""
    optimal = getattr(runner, "optimal_jobs", None)
    if optimal is None or getattr(runner, "async_infer", None) is None:
        return 1
    return jobs_for(int(optimal()))


def warm_up(
    runner: ModelRunner, dynamic_size: int = 64, image_hw: tuple[int, int] | None = None
) -> list[np.ndarray]:
    """Run once on zeros so the slow first inference happens at load, not on the first frame.

    ``image_hw`` fills the dynamic height and width of an NCHW/NHWC input (so the warm-up
    runs at the size frames will have); other dynamic axes get ``dynamic_size``, batch 1.
    Returns the outputs, whose shapes decoders check; a failure is a ``ModelError``.
    """
    feeds = {
        spec.name: np.zeros(feed_shape(spec, dynamic_size, image_hw), dtype=spec.dtype)
        for spec in runner.inputs
    }
    try:
        return runner.run(feeds)
    except EdgeError:
        raise
    except Exception as exc:
        shapes = {k: v.shape for k, v in feeds.items()}
        raise ModelError(
            f"{runner.path}: the warm-up inference on zeros of shape {shapes} failed ({one_line(exc)})"
        ) from exc


def feed_shape(
    spec: TensorSpec, dynamic_size: int = 64, image_hw: tuple[int, int] | None = None
) -> tuple[int, ...]:
    """A concrete input shape: batch 1, image height/width from ``image_hw``, else ``dynamic_size``."""
    shape = list(spec.shape)
    if image_hw is not None and len(shape) == 4 and spec.layout in ("NCHW", "NHWC"):
        axes = (2, 3) if spec.layout == "NCHW" else (1, 2)
        for axis, size in zip(axes, image_hw, strict=True):
            if shape[axis] is None:
                shape[axis] = size
    return concrete_shape(shape, dynamic_size)


def concrete_shape(shape: Sequence[int | None], dynamic_size: int = 64) -> tuple[int, ...]:
    """Replace dynamic axes: batch by 1, others by ``dynamic_size``."""
    return tuple((1 if i == 0 else dynamic_size) if d is None else d for i, d in enumerate(shape))


def prepare_feed(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """Quantise a float feed for a quantised input; otherwise cast to the input's dtype."""
    if spec.is_quantized and np.issubdtype(array.dtype, np.floating):
        assert spec.quant is not None
        return spec.quant.quantize(array, spec.dtype)  # type: ignore[arg-type]
    if array.dtype != spec.dtype:
        return array.astype(spec.dtype)
    return array


def finish_output(spec: TensorSpec, array: np.ndarray) -> np.ndarray:
    """Dequantise a quantised output to float32; other outputs pass through."""
    if spec.is_quantized:
        assert spec.quant is not None
        return spec.quant.dequantize(array)
    return array


def one_line(exc: BaseException, limit: int = 240) -> str:
    """The gist of a library's exception on one line: its last non-empty line, whitespace
    collapsed, cut to ``limit`` characters (OpenVINO's messages start with C++ source paths)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    text = re.sub(r"\s+", " ", lines[-1]) if lines else type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."


def require_model_file(path: Path, expected: str, allow_empty: bool = False) -> None:
    """Raise a ``ModelError`` unless ``path`` is a non-empty regular file.

    A directory, a FIFO or a device in place of the file would make a backend fail
    obscurely or block forever (reading a FIFO waits for a writer), so they are refused
    before any library opens them. ``expected`` says what the file should be; an empty file is
    refused unless ``allow_empty`` (the weights of a model without constants).
    """
    try:
        st = path.stat()
    except FileNotFoundError:
        raise ModelError(f"{path}: not found; expected {expected}") from None
    except OSError as exc:
        raise ModelError(f"{path}: cannot read it ({exc.strerror}); expected {expected}") from None
    if stat.S_ISDIR(st.st_mode):
        raise ModelError(f"{path}: is a directory; expected {expected}")
    if not stat.S_ISREG(st.st_mode):
        raise ModelError(f"{path}: is not a regular file; expected {expected}")
    if st.st_size == 0 and not allow_empty:
        raise ModelError(f"{path}: is empty (0 bytes); expected {expected}")


def file_sha256(path: Path) -> str:
    """sha256 of a file, or of an OpenVINO IR's .xml and .bin together."""
    digest = hashlib.sha256()
    parts = [path, path.with_suffix(".bin")] if path.suffix == ".xml" else [path]
    for part in parts:
        if not part.exists():
            continue
        with part.open("rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()
