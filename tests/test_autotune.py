"""``runner: auto`` by measurement (``edge.runners.autotune``), on real models and backends.

BlazeFace (.tflite) is read by LiteRT and OpenVINO, PP-OCR's detector and the small YOLOv8-shaped
ONNX graph of ``onnx_graphs`` by ONNX Runtime and OpenVINO. Which backend is fastest differs by
machine and load, so tests assert on the table's structure, never on the winner, except where
the timings are injected: a clock that only moves when a wrapped trial runs (by a cost per
backend). Loads are counted through the loader seam; the budget seam keeps the runs few.
"""

from __future__ import annotations

import ast
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np
import pytest
from conftest import require_backend
from onnx_graphs import ultralytics_metadata, yolov8_like_model

from edge.buffer.preprocess import LetterboxPreprocessor
from edge.commands.probe import format_report, probe_report
from edge.config import parse_config
from edge.config.schema import ModelConfig
from edge.daemon.app import Application
from edge.inference import filled_options, load_model, trial_loader
from edge.models import ModelPackage, resolve_model
from edge.runners.autotune import (
    FILENAME,
    Budget,
    Choice,
    Trial,
    autotuned_selection,
    measure,
    relative_error,
    synthetic_frame,
)
from edge.runners.base import RunnerOptions
from edge.runners.select import Candidate, HardwareInfo, probe_hardware, select_runner, usable

META = {k: str(v) for k, v in ultralytics_metadata(["a", "b"], 64).items()}  # as ONNX exports hold it
FEW = Budget(warm_runs=1, runs=2, backend_s=1.0, total_s=30.0)


@pytest.fixture(scope="module")
def hw() -> HardwareInfo:
    return probe_hardware()


@pytest.fixture
def tiny(tmp_path: Path) -> ModelPackage:
    """A real YOLOv8-shaped ONNX detector (64x64), read by ONNX Runtime and OpenVINO."""
    require_backend("openvino")
    path = yolov8_like_model(tmp_path / "tiny.onnx", metadata=META)
    return resolve_model(str(path))


