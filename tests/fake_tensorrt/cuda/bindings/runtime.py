"""FAKE ``cuda.bindings.runtime``: the same fake as ``cuda.cudart`` (see ``cuda._fake_runtime``)."""

from cuda._fake_runtime import *  # noqa: F403
