"""Frame sources behind one protocol, all read through OpenCV's ``VideoCapture``.

``file`` (FFmpeg), ``rtsp``/``http`` (FFmpeg, TCP by default, open and read timeouts set so a
hung server cannot block for 90 s), ``v4l2`` (USB/CSI cameras via V4L2, resolution, fps and
FOURCC), and ``gstreamer`` (a raw pipeline ending in ``appsink``; needs an OpenCV built with
GStreamer, such as Debian's/JetPack's ``python3-opencv``; the PyPI wheels are not).
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Protocol

import cv2
import numpy as np

from edge.capture.redact import mask_url
from edge.config.schema import FileSource, GStreamerSource, Source, StreamSource, V4l2Source

_FFMPEG_ENV_LOCK = threading.Lock()  # OPENCV_FFMPEG_CAPTURE_OPTIONS is read at open time


class SourceError(Exception):
    """A source that cannot be opened (the capture thread retries with backoff)."""


class FrameSource(Protocol):
    live: bool
    description: str  # safe to log: credentials masked

    def open(self) -> None: ...

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        """The next BGR frame (decoded into ``into`` when it fits), or None at end/failure."""
        ...

    def position_seconds(self) -> float | None:
        """For files: the frame's time on the file's timeline."""
        ...

    def fps(self) -> float: ...

    def close(self) -> None: ...


class OpenCvSource:
    """One ``cv2.VideoCapture``; what differs per kind is how it is opened."""

    def __init__(self, config: Source) -> None:
        self.config = config
        self.live = not isinstance(config, FileSource)
        self.description = describe(config)
        self._cap: cv2.VideoCapture | None = None

    def open(self) -> None:
        self.close()
        cap = self._open()
        if not cap.isOpened():
            cap.release()
            raise SourceError(f"cannot open {self.description}")
        self._cap = cap

    def _open(self) -> cv2.VideoCapture:
        cfg = self.config
        if isinstance(cfg, FileSource):
            if not Path(cfg.path).is_file():
                raise SourceError(f"video file not found: {cfg.path}")
            return cv2.VideoCapture(cfg.path, cv2.CAP_FFMPEG)
        if isinstance(cfg, StreamSource):
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, int(cfg.open_timeout * 1000),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, int(cfg.read_timeout * 1000),
            ]  # fmt: skip
            options = f"rtsp_transport;{cfg.transport}" if cfg.type == "rtsp" else ""
            with _FFMPEG_ENV_LOCK:
                old = os.environ.get("OPENCV_FFMPEG_CAPTURE_OPTIONS")
                if options:
                    os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = options
                try:
                    return cv2.VideoCapture(cfg.url, cv2.CAP_FFMPEG, params)
                finally:
                    if old is None:
                        os.environ.pop("OPENCV_FFMPEG_CAPTURE_OPTIONS", None)
                    else:
                        os.environ["OPENCV_FFMPEG_CAPTURE_OPTIONS"] = old
        if isinstance(cfg, V4l2Source):
            cap = cv2.VideoCapture(cfg.device, cv2.CAP_V4L2)
            if cfg.fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*cfg.fourcc))
            if cfg.width:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, cfg.width)
            if cfg.height:
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, cfg.height)
            if cfg.fps:
                cap.set(cv2.CAP_PROP_FPS, cfg.fps)
            return cap
        assert isinstance(cfg, GStreamerSource)
        if "GStreamer:                   YES" not in cv2.getBuildInformation():
            raise SourceError(
                "this OpenCV has no GStreamer support; on Jetson/Raspberry Pi use the system "
                "OpenCV (python3-opencv) in a venv made with --system-site-packages"
            )
        return cv2.VideoCapture(cfg.pipeline, cv2.CAP_GSTREAMER)

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        if self._cap is None:
            return None
        ok, frame = self._cap.read(into) if into is not None else self._cap.read()
        if not ok or frame is None:
            return None
        return frame

    def position_seconds(self) -> float | None:
        if self._cap is None or self.live:
            return None
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0

    def fps(self) -> float:
        value = float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0
        return value if 0 < value < 1000 else 0.0

    def close(self) -> None:
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def describe(config: Source) -> str:
    if isinstance(config, FileSource):
        return f"file {config.path}"
    if isinstance(config, StreamSource):
        return f"{config.type} {mask_url(config.url)}"
    if isinstance(config, V4l2Source):
        return f"v4l2 {config.device}"
    return "gstreamer pipeline"
