"""Frame sources behind one protocol, all read through OpenCV's ``VideoCapture``.

``file`` (FFmpeg), ``rtsp``/``http`` (FFmpeg, TCP by default, open and read timeouts set so a
hung server cannot block for 90 s), ``v4l2`` (USB/CSI cameras via V4L2, resolution, fps and
FOURCC), and ``gstreamer`` (a raw pipeline ending in ``appsink``; needs an OpenCV built with
GStreamer, such as Debian's/JetPack's ``python3-opencv``; the PyPI wheels are not).

Failures say why. A file that exists but is not a readable video raises a *permanent*
``SourceError`` naming the file and the reason (0 bytes, text, an MP4 without its moov index,
no video stream, no decodable frame: ``probe_file`` finds it cheaply, since OpenCV does not
say); the capture thread gives up on those after a few attempts. A stream read that takes
``read_timeout`` or longer raises ``SourceError`` too: on a hung server OpenCV's FFmpeg
backend hits its read timeout, takes the interrupted read for end of stream and drains the
frames its threaded decoder still holds, returning each as a good frame after another full
timeout, with a position that advances; so the time a read took, not the frame, is the signal.
"""

from __future__ import annotations

import errno
import math
import os
import re
import stat
import threading
import time
from typing import BinaryIO, Protocol

import cv2
import numpy as np

from edge.buffer.ring import Policy
from edge.capture.redact import mask_url
from edge.config.schema import FileSource, GStreamerSource, Source, StreamSource, V4l2Source

_FFMPEG_ENV_LOCK = threading.Lock()  # OPENCV_FFMPEG_CAPTURE_OPTIONS is read at open time


_INT32_MAX = 2**31 - 1  # OpenCV's timeout properties are int milliseconds
_MISSING = (errno.ENOENT, errno.ENOTDIR)  # a file that may yet appear (a mount, a recorder)


class SourceError(Exception):
    """A source that cannot be opened or read (the capture thread retries with backoff).

    ``permanent``: retrying will not help (a file that exists but is not a readable video); a
    capture thread on a file that does not loop gives up after a few of these.
    """

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class FrameSource(Protocol):
    live: bool  # a camera or stream (reconnects, wall-clock frame times); False: a file
    description: str  # safe to log: credentials masked

    def open(self) -> None: ...

    def read(self, into: np.ndarray | None) -> np.ndarray | None:
        """The next frame (decoded into ``into`` when it fits), or None at end/failure; may
        raise SourceError to say why a stream failed. Usually BGR uint8; grey, BGRA and 16-bit
        frames are converted by the capture thread."""
        ...

    def position_seconds(self) -> float | None:
        """For files: the frame's time on the file's timeline."""
        ...

    def fps(self) -> float: ...

    def close(self) -> None: ...


