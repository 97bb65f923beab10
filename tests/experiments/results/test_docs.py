"""docs/RESULTS.md is the reference generated from the model: every field, no stale one."""

from pathlib import Path

from experiments.results.docs import REGENERATE, documented_models, results_markdown

RESULTS_MD = Path(__file__).parents[3] / "docs" / "RESULTS.md"


def test_every_field_of_every_block_has_a_docstring() -> None:
    undocumented = [
        f"{model.__name__}.{name}"
        for model in documented_models()
        for name, field in model.model_fields.items()
        if not field.description
    ]

    assert undocumented == []


def test_docs_results_md_is_what_the_model_generates() -> None:
    generated = results_markdown()

    assert RESULTS_MD.read_text() == generated, f"docs/RESULTS.md is stale: run `{REGENERATE}`"


def test_the_docs_name_every_key_of_every_block() -> None:
    text = RESULTS_MD.read_text()

    missing = [
        f"{model.__name__}.{name}"
        for model in documented_models()
        for name in model.model_fields
        if f"| `{name}` |" not in text.split(f"## {model.__name__}\n", 1)[-1].split("\n## ")[0]
    ]

    assert missing == []