class StepClock:
    """Time moves only when a wrapped trial runs: by its backend's cost."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Wrapped:
    """A real trial whose runs advance the clock and whose outputs may be perturbed."""

    inner: Trial
    clock: StepClock
    cost: float
    shift: float  # added to every output, as a share of the output's range

    def preprocessor(self) -> LetterboxPreprocessor:
        return self.inner.preprocessor()

    def run_tensor(self, tensor: np.ndarray) -> list[np.ndarray]:
        self.clock.now += self.cost
        outs = self.inner.run_tensor(tensor)
        return [o + self.shift * max(float(np.ptp(o)), 1.0) for o in outs]

    def close(self) -> None:
        self.inner.close()


@dataclass
class Loader:
    """The real loader, counting loads, with injected costs and perturbations per backend."""

    real: Callable[[Candidate], Trial]
    clock: StepClock
    costs: dict[str, float]
    shifts: dict[str, float]
    loads: int = 0

    def __call__(self, c: Candidate) -> Trial:
        self.loads += 1
        return Wrapped(
            self.real(c), self.clock, self.costs.get(c.backend, 0.01), self.shifts.get(c.backend, 0.0)
        )


def loader_for(
    package: ModelPackage, costs: dict[str, float] | None = None, shifts: dict[str, float] | None = None
) -> Loader:
    real = trial_loader(package, filled_options(package, None))
    return Loader(real, StepClock(), costs or {}, shifts or {})


def tuned(
    package: ModelPackage, hw: HardwareInfo, state: Path, loader: Loader, **kw: Any
) -> tuple[str, tuple[str, ...]]:
    options = kw.pop("options", filled_options(package, None))
    heuristic = select_runner(package, hw, "auto", kw.get("int8"))
    sel = autotuned_selection(
        package, hw, options, kw.get("int8"), state, heuristic, loader, clock=loader.clock, budget=FEW
    )
    return sel.backend, sel.reasons


# --- the table -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("model", "backends"),
    [
        ("blazeface", {"litert", "openvino"}),
        ("ppocr_det", {"onnxruntime", "openvino"}),
    ],
)
def test_table_has_every_usable_backend(
    model: str, backends: set[str], models_dir: Path, hw: HardwareInfo
) -> None:
    for b in backends:
        require_backend(b)
    package = resolve_model(model, [models_dir])
    choice = measure(package, hw, trial_loader(package, filled_options(package, None)), budget=FEW)
    assert choice is not None
    assert {r.backend for r in choice.rows} == {b for b in backends if usable(b, hw)}
    assert [r.accuracy for r in choice.rows].count("reference") == 1
    assert choice.rows[0].accuracy == "reference"  # the native backend is measured first
    for r in choice.rows:
        assert r.load_ms is not None and r.median_ms is not None and r.runs >= 1
        assert r.accurate, r  # the same float file on two backends agrees
    assert [r.verdict for r in choice.rows].count("chosen") == 1
    chosen = next(r for r in choice.rows if r.verdict == "chosen")
    assert chosen.backend == choice.backend and choice.reason.startswith(f"chose {choice.backend}")


def test_synthetic_frame_is_fixed() -> None:
    a, b = synthetic_frame(), synthetic_frame()
    assert a.shape == (480, 640, 3) and a.dtype == np.uint8
    assert np.array_equal(a, b) and a.std() > 20  # not flat: the models see edges and text


@pytest.mark.parametrize(
    ("ref", "other", "expected"),
    [
        ([np.array([0.0, 10.0])], [np.array([0.0, 10.0])], 0.0),
        ([np.array([0.0, 10.0])], [np.array([1.0, 11.0])], 0.1),  # 1 over a range of 10
        ([np.full(4, 5.0)], [np.full(4, 5.5)], 0.1),  # a constant output: over its magnitude
        ([np.array([0.0, 1.0])], [np.array([0.0, np.nan])], float("inf")),
        ([np.zeros(2)], [np.zeros(3)], None),  # shapes differ
        ([np.zeros(2)], [np.zeros(2), np.zeros(2)], None),  # counts differ
    ],
)
def test_relative_error(ref: list[np.ndarray], other: list[np.ndarray], expected: float | None) -> None:
    got = relative_error(ref, other)
    assert got == expected if expected is None or np.isinf(expected) else got == pytest.approx(expected)


# --- accuracy decides, with injected timings --------------------------------------------------


@pytest.mark.parametrize(
    ("costs", "shifts", "winner", "openvino_verdict"),
    [
        ({"openvino": 0.001, "onnxruntime": 0.01}, {}, "openvino", "chosen"),
        ({"openvino": 0.01, "onnxruntime": 0.001}, {}, "onnxruntime", "accurate"),
        ({"openvino": 0.001, "onnxruntime": 0.01}, {"openvino": 0.005}, "openvino", "chosen"),
        ({"openvino": 0.001, "onnxruntime": 0.01}, {"openvino": 0.5}, "onnxruntime", "refused: inaccurate"),
    ],
    ids=["openvino faster", "ort faster", "within tolerance", "fastest but inaccurate"],
)
def test_fastest_accurate_wins(
    tiny: ModelPackage,
    hw: HardwareInfo,
    costs: dict[str, float],
    shifts: dict[str, float],
    winner: str,
    openvino_verdict: str,
) -> None:
    loader = loader_for(tiny, costs, shifts)
    choice = measure(tiny, hw, loader, clock=loader.clock, budget=FEW)
    assert choice is not None
    rows = {r.backend: r for r in choice.rows}
    assert choice.backend == winner
    assert rows["openvino"].verdict.startswith(openvino_verdict)
    assert rows["onnxruntime"].accuracy == "reference"
    assert rows["openvino"].median_ms == pytest.approx(costs["openvino"] * 1000)


@dataclass
class BusyAtFirst:
    """A trial on a machine that is 3x slower until the clock reaches ``until``."""

    inner: Wrapped
    until: float

    def preprocessor(self) -> LetterboxPreprocessor:
        return self.inner.preprocessor()

    def run_tensor(self, tensor: np.ndarray) -> list[np.ndarray]:
        if self.inner.clock.now < self.until:
            self.inner.clock.now += 2 * self.inner.cost
        return self.inner.run_tensor(tensor)

    def close(self) -> None:
        self.inner.close()


def test_a_machine_busy_while_one_backend_is_timed_does_not_decide(tiny: ModelPackage, hw: HardwareInfo) -> None:
    """ONNX Runtime (10 ms, truly faster) is loaded and timed first while the machine is busy
    (30 ms); OpenVINO (15 ms) after, on a quiet machine. Timed in one block each, OpenVINO
    would win; the second, interleaved pass times ONNX Runtime again, and its better pass counts."""
    loader = loader_for(tiny, {"onnxruntime": 0.010, "openvino": 0.015})

    def load(c: Candidate) -> Trial:
        inner = loader(c)
        assert isinstance(inner, Wrapped)
        return BusyAtFirst(inner, until=0.06)  # ORT's warm-up run and its first timed run

    choice = measure(tiny, hw, load, clock=loader.clock, budget=FEW)
    assert choice is not None and choice.backend == "onnxruntime"
    rows = {r.backend: r for r in choice.rows}
    assert rows["onnxruntime"].median_ms == pytest.approx(10.0) and rows["onnxruntime"].runs == 2
    assert rows["openvino"].median_ms == pytest.approx(15.0) and rows["openvino"].runs == 2


def test_a_failing_candidate_is_a_row_not_an_error(tiny: ModelPackage, hw: HardwareInfo) -> None:
    loader = loader_for(tiny)

    def load(c: Candidate) -> Trial:
        if c.backend == "openvino":
            raise RuntimeError("device lost\nwhile compiling")
        return loader(c)

    choice = measure(tiny, hw, load, clock=loader.clock, budget=FEW)
    assert choice is not None and choice.backend == "onnxruntime"
    failed = next(r for r in choice.rows if r.backend == "openvino")
    assert failed.verdict == "failed: while compiling" and failed.median_ms is None


# --- int8 twins: their own candidates, judged by the gate's report ---------------------------


def with_twin(package: ModelPackage, report: dict[str, Any]) -> ModelPackage:
    """``package`` with its float file declared as its own int8 twin (no quantising needed to
    test the selection), with ``report`` as the gate's."""
    fmt = next(iter(package.files))
    return replace(
        package,
        int8_files=MappingProxyType({fmt: package.files[fmt]}),
        int8_sha256=MappingProxyType({fmt: None}),
        quantization=MappingProxyType({fmt: MappingProxyType(report)}),
    )


