"""A model ready to use: package + selected runner + preprocessor format + decoder.

``load_model`` is what ``edge infer``, ``edge bench`` and the pipeline's workers call: it
resolves the package, verifies the file's sha256, picks the backend, loads and warms the
runner, and builds the decoder for the runner's actual output tensors.
"""

from __future__ import annotations

import functools
import logging
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from edge.buffer.preprocess import InputFormat, LetterboxPreprocessor
from edge.config.schema import ModelConfig
from edge.decoders import (
    DecodeContext,
    DecodeParams,
    Decoder,
    build_decoder,
    check_outputs,
    decode_params,
)
from edge.errors import BackendUnavailable, EdgeError, ModelError
from edge.models import ModelPackage, resolve_model
from edge.runners.autotune import Choice, autotuned_selection
from edge.runners.base import ModelRunner, RunnerOptions, file_sha256, load_runner, one_line, warm_up
from edge.runners.select import Candidate, HardwareInfo, Selection, probe_hardware, select_runner
from edge.types import Detections, TensorSpec

log = logging.getLogger("edge.autotune")


@dataclass
class LoadedModel:
    """A loaded, warmed model. Not thread-safe: one per inference worker."""

    package: ModelPackage
    runner: ModelRunner
    selection: Selection
    input_spec: TensorSpec
    input_format: InputFormat
    decoder: Decoder
    params: DecodeParams
    sha256: str
    load_seconds: float
    _pre: LetterboxPreprocessor | None = None
    _tensor: np.ndarray | None = None

    @property
    def labels(self) -> tuple[str, ...]:
        return self.package.labels

    def label(self, class_id: int) -> str:
        return self.labels[class_id] if 0 <= class_id < len(self.labels) else str(class_id)

    def preprocessor(self) -> LetterboxPreprocessor:
        """A new preprocessor (one per camera: it caches buffers for one frame size)."""
        return LetterboxPreprocessor(self.input_format, self.input_spec)

    def run_tensor(self, tensor: np.ndarray) -> list[np.ndarray]:
        return self.runner.run({self.input_spec.name: tensor})

    def decode(self, outputs: list[np.ndarray], ctx: DecodeContext) -> Detections:
        return self.decoder(outputs, ctx)

    def infer(self, frame_bgr: np.ndarray) -> Detections:
        """Preprocess, run and decode one BGR frame (convenience path for ``edge infer``)."""
        if self._pre is None:
            self._pre = self.preprocessor()
            self._tensor = self._pre.new_tensor()
        assert self._tensor is not None
        box = self._pre(frame_bgr, self._tensor)
        outputs = self.run_tensor(self._tensor)
        return self.decode(outputs, DecodeContext(box, (frame_bgr.shape[1], frame_bgr.shape[0])))

    def close(self) -> None:
        self.runner.close()


def runner_options(model: ModelConfig, pipeline: bool = True, state_dir: Path | None = None) -> RunnerOptions:
    """Runner settings from a config's ``models.<name>`` section. In the pipeline OpenVINO is
    compiled for throughput (several frames in flight) unless the config says otherwise.
    ``state_dir`` (the config's) holds TensorRT's engine cache in ``<state_dir>/tensorrt``
    (without it TensorRT uses ``$XDG_CACHE_HOME/edge/tensorrt``) and OpenVINO's compiled
    models in ``<state_dir>/openvino`` (without it OpenVINO compiles at every load). In the
    pipeline OpenVINO's requests in flight take one frame each, so a dynamic batch axis is
    pinned to 1 unless ``async_jobs`` is 1 (then the worker batches cameras' frames)."""
    hint = model.performance_hint or ("throughput" if pipeline else None)
    return RunnerOptions(
        device=model.device,
        precision=model.precision,
        threads=model.threads,
        providers=tuple(model.providers) if model.providers else None,
        performance_hint=hint,
        cache_dir=state_dir / "tensorrt" if state_dir is not None else None,
        openvino_cache=state_dir / "openvino" if state_dir is not None else None,
        dla_core=model.dla_core,
        max_batch=model.max_batch,
        pin_batch=1 if pipeline and model.async_jobs != 1 else None,  # one frame per request
        graph_preprocess=model.graph_preprocess,
        graph_hw=(model.input_size[1], model.input_size[0]) if model.input_size else None,
    )


def decode_overrides(model: ModelConfig) -> dict[str, Any]:
    return {
        "score_threshold": model.score_threshold,
        "iou_threshold": model.iou_threshold,
        "max_detections": model.max_detections,
    }


def _input_spec(runner: ModelRunner, path: Path) -> TensorSpec:
    images = [s for s in runner.inputs if s.layout in ("NCHW", "NHWC")]
    if len(runner.inputs) != 1 or len(images) != 1:
        shapes = [(s.name, s.shape) for s in runner.inputs]
        raise ModelError(f"{path}: expected one image input (NCHW or NHWC), got {shapes}")
    return images[0]


