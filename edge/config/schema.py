"""JSON Schema of the config file, generated from the models (``edgetwin schema > config/schema.json``)."""

from __future__ import annotations

from typing import Any

from pydantic import TypeAdapter

from edge.config.models import GatewayConfig


def json_schema() -> dict[str, Any]:
    """JSON Schema of the config file (generated; see config/schema.json)."""
    schema = TypeAdapter(GatewayConfig).json_schema()
    schema["properties"].pop("source", None)
    schema["title"] = "edgetwin gateway configuration"
    return schema
