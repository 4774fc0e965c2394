"""Config: schema (pydantic v2), YAML loading with file:line errors, and the preflight checks
of what ``edge run`` needs from this machine (files, folders, addresses, models)."""

from edge.config.loader import LoadedConfig, SourceMap, load_config, parse_config
from edge.config.preflight import preflight
from edge.config.schema import EdgeConfig

__all__ = ["EdgeConfig", "LoadedConfig", "SourceMap", "load_config", "parse_config", "preflight"]