def load_model(
    ref: str | ModelPackage,
    runner: str = "auto",
    *,
    options: RunnerOptions | None = None,
    overrides: Mapping[str, Any] | None = None,
    hardware: HardwareInfo | None = None,
    search_dirs: list[Path] | None = None,
    int8: bool | None = None,
    state_dir: Path | None = None,
    autotune: bool = True,
) -> LoadedModel:
    """Resolve, verify, select, load and warm a model, and check that its outputs fit its decoder.

    ``int8``: None lets the selection decide between a format's float file and its int8 twin,
    True or False asks for one (see ``select_runner``).

    ``runner="auto"`` with a ``state_dir`` and ``autotune`` (the daemon, ``models.<name>.autotune``)
    times the candidates and keeps the choice in ``<state_dir>/runner-choice.json`` (see
    ``edge.runners.autotune``); without a ``state_dir`` (``edge infer``, ``edge quantize``) or
    with ``autotune=False`` the vendor heuristics choose, as ``select_runner`` says.

    Every failure is an ``EdgeError`` (``ModelError`` for the model's files) with a one-line
    message naming the file and what was expected, never a library's traceback.
    """
    started = time.perf_counter()
    try:
        package = ref if isinstance(ref, ModelPackage) else resolve_model(ref, search_dirs)
        hw = hardware or probe_hardware(full=False)
        opts = filled_options(package, options)
        if runner == "auto" and opts.graph_hw is not None:
            selection = _resizing_runner(package, hw, int8, opts.graph_hw)
        else:
            selection = select_runner(package, hw, runner, int8)
        if runner == "auto" and autotune and state_dir is not None and opts.graph_hw is None:
            trials = trial_loader(package, opts, overrides)
            child = functools.partial(measure_in_child, package, hw, opts, overrides, int8)
            selection = autotuned_selection(
                package, hw, opts, int8, state_dir, selection, trials, measure_fn=child
            )
        path = package.verified_file(selection.format, selection.int8)
    except EdgeError:
        raise
    except Exception as exc:  # a safety net: the checks above should have said what is wrong
        where = ref.origin if isinstance(ref, ModelPackage) else ref
        raise ModelError(f"{where}: cannot load the model ({type(exc).__name__}: {one_line(exc)})") from exc
    loaded, selection, path = _load_runner(package, hw, runner, int8, selection, path, opts)
    try:
        return _finish_loading(package, selection, path, loaded, opts, overrides, started)
    except BaseException as exc:
        loaded.close()
        if isinstance(exc, EdgeError) or not isinstance(exc, Exception):
            raise
        raise ModelError(f"{path}: cannot load the model ({type(exc).__name__}: {one_line(exc)})") from exc


def _resizing_runner(
    package: ModelPackage, hw: HardwareInfo, int8: bool | None, graph_hw: tuple[int, int]
) -> Selection:
    """``runner: auto`` with ``input_size``: OpenVINO, the runner that resizes a static graph
    (not timed against the others, which would run the square graph)."""
    picked = select_runner(package, hw, "openvino", int8)
    why = f"input_size {graph_hw[1]}x{graph_hw[0]}: OpenVINO runs the graph at that size"
    return replace(picked, reasons=(why, *picked.reasons[1:]))


def _load_runner(
    package: ModelPackage,
    hw: HardwareInfo,
    runner: str,
    int8: bool | None,
    selection: Selection,
    path: Path,
    opts: RunnerOptions,
) -> tuple[ModelRunner, Selection, Path]:
    """Load the selected runner. With ``auto``, a backend whose library is installed but does
    not import (a missing shared library, an ABI mismatch: package metadata said it is there)
    is passed over, and the next one that reads the model is loaded instead."""
    broken: dict[str, str] = {}
    while True:
        try:
            return load_runner(selection.backend, path, replace(opts, warmup=False)), selection, path
        except BackendUnavailable as exc:
            if runner != "auto" or opts.graph_hw is not None:  # input_size: only OpenVINO resizes
                raise
            broken[selection.backend] = one_line(exc)
            selection = select_runner(package, hw, runner, int8, broken)  # raises when none is left
            path = package.verified_file(selection.format, selection.int8)


def filled_options(package: ModelPackage, options: RunnerOptions | None) -> RunnerOptions:
    """``options`` with what the package says filled in: the input size (pins dynamic-size
    engines, TensorRT, to the manifest) and the preprocessing a runner may fold into its graph."""
    opts = options or RunnerOptions()
    if opts.graph_hw is not None:
        opts = replace(opts, input_hw=opts.graph_hw)
    elif opts.input_hw is None and package.input.size:
        opts = replace(opts, input_hw=(package.input.size[1], package.input.size[0]))
    if opts.preprocess is None:
        size = package.input.size or (0, 0)  # a runner that folds preprocessing keeps its own size
        opts = replace(opts, preprocess=package.input_format(*size))
    return opts


