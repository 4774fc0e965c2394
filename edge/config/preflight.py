"""Checks that need the filesystem, the network stack or the model files: what ``edge run``
would otherwise fail on after it has started.

``preflight`` returns one line per problem, ``file:line: dotted.path: message`` (through the
config's ``SourceMap``), and never raises for a bad config. ``edge check-config`` and
``edge run`` both call it after ``load_config``. It creates nothing but a temporary probe file
(removed at once) to learn whether ``state_dir`` is writable, and binds nothing but an
ephemeral port to learn whether ``metrics.host`` can be listened on. It reads the hardware only
where the config asks for it (an OpenVINO ``device`` other than CPU).
"""

from __future__ import annotations

import importlib.util
import os
import socket
import ssl
import stat
import tempfile
import xml.etree.ElementTree as ET
from collections.abc import Generator, Iterator
from pathlib import Path

from edge.config.loader import LoadedConfig
from edge.config.schema import EdgeConfig, FileSource, ModelConfig, MqttConfig, RuleConfig
from edge.config.yaml_safe import ConfigPath
from edge.errors import ModelError

Problem = tuple[ConfigPath, str]

VIRTUAL_FILESYSTEMS = (Path("/proc"), Path("/sys"))
MAX_PASSWORD_FILE = 64 * 1024
_LISTED_LABELS = 20


def preflight(loaded: LoadedConfig, check_models: bool = True) -> list[str]:
    """Every problem ``edge run`` would hit with this config on this machine, as issue lines."""
    cfg = loaded.config
    checks: list[Iterator[Problem]] = [state_dir_problems(cfg), video_problems(cfg)]
    if cfg.models_dir is not None and not os.path.isdir(cfg.models_dir):
        checks.append(iter([(("models_dir",), f"{cfg.models_dir} is not a folder")]))
    if cfg.mqtt.enabled:
        checks.append(mqtt_problems(cfg.mqtt))
    if cfg.metrics.enabled:
        checks.append(listen_problems("metrics", cfg.metrics.host, cfg.metrics.port))
    if cfg.preview.enabled:
        checks.append(listen_problems("preview", cfg.preview.host, cfg.preview.port))
    if check_models:
        checks.append(model_problems(cfg))
    issues: list[str] = []
    for check in checks:
        issues += [loaded.source.issue(path, message) for path, message in check]
    return issues


# --- files and folders --------------------------------------------------------------------


