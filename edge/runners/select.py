"""Hardware probe and runner selection (``runner: auto``).

Order: Jetson -> TensorRT; Intel CPU/GPU/NPU with OpenVINO installed -> OpenVINO; Arm ->
LiteRT when the package has a .tflite, else ONNX Runtime; otherwise ONNX Runtime. When the
preferred backend cannot read any file the package has, the backend native to an available
file is used. A format with an int8 twin (``edge quantize``) runs the twin unless the gate's
report measured it slower than float on this very CPU, or the caller asks for float. Every step
is recorded as a reason so ``edge probe`` can say why.

These are the vendor heuristics. The daemon measures instead (``edge.runners.autotune``, on
by default: ``models.<name>.autotune``), timing the ``candidates`` listed here; the heuristics
remain for ``autotune: false``, for commands without a state directory, and as the fallback.
"""

from __future__ import annotations

import importlib.util
import os
import platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from edge.errors import BackendUnavailable
from edge.models import ModelPackage
from edge.runners.base import BACKENDS, backend_version

# Which file formats each backend reads, best first.
READS: dict[str, tuple[str, ...]] = {
    "onnxruntime": ("onnx",),
    "openvino": ("openvino", "onnx", "tflite"),
    "litert": ("tflite",),
    "tensorrt": ("engine", "onnx"),
}
NATIVE: dict[str, str] = {
    "onnx": "onnxruntime",
    "tflite": "litert",
    "openvino": "openvino",
    "engine": "tensorrt",
}
TENSORRT_UNVERIFIED = "unverified on hardware: run tools/jetson_check.sh and share its report"
CPU_FLAGS_OF_INTEREST = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "avx512_vnni", "asimd", "neon")


@dataclass(frozen=True)
class HardwareInfo:
    arch: str
    cpu_vendor: str
    cpu_model: str
    cpu_flags: tuple[str, ...]
    board: str | None
    is_jetson: bool
    is_raspberry_pi: bool
    backends: dict[str, str | None] = field(default_factory=dict)
    openvino_devices: dict[str, str] = field(default_factory=dict)
    ort_providers: tuple[str, ...] = ()

    @property
    def is_arm(self) -> bool:
        return self.arch.startswith(("arm", "aarch64"))

    @property
    def is_intel(self) -> bool:
        return self.cpu_vendor == "GenuineIntel"


@dataclass(frozen=True)
class Candidate:
    """A backend and the file it would run (``runner: auto`` with measurement times each)."""

    backend: str
    format: str
    path: Path
    int8: bool = False


@dataclass(frozen=True)
class Selection:
    backend: str
    format: str
    path: Path
    reasons: tuple[str, ...]
    int8: bool = False


def _read(path: Path) -> str:
    try:
        return path.read_bytes().replace(b"\x00", b"").decode("utf-8", "replace").strip()
    except OSError:
        return ""


def _cpuinfo(root: Path) -> tuple[str, str, tuple[str, ...]]:
    vendor = model = ""
    flags: set[str] = set()
    for line in _read(root / "proc/cpuinfo").splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip().lower(), value.strip()
        if key == "vendor_id" and not vendor:
            vendor = value
        elif key in ("model name", "hardware", "cpu model") and not model:
            model = value
        elif key in ("flags", "features"):
            flags.update(value.split())
        elif key == "cpu implementer" and not vendor:
            vendor = {"0x41": "ARM", "0x4e": "NVIDIA", "0x61": "Apple"}.get(value, f"arm-implementer-{value}")
    return vendor, model, tuple(f for f in CPU_FLAGS_OF_INTEREST if f in flags)


def _board(root: Path) -> tuple[str | None, bool, bool]:
    model = _read(root / "proc/device-tree/model")
    compatible = _read(root / "proc/device-tree/compatible").lower()
    tegra = _read(root / "etc/nv_tegra_release")
    if tegra or "tegra" in compatible or "nvidia,jetson" in compatible:
        return (model or tegra.splitlines()[0] if tegra else model) or "NVIDIA Jetson", True, False
    if model.startswith("Raspberry Pi"):
        return model, False, True
    if not model:
        dmi = _read(root / "sys/class/dmi/id/product_name")
        return dmi or None, False, False
    return model, False, False


def _openvino_devices() -> dict[str, str]:
    try:
        import openvino as ov
    except ImportError:
        return {}
    core = ov.Core()
    out = {}
    for dev in core.available_devices:
        try:
            out[dev] = str(core.get_property(dev, "FULL_DEVICE_NAME"))
        except Exception:
            out[dev] = dev
    return out


def _ort_providers() -> tuple[str, ...]:
    try:
        import onnxruntime as ort
    except ImportError:
        return ()
    return tuple(ort.get_available_providers())


