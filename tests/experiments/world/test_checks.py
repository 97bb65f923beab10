"""Checks of a table of one's own: every problem at once, and the declared remedies applied."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from experiments.leakage.decisions import decision_metrics, protected_groups
from experiments.world.checks import DataError, firm_problems, label_association
from experiments.world.datasets import load_table
from experiments.world.tables import ID, LABEL

ROWS = 120


def _loans(rows: int = ROWS) -> pd.DataFrame:
    """A small loan table with an id, a string label, a string sensitive attribute, a region."""
    rng = np.random.default_rng(11)
    income = rng.lognormal(10, 0.5, rows)
    late = rng.poisson(1.0, rows)
    risk = late - (np.log(income) - 10) + rng.normal(0, 1, rows)
    return pd.DataFrame(
        {
            "applicant": np.arange(1000, 1000 + rows),
            "region": np.tile(["north", "south", "east"], rows // 3),
            "age": rng.integers(18, 80, rows),
            "sex": rng.choice(["F", "M"], rows),
            "minority": rng.choice(["yes", "no"], rows, p=[0.3, 0.7]),
            "income": income,
            "late_payments": late,
            "status": np.where(risk > np.quantile(risk, 0.75), "bad", "good"),
        }
    )


def _write(frame: pd.DataFrame, tmp_path: Path) -> Path:
    path = tmp_path / "loans.csv"
    frame.to_csv(path, index=False)
    return path


VALID: dict[str, Any] = {
    "label": "status",
    "positive": "bad",
    "sensitive": ["minority"],
    "quasi_identifiers": ["age", "sex"],
    "exclude": ["applicant"],
    "partition": "region",
}


def test_a_valid_table_loads_with_its_provenance(tmp_path: Path) -> None:
    path = _write(_loans(), tmp_path)

    world = load_table(path, **VALID)

    assert sorted(world.firms) == ["east", "north", "south"]
    assert world.meta["file_name"] == "loans.csv"
    assert len(world.meta["sha256"]) == 64
    assert world.meta["features"] == ["income", "late_payments"]
    assert world.meta["excluded"] == ["applicant"]


def test_every_problem_is_reported_at_once(tmp_path: Path) -> None:
    frame = _loans().assign(decision=lambda f: np.where(f["status"] == "bad", "deny", "approve"))
    frame.loc[:4, "income"] = np.nan
    path = _write(frame, tmp_path)

    with pytest.raises(DataError) as caught:
        load_table(path, label="status", sensitive=["minority", "age"], partition="region")

    problems = caught.value.problems
    assert len(problems) == 6, problems
    joined = "\n".join(problems)
    for expected in (
        "needs quasi_identifiers",
        "set [data] positive",
        "'applicant' is unique per row",
        "'decision' alone predicts the label",
        "'age' is numeric with",
        "missing values in 1 column: 'income' (5 of 120 rows)",
    ):
        assert expected in joined
    assert str(path) in str(caught.value).splitlines()[0]


def test_missing_values_in_several_columns_are_one_problem(tmp_path: Path) -> None:
    frame = _loans().astype({"late_payments": float})
    frame.loc[[1, 2], "income"] = np.nan
    frame.loc[[3], "late_payments"] = np.nan
    frame.loc[[5, 6, 7], "sex"] = np.nan  # a quasi-identifier: kept as it is, no problem
    path = _write(frame, tmp_path)

    with pytest.raises(DataError) as caught:
        load_table(path, **VALID)

    assert caught.value.problems == [
        "missing values in 2 columns: 'income' (2 of 120 rows), 'late_payments' (1 of 120 rows);"
        ' set [data] impute = "median" (numbers take the column\'s median, text a "missing"'
        ' level), "mode" (the most frequent value) or "drop-rows" (rows with a missing value go)'
    ]


@pytest.mark.parametrize("impute", ["median", "mode"])
def test_imputation_fills_the_missing_feature_values(tmp_path: Path, impute: str) -> None:
    frame = _loans().astype({"late_payments": float})
    frame.loc[[1, 2], "income"] = np.nan
    frame.loc[[3], "late_payments"] = np.nan
    path = _write(frame, tmp_path)

    world = load_table(path, **VALID, impute=impute)  # type: ignore[arg-type]

    rows = pd.concat(world.firms.values()).set_index(ID).sort_index()
    known = frame["income"].dropna()
    expected = known.median() if impute == "median" else known.mode().iloc[0]
    assert rows.loc[[1, 2], "income"].tolist() == pytest.approx([expected] * 2)
    assert not rows.isna().any().any()
    assert world.meta["impute"] == {
        "method": impute,
        "missing_per_column": {"income": 2, "late_payments": 1},
    }


def test_drop_rows_drops_rows_with_a_missing_label_or_feature(tmp_path: Path) -> None:
    frame = _loans()
    frame.loc[[1, 2], "income"] = np.nan
    frame.loc[[2, 9], "status"] = None
    path = _write(frame, tmp_path)

    world = load_table(path, **VALID, impute="drop-rows")

    assert len(world.truth) == ROWS - 3
    assert world.meta["rows_dropped"] == 3


def test_a_missing_label_cannot_be_imputed(tmp_path: Path) -> None:
    frame = _loans()
    frame.loc[[2, 9], "status"] = None
    path = _write(frame, tmp_path)

    with pytest.raises(DataError, match=r"'status' \(label or partition\).*drop-rows"):
        load_table(path, **VALID, impute="median")


def test_missing_sensitive_values_stay_missing_through_groups_and_gaps(tmp_path: Path) -> None:
    frame = _loans().assign(minority=lambda f: (f["minority"] == "yes").astype(float))
    frame.loc[:29, "minority"] = np.nan
    path = _write(frame, tmp_path)
    world = load_table(path, **VALID)
    ids = world.truth[ID].to_numpy()

    groups = protected_groups(world, ids)

    assert world.truth["minority"].isna().sum() == 30
    mask = groups["minority"]
    assert np.isnan(mask[:30]).all()
    assert set(mask[30:]) <= {0.0, 1.0}
    pairs = pd.DataFrame({"firm": "x", ID: ids, LABEL: world.truth[LABEL].to_numpy()})
    granted_by_minority = np.where(np.nan_to_num(mask, nan=1.0) == 1, 0.001, 0.9)
    decisions = decision_metrics(pairs, granted_by_minority, {"minority": mask}, _scorecard())
    # Unknown rows are granted: counted as outside the group, they would pull the gap below 1.
    assert decisions["demographic_parity_gap"]["minority"] == pytest.approx(1.0)  # type: ignore[index]


def _scorecard() -> Any:
    from experiments.config import ScorecardSection

    return ScorecardSection()


def test_a_two_valued_text_attribute_is_one_group_not_two_mirror_images(tmp_path: Path) -> None:
    path = _write(_loans(), tmp_path)
    world = load_table(path, **VALID)

    groups = protected_groups(world, world.truth[ID].to_numpy())

    assert [g for g in groups if g.startswith("minority")] == ["minority=yes"]


def test_a_numeric_sensitive_attribute_is_grouped_by_its_bins(tmp_path: Path) -> None:
    frame = _loans()
    path = _write(frame, tmp_path)
    config = {**VALID, "sensitive": ["age"], "quasi_identifiers": ["sex"]}

    world = load_table(path, **config, bins={"age": [30, 60]})

    assert sorted(world.truth["age"].unique()) == ["30 to <60", "<30", ">=60"]
    young = (frame["age"] < 30).to_numpy()
    assert (world.truth["age"].to_numpy() == "<30").tolist() == young.tolist()
    assert world.meta["bins"] == {"age": [30.0, 60.0]}


def test_listing_a_column_in_features_overrides_the_id_and_label_copy_guards(
    tmp_path: Path,
) -> None:
    frame = _loans().assign(decision=lambda f: np.where(f["status"] == "bad", "deny", "approve"))
    path = _write(frame, tmp_path)
    config = {**VALID, "exclude": []}

    world = load_table(path, **config, features=["applicant", "decision", "income"])

    assert "decision__deny" in world.firms["north"].columns
    assert "applicant" in world.firms["north"].columns


def test_a_label_named_like_good_gets_a_question_until_positive_is_set(tmp_path: Path) -> None:
    frame = _loans().assign(approved=lambda f: (f["status"] == "good").astype(int))
    path = _write(frame.drop(columns="status"), tmp_path)
    config = {**VALID, "label": "approved", "positive": None}

    with pytest.raises(DataError, match=r"'approved' sounds like 1 = good.*positive = 0"):
        load_table(path, **config)
    world = load_table(path, **{**config, "positive": 0})

    assert world.truth[LABEL].sum() == (frame["approved"] == 0).sum()


def test_label_association_finds_copies_and_spares_ordinary_features() -> None:
    rng = np.random.default_rng(0)
    labels = (rng.random(500) < 0.3).astype(np.int8)
    copy = pd.Series(np.where(labels == 1, "deny", "approve"))
    noisy_copy = pd.Series(labels + rng.normal(0, 0.05, 500))
    feature = pd.Series(labels + rng.normal(0, 1.0, 500))

    assert label_association(copy, labels) == pytest.approx(1.0)
    assert label_association(noisy_copy, labels) > 0.99  # type: ignore[operator]
    assert label_association(feature, labels) < 0.9  # type: ignore[operator]


def test_firm_problems_name_small_and_one_class_firms() -> None:
    problems = firm_problems(
        {"a": np.array([0, 1] * 15), "b": np.array([0, 1, 0]), "c": np.zeros(40, dtype=np.int8)},
        min_rows=20,
        seed=4,
        split="split by 'region'",
        advice="merge small firms",
    )

    assert len(problems) == 2
    assert problems[0] == (
        "firm 'b' (seed 4, split by 'region') has 3 training rows, fewer than 20; merge small firms"
    )
    assert "firm 'c'" in problems[1] and "only non-defaults" in problems[1]
