"""Config: schema (pydantic v2) and YAML loading with file:line errors."""

from edge.config.loader import LoadedConfig, SourceMap, load_config, parse_config
from edge.config.schema import EdgeConfig

__all__ = ["EdgeConfig", "LoadedConfig", "SourceMap", "load_config", "parse_config"]
