"""Hardware probe and runner selection.

No Jetson or Raspberry Pi is attached to these machines: the board tests point the probe at a
fake root filesystem holding the files those boards have (/etc/nv_tegra_release,
/proc/device-tree/model), and the selection table uses HardwareInfo values directly. The
probe of this machine itself is real.
"""

from __future__ import annotations

import json
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest

from edge.errors import BackendUnavailable
from edge.models import ModelPackage, read_manifest
from edge.runners.select import HardwareInfo, probe_hardware, select_runner

ALL = {"onnxruntime": "1", "openvino": "1", "litert": "1", "tensorrt": None}
X86_AMD = HardwareInfo("x86_64", "AuthenticAMD", "EPYC", ("avx2",), None, False, False, ALL, {"CPU": "EPYC"})
X86_INTEL = replace(X86_AMD, cpu_vendor="GenuineIntel")
PI = HardwareInfo("aarch64", "ARM", "Cortex-A72", ("asimd",), "Raspberry Pi 4 Model B", False, True, ALL)
JETSON = HardwareInfo("aarch64", "NVIDIA", "Carmel", ("asimd",), "NVIDIA Jetson", True, False,
                      {**ALL, "tensorrt": "10.3"})


def package(tmp_path: Path, formats: list[str]) -> ModelPackage:
    files = "".join(f"  {f}:\n    path: m.{ {'openvino': 'xml'}.get(f, f) }\n" for f in formats)
    (tmp_path / "model.yaml").write_text(f"name: m\ntask: detect\ndecoder: yolov8\nlabels: [a]\nfiles:\n{files}")
    return read_manifest(tmp_path / "model.yaml")


@pytest.mark.parametrize(
    ("hw", "formats", "requested", "expected"),
    [
        (X86_AMD, ["onnx"], "auto", ("onnxruntime", "onnx")),
        (X86_AMD, ["tflite"], "auto", ("litert", "tflite")),
        (X86_INTEL, ["onnx"], "auto", ("openvino", "onnx")),
        (X86_INTEL, ["onnx", "openvino"], "auto", ("openvino", "openvino")),
        (replace(X86_INTEL, backends={**ALL, "openvino": None}), ["onnx"], "auto", ("onnxruntime", "onnx")),
        (PI, ["onnx", "tflite"], "auto", ("litert", "tflite")),
        (PI, ["onnx"], "auto", ("onnxruntime", "onnx")),
        (JETSON, ["onnx"], "auto", ("tensorrt", "onnx")),
        (replace(JETSON, backends={**ALL, "tensorrt": None}), ["onnx"], "auto", ("onnxruntime", "onnx")),
        (X86_AMD, ["onnx", "tflite"], "openvino", ("openvino", "onnx")),
        (X86_AMD, ["tflite"], "onnxruntime", BackendUnavailable),
        (replace(X86_AMD, backends={k: None for k in ALL}), ["onnx"], "auto", BackendUnavailable),
    ],
)
def test_selection_table(hw: HardwareInfo, formats: list[str], requested: str, expected: object, tmp_path: Path) -> None:
    pkg = package(tmp_path, formats)
    if expected is BackendUnavailable:
        with pytest.raises(BackendUnavailable):
            select_runner(pkg, hw, requested)
        return
    sel = select_runner(pkg, hw, requested)
    assert (sel.backend, sel.format) == expected
    assert sel.reasons and sel.reasons[-1].startswith(("chose", "runner"))


def test_jetson_reason_mentions_tensorrt(tmp_path: Path) -> None:
    sel = select_runner(package(tmp_path, ["onnx"]), JETSON)
    assert any("Jetson" in r for r in sel.reasons)
    assert any("unverified on hardware" in r for r in sel.reasons)
    assert sel.backend == "tensorrt" and sel.reasons[-1] == "chose tensorrt with the onnx file m.onnx"


@pytest.mark.parametrize(
    ("files", "board", "jetson", "pi"),
    [
        ({"etc/nv_tegra_release": "# R35 (release), REVISION: 4.1\n", "proc/device-tree/model": "NVIDIA Orin Nano\x00"},
         "NVIDIA Orin Nano", True, False),
        ({"proc/device-tree/model": "Raspberry Pi 5 Model B Rev 1.0\x00"}, "Raspberry Pi 5 Model B Rev 1.0", False, True),
        ({"proc/device-tree/compatible": "nvidia,p3509-0000+p3668-0001\x00nvidia,tegra194\x00"}, "NVIDIA Jetson", True, False),
        ({}, None, False, False),
    ],
)
def test_board_detection_on_a_fake_root(files: dict[str, str], board: str | None, jetson: bool, pi: bool, tmp_path: Path) -> None:
    for rel, text in files.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    hw = probe_hardware(tmp_path)
    assert (hw.board, hw.is_jetson, hw.is_raspberry_pi) == (board, jetson, pi)


def test_probe_cli_json_on_this_machine(models_dir: Path) -> None:
    out = subprocess.run(["edge", "probe", "--json", "--model", "blazeface"], capture_output=True, text=True, check=True)
    report = json.loads(out.stdout)
    assert report["hardware"]["backends"]["onnxruntime"]
    assert report["model"]["runner"] in ("litert", "openvino")
    assert report["model"]["file"].endswith("face_detection_short_range.tflite")


def test_an_installed_backend_that_cannot_be_imported_is_passed_over(
    models_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Package metadata says LiteRT is there, but its library does not import (a broken
    install: ``sys.modules`` holding None makes the import raise ImportError, as a missing
    shared library would): ``runner: auto`` says so and loads the next backend that reads the
    model."""
    import sys

    from conftest import require_backend

    from edge.inference import load_model

    require_backend("openvino")
    for name in ("ai_edge_litert", "ai_edge_litert.interpreter", "tflite_runtime",
                 "tflite_runtime.interpreter", "tensorflow"):  # fmt: skip
        monkeypatch.setitem(sys.modules, name, None)
    model = load_model("blazeface", hardware=X86_AMD, search_dirs=[models_dir])
    model.close()
    assert model.selection.backend == "openvino"
    assert any(r.startswith("litert: installed, but it cannot be loaded (runner 'litert' needs")
               for r in model.selection.reasons), model.selection.reasons  # fmt: skip
