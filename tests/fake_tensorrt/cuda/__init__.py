"""FAKE ``cuda`` package (cuda-python) for tests only; see ``cuda._fake_runtime``."""
