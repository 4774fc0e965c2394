"""Fetch the real models used by the demo and the tests, pinned by sha256.

The files ship inside two PyPI wheels: BlazeFace and the BlazePose detector inside
``mediapipe==0.10.21`` (Apache-2.0), PP-OCRv4 inside ``rapidocr-onnxruntime==1.4.4``
(Apache-2.0). Each wheel is downloaded once with ``pip download --no-deps`` for a fixed
platform (the model files are the same on every platform), checked against its sha256,
kept in a cache folder, and only the model files are extracted, each checked again.
Nothing is fetched when every file is already present and verified, so it works offline.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import FetchError
from edge.runners.base import file_sha256

Progress = Callable[[str], None]


@dataclass(frozen=True)
class PinnedWheel:
    requirement: str
    filename: str
    sha256: str
    platform_args: tuple[str, ...] = ()


@dataclass(frozen=True)
class PinnedFile:
    package: str  # model package folder under the models dir
    wheel: PinnedWheel
    member: str
    dest: str
    sha256: str


MEDIAPIPE = PinnedWheel(
    "mediapipe==0.10.21",
    "mediapipe-0.10.21-cp311-cp311-manylinux_2_28_x86_64.whl",
    "05dc4a9e593655a79558d05d6227d31018c2537a4bd3362b51e230cf22aecfe3",
    (
        "--platform",
        "manylinux_2_28_x86_64",
        "--python-version",
        "3.11",
        "--implementation",
        "cp",
        "--abi",
        "cp311",
    ),
)
RAPIDOCR = PinnedWheel(
    "rapidocr-onnxruntime==1.4.4",
    "rapidocr_onnxruntime-1.4.4-py3-none-any.whl",
    "971d7d5f223a7a808662229df1ef69893809d8457d834e6373d3854bc1782cbf",
)
_MP_LICENSE = "8707eef0533987efc5b155d64761eeb6e20793f50b9bd1a68dad1cf4719d0ed8"

PINNED: tuple[PinnedFile, ...] = (
    PinnedFile(
        "blazeface",
        MEDIAPIPE,
        "mediapipe/modules/face_detection/face_detection_short_range.tflite",
        "face_detection_short_range.tflite",
        "bbff11cebd1eb27a1e004cae0b0e63ec8c551cbf34a4451148b4908b8db3eca8",
    ),
    PinnedFile("blazeface", MEDIAPIPE, "mediapipe-0.10.21.dist-info/LICENSE", "LICENSE", _MP_LICENSE),
    PinnedFile(
        "blazepose",
        MEDIAPIPE,
        "mediapipe/modules/pose_detection/pose_detection.tflite",
        "pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c",
    ),
    PinnedFile("blazepose", MEDIAPIPE, "mediapipe-0.10.21.dist-info/LICENSE", "LICENSE", _MP_LICENSE),
    PinnedFile(
        "ppocr_det",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_det_infer.onnx",
        "ch_PP-OCRv4_det_infer.onnx",
        "d2a7720d45a54257208b1e13e36a8479894cb74155a5efe29462512d42f49da9",
    ),
    PinnedFile(
        "ppocr_det",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_PP-OCRv4_rec_infer.onnx",
        "ch_PP-OCRv4_rec_infer.onnx",
        "48fc40f24f6d2a207a2b1091d3437eb3cc3eb6b676dc3ef9c37384005483683b",
    ),
    PinnedFile(
        "ppocr_det",
        RAPIDOCR,
        "rapidocr_onnxruntime/models/ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "ch_ppocr_mobile_v2.0_cls_infer.onnx",
        "e47acedf663230f8863ff1ab0e64dd2d82b838fceb5957146dab185a89d6215c",
    ),
)


@dataclass(frozen=True)
class FetchResult:
    path: Path
    action: str  # "present" | "extracted"


def default_cache_dir() -> Path:
    if os.environ.get("EDGE_CACHE_DIR"):
        return Path(os.environ["EDGE_CACHE_DIR"])
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "edge" / "wheels"


def default_models_dir() -> Path:
    """``$EDGE_MODELS_DIR``, else the source checkout's ``models/``, else the ``models/`` beside
    the venv edge runs in (``/opt/edge/models`` for ``/opt/edge/venv``, where tools/install.sh
    puts them), each when it exists and is writable, else ``./models``."""
    if os.environ.get("EDGE_MODELS_DIR"):
        return Path(os.environ["EDGE_MODELS_DIR"])
    candidates = [Path(__file__).resolve().parent.parent / "models"]
    if sys.prefix != sys.base_prefix:
        candidates.append(Path(sys.prefix).parent / "models")
    for models in candidates:
        if models.is_dir() and os.access(models, os.W_OK):
            return models
    return Path.cwd() / "models"


def _wheel(wheel: PinnedWheel, cache: Path, progress: Progress) -> Path:
    cached = cache / wheel.filename
    if cached.exists() and file_sha256(cached) == wheel.sha256:
        return cached
    try:
        cache.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "it is a broken link or a file" if isinstance(exc, FileExistsError) else exc.strerror or exc
        raise FetchError(f"{cache}: cannot use this folder as the wheel cache: {why}") from None
    progress(f"downloading {wheel.requirement} (pip download, pinned sha256 {wheel.sha256[:12]}…)")
    with tempfile.TemporaryDirectory(dir=cache) as tmp:
        argv = [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "--only-binary=:all:",
            "--disable-pip-version-check",
            "--progress-bar",
            "on",
            *wheel.platform_args,
            "-d",
            tmp,
            wheel.requirement,
        ]
        proc = subprocess.run(argv, stdout=sys.stderr, stderr=sys.stderr, check=False)
        got = Path(tmp) / wheel.filename
        if proc.returncode != 0 or not got.exists():
            raise FetchError(
                f"pip download {wheel.requirement} failed (exit {proc.returncode}); is PyPI reachable?"
            )
        actual = file_sha256(got)
        if actual != wheel.sha256:
            raise FetchError(
                f"{wheel.filename}: sha256 is {actual}, expected {wheel.sha256}; refusing to use it"
            )
        os.replace(got, cached)
    return cached


def fetch_models(
    models_dir: Path | None = None,
    cache_dir: Path | None = None,
    packages: Sequence[str] | None = None,
    progress: Progress = lambda msg: print(msg, file=sys.stderr),
) -> list[FetchResult]:
    """Make every pinned file present and verified under ``models_dir``; idempotent."""
    dest_root = models_dir or default_models_dir()
    cache = cache_dir or default_cache_dir()
    known = sorted({f.package for f in PINNED})
    wanted = [f for f in PINNED if packages is None or f.package in packages]
    unknown = sorted(set(packages or ()) - set(known))
    if unknown:
        raise FetchError(f"unknown model package(s) {unknown}; pinned: {known}")
    results: list[FetchResult] = []
    repo_models = Path(__file__).resolve().parent.parent / "models"
    for i, pinned in enumerate(wanted, 1):
        dest = dest_root / pinned.package / pinned.dest
        label = f"[{i}/{len(wanted)}] {pinned.package}/{pinned.dest}"
        manifest = repo_models / pinned.package / "model.yaml"
        if manifest.exists() and not (dest.parent / "model.yaml").exists():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(manifest, dest.parent / "model.yaml")
        if dest.exists() and file_sha256(dest) == pinned.sha256:
            progress(f"{label}: present, sha256 ok")
            results.append(FetchResult(dest, "present"))
            continue
        wheel = _wheel(pinned.wheel, cache, progress)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(dest.name + ".part")
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(pinned.member) as src, tmp.open("wb") as out:
                shutil.copyfileobj(src, out)
        except KeyError:
            raise FetchError(f"{wheel.name} has no {pinned.member}") from None
        actual = file_sha256(tmp)
        if actual != pinned.sha256:
            tmp.unlink()
            raise FetchError(f"{pinned.member} in {wheel.name}: sha256 is {actual}, expected {pinned.sha256}")
        os.replace(tmp, dest)
        progress(f"{label}: extracted, sha256 ok")
        results.append(FetchResult(dest, "extracted"))
    return results
