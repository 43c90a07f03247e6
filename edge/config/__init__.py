"""The gateway's configuration: TOML -> validated, frozen models, with every error located.

Modules, one job each: ``models`` (the sections and ``GatewayConfig``), ``loader`` (TOML -> models,
``ConfigError``), ``checks`` (cross-references), ``csv_tags`` (tags from CSV files), ``includes`` (tag files,
``tags_from``), ``units`` (a tag list repeated on each unit of a multi-unit device), ``schema``
(JSON Schema), ``locate`` (key -> line). Device settings are the drivers' own models
(``drivers.DRIVER_KINDS``).
"""

from edge.config.loader import ConfigError, load_config, parse_config
from edge.config.models import (
    AssetConfig,
    DetectorConfig,
    DeviceConfig,
    DiagnosisConfig,
    GatewayConfig,
    GatewaySection,
    HistorySection,
    OpcUaSection,
    SignalConfig,
    SimulatorSection,
    UserConfig,
)
from edge.config.schema import json_schema

__all__ = [
    "AssetConfig",
    "ConfigError",
    "DetectorConfig",
    "DeviceConfig",
    "DiagnosisConfig",
    "GatewayConfig",
    "GatewaySection",
    "HistorySection",
    "OpcUaSection",
    "SignalConfig",
    "SimulatorSection",
    "UserConfig",
    "json_schema",
    "load_config",
    "parse_config",
]