PASSED = {"agreement": 0.991, "bar": 0.98, "passed": True}
FAILED = {"agreement": 0.9, "bar": 0.98, "passed": False}


@pytest.mark.parametrize(
    ("report", "int8", "expected"),
    [
        (PASSED, None, {(b, q) for b in ("onnxruntime", "openvino") for q in (False, True)}),
        (FAILED, None, {("onnxruntime", False), ("openvino", False)}),  # the verdict keeps it out
        (PASSED, False, {("onnxruntime", False), ("openvino", False)}),
        (PASSED, True, {("onnxruntime", True), ("openvino", True)}),
        (FAILED, True, {("onnxruntime", True), ("openvino", True)}),  # asked for: run, as asked
    ],
)
def test_int8_twins_are_candidates_where_allowed(
    tiny: ModelPackage, hw: HardwareInfo, report: dict[str, Any], int8: bool | None, expected: set[Any]
) -> None:
    package = with_twin(tiny, report)
    loader = loader_for(package)
    choice = measure(package, hw, loader, int8, clock=loader.clock, budget=FEW)
    assert choice is not None
    assert {(r.backend, r.int8) for r in choice.rows} == expected
    for r in choice.rows:
        if r.int8:
            assert (
                r.accuracy.startswith(f"gate agreement {report['agreement']:.3f}")
                and "real frames" in r.accuracy
            )
            assert r.error == report["agreement"] and r.accurate


# --- the cache ---------------------------------------------------------------------------------


