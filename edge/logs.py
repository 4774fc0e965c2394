"""Logging: plain lines on stderr (journald adds time and unit) or JSON lines; URL credentials
are masked in every record before it is formatted. OpenCV's and FFmpeg's own stderr messages are
kept to errors (``quiet_opencv``), and a progress line (``progress``) is ended before a log
line is written under it."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from typing import Any

from edge.capture.redact import RedactingFilter


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        doc = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        return json.dumps(doc, ensure_ascii=False)


class _Line:
    """Whether a progress line without its newline is on stderr."""

    lock = threading.Lock()
    open = False


def progress(text: str, done: bool = False) -> None:
    """Show ``text`` as the current progress line on stderr (redrawn in place: a carriage
    return first); ``done`` ends the line. A log record written meanwhile ends the line first."""
    with _Line.lock:
        sys.stderr.write("\r" + text + ("\n" if done else ""))
        sys.stderr.flush()
        _Line.open = not done


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record comes (a harness or a redirect may
    swap it; a handler bound to a closed stream would fail on every line)."""

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass

    def emit(self, record: logging.LogRecord) -> None:
        with _Line.lock:
            if _Line.open:
                sys.stderr.write("\n")
                _Line.open = False
            super().emit(record)


def quiet_opencv() -> None:
    """Keep OpenCV's log ('[ WARN:0@0.02] global cap.cpp:...') and FFmpeg's ('[mov,mp4,... @ 0x..]
    moov atom not found') to errors and nothing: they bypass logging, interleave with edge's
    lines, and repeat what edge reports in one line. Set ``OPENCV_LOG_LEVEL`` or
    ``OPENCV_FFMPEG_LOGLEVEL`` (FFmpeg's numeric level, e.g. 32) in the environment to see them.
    FFmpeg's level is read when OpenCV first opens a video, so this runs before any capture."""
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    cv2 = sys.modules.get("cv2")  # imported already: its log level was read at import
    if cv2 is not None and os.environ["OPENCV_LOG_LEVEL"].upper() == "ERROR":
        cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def setup_logging(level: str | None, fmt: str = "text") -> None:
    """Route every record to stderr as text or JSON at ``level`` (default info); quiet OpenCV."""
    quiet_opencv()
    handler = StderrHandler()
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel((level or "info").upper())
