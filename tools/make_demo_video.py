#!/usr/bin/env python3
"""Compose the reproducible demo clip: 1280x720 H.264, 25 fps, 20 s, from real photographs
that ship with scikit-image.

The astronaut portrait (a real person) walks in from the left, through a zone marked on the
right (the zone of ``configs/demo.yaml``), out, and back again; the background is the
``rocket`` photograph. Same bytes every run for the same scikit-image and ffmpeg.

    python tools/make_demo_video.py demo/demo.mp4
"""

from __future__ import annotations

import argparse
import itertools
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np

W, H, FPS, SECONDS = 1280, 720, 25, 20
# The zone drawn on the clip; configs/demo.yaml uses the same polygon (normalised).
ZONE = [(0.55, 0.25), (0.95, 0.25), (0.95, 1.0), (0.55, 1.0)]
SPRITE_H = 480


def _assets() -> tuple[np.ndarray, np.ndarray]:
    import skimage.data

    background = cv2.resize(cv2.cvtColor(skimage.data.rocket(), cv2.COLOR_RGB2BGR), (W, H), cv2.INTER_AREA)
    person = cv2.cvtColor(skimage.data.astronaut(), cv2.COLOR_RGB2BGR)
    person = cv2.resize(person, (SPRITE_H, SPRITE_H), interpolation=cv2.INTER_AREA)
    return background, person


def sprite_x(t: float) -> float:
    """Left edge of the person at time t: in from the left, through the zone, out, and back."""
    keys = [(0.0, -520.0), (2.0, -520.0), (7.0, 780.0), (10.0, 780.0), (13.0, 1300.0), (14.0, 1300.0),
            (16.5, 700.0), (19.0, -520.0), (20.0, -520.0)]  # fmt: skip
    for (t0, x0), (t1, x1) in itertools.pairwise(keys):
        if t <= t1:
            return x0 + (x1 - x0) * (t - t0) / (t1 - t0)
    return keys[-1][1]


def render(t: float, background: np.ndarray, person: np.ndarray | None) -> np.ndarray:
    frame = background.copy()
    poly = (np.array(ZONE) * [W, H]).astype(np.int32)
    overlay = frame.copy()
    cv2.fillPoly(overlay, [poly], (0, 200, 255))
    cv2.addWeighted(overlay, 0.15, frame, 0.85, 0, dst=frame)
    cv2.polylines(frame, [poly], True, (0, 200, 255), 3)
    cv2.putText(
        frame, "ZONE", (poly[0][0] + 10, poly[0][1] + 40), cv2.FONT_HERSHEY_SIMPLEX, 1.2, (0, 200, 255), 3
    )
    x = round(sprite_x(t))
    y = H - SPRITE_H
    x0, x1 = max(x, 0), min(x + SPRITE_H, W)
    if person is not None and x1 > x0:
        frame[y:H, x0:x1] = person[:, x0 - x : x1 - x]
    cv2.putText(frame, f"t={t:5.2f}s", (20, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
    return frame


def make(out: Path, still: bool = False) -> Path:
    """Write the clip to ``out``; ``still``: the same scene without the person (nothing moves
    but the clock in the corner), for motion gating."""
    background, person = _assets()
    out.parent.mkdir(parents=True, exist_ok=True)
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise SystemExit("ffmpeg not found: install it (apt-get install ffmpeg) to encode H.264")
    argv = [
        ffmpeg, "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "bgr24", "-s", f"{W}x{H}",
        "-r", str(FPS), "-i", "-", "-c:v", "libx264", "-preset", "veryfast", "-crf", "23",
        "-pix_fmt", "yuv420p", "-g", str(FPS * 2), "-threads", "1", "-bitexact", str(out),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdin=subprocess.PIPE)
    assert proc.stdin is not None
    for i in range(FPS * SECONDS):
        proc.stdin.write(render(i / FPS, background, None if still else person).tobytes())
    proc.stdin.close()
    if proc.wait() != 0:
        raise SystemExit(f"ffmpeg failed with exit code {proc.returncode}")
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("out", type=Path, nargs="?", default=Path("demo/demo.mp4"))
    parser.add_argument("--still", action="store_true", help="the scene without the person")
    args = parser.parse_args()
    path = make(args.out, still=args.still)
    print(f"{path}: {W}x{H} H.264, {FPS} fps, {SECONDS} s", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