def test_a_failed_measurement_is_kept_and_not_repeated(
    tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path
) -> None:
    """A child that crashed (or found nothing) leaves the heuristics, kept under the key: the
    next start does not pay for it again."""
    calls: list[int] = []

    def failing() -> Choice | None:
        calls.append(1)
        return None

    options = filled_options(tiny, None)
    heuristic = select_runner(tiny, hw, "auto")
    for _ in range(2):
        sel = autotuned_selection(
            tiny, hw, options, None, tmp_path, heuristic, loader_for(tiny), measure_fn=failing
        )
        assert sel.backend == heuristic.backend
    assert calls == [1]
    (entry,) = json.loads((tmp_path / FILENAME).read_text())["choices"].values()
    assert entry["reason"].startswith("no candidate could be measured")


def test_one_candidate_is_not_measured(models_dir: Path, hw: HardwareInfo, tmp_path: Path) -> None:
    """Only one backend reads the model here: nothing to compare, no child, no cache."""
    package = resolve_model("blazeface", [models_dir])
    only = replace(hw, backends={**hw.backends, "openvino": None})
    calls: list[int] = []
    sel = autotuned_selection(
        package, only, filled_options(package, None), None, tmp_path, select_runner(package, only),
        loader_for(package), measure_fn=lambda: calls.append(1) or None,
    )  # fmt: skip
    assert calls == [] and not (tmp_path / FILENAME).exists()
    assert sel.reasons[-1].startswith("autotune: one candidate at most here")


def test_a_cached_choice_measures_nothing(tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path) -> None:
    loader = loader_for(tiny)
    first, reasons = tuned(tiny, hw, tmp_path, loader)
    measured = loader.loads
    assert measured == 2 and reasons[0].endswith("measured")
    again, reasons = tuned(tiny, hw, tmp_path, loader)
    assert loader.loads == measured and again == first
    assert reasons[0].endswith("(cached)") and reasons[-1].startswith(f"chose {first}")
    doc = json.loads((tmp_path / FILENAME).read_text())
    (entry,) = doc["choices"].values()
    assert entry["facts"]["cpu"] == hw.cpu_model and entry["facts"]["model"] == "tiny"


KEY_CHANGES: list[
    tuple[str, Callable[[HardwareInfo], HardwareInfo], Callable[[RunnerOptions], RunnerOptions]]
] = [
    ("backend version", lambda h: replace(h, backends={**h.backends, "openvino": "0.0-other"}), lambda o: o),
    ("cpu model", lambda h: replace(h, cpu_model="Another CPU"), lambda o: o),
    ("threads", lambda h: h, lambda o: replace(o, threads=1)),
    ("precision", lambda h: h, lambda o: replace(o, precision="f16")),
    ("device", lambda h: h, lambda o: replace(o, device="AUTO")),
    ("performance hint", lambda h: h, lambda o: replace(o, performance_hint="throughput")),
    ("graph preprocess", lambda h: h, lambda o: replace(o, graph_preprocess=False)),
]


@pytest.mark.parametrize(("what", "hw_change", "opt_change"), KEY_CHANGES, ids=[k[0] for k in KEY_CHANGES])
def test_a_changed_key_measures_again(
    tiny: ModelPackage,
    hw: HardwareInfo,
    tmp_path: Path,
    what: str,
    hw_change: Callable[[HardwareInfo], HardwareInfo],
    opt_change: Callable[[RunnerOptions], RunnerOptions],
) -> None:
    loader = loader_for(tiny)
    options = filled_options(tiny, None)
    tuned(tiny, hw, tmp_path, loader, options=options)
    tuned(tiny, hw_change(hw), tmp_path, loader, options=opt_change(options))
    assert loader.loads == 4, what
    assert len(json.loads((tmp_path / FILENAME).read_text())["choices"]) == 2  # both kept


def test_a_changed_model_file_measures_again(tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path) -> None:
    loader = loader_for(tiny)
    tuned(tiny, hw, tmp_path, loader)
    yolov8_like_model(tiny.files["onnx"], seed=1, metadata=META)
    tuned(tiny, hw, tmp_path, loader)
    assert loader.loads == 4


def test_a_cached_backend_no_longer_usable_is_ignored(
    tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path
) -> None:
    loader = loader_for(tiny)
    tuned(tiny, hw, tmp_path, loader)
    path = tmp_path / FILENAME
    doc = json.loads(path.read_text())
    for entry in doc["choices"].values():
        entry["backend"] = "tensorrt"  # not installed here
    path.write_text(json.dumps(doc))
    backend, _ = tuned(tiny, hw, tmp_path, loader)
    assert loader.loads == 4 and backend in ("onnxruntime", "openvino")


