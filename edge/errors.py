"""Exceptions that reach the user: each message says what was wrong and where."""

from __future__ import annotations


class EdgeError(Exception):
    """Base class; the CLI prints the message (no traceback) and exits non-zero."""

    exit_code = 1


class ConfigError(EdgeError):
    """An invalid config. ``issues`` holds one ``file:line: path: message`` string per problem."""

    exit_code = 2

    def __init__(self, issues: list[str]) -> None:
        self.issues = issues
        super().__init__("\n".join(issues))


class ModelError(EdgeError):
    """A model package or file that is missing, corrupt or not what its manifest says."""


class BackendUnavailable(EdgeError):
    """A runner backend whose library is not installed; the message names the extra."""


class FetchError(EdgeError):
    """Downloading or verifying pinned model files failed."""


class QuantizeError(EdgeError):
    """``edge quantize`` cannot go on: bad calibration/evaluation data, a model it cannot
    quantise, or a missing extra."""


class GateFailed(EdgeError):
    """The quantised model disagrees with the float one more than ``--bar`` allows."""

    exit_code = 3
