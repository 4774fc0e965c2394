#!/usr/bin/env python3
"""Calibration and evaluation images for the PP-OCR detector: real photographs that ship with
scikit-image, with printed signs (Hershey text on a plain card) placed at random. The same
seed gives the same images.

    python tools/make_signs.py signs/calib --seed 1 --count 100
    python tools/make_signs.py signs/eval --seed 2 --count 30
"""

from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

WORDS = ["GATE 7 OPEN", "EXIT", "LOT 42", "edge runtime", "NO ENTRY", "DOCK B", "PALLET 0193", "KEEP CLEAR"]


def make_signs(folder: Path, seed: int, count: int) -> Path:
    """``count`` 640x480 JPEGs ``sign_NNN.jpg`` in ``folder``, one to three signs each."""
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    photos = [data.rocket(), data.coffee(), data.chelsea(), data.astronaut(), data.hubble_deep_field()]
    for i in range(count):
        image = cv2.resize(cv2.cvtColor(photos[i % len(photos)], cv2.COLOR_RGB2BGR), (640, 480))
        for _ in range(int(rng.integers(1, 4))):
            text = WORDS[int(rng.integers(len(WORDS)))]
            x, y = int(rng.integers(10, 300)), int(rng.integers(60, 440))
            scale = float(rng.uniform(0.8, 2.0))
            ink = (255, 255, 255) if rng.random() < 0.5 else (0, 0, 0)
            card = (255 - ink[0], 255 - ink[1], 255 - ink[2])
            top_left = (x - 10, y - int(40 * scale))
            bottom_right = (x + int(len(text) * 22 * scale), y + int(12 * scale))
            cv2.rectangle(image, top_left, bottom_right, card, -1)
            cv2.putText(image, text, (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, ink, max(1, int(2 * scale)))
        cv2.imwrite(str(folder / f"sign_{i:03d}.jpg"), image)
    return folder


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("folder", type=Path)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--count", type=int, default=100)
    args = p.parse_args()
    make_signs(args.folder, args.seed, args.count)


if __name__ == "__main__":
    main()