@pytest.mark.parametrize(
    "content",
    [b"{not json", b"[]", b'{"schema": 99, "choices": {}}', b'{"schema": 1, "choices": []}', b"\xff\xfe\x00"],
    ids=["not json", "a list", "another schema", "choices not a map", "not utf-8"],
)
def test_a_corrupt_cache_is_kept_as_evidence_and_measured_again(
    tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / FILENAME).write_bytes(content)
    (tmp_path / f"{FILENAME}.corrupt").write_bytes(b"an older one")
    loader = loader_for(tiny)
    with caplog.at_level(logging.WARNING, logger="edge.autotune"):
        tuned(tiny, hw, tmp_path, loader)
    assert loader.loads == 2
    assert (tmp_path / f"{FILENAME}.corrupt.1").read_bytes() == content
    assert (tmp_path / f"{FILENAME}.corrupt").read_bytes() == b"an older one"
    assert json.loads((tmp_path / FILENAME).read_text())["schema"] == 1
    (warning,) = [r.getMessage() for r in caplog.records]
    assert str(tmp_path / FILENAME) in warning and f"kept as {FILENAME}.corrupt.1" in warning


def test_a_jetson_keeps_the_heuristics(tiny: ModelPackage, hw: HardwareInfo, tmp_path: Path) -> None:
    loader = loader_for(tiny)
    backend, reasons = tuned(tiny, replace(hw, is_jetson=True), tmp_path, loader)
    assert loader.loads == 0 and "vendor heuristics" in reasons[-1]
    assert backend == select_runner(tiny, replace(hw, is_jetson=True)).backend


# --- load_model, the config, the daemon's wiring ------------------------------------------------


def test_load_model_measures_once_then_takes_the_cached_choice(
    models_dir: Path, hw: HardwareInfo, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    require_backend("litert")
    require_backend("openvino")
    with caplog.at_level(logging.INFO, logger="edge.autotune"):
        first = load_model("blazeface", hardware=hw, search_dirs=[models_dir], state_dir=tmp_path)
        first.close()
        second = load_model("blazeface", hardware=hw, search_dirs=[models_dir], state_dir=tmp_path)
        second.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert (
        lines[0].startswith("autotune blazeface: measured in")
        and "litert" in lines[0]
        and "openvino" in lines[0]
    )
    assert lines[1].startswith(f"autotune blazeface: cached choice {first.selection.backend}")
    assert second.selection.backend == first.selection.backend
    assert any(r.startswith("  litert tflite") for r in first.selection.reasons)


@pytest.mark.parametrize(
    ("runner", "autotune", "state"),
    [("auto", False, True), ("auto", True, False), ("litert", True, True)],
    ids=["autotune false", "no state dir", "a named runner"],
)
def test_heuristics_when_not_measuring(
    models_dir: Path, hw: HardwareInfo, tmp_path: Path, runner: str, autotune: bool, state: bool
) -> None:
    model = load_model(
        "blazeface", runner, hardware=hw, search_dirs=[models_dir],
        state_dir=tmp_path if state else None, autotune=autotune,
    )  # fmt: skip
    model.close()
    assert model.selection == select_runner(model.package, hw, runner)
    assert not (tmp_path / FILENAME).exists()


@pytest.mark.parametrize(
    ("setting", "measured"), [("", True), ("autotune: true, ", True), ("autotune: false, ", False)]
)
def test_the_daemon_measures_in_its_state_dir(
    models_dir: Path, demo_clip: Path, tmp_path: Path, setting: str, measured: bool
) -> None:
    require_backend("litert")
    text = f"""
state_dir: {tmp_path}
models: {{m: {{{setting}path: blazeface}}}}
cameras: {{c: {{source: {{type: file, path: "{demo_clip}"}}, model: m}}}}
mqtt: {{enabled: false}}
"""
    app = Application(parse_config(text, "x.yaml"))
    model = app._load_model(app.loaded.config, "m")
    model.close()
    assert (tmp_path / FILENAME).exists() == measured
    assert model.selection.reasons[0].startswith("autotune: ") == measured


def test_measuring_happens_in_a_child_process(models_dir: Path, tmp_path: Path) -> None:
    """The daemon process imports only the backend it runs: the others were timed in a child."""
    import subprocess
    import sys

    require_backend("litert")
    require_backend("openvino")
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from edge.inference import load_model\n"
        f"m = load_model('blazeface', search_dirs=[Path({str(models_dir)!r})], state_dir=Path({str(tmp_path)!r}))\n"
        "loaded = {'litert': 'ai_edge_litert', 'openvino': 'openvino'}\n"
        "print(m.selection.backend, sorted(b for b, mod in loaded.items() if mod in sys.modules))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=True
    )
    backend, imported = out.stdout.strip().split(" ", 1)
    allowed = {backend}
    if any(Path("/dev/dri").glob("renderD*")) or any(Path("/dev/accel").glob("accel*")):
        allowed.add("openvino")  # asked for its devices: an Intel GPU/NPU would change the choice
    names = ast.literal_eval(imported)
    assert backend in names and set(names) <= allowed
    assert (tmp_path / FILENAME).exists()