def trial_loader(
    package: ModelPackage, options: RunnerOptions, overrides: Mapping[str, Any] | None = None
) -> Callable[[Candidate], LoadedModel]:
    """Loads a candidate as ``load_model`` would, without warm-up (``autotune`` times its runs)
    and without keeping compiled models (a candidate may lose; its loading time stays its own)."""
    opts = replace(options, warmup=False, openvino_cache=None)

    def load(candidate: Candidate) -> LoadedModel:
        started = time.perf_counter()
        path = package.verified_file(candidate.format, candidate.int8)
        selection = Selection(candidate.backend, candidate.format, path, (), candidate.int8)
        runner = load_runner(candidate.backend, path, opts)
        try:
            return _finish_loading(package, selection, path, runner, opts, overrides, started)
        except BaseException:
            runner.close()
            raise

    return load


# The measuring child: not ``python -m``, which would put the working directory first on
# sys.path (a numpy.py there would run in it); ``-c`` puts "" there, which is dropped.
CHILD = (
    "import sys\n"
    "if sys.path and sys.path[0] == '': del sys.path[0]\n"
    "from edge.runners.measure_child import main\n"
    "main()\n"
)


def measure_in_child(
    package: ModelPackage,
    hw: HardwareInfo,
    options: RunnerOptions,
    overrides: Mapping[str, Any] | None,
    int8: bool | None,
    timeout: float = 45.0,
    command: Sequence[str] | None = None,
) -> Choice | None:
    """``autotune.measure`` in a child process (``edge.runners.measure_child``): the
    daemon keeps only the backend it runs in memory (each backend library, once loaded, stays
    resident: 15 to 50 MB), and a backend that crashes while being timed costs the
    measurement, not the daemon. None (the caller falls back to the heuristics) when the child
    fails, dies or takes longer than ``timeout`` (below systemd's WatchdogSec=60: a reload
    measures on the main loop). ``command`` replaces the child's argv (tests)."""
    from edge.runners import measure_child

    try:
        request = measure_child.encode(package, hw, options, overrides, int8)
        done = subprocess.run(
            list(command or (sys.executable, "-c", CHILD)),
            input=request, capture_output=True, timeout=timeout, check=False,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        log.warning("autotune %s: no answer from the measuring process in %.0f s", package.name, timeout)
        return None
    except Exception as exc:  # e.g. something in the package that cannot be pickled
        log.warning("autotune %s: cannot run the measuring process (%s)", package.name, one_line(exc))
        return None
    if done.returncode != 0:
        why = one_line(RuntimeError(done.stderr.decode("utf-8", "replace") or "no message"))
        log.warning(
            "autotune %s: the measuring process failed (exit code %s: %s)", package.name, done.returncode, why
        )
        return None
    return measure_child.decode(done.stdout)


def _finish_loading(
    package: ModelPackage,
    selection: Selection,
    path: Path,
    loaded: ModelRunner,
    opts: RunnerOptions,
    overrides: Mapping[str, Any] | None,
    started: float,
) -> LoadedModel:
    spec = _input_spec(loaded, path)
    hw = spec.image_hw()
    if package.input.size is None and hw is None and opts.graph_hw is None:
        raise ModelError(f"{path}: the input size is dynamic; set input.size in the model's model.yaml")
    if opts.graph_hw is not None:  # input_size: the runner has run its graph at that size
        height, width = opts.graph_hw
    else:
        width, height = package.input.size if package.input.size else (hw[1], hw[0])  # type: ignore[index]
    fmt = package.input_format(width, height)
    if opts.graph_hw is not None:
        fmt = replace(fmt, width=width, height=height)
    if loaded.takes_bgr8:  # colour, normalisation and layout are in the graph
        fmt = replace(fmt, color="bgr", mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0))
    if hw is not None and (hw[1], hw[0]) != (fmt.width, fmt.height):
        raise ModelError(
            f"{path}: the model's input is {hw[1]}x{hw[0]} but the manifest says {fmt.width}x{fmt.height}"
        )
    # Warm up at the size frames will have, and check the decoder against what came out.
    shapes: list[tuple[int | None, ...]] = (
        [o.shape for o in warm_up(loaded, image_hw=(fmt.height, fmt.width))]
        if opts.warmup
        else [o.shape for o in loaded.outputs]
    )
    params = decode_params(package, overrides)
    try:
        decoder = build_decoder(package, (fmt.width, fmt.height), loaded.outputs, params)
    except ModelError as exc:
        if str(path) in str(exc):
            raise
        raise ModelError(f"{path}: {exc}") from None
    check_outputs(package.decoder, decoder.output_rules, shapes, [o.name for o in loaded.outputs], path)
    return LoadedModel(
        package=package,
        runner=loaded,
        selection=selection,
        input_spec=spec,
        input_format=fmt,
        decoder=decoder,
        params=params,
        sha256=package.pinned_sha256(selection.format, selection.int8) or file_sha256(path),
        load_seconds=time.perf_counter() - started,
    )
