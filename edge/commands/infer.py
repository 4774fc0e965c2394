"""``edge infer``: one model on still images, video files or stream URLs; text or JSON lines,
optional annotated copies (JPEGs for images, an MP4 per video).

An input is a video when it is a URL (``scheme://``) or its name ends in a video extension
(``VIDEO_EXTENSIONS``), an image otherwise: decided from the name, so a video is never decoded
as an image first. One JSON line per detection; an image or sampled frame without detections
still gets one line, ``{"image": ..., "detections": 0}``. Video lines carry ``"frame"`` (index
from 0) and ``"t"`` (seconds). An unreadable input is one ``edge: error:`` line on stderr; the
other inputs go on, and the exit code is 1.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import cv2
import numpy as np

from edge.annotate import annotate
from edge.capture.redact import mask_url
from edge.inference import LoadedModel, load_model
from edge.runners.base import RunnerOptions
from edge.types import Detections

VIDEO_EXTENSIONS = frozenset(
    [".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg", ".ts", ".mts", ".m2ts", ".flv", ".wmv",
     ".3gp", ".ogv", ".mjpeg", ".mjpg", ".h264", ".h265", ".hevc", ".y4m"]
)  # fmt: skip
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


class InputError(Exception):
    """An input that cannot be read; the message is the whole line after ``edge: error:``."""


def is_video(text: str) -> bool:
    """A URL or a file name with a video extension (case-insensitive)."""
    return bool(_URL.match(text)) or Path(text).suffix.lower() in VIDEO_EXTENSIONS


def output_stem(text: str) -> str:
    """The name annotated copies get: the file's stem, or the URL path's last part."""
    if _URL.match(text):
        return Path(urlsplit(text).path).stem or "stream"
    return Path(text).stem


def detection_records(image: str, dets: Detections, model: LoadedModel, **where: Any) -> list[dict[str, Any]]:
    """One JSON-ready dict per detection; ``where`` (``frame``, ``t``) follows ``image``."""
    records = []
    for i in range(len(dets)):
        rec: dict[str, Any] = {
            "image": image,
            **where,
            "label": model.label(int(dets.class_id[i])),
            "class_id": int(dets.class_id[i]),
            "score": round(float(dets.score[i]), 4),
            "box": [round(float(v), 1) for v in dets.xyxy[i]],
        }
        if dets.keypoints is not None:
            rec["keypoints"] = [[round(float(x), 1), round(float(y), 1)] for x, y in dets.keypoints[i]]
        records.append(rec)
    return records


@dataclass(frozen=True)
class Sampled:
    """A frame of a video input that was run: its index from 0 and its time in seconds."""

    index: int
    t: float
    frame: np.ndarray


def sample_frames(cap: cv2.VideoCapture, every: int) -> Iterator[Sampled]:
    """Frames 0, every, 2*every, ... of an opened capture (the others are grabbed, not decoded
    to BGR). ``t`` is the backend's timestamp, else index / fps."""
    fps = cap.get(cv2.CAP_PROP_FPS)
    index = 0
    while True:
        if index % every:
            if not cap.grab():
                return
        else:
            ok, frame = cap.read()
            if not ok:
                return
            msec = cap.get(cv2.CAP_PROP_POS_MSEC)
            t = msec / 1000 if msec > 0 or index == 0 else (index / fps if fps > 0 else 0.0)
            yield Sampled(index, t, frame)
        index += 1


