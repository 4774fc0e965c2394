"""Shared fixtures: real models (fetched with pinned sha256), real images, backend guards."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import cv2
import numpy as np
import pytest
from broker import Broker, Subscriber

T = TypeVar("T")

from edge.fetch import fetch_models
from edge.runners.base import backend_version

REPO = Path(__file__).resolve().parent.parent
MODELS = REPO / "models"


def wait_until(cond: Callable[[], object], timeout: float, what: str) -> None:
    """Poll ``cond`` until it is true; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def read_to_end(cap: Any, record: Callable[[Any], T]) -> list[T]:
    """Run a file's capture thread and take every frame it commits, as a worker would, until
    the file ends: ``record(slot)`` for each, in order."""
    seen: list[T] = []

    def consume() -> None:
        while True:
            slot = cap.ring.take()
            if slot is None:
                if not cap.is_alive() and cap.ring.pending == 0:
                    return
                time.sleep(0.001)
                continue
            seen.append(record(slot))
            cap.ring.release(slot)

    consumer = threading.Thread(target=consume)
    cap.start()
    consumer.start()
    cap.join(60)
    consumer.join(60)
    return seen


EDGE_THREADS = ("capture-", "infer-", "actions", "mqtt-sender", "preview")


@pytest.fixture(autouse=True)
def no_edge_threads_left() -> Iterator[None]:
    """Every test stops what it started: a daemon thread left running would log into pytest's
    closed streams after the test (ValueError: I/O operation on closed file)."""
    before = {t for t in threading.enumerate() if t.name.startswith(EDGE_THREADS)}
    yield

    def left() -> list[str]:
        return [t.name for t in threading.enumerate() if t.name.startswith(EDGE_THREADS) and t not in before]

    deadline = time.monotonic() + 20
    while left() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not left(), f"threads still running after the test: {left()}"


def restore_signal_handlers() -> None:
    """Undo ``Application.install_signal_handlers`` in the test process."""
    signal.signal(signal.SIGHUP, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.default_int_handler)


def require_backend(name: str) -> None:
    """Skip when a backend library is absent locally; under CI (CI=true) a missing one fails."""
    if backend_version(name) is None:
        if os.environ.get("CI"):
            pytest.fail(f"backend {name} must be installed in CI (.ci/run installs the extras)")
        pytest.skip(f"backend {name} not installed")


@pytest.fixture(scope="session")
def models_dir() -> Path:
    """The checkout's models/ with every pinned file present (fetched once, then cached)."""
    cache = Path(os.environ.get("EDGE_CACHE_DIR", REPO / ".cache" / "wheels"))
    fetch_models(MODELS, cache, progress=lambda _msg: None)
    return MODELS


def _skimage_bgr(name: str) -> np.ndarray:
    import skimage.data

    rgb = getattr(skimage.data, name)()
    return cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="session")
def astronaut() -> np.ndarray:
    return _skimage_bgr("astronaut")


@pytest.fixture(scope="session")
def coffee() -> np.ndarray:
    return _skimage_bgr("coffee")


@pytest.fixture(scope="session")
def image_files(tmp_path_factory: pytest.TempPathFactory, astronaut: np.ndarray, coffee: np.ndarray) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("images")
    out = {}
    for name, img in (("astronaut", astronaut), ("coffee", coffee)):
        out[name] = d / f"{name}.png"
        cv2.imwrite(str(out[name]), img)
    return out


def text_image() -> np.ndarray:
    """A sign with two lines of text, drawn with OpenCV's Hershey font."""
    img = np.full((360, 640, 3), 255, np.uint8)
    cv2.putText(img, "GATE 7 OPEN", (40, 120), cv2.FONT_HERSHEY_SIMPLEX, 2, (0, 0, 0), 4)
    cv2.putText(img, "edge runtime", (60, 260), cv2.FONT_HERSHEY_SIMPLEX, 1.5, (0, 0, 200), 3)
    return img


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A real Mosquitto on a free loopback port, stopped afterwards."""
    b = Broker(tmp_path).start()
    yield b
    b.stop()


@pytest.fixture
def subscriber(broker: Broker) -> Iterator[Subscriber]:
    sub = Subscriber(broker.port)
    yield sub
    sub.close()


@pytest.fixture(scope="session")
def demo_clip() -> Path:
    """The demo clip, made by tools/make_demo_video.py (kept in the git-ignored demo/ folder)."""
    import sys

    clip = REPO / "demo" / "demo.mp4"
    if not clip.exists():
        sys.path.insert(0, str(REPO / "tools"))
        from make_demo_video import make

        make(clip)
    return clip
