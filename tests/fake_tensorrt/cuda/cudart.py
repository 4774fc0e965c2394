"""FAKE ``cuda.cudart`` (cuda-python before 12.6): the same fake as ``cuda.bindings.runtime``."""

from cuda._fake_runtime import *  # noqa: F403
