"""edge: offline-first inference runtime for cameras and embedded boards."""

from __future__ import annotations

__version__ = "0.1.0"
