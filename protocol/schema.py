"""JSON Schema export of every wire message and record, for reviewers and other implementations."""

from __future__ import annotations

import json
from pathlib import Path

from pydantic import BaseModel

from protocol.config import SecAggConfig
from protocol.identity import IdentityManifest
from protocol.messages import MESSAGE_TYPES
from protocol.transcript import ServerView, TranscriptEntry

SCHEMA_MODELS: tuple[type[BaseModel], ...] = (
    SecAggConfig,
    IdentityManifest,
    *MESSAGE_TYPES,
    TranscriptEntry,
    ServerView,
)
"""Every model whose schema is exported: the config, the identity manifest (malicious mode), the
ten messages, the two records."""


def message_schemas() -> dict[str, dict[str, object]]:
    """Model name -> JSON Schema (draft 2020-12, as pydantic writes it)."""
    schemas: dict[str, dict[str, object]] = {}
    for model in SCHEMA_MODELS:
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"fedscore-secagg/{model.__name__}.schema.json"
        schemas[model.__name__] = schema
    return schemas


def export_schemas(directory: Path) -> list[Path]:
    """Write one `<Model>.schema.json` per model into `directory`; returns the paths written."""
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in message_schemas().items():
        path = directory / f"{name}.schema.json"
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n")
        written.append(path)
    return written
