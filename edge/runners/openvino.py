"""OpenVINO runner: CPU/GPU/NPU; reads IR (.xml + .bin), ONNX and TFLite directly.

Inputs and outputs are addressed by index, never by tensor name: Ultralytics' OpenVINO
exports (8.4) have output tensors without names, where ``get_any_name()`` raises. A tensor
without a name is called ``input<i>`` / ``output<i>`` in its ``TensorSpec``.

With ``RunnerOptions.graph_preprocess`` (the default) and the model's ``preprocess`` format,
a float image input gets OpenVINO's ``PrePostProcessor`` steps compiled in front of it:
uint8 NHWC BGR in, then element type, colour order, ``(x - mean) / std`` and layout inside
the graph, where OpenVINO fuses them into the first layers. The input spec then says uint8
NHWC and ``takes_bgr8`` is set, so the capture thread only letterboxes and copies bytes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from edge.errors import ModelError
from edge.runners import openvino_cache
from edge.runners.base import (
    RunnerOptions,
    finish_output,
    missing_backend,
    one_line,
    prepare_feed,
    require_model_file,
)
from edge.runners.openvino_resize import resize_graph
from edge.types import TensorSpec, guess_layout

# Which OpenVINO frontend reads which file, and what the file should be (for error messages).
FRONTENDS: dict[str, tuple[str, str]] = {
    ".xml": ("ir", "an OpenVINO IR .xml"),
    ".onnx": ("onnx", "an ONNX model"),
    ".tflite": ("tflite", "a TFLite flatbuffer"),
}


def port_name(port: Any, kind: str, index: int) -> str:
    """The port's tensor name (OpenVINO's pick when it has several), or ``<kind><index>``."""
    return str(port.get_any_name()) if port.get_names() else f"{kind}{index}"


def _dims(partial_shape: Any) -> tuple[int | None, ...]:
    """An OpenVINO partial shape as sizes, None for a dynamic axis."""
    return tuple(d.get_length() if d.is_static else None for d in partial_shape)


def _spec(port: Any, kind: str, index: int) -> TensorSpec:
    shape = _dims(port.get_partial_shape())
    dtype = np.dtype(port.get_element_type().to_dtype())
    return TensorSpec(port_name(port, kind, index), shape, dtype, guess_layout(shape))


def read_model(core: Any, path: Path) -> Any:
    """Read ``path`` with the frontend its suffix names.

    ``core.read_model`` would otherwise try every frontend on a file none accepts, and the
    TensorFlow one prints parse errors to stderr on the way.
    """
    from openvino.frontend import FrontEndManager

    framework, expected = FRONTENDS[path.suffix]
    require_model_file(path, expected)
    if path.suffix == ".xml":
        weights = path.with_suffix(".bin")
        require_model_file(weights, f"the weights of OpenVINO IR {path.name}", allow_empty=True)
    frontend = FrontEndManager().load_by_framework(framework)
    if frontend is None or not frontend.supported(str(path)):
        raise ModelError(f"{path}: OpenVINO cannot read it as {framework.upper()}; expected {expected}")
    try:
        return core.read_model(str(path))
    except Exception as exc:
        raise ModelError(
            f"{path}: OpenVINO cannot read it as {framework.upper()} ({one_line(exc)}); expected {expected}"
        ) from exc


def _image_layout(model: Any) -> str | None:
    """``NCHW`` or ``NHWC`` when the model has one 4-D float input of 3 channels, else None."""
    import openvino as ov

    if len(model.inputs) != 1:
        return None
    port = model.inputs[0]
    if port.get_element_type() not in (ov.Type.f32, ov.Type.f16):
        return None
    shape = _dims(port.get_partial_shape())
    layout = guess_layout(shape) if len(shape) == 4 else "other"
    if layout not in ("NCHW", "NHWC") or shape[1 if layout == "NCHW" else 3] != 3:
        return None
    return layout


def pin_shape(model: Any, options: RunnerOptions, path: Path) -> None:
    """Give the image input's dynamic axes the sizes it will be fed (in place): the batch
    ``options.pin_batch``, height and width ``options.input_hw``. OpenVINO runs a static
    shape faster than a dynamic one: on YOLOv8n at 320x192 with three requests in flight,
    21.8 against 24.3 ms of CPU an image. Nothing changes when no axis is dynamic or nothing
    says what to pin it to."""
    import openvino as ov

    if len(model.inputs) != 1:
        return
    shape = _dims(model.inputs[0].get_partial_shape())
    layout = guess_layout(shape) if len(shape) == 4 else "other"
    if layout not in ("NCHW", "NHWC"):
        return
    sizes: dict[int, int] = {}
    if options.pin_batch is not None:
        sizes[0] = options.pin_batch
    if options.input_hw is not None:
        first = 2 if layout == "NCHW" else 1
        sizes.update({first: options.input_hw[0], first + 1: options.input_hw[1]})
    pinned = {axis: size for axis, size in sizes.items() if shape[axis] is None}
    if not pinned:
        return
    fed = [pinned.get(axis, size) for axis, size in enumerate(shape)]
    model.inputs[0].get_node().set_partial_shape(ov.PartialShape([-1 if d is None else d for d in fed]))
    try:
        model.validate_nodes_and_infer_types()
    except Exception as exc:
        text = "x".join("N" if d is None else str(d) for d in fed)
        raise ModelError(f"{path}: OpenVINO cannot run it at input shape {text} ({one_line(exc)})") from exc


def fold_preprocessing(model: Any, options: RunnerOptions) -> bool:
    """Put colour order, normalisation and layout into ``model`` (in place): it then takes
    uint8 NHWC BGR. False, and nothing changed, when it is off or the input is not a float
    3-channel image."""
    fmt = options.preprocess
    layout = _image_layout(model) if options.graph_preprocess and fmt is not None else None
    if layout is None or fmt is None:
        return False
    import openvino as ov
    from openvino.preprocess import ColorFormat, PrePostProcessor

    ppp = PrePostProcessor(model)
    step = ppp.input(0)
    step.tensor().set_element_type(ov.Type.u8).set_layout(ov.Layout("NHWC")).set_color_format(ColorFormat.BGR)
    step.model().set_layout(ov.Layout(layout))
    pre = step.preprocess().convert_element_type(ov.Type.f32)
    if fmt.color == "rgb":
        pre.convert_color(ColorFormat.RGB)
    if any(fmt.mean):
        pre.mean(list(fmt.mean))
    if any(v != 1.0 for v in fmt.std):
        pre.scale(list(fmt.std))
    ppp.build()
    return True


def compile_config(options: RunnerOptions) -> dict[str, Any]:
    config: dict[str, Any] = {}
    if options.precision:
        config["INFERENCE_PRECISION_HINT"] = options.precision
    if options.performance_hint:
        config["PERFORMANCE_HINT"] = options.performance_hint.upper()
    if options.threads:
        config["INFERENCE_NUM_THREADS"] = options.threads
    return config


class AsyncInfer:
    """OpenVINO's ``AsyncInferQueue`` with results collected by job id.

    ``submit`` starts a job (blocking only when all ``jobs`` requests are busy); ``wait``
    returns that job's outputs, copied out of the request in the completion callback.
    """

    def __init__(self, compiled: Any, inputs: list[TensorSpec], outputs: list[TensorSpec], jobs: int) -> None:
        import threading

        import openvino as ov

        self.jobs = jobs
        self._inputs = inputs
        self._outputs = outputs
        self._queue = ov.AsyncInferQueue(compiled, jobs)
        self._queue.set_callback(self._done)
        self._cond = threading.Condition()
        self._results: dict[int, list[np.ndarray] | BaseException] = {}
        self._held: dict[int, list[np.ndarray]] = {}  # each running job's inputs, kept alive

    def _done(self, request: Any, job: int) -> None:
        try:
            result: list[np.ndarray] | BaseException = [
                finish_output(s, np.array(request.get_output_tensor(i).data, copy=True))
                for i, s in enumerate(self._outputs)
            ]
        except BaseException as exc:  # surfaced to the caller of wait()
            result = exc
        with self._cond:
            self._held.pop(job, None)
            self._results[job] = result
            self._cond.notify_all()

    def submit(self, feeds: Mapping[str, np.ndarray], job: int) -> None:
        """Start a job; ``feeds`` are keyed by the input specs' names and passed by index.

        The request reads the arrays in place (no copy; they are kept alive until it is done),
        so the caller must not write them until ``wait(job)`` has returned: the worker holds a
        frame's ring slot until then.
        """
        arrays = [feeds[s.name] for s in self._inputs]
        with self._cond:
            self._held[job] = arrays
        try:
            self._queue.start_async(dict(enumerate(arrays)), job, share_inputs=True)
        except BaseException:
            with self._cond:
                self._held.pop(job, None)
            raise

    def done(self, job: int) -> bool:
        with self._cond:
            return job in self._results

    def wait(self, job: int, timeout: float | None = None) -> list[np.ndarray] | None:
        with self._cond:
            if not self._cond.wait_for(lambda: job in self._results, timeout):
                return None
            result = self._results.pop(job)
        if isinstance(result, BaseException):
            raise result
        return result

    def wait_all(self) -> None:
        if self._queue is not None:
            self._queue.wait_all()

    def reset(self) -> None:
        """Wait for every request and forget results nobody collected (a new owner starts
        its job ids again)."""
        self.wait_all()
        with self._cond:
            self._results.clear()
            self._held.clear()

    def close(self) -> None:
        """Wait for every request. The queue itself is not dropped here: destroying an
        ``AsyncInferQueue`` and then its compiled model while holding the GIL deadlocks (an
        OpenVINO executor thread waits for the GIL to release the Python callback). It goes
        with the process; ``edge.cli.entry`` ends the process without interpreter
        finalisation, where destroying it could abort."""
        if self._queue is not None:
            self._queue.wait_all()


class OpenVinoRunner:
    backend = "openvino"
    takes_bgr8 = False

    def __init__(self, path: Path, options: RunnerOptions) -> None:
        try:
            import openvino as ov
        except ImportError as exc:
            raise missing_backend(self.backend, exc) from exc
        self.path = path
        if path.suffix not in FRONTENDS:
            raise ModelError(f"{path}: OpenVINO reads {', '.join(FRONTENDS)} files, not {path.suffix!r}")
        core = ov.Core()
        config = compile_config(options)
        entry = None
        if options.openvino_cache is not None:
            require_model_file(path, FRONTENDS[path.suffix][1])
            entry = openvino_cache.entry_for(core, options.openvino_cache, path, options, config)
        kept = openvino_cache.load(core, entry, path, options.device, config) if entry else None
        if kept is not None:
            self._compiled, self.takes_bgr8 = kept.compiled, kept.takes_bgr8
        else:
            self._compiled = self._compile(core, path, options, config)
            if entry is not None:
                openvino_cache.save(self._compiled, entry, path, self.takes_bgr8)
        self.device = options.device
        self.precision = str(self._compiled.get_property("INFERENCE_PRECISION_HINT"))
        self.inputs = [_spec(p, "input", i) for i, p in enumerate(self._compiled.inputs)]
        self.outputs = [_spec(p, "output", i) for i, p in enumerate(self._compiled.outputs)]
        self._request: Any = None  # made by the first run(); async use drops it
        self._queues: list[AsyncInfer] = []

    def _compile(self, core: Any, path: Path, options: RunnerOptions, config: dict[str, Any]) -> Any:
        """Read ``path``, resize it to ``graph_hw``, pin its dynamic input axes, fold
        preprocessing into it (setting ``takes_bgr8``), compile it."""
        model = read_model(core, path)
        if options.graph_hw is not None:
            resize_graph(model, options.graph_hw, path)
        pin_shape(model, options, path)
        try:
            self.takes_bgr8 = fold_preprocessing(model, options)
        except Exception as exc:
            raise ModelError(
                f"{path}: OpenVINO could not fold preprocessing into it ({one_line(exc)}); "
                "graph_preprocess: false does it in the capture thread"
            ) from exc
        try:
            return core.compile_model(model, options.device, config)
        except Exception as exc:
            raise ModelError(
                f"{path}: OpenVINO could not compile it for {options.device} ({one_line(exc)})"
            ) from exc

    def optimal_jobs(self) -> int:
        """OpenVINO's own advice on how many requests keep this device busy."""
        return int(self._compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))

    def async_infer(self, jobs: int) -> AsyncInfer:
        queue = AsyncInfer(self._compiled, self.inputs, self.outputs, jobs)
        self._request = None  # the warm-up's request: its buffers are not needed any more
        self._queues.append(queue)  # waited for before the compiled model goes
        return queue

    def run(self, feeds: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        prepared = {i: prepare_feed(s, feeds[s.name]) for i, s in enumerate(self.inputs)}
        if self._request is None:
            self._request = self._compiled.create_infer_request()
        self._request.infer(prepared)
        # The request reuses its output buffers: copy before the next inference overwrites them.
        return [
            finish_output(s, np.array(self._request.get_output_tensor(i).data, copy=True))
            for i, s in enumerate(self.outputs)
        ]

    def close(self) -> None:
        for queue in self._queues:
            queue.close()
        self._request = None
        self._compiled = None


def load(path: Path, options: RunnerOptions) -> OpenVinoRunner:
    return OpenVinoRunner(path, options)