class OpenCvSource:
    """One ``cv2.VideoCapture``; what differs per kind is how it is opened."""

    def __init__(self, config: Source, decode_threads: int | None = None) -> None:
        """``decode_threads``: FFmpeg's decoding threads when the config sets none (the daemon
        passes 1 when cameras outnumber cores); None leaves FFmpeg's choice."""
        self.config = config
        own = getattr(config, "decode_threads", None)
        self.decode_threads: int | None = own if own is not None else decode_threads
        self.live = not isinstance(config, FileSource)
        # A file played at its own frame rate (the capture thread paces it).
        self.realtime = isinstance(config, FileSource) and config.realtime
        self.description = describe(config)
        self._cap: cv2.VideoCapture | None = None
        self._grabbed = False  # a file's first frame, grabbed by open() to prove it decodes
        # A read this long means FFmpeg's interrupt fired: the frame, if any, is stale.
        self._stall_after: float | None = None
        if isinstance(config, StreamSource):
            self._stall_after = timeout_ms(config.read_timeout) / 1000.0

    def open(self) -> None:
        self.close()
        try:
            cap = self._open()
        except OSError as exc:  # e.g. ENAMETOOLONG from a path check
            raise SourceError(f"cannot open {self.description}: {exc.strerror or exc}") from exc
        except cv2.error as exc:
            raise SourceError(f"cannot open {self.description}: {exc}") from exc
        if not cap.isOpened():
            cap.release()
            if isinstance(self.config, FileSource):
                reason = probe_file(self.config.path)
                raise SourceError(f"cannot read video file {self.config.path}: {reason}", permanent=True)
            raise SourceError(f"cannot open {self.description}")
        if isinstance(self.config, FileSource):
            if not cap.grab():
                cap.release()
                reason = probe_file(self.config.path, opened=True)
                raise SourceError(f"cannot read video file {self.config.path}: {reason}", permanent=True)
            self._grabbed = True
        self._cap = cap

    def _threads(self) -> list[int]:
        """OpenCV open parameters for FFmpeg's decoding threads (none: FFmpeg's choice)."""
        return [cv2.CAP_PROP_N_THREADS, self.decode_threads] if self.decode_threads else []

    def _open(self) -> cv2.VideoCapture:
        cfg = self.config
        if isinstance(cfg, FileSource):
            check_file(cfg.path)
            return cv2.VideoCapture(cfg.path, cv2.CAP_FFMPEG, self._threads())
        if isinstance(cfg, StreamSource):
            params = [
                cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, timeout_ms(cfg.open_timeout),
                cv2.CAP_PROP_READ_TIMEOUT_MSEC, timeout_ms(cfg.read_timeout),
                *self._threads(),
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
        """The next frame, or None at the end; SourceError when a stream read stalled."""
        cap = self._cap
        if cap is None:
            return None
        if self._grabbed:
            self._grabbed = False
            ok, frame = cap.retrieve(into) if into is not None else cap.retrieve()
            return frame if ok and frame is not None else None
        started = time.monotonic()
        ok, frame = cap.read(into) if into is not None else cap.read()
        if self._stall_after is not None and time.monotonic() - started >= self._stall_after:
            raise SourceError(f"{self.description}: no frame within {self._stall_after:g} s (stream stalled)")
        if not ok or frame is None:
            return None
        return frame

    def skip(self) -> bool:
        """Decode the next frame without converting it (a still scene's frames that nobody
        looks at); False at the end; SourceError when a stream read stalled."""
        cap = self._cap
        if cap is None:
            return False
        if self._grabbed:  # the frame grabbed at open is the one skipped
            self._grabbed = False
            return True
        started = time.monotonic()
        ok = bool(cap.grab())
        if self._stall_after is not None and time.monotonic() - started >= self._stall_after:
            raise SourceError(f"{self.description}: no frame within {self._stall_after:g} s (stream stalled)")
        return ok

    def position_seconds(self) -> float | None:
        if self._cap is None or self.live:
            return None
        return float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0

    def fps(self) -> float:
        value = float(self._cap.get(cv2.CAP_PROP_FPS)) if self._cap is not None else 0.0
        return value if 0 < value < 1000 else 0.0

    def close(self) -> None:
        self._grabbed = False
        if self._cap is not None:
            self._cap.release()
            self._cap = None


def ring_policy(config: Source) -> Policy:
    """The ring policy a source gets unless its camera sets ``buffer``: ``latest`` for live
    sources and real-time files (capture never waits; frames the worker has not taken are
    dropped and counted), ``lossless`` for files read as fast as the pipeline goes."""
    if isinstance(config, FileSource) and not config.realtime:
        return "lossless"
    return "latest"


def timeout_ms(seconds: float) -> int:
    """Seconds as the int32 milliseconds OpenCV takes: clamped to [1, 2^31 - 1]; NaN and
    infinity mean the longest it takes."""
    if math.isnan(seconds):
        return _INT32_MAX
    return int(min(max(seconds * 1000.0, 1.0), _INT32_MAX))


def check_file(path: str) -> None:
    """Raise SourceError unless ``path`` is a non-empty regular file (permanent unless missing)."""
    try:
        st = os.stat(path)
    except OSError as exc:
        if exc.errno in _MISSING:
            raise SourceError(f"video file not found: {path}") from exc
        raise SourceError(f"cannot read video file {path}: {exc.strerror or exc}", permanent=True) from exc
    if not stat.S_ISREG(st.st_mode):
        kind = "a directory" if stat.S_ISDIR(st.st_mode) else "not a regular file"
        raise SourceError(f"cannot read video file {path}: {kind}", permanent=True)
    if st.st_size == 0:
        raise SourceError(f"cannot read video file {path}: 0 bytes", permanent=True)


_VIDEO_HANDLER = re.compile(rb"hdlr.{8}vide", re.DOTALL)  # an MP4 track whose handler is video
_MAX_MOOV = 64 << 20
_TEXT_CONTROLS = frozenset(b"\t\n\r\f")


def probe_file(path: str, opened: bool = False) -> str:
    """Why OpenCV could not open (or, ``opened``, decode a frame of) a video file, found from
    its size and first bytes and, for MP4/MOV, its top-level boxes. OpenCV does not say."""
    generic = (
        "opened but no frame could be decoded"
        if opened
        else "not a video OpenCV's FFmpeg backend can open (unknown format or corrupt)"
    )
    try:
        with open(path, "rb") as f:
            size = os.fstat(f.fileno()).st_size
            if size == 0:
                return "0 bytes"
            head = f.read(512)
            if head[4:8] == b"ftyp":
                return _probe_mp4(f, size) or generic
    except OSError as exc:
        return exc.strerror or str(exc)
    if all(b >= 0x20 or b in _TEXT_CONTROLS for b in head):
        return f"not a video: looks like text ({size} bytes)"
    return generic


def _probe_mp4(f: BinaryIO, size: int) -> str | None:
    """Walk the top-level ISO-BMFF boxes for the moov (index) box and a video track."""
    offset = 0
    while offset + 8 <= size:
        f.seek(offset)
        header = f.read(16)
        box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if box_size == 1 and len(header) == 16:
            box_size = int.from_bytes(header[8:16], "big")
        elif box_size == 0:
            box_size = size - offset
        if box_size < 8:
            return f"corrupt MP4: bad box size at byte {offset}"
        if kind == b"moov":
            if offset + box_size > size:
                return "MP4 truncated inside its moov (index) box"
            f.seek(offset)
            moov = f.read(min(box_size, _MAX_MOOV))
            return None if _VIDEO_HANDLER.search(moov) else "no video stream (MP4 without a video track)"
        offset += box_size
    return "cannot decode: moov atom not found (MP4 truncated before its index, or never finalised)"


def describe(config: Source) -> str:
    if isinstance(config, FileSource):
        return f"file {config.path}"
    if isinstance(config, StreamSource):
        return f"{config.type} {mask_url(config.url)}"
    if isinstance(config, V4l2Source):
        return f"v4l2 {config.device}"
    return "gstreamer pipeline"
