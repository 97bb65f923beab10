"""`fedscore init-config`: a config drafted from a table, each guess marked CHECK, that runs."""

from __future__ import annotations

import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from experiments.cli.main import app
from experiments.config import CONFIG_DIR, load_config
from experiments.harness import check_data

runner = CliRunner()
EXAMPLE = CONFIG_DIR / "data" / "example_loans.csv"


def test_the_draft_of_the_example_table_marks_ids_copies_and_roles(tmp_path: Path) -> None:
    # Prepare
    out = tmp_path / "loans.toml"

    # Execute
    result = runner.invoke(app, ["init-config", str(EXAMPLE), "--out", str(out)])

    # Assert
    assert result.exit_code == 0, result.output
    text = out.read_text()
    data = tomllib.loads(text)["data"]
    assert data["label"] == "outcome" and data["positive"] == "defaulted"
    assert data["exclude"] == ["loan_id", "sent_to_collections"]
    assert data["sensitive"] == ["minority"]
    assert set(data["quasi_identifiers"]) == {"age", "sex", "postcode_area"}
    assert data["partition"] == "branch_region"
    assert data["impute"] == "median"
    assert '"loan_id",  # CHECK: unique per row' in text
    assert '"sent_to_collections",  # CHECK: alone predicts the label' in text
    assert "# CHECK: missing values in employment (14), income (37), years_at_address (23)" in text
    check_data(load_config(out))  # the draft loads, and its table passes every check


def test_a_good_sounding_0_1_label_is_drafted_with_positive_0_to_confirm(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    table = tmp_path / "applications.csv"
    pd.DataFrame(
        {
            "income": rng.lognormal(10, 0.4, 200),
            "state": np.repeat(["ca", "ny"], 100),
            "approved": rng.integers(0, 2, 200),
        }
    ).to_csv(table, index=False)
    out = tmp_path / "applications.toml"

    result = runner.invoke(
        app, ["init-config", str(table), "--out", str(out), "--label", "approved"]
    )

    assert result.exit_code == 0, result.output
    data = tomllib.loads(out.read_text())["data"]
    assert data["positive"] == 0
    assert "sounds like 1 = good: is 0 the default?" in out.read_text()
    assert data["path"] == "applications.csv"  # beside the config: a relative path
    assert data["partition"] == "state"


def test_a_numeric_sensitive_attribute_gets_bins_to_check(tmp_path: Path) -> None:
    rng = np.random.default_rng(4)
    table = tmp_path / "t.csv"
    pd.DataFrame(
        {
            "age": rng.integers(20, 70, 300),
            "disability_score": rng.integers(0, 100, 300),
            "income": rng.lognormal(10, 0.4, 300),
            "default": rng.integers(0, 2, 300),
        }
    ).to_csv(table, index=False)
    out = tmp_path / "t.toml"

    result = runner.invoke(app, ["init-config", str(table), "--out", str(out)])

    assert result.exit_code == 0, result.output
    config = tomllib.loads(out.read_text())
    assert config["data"]["sensitive"] == ["disability_score"]
    assert len(config["data"]["bins"]["disability_score"]) == 2
    assert "dirichlet_alpha" in config["data"]
    assert "does not run" not in result.output  # the draft passes its own checks


def test_an_existing_config_is_kept_and_a_bad_table_is_a_short_error(tmp_path: Path) -> None:
    out = tmp_path / "mine.toml"
    out.write_text("# mine\n")
    empty = tmp_path / "empty.csv"
    empty.write_text("")

    kept = runner.invoke(app, ["init-config", str(EXAMPLE), "--out", str(out)])
    refused = runner.invoke(app, ["init-config", str(empty), "--out", str(tmp_path / "e.toml")])

    assert kept.exit_code == 2 and "exists" in kept.output
    assert out.read_text() == "# mine\n"
    assert refused.exit_code == 2
    assert refused.output.startswith(f"error: data file {empty}: the file is empty")


def test_a_draft_that_cannot_run_yet_says_what_it_needs(tmp_path: Path) -> None:
    table = tmp_path / "thin.csv"
    pd.DataFrame({"customer_id": range(100), "target": [0, 1] * 50}).to_csv(table, index=False)
    out = tmp_path / "thin.toml"

    result = runner.invoke(app, ["init-config", str(table), "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert out.is_file()
    assert "the draft does not run as it is" in result.output
    assert "no column is left to score with" in result.output
