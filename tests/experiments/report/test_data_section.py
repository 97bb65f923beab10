"""The report shows its data: the file and its SHA-256, the split, each firm's rows, default
rate and per-firm AUC with n, every fallback; and makes no statement the data cannot support."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.report.data import fallback_list
from experiments.report.html import render_html, summary_paragraphs
from experiments.report.plots import exposure_figure

ROWS = 240


def _table(path: Path) -> None:
    rng = np.random.default_rng(9)
    income = rng.lognormal(10, 0.5, ROWS)
    late = rng.poisson(1.0, ROWS)
    risk = late - 2 * (np.log(income) - 10) + rng.normal(0, 1, ROWS)
    pd.DataFrame(
        {
            "region": np.tile(["north", "south", "east", "west"], ROWS // 4),
            "age": rng.integers(18, 80, ROWS),
            "minority": rng.choice(["yes", "no"], ROWS, p=[0.3, 0.7]),
            "income": income,
            "late_payments": late,
            "status": np.where(risk > np.quantile(risk, 0.7), "bad", "good"),
        }
    ).to_csv(path, index=False)


def _run(tmp_path: Path, data: dict[str, Any], regimes: dict[str, bool]) -> dict[str, Any]:
    config = parse_config(
        {
            "experiment": {"name": "data-section", "seeds": [0, 1], "test_fraction": 0.25},
            "data": data,
            "training": {"epochs": 3, "batch_size": 64},
            "regimes": regimes,
            "membership": {"pool": 60, "shadows": 0},
        }
    )
    return run_experiment(config, tmp_path / "run").as_dict()


@pytest.fixture(scope="module")
def table_results(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("table")
    _table(folder / "loans.csv")
    data = {
        "source": "file",
        "path": str(folder / "loans.csv"),
        "label": "status",
        "positive": "bad",
        "sensitive": ["minority"],
        "quasi_identifiers": ["age"],
        "partition": "region",
    }
    return folder / "loans.csv", _run(folder, data, {"unified": True, "local_only": True})


def test_results_record_the_file_the_split_and_each_firm(
    table_results: tuple[Path, dict[str, Any]],
) -> None:
    path, results = table_results

    data = results["data"]

    assert data["file_name"] == "loans.csv"
    assert data["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert data["partition"] == {"method": "column", "column": "region"}
    assert set(data["firms"]) == {"north", "south", "east", "west"}
    assert sum(f["rows"]["mean"] for f in data["firms"].values()) == ROWS
    for seed_index, pairs in enumerate(h["pairs"] for h in results["holdout"]):
        heldout = [f["heldout"]["per_seed"][seed_index] for f in data["firms"].values()]
        assert sum(heldout) == pairs
    assert "fallbacks" not in results


def test_the_report_opens_with_the_data_and_makes_no_cross_domain_claim(
    table_results: tuple[Path, dict[str, Any]],
) -> None:
    _, results = table_results

    page = render_html(results)

    data = page[page.index("<h2>Data</h2>") : page.index("What each regime reveals")]
    assert results["data"]["sha256"] in data
    assert "one firm per value of &#x27;region&#x27;" in data
    assert "held-out rows (defaults)" in data and "AUC: Unified national score" in data
    north = results["data"]["firms"]["north"]
    assert f"<td>north</td><td>{north['rows']['mean']:,.0f}</td>" in data
    assert "Fallbacks: none" in data
    assert "across domains" not in page
    assert "links" not in " ".join(summary_paragraphs(results))


def test_a_base_rate_fallback_is_listed_in_results_and_report(tmp_path: Path) -> None:
    # Prepare: a label-skew so strong that some firm trains on one class.
    data = {"source": "german_credit", "firms": 8, "alpha": 0.3, "split": "label-skew"}

    # Execute
    results = _run(tmp_path, data, {"unified": False, "local_only": True})

    # Assert
    fallbacks = results["fallbacks"]
    assert fallbacks and {f["regime"] for f in fallbacks} == {"local_only"}
    assert all(f["kind"] == "base-rate" for f in fallbacks)
    listed = fallback_list(results)
    for f in fallbacks:
        assert f"seed {f['seed']}: firm {f['firm']} scored by its base rate" in listed
    assert f"Fallbacks ({len(fallbacks)})" in render_html(results)


def _exposure(linked: float) -> dict[str, Any]:
    summary = {"mean": linked, "ci95": [linked, linked], "per_seed": [linked]}
    party = {"cells": {"mean": 10.0}, "linked_citizens": summary}
    return {"exposure": {"central_operator": party, "firm:a": party}}


@pytest.mark.parametrize(("linked", "panels"), [(0.0, 1), (25.0, 2)])
def test_the_links_panel_is_drawn_only_when_someone_is_linked(linked: float, panels: int) -> None:
    figure = exposure_figure(_exposure(linked))

    assert len(figure.axes) == panels
