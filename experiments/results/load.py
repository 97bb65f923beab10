"""Reading results.json back: validated into `Results`, every offending key named."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from experiments.results.schema import SCHEMA_VERSION, Results


class ResultsError(ValueError):
    """A results.json that does not match the schema; the message names every offending key."""


def _model_of(annotation: Any) -> Any:
    """The type inside `Annotated[...]` and `X | None`, so a field's block can be looked into."""
    while True:
        if get_origin(annotation) is Annotated:
            annotation = get_args(annotation)[0]
        elif get_origin(annotation) in (Union, UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            if len(members) != 1:
                return annotation
            annotation = members[0]
        else:
            return annotation


def allowed_keys(loc: Sequence[str | int]) -> list[str]:
    """The keys the block at `loc` (a key path from the top) accepts; [] for a mapping's keys."""
    node = _model_of(Results)
    for part in loc:
        if isinstance(node, type) and issubclass(node, BaseModel):
            field = node.model_fields.get(str(part))
            if field is None:
                return []
            node = _model_of(field.annotation)
        elif get_origin(node) in (dict, list):
            node = _model_of(get_args(node)[-1])
        else:
            return []
    return list(node.model_fields) if isinstance(node, type) and issubclass(node, BaseModel) else []


def _describe(error: Any) -> str:
    """One line per validation error: the dotted key path, then what is wrong with it."""
    loc = [str(part) for part in error["loc"]]
    if loc[-1:] == ["[key]"]:
        return f"{'.'.join(loc[:-2])}: key {loc[-2]!r}: {error['msg']}"
    path = ".".join(loc) or "results"
    if error["type"] == "extra_forbidden":
        allowed = allowed_keys(error["loc"][:-1])
        return f"{path}: unknown key" + (f"; allowed keys: {', '.join(allowed)}" if allowed else "")
    if error["type"] == "missing":
        return f"{path}: missing"
    message = str(error["msg"]).removeprefix("Value error, ")
    shown = error.get("input")
    got = "" if isinstance(shown, dict | list) else f" (got {shown!r})"
    return f"{path}: {message}{got}"


def parse_results(raw: object, origin: str = "results") -> Results:
    """Validate results.json's content; a ResultsError names every offending key."""
    if isinstance(raw, dict) and raw.get("schema_version") not in (None, SCHEMA_VERSION):
        raise ResultsError(
            f"{origin} has schema_version {raw['schema_version']!r}; "
            f"this fedscore reads version {SCHEMA_VERSION}"
        )
    try:
        return Results.model_validate(raw)
    except ValidationError as exc:
        lines = "\n  ".join(_describe(e) for e in exc.errors())
        raise ResultsError(f"invalid {origin}:\n  {lines}") from None


def load_results(path: Path) -> Results:
    """Read and validate one results.json."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        raise ResultsError(f"results file not found: {path}") from None
    except json.JSONDecodeError as exc:
        raise ResultsError(f"{path} is not valid JSON: {exc}") from None
    return parse_results(raw, origin=str(path))