def file_problem(path: Path) -> str | None:
    """Why ``path`` is not a readable regular file, or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return f"{path}: no such file"
    except OSError as exc:
        return f"{path}: {exc.strerror or exc}"
    if stat.S_ISDIR(st.st_mode):
        return f"{path} is a folder, not a file"
    if not stat.S_ISREG(st.st_mode):
        return f"{path} is not a regular file"
    if not os.access(path, os.R_OK):
        return f"{path}: not readable by this user"
    return None


def writable_dir_problem(path: Path) -> str | None:
    """Why ``path`` cannot be used (created if missing) as a folder to write in, or None."""
    try:
        return _writable_dir_problem(path)
    except OSError as exc:  # e.g. a parent this user may not search
        return f"{path}: {exc.strerror or exc}"


def _writable_dir_problem(path: Path) -> str | None:
    real = Path(os.path.realpath(path))
    for virtual in VIRTUAL_FILESYSTEMS:
        if real == virtual or virtual in real.parents:
            return f"{path} is under {virtual}, a virtual filesystem"
    existing = real
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != real and not existing.is_dir():
        return f"{path} cannot be created: {existing} is a file"
    if existing == real and not real.is_dir():
        return f"{path} exists and is not a folder"
    try:
        fd, probe = tempfile.mkstemp(prefix=".edge-check-", dir=existing)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        needed = "" if existing == real else f" (needed to create {path})"
        return f"cannot write in {existing}{needed}: {exc.strerror or exc}"
    return None


def state_dir_problems(cfg: EdgeConfig) -> Iterator[Problem]:
    problem = writable_dir_problem(cfg.state_dir)
    if problem:
        yield ("state_dir",), problem


def video_problems(cfg: EdgeConfig) -> Iterator[Problem]:
    """File sources of enabled cameras: a readable, non-empty regular file (as ``edge run``
    opens it: relative to the working folder)."""
    for name, cam in cfg.cameras.items():
        if not cam.enabled or not isinstance(cam.source, FileSource):
            continue
        path = Path(cam.source.path)
        problem = file_problem(path)
        if problem is None and path.stat().st_size == 0:
            problem = f"{path} is empty"
        if problem:
            yield ("cameras", name, "source", "path"), f"video file: {problem}"


# --- MQTT and metrics ----------------------------------------------------------------------


class _NeedsPassphrase(Exception):
    pass


def _no_passphrase() -> bytes:
    raise _NeedsPassphrase  # OpenSSL would otherwise prompt on the terminal


def mqtt_problems(mqtt: MqttConfig) -> Iterator[Problem]:
    if mqtt.password is None and mqtt.password_file is not None:
        problem = file_problem(mqtt.password_file)
        if problem is None:
            with mqtt.password_file.open("rb") as fh:
                raw = fh.read(MAX_PASSWORD_FILE + 1)
            if len(raw) > MAX_PASSWORD_FILE:
                problem = f"{mqtt.password_file} is larger than {MAX_PASSWORD_FILE // 1024} KiB"
            else:
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError:
                    problem = f"{mqtt.password_file} is not UTF-8 text"
        if problem:
            yield ("mqtt", "password_file"), problem
        elif not mqtt.username:
            yield (
                ("mqtt", "password_file"),
                "a password is set but mqtt.username is not: it would not be sent",
            )
    if mqtt.tls is not None:
        yield from _tls_problems(mqtt)


def _tls_problems(mqtt: MqttConfig) -> Iterator[Problem]:
    tls = mqtt.tls
    assert tls is not None
    found = {}
    for key in ("ca_file", "cert_file", "key_file"):
        path = getattr(tls, key)
        if path is not None:
            problem = file_problem(path)
            if problem:
                yield ("mqtt", "tls", key), problem
            else:
                found[key] = path
    if "ca_file" in found:
        try:
            ssl.create_default_context(cafile=str(found["ca_file"]))
        except ssl.SSLError as exc:
            yield (
                ("mqtt", "tls", "ca_file"),
                f"{found['ca_file']} holds no usable CA certificate ({exc.reason or exc})",
            )
    if tls.key_file is not None and tls.cert_file is None:
        yield (
            ("mqtt", "tls", "key_file"),
            "key_file is set without cert_file: set both for a client certificate",
        )
    if "cert_file" in found and (tls.key_file is None or "key_file" in found):
        yield from _client_cert_problems(found["cert_file"], found.get("key_file"))


def _client_cert_problems(cert: Path, key: Path | None) -> Iterator[Problem]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    try:
        context.load_cert_chain(str(cert), str(key) if key else None, password=_no_passphrase)
    except _NeedsPassphrase:
        yield (
            ("mqtt", "tls", "key_file"),
            f"{key or cert}: the private key is encrypted; edge cannot ask for a passphrase",
        )
    except ssl.SSLError as exc:
        if key is None and b"PRIVATE KEY-----" not in _head(cert):
            yield ("mqtt", "tls", "cert_file"), f"{cert} holds no private key and tls.key_file is not set"
        else:
            where = ("mqtt", "tls", "key_file" if key else "cert_file")
            yield (
                where,
                f"cannot load the client certificate {cert}{f' with {key}' if key else ''}: "
                f"{exc.reason or exc}",
            )


def _head(path: Path, size: int = 1 << 20) -> bytes:
    with path.open("rb") as fh:
        return fh.read(size)


def listen_problems(section: str, host: str, port: int) -> Iterator[Problem]:
    """Resolve ``<section>.host`` as the metrics and preview servers do and bind an ephemeral
    port on it (the configured port may be held by a running edge: that is not checked)."""
    try:
        family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)[0][0]
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
    except OSError as exc:
        yield (section, "host"), f"cannot listen on {host!r} here: {exc.strerror or exc}"


# --- models -------------------------------------------------------------------------------


def model_problems(cfg: EdgeConfig) -> Iterator[Problem]:
    """Each model resolves, its files verify and look like what they claim to be, a runner
    installed here reads one of them, its OpenVINO device exists; each rule's labels are
    labels of its cameras' models."""
    from edge.models import default_search_dirs

    dirs = default_search_dirs([cfg.models_dir])
    labels: dict[str, tuple[str, ...]] = {}
    for name, model in cfg.models.items():
        found = yield from _one_model(name, model, dirs)
        if found is not None:
            labels[name] = found
    for rule_name, rule in cfg.rules.items():
        yield from _label_problems(cfg, rule_name, rule, labels)