class Printer:
    """Text or JSON lines on stdout for each image or sampled frame."""

    def __init__(self, model: LoadedModel, as_json: bool) -> None:
        self.model, self.as_json = model, as_json

    def image(self, name: str, dets: Detections) -> None:
        records = detection_records(name, dets, self.model)
        if self.as_json:
            for line in records or [{"image": name, "detections": 0}]:
                print(json.dumps(line))
            return
        print(f"{name}: {len(records)} detection(s)")
        for rec in records:
            print(f"  {rec['label']:<12} {rec['score']:.3f}  box {rec['box']}")

    def frame(self, name: str, s: Sampled, dets: Detections) -> None:
        where = {"frame": s.index, "t": round(s.t, 3)}
        records = detection_records(name, dets, self.model, **where)
        if self.as_json:
            for line in records or [{"image": name, **where, "detections": 0}]:
                print(json.dumps(line))
            return
        for rec in records:
            head = f"{name} frame {s.index} t {s.t:.3f}s"
            print(f"{head}: {rec['label']:<12} {rec['score']:.3f}  box {rec['box']}")

    def video_summary(self, name: str, sampled: int, with_detections: int, detections: int) -> None:
        if not self.as_json:
            counts = f"{sampled} frame(s) run, {with_detections} with detections"
            print(f"{name}: {counts}, {detections} detection(s)")


def infer_image(model: LoadedModel, text: str, printer: Printer, out_dir: Path | None) -> None:
    frame = cv2.imread(text, cv2.IMREAD_COLOR)
    if frame is None:
        reason = "no such file" if not Path(text).exists() else "cannot read as an image"
        raise InputError(f"{text}: {reason}")
    dets = model.infer(frame)
    printer.image(text, dets)
    if out_dir is not None:
        cv2.imwrite(str(out_dir / f"{output_stem(text)}.jpg"), annotate(frame, dets, model.labels))


def infer_video(model: LoadedModel, text: str, every: int, printer: Printer, out_dir: Path | None) -> None:
    shown = mask_url(text)
    if not _URL.match(text) and not Path(text).is_file():
        raise InputError(f"{shown}: no such file")
    cap = cv2.VideoCapture(text, cv2.CAP_FFMPEG)
    writer: cv2.VideoWriter | None = None
    sampled = with_detections = detections = 0
    try:
        if not cap.isOpened():
            raise InputError(f"{shown}: cannot open as a video")
        for s in sample_frames(cap, every):
            dets = model.infer(s.frame)
            printer.frame(shown, s, dets)
            sampled += 1
            with_detections += len(dets) > 0
            detections += len(dets)
            if out_dir is not None:
                if writer is None:
                    writer = _writer(out_dir / f"{output_stem(text)}.mp4", cap, every, s.frame)
                writer.write(annotate(s.frame, dets, model.labels))
    finally:
        cap.release()
        if writer is not None:
            writer.release()
    if sampled == 0:
        raise InputError(f"{shown}: no frame could be read (not a video, or an empty one)")
    printer.video_summary(shown, sampled, with_detections, detections)


def _writer(path: Path, cap: cv2.VideoCapture, every: int, first: np.ndarray) -> cv2.VideoWriter:
    fps = cap.get(cv2.CAP_PROP_FPS)
    rate = fps / every if fps > 0 else 25.0 / every
    height, width = first.shape[:2]
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), max(rate, 1.0), (width, height))
    if not writer.isOpened():
        raise InputError(f"{path}: cannot write an MP4 video here")
    return writer


def cmd_infer(args: argparse.Namespace) -> int:
    size = args.input_size
    options = RunnerOptions(
        device=args.device, precision=args.precision, threads=args.threads,
        graph_hw=(size[1], size[0]) if size else None,
    )  # fmt: skip
    overrides = {"score_threshold": args.score} if args.score is not None else None
    model = load_model(args.model, args.runner, options=options, overrides=overrides)
    print(
        f"model {model.package.name} on {model.selection.backend} ({model.selection.path.name}), "
        f"loaded in {model.load_seconds * 1000:.0f} ms",
        file=sys.stderr,
    )
    out_dir: Path | None = args.save_annotated
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
    printer = Printer(model, args.json)
    failed = 0
    try:
        for text in args.inputs:
            try:
                if is_video(text):
                    infer_video(model, text, args.every, printer, out_dir)
                else:
                    infer_image(model, text, printer, out_dir)
            except InputError as exc:
                sys.stdout.flush()
                print(f"edge: error: {exc}", file=sys.stderr)
                failed += 1
    finally:
        model.close()
    return 1 if failed else 0
