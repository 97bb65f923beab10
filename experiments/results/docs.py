"""docs/RESULTS.md, generated from the models of results.json.

One section per model, in the order a reader meets them from the top level, each a table of
its keys with their type and the field's docstring. `fedscore results-schema --markdown` prints
it; tests/experiments/test_results.py fails when docs/RESULTS.md differs.
"""

from __future__ import annotations

import inspect
import json
from types import UnionType
from typing import Annotated, Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

from experiments.config import ExperimentConfig
from experiments.results.schema import SCHEMA_VERSION, Keys, Results, Summary

REGENERATE = "fedscore results-schema --markdown > docs/RESULTS.md"

_SCALARS = {float: "number", int: "integer", str: "string", bool: "boolean"}

CSV_SECTION = """\
## results.csv

Long form, one row per figure and seed: `scope,metric,seed,value`, where `scope` is a regime,
`exposure`, `server_view` or `inference`, and `metric` the dotted key path below it
(`utility.auc`); an empty `value` is a null."""


def _is_model(annotation: object) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _anchor(model: type[BaseModel]) -> str:
    return f"[{model.__name__}](#{model.__name__.lower()})"


def type_text(annotation: Any) -> str:
    """How a field's type reads in the tables: `{*firm*: Utility}`, `number or null`, ..."""
    origin, args = get_origin(annotation), get_args(annotation)
    if origin is Annotated:
        return type_text(args[0])
    if origin in (Union, UnionType):
        return " or ".join("null" if a is type(None) else type_text(a) for a in args)
    if origin is dict:
        keys = next(
            (m.name for m in getattr(args[0], "__metadata__", ()) if isinstance(m, Keys)), ""
        )
        if not keys:
            raise ValueError(f"the keys of {annotation} need a Keys(...) name for the docs")
        return f"{{*{keys}*: {type_text(args[1])}}}"
    if origin is list:
        return f"[{type_text(args[0])}, …]"
    if origin is tuple:
        return f"[{', '.join(type_text(a) for a in args)}]"
    if origin is Literal:
        return " or ".join(f"`{json.dumps(a)}`" for a in args)
    if annotation is ExperimentConfig:
        return "[ExperimentConfig](../experiments/config.py)"
    if _is_model(annotation):
        return _anchor(annotation)
    return _SCALARS[annotation]


def _models_in(annotation: Any) -> list[type[BaseModel]]:
    if _is_model(annotation):
        return [annotation]
    return [m for a in get_args(annotation) for m in _models_in(a)]


def documented_models() -> list[type[BaseModel]]:
    """Every model of results.json in reading order: Results, Summary, then depth first.

    The experiment config is documented where it is defined, so it is not walked into.
    """
    order: list[type[BaseModel]] = [Results, Summary]

    def visit(model: type[BaseModel]) -> None:
        for field in model.model_fields.values():
            for inner in _models_in(field.annotation):
                if inner not in order and inner is not ExperimentConfig:
                    order.append(inner)
                    visit(inner)

    visit(Results)
    return order


def _cell(text: str) -> str:
    return " ".join(text.split()).replace("|", "\\|")


def _section(model: type[BaseModel]) -> str:
    doc = inspect.cleandoc(model.__doc__ or "")
    rows = []
    for name, field in model.model_fields.items():
        if not field.description:
            raise ValueError(f"{model.__name__}.{name} has no docstring")
        optional = ", may be absent" if field.exclude_if is not None else ""
        kind = type_text(field.annotation).removesuffix(" or null") if optional else None
        rows.append(
            f"| `{name}` | {kind or type_text(field.annotation)}{optional} "
            f"| {_cell(field.description)} |"
        )
    table = "\n".join(["| key | type | meaning |", "|---|---|---|", *rows])
    return f"## {model.__name__}\n\n{doc}\n\n{table}"


def results_markdown() -> str:
    """The whole of docs/RESULTS.md."""
    intro = (
        f"# results.json, schema version {SCHEMA_VERSION}\n\n"
        "Generated from the models in `experiments/results/schema.py`; do not edit by hand, run\n"
        f"`{REGENERATE}`.\n"
        "`fedscore results-schema` prints the same schema as JSON Schema, and\n"
        "`experiments.results.load_results` reads a results.json back, naming any key that does\n"
        "not fit. In the type column, {*firm*: Utility} maps each firm's name to a Utility."
    )
    sections = [_section(model) for model in documented_models()]
    return "\n\n".join([intro, *sections, CSV_SECTION]) + "\n"
