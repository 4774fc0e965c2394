"""The measuring process of ``runner: auto`` (started by ``edge.inference.measure_in_child``).

Reads a pickled (package, hardware, options, overrides, int8) request on stdin, times the
candidates with ``autotune.measure`` and writes the pickled ``Choice`` (or None) on stdout.
Only the daemon that started it writes its stdin: the pickle never comes from elsewhere.
"""

from __future__ import annotations

import copyreg
import io
import os
import pickle
import sys
import types
from collections.abc import Mapping
from typing import Any

from edge.models import ModelPackage
from edge.runners.autotune import Choice
from edge.runners.base import RunnerOptions
from edge.runners.select import HardwareInfo


def _read_only(items: dict[Any, Any]) -> Mapping[Any, Any]:
    return types.MappingProxyType(items)


def _proxy_reduce(m: types.MappingProxyType[Any, Any]) -> tuple[Any, tuple[dict[Any, Any]]]:
    return _read_only, (dict(m),)


def encode(
    package: ModelPackage,
    hw: HardwareInfo,
    options: RunnerOptions,
    overrides: Mapping[str, Any] | None,
    int8: bool | None,
) -> bytes:
    """The request, pickled (ModelPackage's read-only mappings go as copies)."""
    table = copyreg.dispatch_table.copy()
    table[types.MappingProxyType] = _proxy_reduce
    buf = io.BytesIO()
    pickler = pickle.Pickler(buf, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = table
    pickler.dump((package, hw, options, dict(overrides or {}), int8))
    return buf.getvalue()


def decode(answer: bytes) -> Choice | None:
    choice = pickle.loads(answer)  # noqa: S301 - written by the child this process started
    return choice if isinstance(choice, Choice) else None


def main() -> None:
    from edge.inference import trial_loader
    from edge.runners.autotune import measure

    # The answer goes to the real stdout; whatever a backend library prints goes to stderr.
    answer = os.fdopen(os.dup(1), "wb")
    os.dup2(2, 1)
    package, hw, options, overrides, int8 = pickle.loads(sys.stdin.buffer.read())  # noqa: S301
    choice = measure(package, hw, trial_loader(package, options, overrides), int8)
    answer.write(pickle.dumps(choice, protocol=pickle.HIGHEST_PROTOCOL))
    answer.close()
    sys.stderr.flush()
    # No interpreter finalisation: tearing down OpenVINO's objects there can abort, which would
    # throw away an answer already given (see edge.cli.entry).
    os._exit(0)


if __name__ == "__main__":
    main()
