"""`fedscore run` on bad tables and bad `[data]` sections: each refused before any training with
a short error naming the problem, exit code 2, no traceback and no results written."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from experiments.cli.main import app

runner = CliRunner()
ROWS = 150


def _loans() -> pd.DataFrame:
    """150 loans at three regional firms: an id, a string label, a string sensitive attribute."""
    rng = np.random.default_rng(5)
    income = rng.lognormal(10, 0.5, ROWS)
    late = rng.poisson(1.0, ROWS)
    risk = late - (np.log(income) - 10) + rng.normal(0, 1, ROWS)
    return pd.DataFrame(
        {
            "loan_id": [f"L{i:04d}" for i in range(ROWS)],
            "region": np.tile(["north", "south", "east"], ROWS // 3),
            "age": rng.integers(18, 80, ROWS),
            "sex": rng.choice(["F", "M"], ROWS),
            "minority": rng.choice(["yes", "no"], ROWS, p=[0.3, 0.7]),
            "income": income.round(2),
            "late_payments": late,
            "status": np.where(risk > np.quantile(risk, 0.75), "bad", "good"),
        }
    )


GOOD_DATA: dict[str, Any] = {
    "source": "file",
    "path": "loans.csv",
    "label": "status",
    "positive": "bad",
    "sensitive": ["minority"],
    "quasi_identifiers": ["age", "sex"],
    "exclude": ["loan_id"],
    "partition": "region",
}


def _toml_value(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)  # strings, numbers and booleans are spelled alike in TOML


def write_config(folder: Path, data: dict[str, Any], extra: str = "") -> Path:
    """An experiment config beside the table, fast settings, `data` as its [data] section."""
    tables = {k: v for k, v in data.items() if isinstance(v, dict)}
    lines = [f"{k} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for name, table in tables.items():
        lines.append(f"[data.{name}]")
        lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    config = folder / "experiment.toml"
    config.write_text(
        '[experiment]\nname = "bad"\nseeds = [0]\ntest_fraction = 0.25\n\n[data]\n'
        + "\n".join(lines)
        + "\n\n[membership]\nshadows = 0\npool = 40\n\n[training]\nepochs = 2\n"
        + extra
    )
    return config


@dataclass(frozen=True)
class Case:
    name: str
    expected: str
    data: dict[str, Any] = field(default_factory=dict)
    table: Callable[[pd.DataFrame], pd.DataFrame] | None = None
    file: Callable[[Path], None] | None = None
    """Writes the table file itself (path given) instead of a CSV of the frame."""


def _with(**columns: Any) -> Callable[[pd.DataFrame], pd.DataFrame]:
    return lambda frame: frame.assign(**columns)


def _missing(cells: dict[str, list[int]]) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame.copy()
        for column, rows in cells.items():
            frame[column] = frame[column].astype(object)
            frame.loc[rows, column] = None
        return frame

    return apply


def _good_label(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(approved=(frame["status"] == "good").astype(int)).drop(columns="status")


def _tiny_firm(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[:5, "region"] = "islands"  # 6 rows: too few to train on
    return frame


def _one_class_firm(frame: pd.DataFrame) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[frame["region"] == "east", "status"] = "good"
    return frame


CASES = [
    Case(
        "label column absent", "[data] label: column 'stat' is not in the table", {"label": "stat"}
    ),
    Case(
        "feature column absent",
        "[data] features: column 'incme' is not in the table; did you mean 'income'?",
        {"features": ["incme", "late_payments"]},
    ),
    Case(
        "label with three values",
        "column 'status' holds 3 values",
        table=lambda f: f.assign(status=np.tile(["bad", "good", "unknown"], ROWS // 3)),
    ),
    Case("text label without positive", "set [data] positive", {"positive": None}),
    Case(
        "label that sounds like good",
        "'approved' sounds like 1 = good",
        {"label": "approved", "positive": None},
        table=_good_label,
    ),
    Case(
        "positive that never occurs",
        "positive = 'defaulted' never occurs",
        {"positive": "defaulted"},
    ),
    Case("id column among the features", "'loan_id' is unique per row", {"exclude": []}),
    Case(
        "copy of the label among the features",
        "'decision' alone predicts the label",
        table=lambda f: f.assign(decision=np.where(f["status"] == "bad", "deny", "approve")),
    ),
    Case(
        "numeric sensitive attribute without bins",
        "'age' is numeric with",
        {"sensitive": ["age"], "quasi_identifiers": ["sex"]},
    ),
    Case(
        "attribute both sensitive and quasi-identifier",
        "sensitive and quasi_identifiers both list 'sex'",
        {"sensitive": ["minority", "sex"]},
    ),
    Case(
        "sensitive without quasi-identifiers", "needs quasi_identifiers", {"quasi_identifiers": []}
    ),
    Case(
        "all-missing feature",
        "column 'empty' is empty",
        table=_with(empty=np.nan),
    ),
    Case(
        "all-missing sensitive attribute",
        "[data] sensitive: column 'religion' is empty",
        {"sensitive": ["minority", "religion"]},
        table=_with(religion=np.nan),
    ),
    Case(
        "missing values without impute",
        "missing values in 2 columns: 'income' (2 of 150 rows), 'late_payments' (1 of 150 rows)",
        table=_missing({"income": [3, 4], "late_payments": [7]}),
    ),
    Case(
        "sensitive attribute with too many groups",
        "'birthplace' has 30 values",
        {"sensitive": ["birthplace"]},
        table=_with(birthplace=[f"town{i % 30}" for i in range(ROWS)]),
    ),
    Case("firm with too few training rows", "firm 'islands' (seed 0", table=_tiny_firm),
    Case(
        "firm with one class",
        "firm 'east' (seed 0, split by 'region') has only",
        table=_one_class_firm,
    ),
    Case(
        "label also a feature",
        "[data] features: 'status' is the label",
        {"features": ["income", "status"]},
    ),
    Case(
        "the same column twice",
        "[data] sensitive lists 'minority' more than once",
        {"sensitive": ["minority", "minority"]},
    ),
    Case(
        "no feature left",
        "no column is left to score with",
        {"exclude": ["loan_id", "income", "late_payments"]},
    ),
    Case("bins on a text column", "bins cut a numeric column", {"bins": {"minority": [1]}}),
    Case("partition with one firm", "gives one firm", table=_with(region="all")),
    Case("wrong type", "data.firms: Input should be a valid integer", {"firms": "eight"}),
    Case(
        "wrong type in a list",
        "data.sensitive: Input should be a valid list",
        {"sensitive": "minority"},
    ),
    Case(
        "misspelt key",
        "unknown key 'sensitve' in [data]; allowed keys: bins,",
        {"sensitve": ["minority"]},
    ),
    Case(
        "bins that do not increase",
        "bins.age must be one or more increasing edges",
        {"bins": {"age": [60, 30]}},
    ),
    Case("data file absent", "no data file at", {"path": "nowhere.csv"}),
    Case("empty file", "the file is empty", file=lambda p: p.write_bytes(b"")),
    Case(
        "header-only file",
        "has a header (8 columns) but no rows",
        file=lambda p: p.write_text(",".join(_loans().columns) + "\n"),
    ),
    Case(
        "non-UTF-8 file",
        "the file is not utf-8 text: byte 0xf6 on line 2",
        file=lambda p: p.write_bytes(
            _loans().to_csv(index=False).replace("north", "nörth").encode("latin-1")
        ),
    ),
    Case(
        "unreadable Parquet file",
        "not a readable Parquet file",
        {"path": "loans.parquet"},
        file=lambda p: p.write_bytes(b"PAR1 this is not parquet"),
    ),
    Case("a directory for a file", "this is a directory", {"path": "."}),
    Case(
        "ragged CSV",
        "not a well-formed CSV table",
        file=lambda p: p.write_text("a,b,status\n1,2,bad\n1,2,3,4,good\n"),
    ),
    Case(
        "duplicate header names",
        "names columns ['income'] more than once",
        file=lambda p: p.write_text("income,income,status\n1,2,bad\n3,4,good\n"),
    ),
    Case(
        "unsupported file type",
        "expected a .csv or .parquet file",
        {"path": "loans.xlsx"},
        file=lambda p: p.write_text("x"),
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_bad_input_is_one_short_error_with_exit_code_2(tmp_path: Path, case: Case) -> None:
    # Prepare: the table and config beside it, as a user keeps them.
    data = {k: v for k, v in {**GOOD_DATA, **case.data}.items() if v is not None}
    table_path = tmp_path / str(data["path"])
    if case.file is not None:
        case.file(table_path)
    elif data["path"] not in ("nowhere.csv", "."):
        (case.table or (lambda f: f))(_loans()).to_csv(table_path, index=False)
    config = write_config(tmp_path, data)
    out = tmp_path / "run"

    # Execute
    result = runner.invoke(app, ["run", str(config), "--out", str(out)])

    # Assert
    assert result.exit_code == 2, result.output
    message = result.output.strip()
    assert message.startswith("error:"), message
    assert case.expected in message, message
    assert "Traceback" not in message and "\n\n" not in message
    assert len(message.splitlines()) <= 8
    assert not (out / "results.json").exists()


def test_debug_shows_the_traceback_of_a_data_error(tmp_path: Path) -> None:
    _loans().to_csv(tmp_path / "loans.csv", index=False)
    config = write_config(tmp_path, {**GOOD_DATA, "label": "stat"})

    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run"), "--debug"])

    assert result.exit_code != 0
    assert type(result.exception).__name__ == "DataError"


def test_missing_values_run_with_impute_median_and_are_refused_without(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Prepare: the table and config in one folder, fedscore started from another.
    study, elsewhere = tmp_path / "study", tmp_path / "elsewhere"
    study.mkdir()
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    _missing({"income": [3, 4, 50], "late_payments": [7]})(_loans()).to_csv(
        study / "loans.csv", index=False
    )
    refused = write_config(study, GOOD_DATA)
    result = runner.invoke(app, ["run", str(refused), "--out", str(tmp_path / "refused")])
    assert result.exit_code == 2
    assert "'income' (3 of 150 rows), 'late_payments' (1 of 150 rows)" in result.output
    assert not (tmp_path / "refused").exists()
    config = write_config(study, {**GOOD_DATA, "impute": "median"})

    # Execute
    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])

    # Assert: it ran, and everything it wrote is in its --out folder.
    assert result.exit_code == 0, result.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    assert set(results["regimes"]) == {"unified", "local_only"}
    assert results["config"]["data"]["impute"] == "median"
    written = {p.name for p in (tmp_path / "run").iterdir()}
    assert written == {"results.json", "results.csv", "report.html", "run.log"}
    assert list(elsewhere.iterdir()) == []


def test_a_split_that_leaves_a_firm_no_training_rows_is_refused_by_name(tmp_path: Path) -> None:
    # German credit at alpha = 0.01: some firm's few rows are all held out, which used to end
    # in "vector must be finite" from the secure-aggregation quantiser mid-run.
    config = tmp_path / "german.toml"
    config.write_text(
        '[experiment]\nname = "g"\nseeds = [0, 1, 2]\n'
        '[data]\nsource = "german_credit"\nfirms = 8\nalpha = 0.01\n'
    )

    result = runner.invoke(app, ["run", str(config), "--out", str(tmp_path / "run")])

    assert result.exit_code == 2, result.output
    assert "training rows, fewer than 1; use fewer [data] firms or a larger [data] alpha" in (
        result.output
    )
    assert result.output.startswith("error: data file ") and "germancredit.csv" in result.output
    assert not (tmp_path / "run").exists()
