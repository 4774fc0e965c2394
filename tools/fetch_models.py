#!/usr/bin/env python3
"""Fetch the pinned real models (same as `edge models fetch`): BlazeFace and the BlazePose
detector from mediapipe 0.10.21, PP-OCRv4 from rapidocr-onnxruntime 1.4.4, sha256-checked."""

from __future__ import annotations

import sys

from edge.cli import main

if __name__ == "__main__":
    sys.exit(main(["models", "fetch", *sys.argv[1:]]))