def usable_cores() -> int:
    """CPUs this process may run on (its affinity mask: a container's or systemd's CPU set)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _may_have_accelerator(root: Path) -> bool:
    """A GPU or NPU node OpenVINO could use: ``/dev/dri/renderD*`` or ``/dev/accel/accel*``."""
    return any((root / "dev/dri").glob("renderD*")) or any((root / "dev/accel").glob("accel*"))


def probe_hardware(root: Path = Path("/"), full: bool = True) -> HardwareInfo:
    """Read CPU, board and installed backends. ``root`` lets tests point at a fake filesystem.

    ``full=False`` (the daemon) imports no backend library it does not need: OpenVINO's
    devices are asked for only when the CPU is not Intel's and a GPU/NPU node exists (on an
    Intel CPU OpenVINO goes first anyway; elsewhere only an accelerator changes the choice),
    and ONNX Runtime's providers are left out (only ``edge probe`` shows them)."""
    vendor, model, flags = _cpuinfo(root)
    board, jetson, pi = _board(root)
    ask_devices = full or (vendor != "GenuineIntel" and _may_have_accelerator(root))
    return HardwareInfo(
        arch=platform.machine(),
        cpu_vendor=vendor or "unknown",
        cpu_model=model or platform.processor() or "unknown",
        cpu_flags=flags,
        board=board,
        is_jetson=jetson,
        is_raspberry_pi=pi,
        backends={name: backend_version(name) for name in BACKENDS},
        openvino_devices=_openvino_devices() if ask_devices else {},
        ort_providers=_ort_providers() if full else (),
    )


def _runner_built(backend: str) -> bool:
    return importlib.util.find_spec(BACKENDS[backend].module) is not None


def usable(backend: str, hw: HardwareInfo) -> bool:
    return hw.backends.get(backend) is not None and _runner_built(backend)


def int8_verdict(
    package: ModelPackage, fmt: str, hw: HardwareInfo, int8: bool | None = None
) -> tuple[bool, str]:
    """Whether the int8 twin of ``fmt`` should run here, and why. ``int8`` True or False
    decides; otherwise a twin that failed its gate (written with ``--force``) is not run, and a
    twin measured slower than float on this very CPU model is not run either (the report's speed
    from another CPU cannot veto it)."""
    name = package.int8_files[fmt].name
    if int8 is not None:
        return int8, f"{'int8' if int8 else 'float'} asked for (models.<name>.int8: {str(int8).lower()})"
    report = package.quantization.get(fmt, {})
    agreement = report.get("agreement")
    agreed = (
        f"agreement {agreement:.3f} with float" if isinstance(agreement, int | float) else "no gate report"
    )
    if report.get("passed") is False:
        return False, (
            f"int8 {name} failed its gate ({agreed}, bar {report.get('bar')}; written with --force): "
            "float kept; models.<name>.int8: true runs it"
        )
    speedup = report.get("speedup")
    cpu = report.get("cpu")
    if isinstance(speedup, int | float) and cpu == hw.cpu_model:
        if speedup < 1.0:
            return False, f"int8 {name} measured {speedup:.2f}x float's speed on this CPU ({cpu}): float kept"
        return True, f"int8 {name} ({agreed}; {speedup:.2f}x float's speed on this CPU)"
    where = f"measured on {cpu}" if cpu else "speed not measured"
    return True, f"int8 {name} ({agreed}; {where})"


def _pick_file(
    package: ModelPackage, backend: str, twins: Mapping[str, bool]
) -> tuple[str, bool, Path] | None:
    """The file ``backend`` runs: a twin in ``twins`` that may run (first in the backend's
    reading order), else a float file; None when it reads none of them."""
    for fmt in READS[backend]:
        if twins.get(fmt):
            return fmt, True, package.int8_files[fmt]
    for fmt in READS[backend]:
        if fmt in package.files:
            return fmt, False, package.files[fmt]
    return None


def candidates(package: ModelPackage, hw: HardwareInfo, int8: bool | None = None) -> list[Candidate]:
    """Every usable backend with the file ``_pick_file`` gives it: its float file, and as a
    candidate of its own the int8 twin where ``int8_verdict`` lets the twin run. ``int8`` True
    keeps only twins (when a usable backend reads one), False only float files. TensorRT is
    left out: building its engine takes minutes, so ``runner: tensorrt`` (or the heuristics on
    a Jetson) choose it."""
    twins = {fmt: int8_verdict(package, fmt, hw, int8)[0] for fmt in package.int8_files}
    found: list[Candidate] = []
    for backend in BACKENDS:
        if backend == "tensorrt" or not usable(backend, hw):
            continue
        for allowed in ({}, twins):
            picked = _pick_file(package, backend, allowed)
            if picked is not None and picked[1] == bool(allowed):
                found.append(Candidate(backend, picked[0], picked[2], picked[1]))
    if int8 and any(c.int8 for c in found):
        found = [c for c in found if c.int8]
    return list(dict.fromkeys(found))


