"""``edge.config.preflight``: what ``edge run`` would fail on is found by ``edge check-config``,
as one ``file:line: dotted.path: message`` line each, never a traceback. Real files, real
certificates (openssl), real model files; broken ones are made in a temporary folder."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml

from edge.cli import main
from edge.config import load_config
from edge.config.preflight import preflight
from edge.errors import ConfigError

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def place(tmp_path_factory: pytest.TempPathFactory, models_dir: Path) -> dict[str, Path]:
    """Real things the configs point at: a clip, certificates, broken model packages."""
    d = tmp_path_factory.mktemp("preflight")
    clip = d / "clip.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter_fourcc(*"mp4v"), 5, (64, 48))
    for i in range(5):
        writer.write(np.full((48, 64, 3), i * 40, np.uint8))
    writer.release()
    (d / "empty.mp4").write_bytes(b"")
    (d / "secret").write_text("s3cret\n")
    pki = d / "pki"
    pki.mkdir()
    for name in ("a", "b"):
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
             "-days", "2", "-subj", f"/CN={name}", "-keyout", f"{name}.key", "-out", f"{name}.pem"],
            cwd=pki, check=True, capture_output=True,
        )  # fmt: skip
    (pki / "both.pem").write_bytes((pki / "a.pem").read_bytes() + (pki / "a.key").read_bytes())
    (pki / "garbage.pem").write_text("not a certificate\n")

    rng = np.random.default_rng(7)
    packages: dict[str, tuple[str, str, bytes]] = {
        "randtfl": ("tflite", "m.tflite", rng.integers(0, 256, 4096, np.uint8).tobytes()),
        "emptyonnx": ("onnx", "m.onnx", b""),
        "randonnx": ("onnx", "m.onnx", rng.integers(0, 256, 4096, np.uint8).tobytes()),
        "badxml": ("openvino", "m.xml", b"<layers><layer/></layers>"),
        "notxml": ("openvino", "m.xml", b"\x00\x01 binary"),
        "nobin": ("openvino", "m.xml", b"<net name='x' version='11'><layers/></net>"),
    }
    for name, (fmt, file, data) in packages.items():
        (d / name).mkdir()
        (d / name / file).write_bytes(data)
        manifest = {"name": name, "task": "detect", "decoder": "ssd", "labels": ["thing"],
                    "files": {fmt: {"path": file}}}  # fmt: skip
        (d / name / "model.yaml").write_text(yaml.safe_dump(manifest))
    ocr = models_dir / "ppocr_det" / "ch_PP-OCRv4_det_infer.onnx"
    (d / "onnxonly").mkdir()
    shutil.copy(models_dir / "ppocr_det" / "model.yaml", d / "onnxonly" / "model.yaml")
    os.symlink(ocr, d / "onnxonly" / ocr.name)
    (d / "badsha").mkdir()
    (d / "badsha" / "m.tflite").write_bytes(b"\x1c\x00\x00\x00TFL3" + bytes(100))
    manifest = {"name": "badsha", "task": "detect", "decoder": "ssd", "labels": ["thing"],
                "files": {"tflite": {"path": "m.tflite", "sha256": "0" * 64}}}  # fmt: skip
    (d / "badsha" / "model.yaml").write_text(yaml.safe_dump(manifest))
    return {"d": d, "clip": clip, "pki": pki}


def base_config(place: dict[str, Path], state: Path) -> dict[str, Any]:
    return {
        "state_dir": str(state),
        "models": {"face": {"path": "blazeface"}},
        "cameras": {"door": {"source": {"type": "file", "path": str(place["clip"])}, "model": "face"}},
        "rules": {"faces": {"cameras": ["door"], "labels": ["face"]}},
        "mqtt": {"enabled": False},
    }


def put(cfg: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    node = cfg
    for key in parents:
        node = node.setdefault(key, {})
    node[last] = value


D, PKI, CLIP = "{d}", "{pki}", "{clip}"

CASES: list[Any] = [
    # (id, {dotted key: value}; "{d}", "{pki}", "{clip}" are filled in, expected fragment or None)
    ("valid", {}, None),
    ("valid mqtt with password file and tls", {
        "mqtt": {"enabled": True, "username": "u", "password_file": f"{D}/secret",
                 "tls": {"ca_file": f"{PKI}/b.pem", "cert_file": f"{PKI}/a.pem", "key_file": f"{PKI}/a.key"}}}, None),
    ("valid cert holding its key", {"mqtt": {"enabled": True, "tls": {"cert_file": f"{PKI}/both.pem"}}}, None),
    ("valid metrics on localhost", {"metrics": {"enabled": True, "host": "localhost", "port": 0}}, None),
    ("valid preview on localhost", {"preview": {"enabled": True, "host": "localhost", "port": 0}}, None),
    ("preview on an address this machine does not have",
     {"preview": {"enabled": True, "host": "192.0.2.1", "username": "u", "password": "p"}},
     "preview.host: cannot listen on '192.0.2.1' here"),
    ("input_size on a model that is not YOLO", {"models.face.input_size": [256, 128]},
     "models.face.input_size: works on YOLO models whose decoder is yolov8; model 'blazeface' has decoder 'blazeface'"),
    ("missing password_file", {"mqtt": {"enabled": True, "username": "u", "password_file": f"{D}/nope"}},
     "mqtt.password_file: {d}/nope: no such file"),
    ("password_file is a folder", {"mqtt": {"enabled": True, "username": "u", "password_file": D}},
     "mqtt.password_file: {d} is a folder, not a file"),
    ("password_file without username", {"mqtt": {"enabled": True, "password_file": f"{D}/secret"}},
     "mqtt.password_file: a password is set but mqtt.username is not"),
    ("missing ca_file", {"mqtt": {"enabled": True, "tls": {"ca_file": f"{PKI}/nope.pem"}}},
     "mqtt.tls.ca_file: {pki}/nope.pem: no such file"),
    ("ca_file not a certificate", {"mqtt": {"enabled": True, "tls": {"ca_file": f"{PKI}/garbage.pem"}}},
     "mqtt.tls.ca_file: {pki}/garbage.pem holds no usable CA certificate"),
    ("missing cert_file", {"mqtt": {"enabled": True, "tls": {"cert_file": f"{PKI}/nope.pem", "key_file": f"{PKI}/a.key"}}},
     "mqtt.tls.cert_file: {pki}/nope.pem: no such file"),
    ("missing key_file", {"mqtt": {"enabled": True, "tls": {"cert_file": f"{PKI}/a.pem", "key_file": f"{PKI}/nope.key"}}},
     "mqtt.tls.key_file: {pki}/nope.key: no such file"),
    ("cert without key", {"mqtt": {"enabled": True, "tls": {"cert_file": f"{PKI}/a.pem"}}},
     "mqtt.tls.cert_file: {pki}/a.pem holds no private key and tls.key_file is not set"),
    ("key of another cert", {"mqtt": {"enabled": True, "tls": {"cert_file": f"{PKI}/a.pem", "key_file": f"{PKI}/b.key"}}},
     "mqtt.tls.key_file: cannot load the client certificate {pki}/a.pem with {pki}/b.key"),
    ("key without cert", {"mqtt": {"enabled": True, "tls": {"key_file": f"{PKI}/a.key"}}},
     "mqtt.tls.key_file: key_file is set without cert_file"),
    ("mqtt checks off when disabled", {"mqtt": {"enabled": False, "password_file": f"{D}/nope"}}, None),
    ("state_dir is a file", {"state_dir": f"{D}/secret"}, "state_dir: {d}/secret exists and is not a folder"),
    ("state_dir below a file", {"state_dir": f"{D}/secret/state"}, "state_dir: {d}/secret/state cannot be created: {d}/secret is a file"),
    ("state_dir under /proc", {"state_dir": "/proc/edge-state"}, "state_dir: /proc/edge-state is under /proc"),
    ("state_dir under /sys", {"state_dir": "/sys/kernel/edge"}, "state_dir: /sys/kernel/edge is under /sys"),
    ("video missing", {"cameras.door.source.path": f"{D}/nope.mp4"}, "cameras.door.source.path: video file: {d}/nope.mp4: no such file"),
    ("video is a folder", {"cameras.door.source.path": D}, "cameras.door.source.path: video file: {d} is a folder"),
    ("video not a regular file", {"cameras.door.source.path": "/dev/null"}, "video file: /dev/null is not a regular file"),
    ("video empty", {"cameras.door.source.path": f"{D}/empty.mp4"}, "video file: {d}/empty.mp4 is empty"),
    ("video of a disabled camera is not opened", {"cameras.door.source.path": f"{D}/nope.mp4", "cameras.door.enabled": False}, None),
    ("models_dir missing", {"models_dir": f"{D}/nope"}, "models_dir: {d}/nope is not a folder"),
    ("model not found", {"models.face.path": "nosuchmodel"}, "models.face.path: model 'nosuchmodel' not found"),
    ("model sha256 mismatch", {"models.face.path": f"{D}/badsha", "rules.faces.labels": []}, "models.face.path: {d}/badsha/m.tflite: sha256 is"),
    ("random bytes as tflite", {"models.face.path": f"{D}/randtfl", "rules.faces.labels": []},
     "models.face.path: {d}/randtfl/m.tflite: not a TFLite model (expected the file identifier 'TFL3'"),
    ("empty onnx", {"models.face.path": f"{D}/emptyonnx", "rules.faces.labels": []}, "{d}/emptyonnx/m.onnx: the ONNX file is empty"),
    ("random bytes as onnx", {"models.face.path": f"{D}/randonnx", "rules.faces.labels": []},
     "{d}/randonnx/m.onnx: not an ONNX model (expected a ModelProto with ir_version and graph)"),
    ("openvino xml without <net>", {"models.face.path": f"{D}/badxml", "rules.faces.labels": []},
     "{d}/badxml/m.xml: not an OpenVINO IR (expected a <net> root element, found <layers>)"),
    ("openvino xml not xml", {"models.face.path": f"{D}/notxml", "rules.faces.labels": []}, "{d}/notxml/m.xml: not an OpenVINO IR"),
    ("openvino without .bin", {"models.face.path": f"{D}/nobin", "rules.faces.labels": []}, "{d}/nobin/m.xml: the weights file m.bin"),
    ("valid onnx package", {"models.face.path": f"{D}/onnxonly", "rules.faces.labels": ["text"]}, None),
    ("runner cannot read the package", {"models.face.runner": "litert", "models.face.path": f"{D}/onnxonly", "rules.faces.labels": []},
     "models.face.runner: runner 'litert' reads tflite but model 'ppocr_det' has only onnx"),
    ("runner not installed", {"models.face.runner": "tensorrt", "models.face.path": f"{D}/onnxonly", "rules.faces.labels": []},
     "models.face.runner: runner 'tensorrt' is not installed here (pip install 'edge-runtime[tensorrt]')"),
    ("rule label not in the model", {"rules.faces.labels": ["face", "person"]},
     "rules.faces.labels.1: rule 'faces': label 'person' is not a label of model 'face' (camera 'door'), whose labels are: face"),
]


def fill(value: Any, place: dict[str, Path]) -> Any:
    if isinstance(value, str):
        return value.replace(D, str(place["d"])).replace(PKI, str(place["pki"])).replace(CLIP, str(place["clip"]))
    if isinstance(value, dict):
        return {k: fill(v, place) for k, v in value.items()}
    if isinstance(value, list):
        return [fill(v, place) for v in value]
    return value


def write(tmp_path: Path, cfg: dict[str, Any]) -> Path:
    path = tmp_path / "edge.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


@pytest.mark.parametrize(("changes", "expected"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_preflight_table(changes: dict[str, Any], expected: str | None, place: dict[str, Path], tmp_path: Path) -> None:
    cfg = base_config(place, tmp_path / "state")
    for key, value in fill(changes, place).items():
        put(cfg, key, value)
    path = write(tmp_path, cfg)
    issues = preflight(load_config(path))
    if expected is None:
        assert issues == []
        assert not (tmp_path / "state").exists(), "preflight must not create state_dir"
        assert [p.name for p in tmp_path.iterdir()] == ["edge.yaml"], "the write probe is removed"
        return
    wanted = fill(expected, place)
    assert any(wanted in line for line in issues), issues
    for line in issues:
        assert line.startswith(f"{path}:") and "\n" not in line, line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes everywhere; the probe cannot be refused")
def test_state_dir_not_writable(place: dict[str, Path], tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o500)
    cfg = base_config(place, locked / "state")
    issues = preflight(load_config(write(tmp_path, cfg)))
    assert any(f"state_dir: cannot write in {locked} (needed to create {locked}/state)" in i for i in issues), issues


def test_openvino_device_that_is_not_here(place: dict[str, Path], tmp_path: Path) -> None:
    ov = pytest.importorskip("openvino")
    devices = list(ov.Core().available_devices)
    if any(d.startswith("NPU") for d in devices):
        pytest.skip("this machine has an NPU")
    cfg = base_config(place, tmp_path / "state")
    put(cfg, "models.face.runner", "openvino")
    put(cfg, "models.face.device", "NPU")
    issues = preflight(load_config(write(tmp_path, cfg)))
    assert any(f"models.face.device: OpenVINO device 'NPU' is not available here; OpenVINO lists: {', '.join(devices)}" in i
               for i in issues), issues  # fmt: skip
    put(cfg, "models.face.device", "AUTO:NPU,CPU")
    assert any("OpenVINO device 'NPU'" in i for i in preflight(load_config(write(tmp_path, cfg))))
    put(cfg, "models.face.device", "AUTO")
    assert preflight(load_config(write(tmp_path, cfg))) == []


def test_skip_models_skips_model_checks(place: dict[str, Path], tmp_path: Path) -> None:
    cfg = base_config(place, tmp_path / "state")
    put(cfg, "models.face.path", "nosuchmodel")
    loaded = load_config(write(tmp_path, cfg))
    assert preflight(loaded, check_models=False) == []
    assert preflight(loaded) != []


def _netns_available() -> bool:
    return shutil.which("unshare") is not None and subprocess.run(
        ["unshare", "-n", "true"], capture_output=True
    ).returncode == 0  # fmt: skip


@pytest.mark.skipif(not _netns_available(), reason="needs unshare -n (root) for a network namespace")
def test_metrics_host_that_cannot_be_bound(place: dict[str, Path], tmp_path: Path) -> None:
    """In a fresh network namespace the loopback interface is down and ::1 cannot be bound.
    check-config says so on one line (it used to be a socket.gaierror/OSError traceback at run)."""
    host = "::1"
    cfg = base_config(place, tmp_path / "state")
    put(cfg, "metrics", {"enabled": True, "host": host, "port": 9108})
    path = write(tmp_path, cfg)
    out = subprocess.run(["unshare", "-n", "edge", "check-config", "--skip-models", str(path)],
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert out.returncode == 2, out.stderr
    assert f"metrics.host: cannot listen on '{host}' here: Cannot assign requested address" in out.stderr
    assert out.stderr.startswith(f"{path}:") and "Traceback" not in out.stderr


RUN_CASES: list[Any] = [
    ("missing model", lambda cfg, d: put(cfg, "models.face.path", "nosuchmodel"), "models.face.path: model 'nosuchmodel' not found"),
    ("label not in model", lambda cfg, d: put(cfg, "rules.faces.labels", ["person"]), "rules.faces.labels.0: rule 'faces': label 'person'"),
    ("missing video", lambda cfg, d: put(cfg, "cameras.door.source.path", f"{d}/nope.mp4"), "cameras.door.source.path: video file"),
]


@pytest.mark.parametrize(("change", "expected"), [c[1:] for c in RUN_CASES], ids=[c[0] for c in RUN_CASES])
def test_run_and_check_config_print_the_same_lines(
    change: Callable[[dict[str, Any], Path], None], expected: str, place: dict[str, Path], tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    cfg = base_config(place, tmp_path / "state")
    change(cfg, place["d"])
    path = write(tmp_path, cfg)
    assert main(["check-config", str(path)]) == 2
    checked = capsys.readouterr().err
    assert main(["run", str(path), "--max-frames", "1"]) == 2
    ran = capsys.readouterr().err
    assert checked == ran and expected in ran and ran.startswith(f"{path}:"), (checked, ran)
    assert not (tmp_path / "state").exists(), "edge run stopped before creating anything"


def test_check_config_output_is_printable_for_odd_paths(place: dict[str, Path], tmp_path: Path) -> None:
    """A config's own problems never break printing (a lone surrogate used to pass validation
    and crash the summary); here one arrives through --set from a non-UTF-8 argv byte."""
    cfg = base_config(place, tmp_path / "state")
    path = write(tmp_path, cfg)
    with pytest.raises(ConfigError) as info:
        load_config(path, [f"state_dir={tmp_path}/caf\udce9"])
    assert info.value.issues == [f"--set state_dir={tmp_path}/caf\\udce9: the value is not valid Unicode (a lone "
                                 "surrogate, as from a non-UTF-8 byte)"]  # fmt: skip
    for line in info.value.issues:
        line.encode("utf-8")
    (tmp_path / "env.yaml").write_text(write(tmp_path, cfg).read_text().replace(str(tmp_path / "state"), "${STATE}"))
    with pytest.raises(ConfigError) as info:
        load_config(tmp_path / "env.yaml", env={"STATE": "caf\udce9"})
    assert info.value.issues == [f"{tmp_path}/env.yaml:1: state_dir: text cannot contain a lone surrogate "
                                 "(an invalid \\ud800-\\udfff escape)"]  # fmt: skip
