"""Frames for calibration and evaluation: a folder of images, or a video sampled evenly."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from edge.commands.infer import VIDEO_EXTENSIONS
from edge.errors import QuantizeError

Convert = Callable[[np.ndarray], np.ndarray]
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".pgm", ".ppm"})


def evenly(total: int, count: int) -> list[int]:
    """``count`` indices spread evenly over ``range(total)`` (all of them when fewer)."""
    if total <= count:
        return list(range(total))
    return sorted({int(i + 0.5) for i in np.linspace(0, total - 1, count)})


def sample_frames(
    src: Path, count: int, what: str = "--calib", convert: Convert | None = None
) -> list[np.ndarray]:
    """Up to ``count`` BGR frames of ``src`` (a folder of images or a video file), evenly
    spread, each passed through ``convert`` as it is read when given (so only the converted
    tensors are held, not every full-size frame). Errors name ``src`` and the option."""
    if src.is_dir():
        return _images(src, count, what, convert)
    if not src.exists():
        raise QuantizeError(f"{what} {src}: not found; expected a folder of images or a video file")
    if src.suffix.lower() in IMAGE_EXTENSIONS:
        return _images_of([src], what, convert)
    if src.suffix.lower() not in VIDEO_EXTENSIONS:
        raise QuantizeError(
            f"{what} {src}: unknown file type {src.suffix or '(none)'}; expected a folder of images "
            f"or a video ({', '.join(sorted(VIDEO_EXTENSIONS))})"
        )
    return _video(src, count, what, convert)


def _images(folder: Path, count: int, what: str, convert: Convert | None) -> list[np.ndarray]:
    files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())
    if not files:
        raise QuantizeError(
            f"{what} {folder}: no images in the folder (looked for {', '.join(sorted(IMAGE_EXTENSIONS))})"
        )
    return _images_of([files[i] for i in evenly(len(files), count)], what, convert)


def _images_of(files: list[Path], what: str, convert: Convert | None) -> list[np.ndarray]:
    frames = []
    for path in files:
        image = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if image is None:
            raise QuantizeError(f"{what} {path}: not a readable image")
        frames.append(image if convert is None else convert(image))
    return frames


def _video(path: Path, count: int, what: str, convert: Convert | None) -> list[np.ndarray]:
    total = 0
    cap = _open(path, what)
    while cap.grab():  # containers' frame counts are guesses for some formats: count them
        total += 1
    cap.release()
    wanted = set(evenly(total, count))
    frames: list[np.ndarray] = []
    cap = _open(path, what)
    try:
        for index in range(total):
            if index not in wanted:
                if not cap.grab():
                    break
                continue
            ok, frame = cap.read()
            if not ok:
                break
            frames.append(frame if convert is None else convert(frame))
    finally:
        cap.release()
    if not frames:
        raise QuantizeError(f"{what} {path}: the video has no decodable frames")
    return frames


def _open(path: Path, what: str) -> cv2.VideoCapture:
    cap = cv2.VideoCapture(str(path))
    if not cap.isOpened():
        cap.release()
        raise QuantizeError(f"{what} {path}: cannot open the video")
    return cap