def _hardware_order(package: ModelPackage, hw: HardwareInfo, reasons: list[str]) -> list[str]:
    """Backends in the order the hardware suggests, then the ones native to the package's
    formats, then the rest; appends why."""
    preferred: list[str] = []
    if hw.is_jetson:
        reasons.append(f"Jetson board ({hw.board}): TensorRT first ({TENSORRT_UNVERIFIED})")
        preferred.append("tensorrt")
    accel = [d for d in hw.openvino_devices if d.split(".")[0] in ("GPU", "NPU")]
    if hw.is_intel or accel:
        why = "Intel CPU" if hw.is_intel else f"OpenVINO devices {accel}"
        reasons.append(f"{why}: OpenVINO first")
        preferred.append("openvino")
    if hw.is_arm:
        reasons.append(f"Arm CPU ({hw.arch}): LiteRT for .tflite, else ONNX Runtime")
        preferred.append("litert")
    preferred.append("onnxruntime")
    for fmt in package.formats():
        native = NATIVE[fmt]
        if native not in preferred:
            preferred.append(native)
    for backend in ("openvino", "litert", "tensorrt"):
        if backend not in preferred:
            preferred.append(backend)
    return preferred


def select_runner(
    package: ModelPackage,
    hw: HardwareInfo,
    requested: str = "auto",
    int8: bool | None = None,
    broken: Mapping[str, str] | None = None,
) -> Selection:
    """Choose backend and file for ``package`` on this hardware; raises when nothing fits.

    ``int8``: None lets the gate's report decide (see ``int8_verdict``), True asks for an int8
    twin where there is one, False for a float file. With ``auto``, a backend that reads a twin
    which may run goes before the others (the point of quantising is to run the twin).
    ``broken``: backends that failed to load here (their library is installed but does not
    import), with why; ``auto`` passes them over (``load_model`` retries with them)."""
    broken = broken or {}
    have = ", ".join(package.formats())
    verdicts = {fmt: int8_verdict(package, fmt, hw, int8) for fmt in package.int8_files}
    twins = {fmt: use for fmt, (use, _) in verdicts.items()}
    notes = [why for _, why in verdicts.values()]
    if int8 and not package.int8_files:
        notes.append("no int8 twin in the package (edge quantize makes one): float")
    if requested != "auto":
        if requested not in READS:
            raise BackendUnavailable(
                f"unknown runner {requested!r}; choose auto or one of {', '.join(READS)}"
            )
        picked = _pick_file(package, requested, twins)
        if picked is None:
            raise BackendUnavailable(
                f"runner {requested!r} reads {', '.join(READS[requested])} "
                f"but model {package.name!r} has only {have}"
                + ("" if not package.int8_files else " (int8 twins only run when allowed)")
            )
        fmt, quantized, path = picked
        asked = (f"runner {requested!r} requested in the config", *notes)
        return Selection(requested, fmt, path, asked, quantized)

    reasons: list[str] = []
    preferred = _hardware_order(package, hw, reasons)
    runnable = [fmt for fmt, use in twins.items() if use]
    if runnable:
        first = [b for b in preferred if any(f in READS[b] for f in runnable)]
        preferred = first + [b for b in preferred if b not in first]
        reasons.append(f"int8 twin(s) of {', '.join(runnable)}: backends that read them first")
    reasons.extend(notes)

    for backend in preferred:
        picked = _pick_file(package, backend, twins)
        if picked is None:
            reasons.append(f"{backend}: model has no {' or '.join(READS[backend])} file (has {have})")
            continue
        if hw.backends.get(backend) is None:
            extra = BACKENDS[backend].extra
            reasons.append(f"{backend}: not installed (pip install 'edge-runtime[{extra}]')")
            continue
        if not _runner_built(backend):
            reasons.append(f"{backend}: installed, but this version of edge has no runner for it yet")
            continue
        if backend in broken:
            reasons.append(f"{backend}: installed, but it cannot be loaded ({broken[backend]})")
            continue
        fmt, quantized, path = picked
        reasons.append(f"chose {backend} with the {'int8 ' if quantized else ''}{fmt} file {path.name}")
        return Selection(backend, fmt, path, tuple(reasons), quantized)
    raise BackendUnavailable(
        f"no installed runner can read model {package.name!r} ({have}): " + "; ".join(reasons)
    )