def _one_model(
    name: str, model: ModelConfig, dirs: list[Path]
) -> Generator[Problem, None, tuple[str, ...] | None]:
    from edge.models import resolve_model

    where: ConfigPath = ("models", name, "path")
    try:
        package = resolve_model(model.path, dirs)
    except (ModelError, OSError, RuntimeError, ValueError, RecursionError) as exc:
        for line in str(exc).splitlines() or [type(exc).__name__]:
            yield where, line
        return None
    files_ok = True
    variants = [(f, False) for f in package.files] + [(f, True) for f in package.int8_files]
    for fmt, int8 in variants:
        try:
            path = package.verified_file(fmt, int8)
            problem = model_file_problem(fmt, path)
        except (ModelError, OSError) as exc:
            problem = str(exc)
        if problem:
            files_ok = False
            yield where, problem
    if files_ok:
        backend_problem = runner_problem(model.runner, package.name, list(package.formats()))
        if backend_problem:
            yield ("models", name, "runner"), backend_problem
        elif model.device != "CPU" and _openvino_may_run(model.runner, list(package.formats())):
            device = device_problem(model.device)
            if device:
                yield ("models", name, "device"), device
    if model.input_size is not None:
        size = input_size_problem(model.runner, package.name, package.decoder, list(package.formats()))
        if size:
            yield ("models", name, "input_size"), size
    return package.labels


def input_size_problem(runner: str, package: str, decoder: str, formats: list[str]) -> str | None:
    """Why ``input_size`` cannot work for this model: not a YOLO head edge can resize, or no
    OpenVINO to resize it with ``runner: auto``/``openvino``. Other runners are left to the
    load, which tells a dynamic export (it runs) from a static one (refused)."""
    from edge.runners.openvino_resize import RESIZABLE_DECODERS

    if decoder not in RESIZABLE_DECODERS:
        kinds = ", ".join(sorted(RESIZABLE_DECODERS))
        return f"works on YOLO models whose decoder is {kinds}; model {package!r} has decoder {decoder!r}"
    if runner == "auto":
        return runner_problem("openvino", package, formats)
    return None


def _label_problems(
    cfg: EdgeConfig, rule_name: str, rule: RuleConfig, labels: dict[str, tuple[str, ...]]
) -> Iterator[Problem]:
    for i, label in enumerate(rule.labels):
        for cam_name in rule.cameras:
            model = cfg.cameras[cam_name].model
            known = labels.get(model)
            if known is not None and label not in known:
                shown = ", ".join(known[:_LISTED_LABELS])
                if len(known) > _LISTED_LABELS:
                    shown += f", ... ({len(known)} in all)"
                yield (
                    ("rules", rule_name, "labels", i),
                    f"rule {rule_name!r}: label {label!r} is not a label of model {model!r} "
                    f"(camera {cam_name!r}), whose labels are: {shown}",
                )
                break


# --- model files: cheap structural checks --------------------------------------------------


def model_file_problem(fmt: str, path: Path) -> str | None:
    """Does the file look like a model of its format? Cheap: reads headers, not weights."""
    if fmt == "tflite":
        with path.open("rb") as fh:
            head = fh.read(8)
        if head[4:8] != b"TFL3":
            return f"{path}: not a TFLite model (expected the file identifier 'TFL3' at bytes 4-8)"
    elif fmt == "onnx":
        return onnx_problem(path)
    elif fmt == "openvino":
        return openvino_problem(path)
    return None


def _varint(data: bytes, pos: int) -> tuple[int, int] | None:
    value = shift = 0
    while pos < len(data) and shift < 64:
        byte = data[pos]
        value |= (byte & 0x7F) << shift
        pos += 1
        if not byte & 0x80:
            return value, pos
        shift += 7
    return None


