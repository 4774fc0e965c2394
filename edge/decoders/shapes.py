"""What a decoder expects of a model's outputs, checked once at load time.

Each decoder describes its outputs as ``OutputRule`` rows: a role, the shapes that fit it
(``None`` in a pattern or in an actual shape matches any size), and either the output index
the decoder reads or ``None`` when it finds the output by shape. ``check_outputs`` matches
the rows against the output shapes seen at warm-up (or the runner's ``TensorSpec`` shapes)
and raises a one-line ``ModelError`` naming the file, the output and what was expected, so a
model that does not fit its declared decoder fails at load instead of at the first frame.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge.errors import ModelError

Dim = int | None
Shape = tuple[Dim, ...]


@dataclass(frozen=True)
class OutputRule:
    """One output a decoder reads: ``role`` in words, the ``patterns`` that fit, and its index
    (``None``: whichever output not claimed by another rule fits)."""

    role: str
    patterns: tuple[Shape, ...]
    index: int | None = None

    def fits(self, shape: Shape) -> bool:
        return any(_fits(pattern, shape) for pattern in self.patterns)

    def expected(self) -> str:
        return " or ".join(_show(p) for p in self.patterns)


def _fits(pattern: Shape, shape: Shape) -> bool:
    if len(pattern) != len(shape):
        return False
    return all(p is None or s is None or p == s for p, s in zip(pattern, shape, strict=True))


def _show(shape: Shape) -> str:
    dims = ["N" if d is None else str(d) for d in shape]
    return f"({dims[0]},)" if len(dims) == 1 else f"({', '.join(dims)})"


def rows(channels: int) -> tuple[Shape, ...]:
    """A YOLO head's candidates: ``channels`` per row, either orientation, batch optional."""
    return ((1, channels, None), (1, None, channels), (channels, None), (None, channels))


def vector(size: int) -> tuple[Shape, ...]:
    """One value per class or anchor, with or without batch and trailing unit axes."""
    return ((size,), (1, size), (size, 1), (1, size, 1), (1, size, 1, 1))


def check_outputs(
    decoder: str,
    rules: Sequence[OutputRule],
    shapes: Sequence[Shape],
    names: Sequence[str],
    path: Path,
) -> None:
    """Raise ``ModelError`` unless every rule finds an output of a fitting shape."""
    claimed: set[int] = set()
    for rule in rules:
        if rule.index is not None:
            if rule.index >= len(shapes):
                raise ModelError(
                    f"{path}: the {decoder} decoder reads output {rule.index} ({rule.role}, "
                    f"{rule.expected()}) but the model has {len(shapes)} output(s)"
                )
            shape = shapes[rule.index]
            if not rule.fits(shape):
                raise ModelError(
                    f"{path}: output {rule.index} {names[rule.index]!r} has shape {_show(shape)}; "
                    f"the {decoder} decoder expects {rule.role} of shape {rule.expected()}"
                )
            claimed.add(rule.index)
            continue
        found = next((i for i, s in enumerate(shapes) if i not in claimed and rule.fits(s)), None)
        if found is None:
            seen = ", ".join(f"{n!r} {_show(s)}" for n, s in zip(names, shapes, strict=True))
            raise ModelError(
                f"{path}: no output fits the {decoder} decoder's {rule.role} "
                f"({rule.expected()}); the outputs are {seen}"
            )
        claimed.add(found)