CRASH = ("-c", "import os; os.abort()")


@pytest.mark.parametrize(
    ("break_it", "warning"),
    [
        ("timeout", "no answer from the measuring process in 0 s"),
        ("crash", "the measuring process failed (exit code -6"),
        ("missing file", None),  # the child measures nothing and says so: None, no crash
    ],
)
def test_a_failed_child_leaves_the_heuristics(
    models_dir: Path,
    hw: HardwareInfo,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    break_it: str,
    warning: str | None,
) -> None:
    import shutil
    import sys

    from edge.inference import measure_in_child

    pkg_dir = tmp_path / "pkg"
    shutil.copytree(models_dir / "blazeface", pkg_dir)
    package = resolve_model(str(pkg_dir))
    options = filled_options(package, None)
    timeout, command = 120.0, None
    if break_it == "timeout":
        timeout = 0.001
    elif break_it == "crash":
        command = (sys.executable, *CRASH)
    else:
        (pkg_dir / "face_detection_short_range.tflite").unlink()
    with caplog.at_level(logging.WARNING, logger="edge.autotune"):
        assert measure_in_child(package, hw, options, None, None, timeout=timeout, command=command) is None
    said = [r.getMessage() for r in caplog.records]
    if warning is None:
        assert said == []
    else:
        assert any(m.startswith(f"autotune blazeface: {warning}") for m in said), said


def test_model_config_autotune() -> None:
    assert ModelConfig(path="m").autotune is True
    assert ModelConfig.model_validate({"path": "m", "autotune": False}).autotune is False
    assert "heuristics" in (ModelConfig.model_fields["autotune"].description or "")


# --- edge probe ---------------------------------------------------------------------------------


def test_probe_prints_the_table_and_the_reason(models_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    require_backend("litert")
    monkeypatch.chdir(models_dir.parent)
    report = probe_report("blazeface")
    tuned_ = report["model"]["autotune"]
    assert {r["backend"] for r in tuned_["rows"]} >= {"litert"}
    assert tuned_["runner"] in {r["backend"] for r in tuned_["rows"]} and tuned_["reason"].startswith(
        "chose "
    )
    json.dumps(report)  # --json prints it
    text = format_report(report)
    assert f"  runner: {report['model']['runner']}  file:" in text  # the existing lines stay
    head = next(line for line in text.splitlines() if line.strip().startswith("backend "))
    assert head.split() == ["backend", "file", "int8", "load", "ms", "median", "ms", "accuracy", "verdict"]
    assert f"autotune choice: {tuned_['runner']}: chose {tuned_['runner']}" in text
    assert "autotune" not in probe_report("blazeface", measure_runners=False)["model"]
    assert "autotune" not in probe_report("blazeface", "litert")["model"]


def test_choice_summary_is_the_table() -> None:
    choice = Choice("litert", "tflite", False, "f.tflite", "chose litert because", (), cached=True)
    assert choice.summary() == ("autotune: 0 candidate(s) (cached)", "chose litert because")