def onnx_problem(path: Path) -> str | None:
    """Walk the top-level protobuf fields of an ONNX ``ModelProto`` (seeking over their
    payloads): they must tile the file exactly and include ir_version (1) and graph (7)."""
    size = path.stat().st_size
    expected = f"{path}: not an ONNX model (expected a ModelProto with ir_version and graph)"
    if size == 0:
        return f"{path}: the ONNX file is empty"
    fields: set[int] = set()
    pos = 0
    with path.open("rb") as fh:
        while pos < size and len(fields) < 64:
            fh.seek(pos)
            head = fh.read(20)
            tag = _varint(head, 0)
            if tag is None or tag[0] >> 3 == 0:
                return expected
            number, wire, at = tag[0] >> 3, tag[0] & 7, tag[1]
            if wire == 0:
                step = _varint(head, at)
                if step is None:
                    return expected
                pos += step[1]
            elif wire == 2:
                length = _varint(head, at)
                if length is None:
                    return expected
                pos += length[1] + length[0]
            elif wire in (1, 5):
                pos += at + (8 if wire == 1 else 4)
            else:
                return expected
            fields.add(number)
    if pos != size or not {1, 7} <= fields:
        return expected
    return None


def openvino_problem(path: Path) -> str | None:
    """An OpenVINO IR: the .xml's root element is <net>, and the .bin beside it is not empty."""
    try:
        # Only the root's start tag is read; the file is one the operator installed, and
        # expat (>= 2.4) bounds entity expansion.
        _, root = next(ET.iterparse(path, events=("start",)))  # noqa: S314
    except (ET.ParseError, StopIteration):
        return f"{path}: not an OpenVINO IR (expected XML with a <net> root element)"
    if root.tag != "net":
        return f"{path}: not an OpenVINO IR (expected a <net> root element, found <{root.tag[:40]}>)"
    weights = path.with_suffix(".bin")
    if not weights.is_file() or weights.stat().st_size == 0:
        return f"{path}: the weights file {weights.name} beside it is missing or empty"
    return None


# --- runners and devices ---------------------------------------------------------------------


def _installed(backend: str) -> bool:
    """The backend's library and edge's runner for it can be imported (without importing them)."""
    from edge.runners.base import BACKENDS

    info = BACKENDS[backend]
    has_library = any(importlib.util.find_spec(lib) is not None for lib in info.libraries)
    return has_library and importlib.util.find_spec(info.module) is not None


def runner_problem(requested: str, package: str, formats: list[str]) -> str | None:
    """Why no installed runner (the requested one, or any for ``auto``) can read the files."""
    from edge.runners.base import BACKENDS
    from edge.runners.select import READS

    have = ", ".join(formats)
    if requested != "auto":
        if not any(f in formats for f in READS[requested]):
            reads = ", ".join(READS[requested])
            return f"runner {requested!r} reads {reads} but model {package!r} has only {have}"
        if not _installed(requested):
            extra = BACKENDS[requested].extra
            return f"runner {requested!r} is not installed here (pip install 'edge-runtime[{extra}]')"
        return None
    if any(_installed(b) and any(f in formats for f in reads) for b, reads in READS.items()):
        return None
    return f"no runner installed here reads model {package!r} ({have}); install the extra for one of them"


def _openvino_may_run(requested: str, formats: list[str]) -> bool:
    from edge.runners.select import READS

    if requested not in ("auto", "openvino") or not any(f in formats for f in READS["openvino"]):
        return False
    return importlib.util.find_spec("openvino") is not None


def device_problem(device: str) -> str | None:
    """Is the OpenVINO ``device`` (``GPU``, ``GPU.1``, ``AUTO:GPU,CPU``, ...) present here?"""
    import openvino as ov

    available = list(ov.Core().available_devices)
    head, _, rest = device.partition(":")
    if head in ("AUTO", "MULTI", "HETERO", "BATCH"):
        wanted = [d.split("(")[0].strip() for d in rest.split(",") if d.strip()]
    else:
        wanted = [device]
    families = {d.split(".")[0] for d in available}
    missing = [d for d in wanted if d not in available and d not in families]
    if missing:
        listed = ", ".join(available) or "none"
        return f"OpenVINO device {missing[0]!r} is not available here; OpenVINO lists: {listed}"
    return None
