"""Invariants of the synthetic world: base rate, skewed overlapping coverage, non-IID firms,
reproducibility, a manifest that matches the files, proxies that really proxy, and a default
outcome the latent model really drives."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from experiments.world.causal_model import (
    COMMON_SCHEMA,
    DEFAULT_COEFFICIENTS,
    FIRMS,
    LATENTS,
    OCCUPATIONS,
    SCRUTINIZED,
    SENSITIVE,
)
from experiments.world.synthetic import generate_world, world_summary
from experiments.world.tables import ID, LABEL, World, load_world, write_world
from experiments.world.world_doc import DOC_BEGIN, DOC_END, WORLD_DOC, causal_model_markdown

N_CITIZENS = 12_000


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(N_CITIZENS, seed=7)


def _file_bytes(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes()
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


def test_firms_are_the_eight_pilots_in_order(world: World) -> None:
    # Execute
    names = world.firm_names

    # Assert
    assert names == list(FIRMS)
    assert names == [
        "ecommerce",
        "payments",
        "social_network",
        "matchmaking",
        "p2p_lending",
        "ride_hailing",
        "telecom",
        "travel",
    ]


def test_base_rate_is_between_5_and_10_percent(world: World) -> None:
    # Execute
    base_rate = world.truth[LABEL].mean()

    # Assert
    assert 0.05 <= base_rate <= 0.10
    assert world.meta["base_rate"] == pytest.approx(base_rate, abs=1e-6)


def test_national_ids_are_unique_int64_and_shuffled(world: World) -> None:
    # Prepare
    ids = world.truth[ID].to_numpy()

    # Assert
    assert ids.dtype == np.int64
    assert len(np.unique(ids)) == N_CITIZENS
    assert not np.all(np.diff(ids) > 0)
    assert not np.array_equal(ids, np.arange(N_CITIZENS))


def test_truth_holds_every_occupation_including_the_scrutinized(world: World) -> None:
    # Execute
    counts = world.truth["occupation"].value_counts()

    # Assert
    assert set(SCRUTINIZED) <= set(OCCUPATIONS)
    for occupation in SCRUTINIZED:
        assert counts[occupation] > 0, occupation
    for attribute in SENSITIVE:
        assert set(np.unique(world.truth[attribute])) == {0, 1}, attribute


def test_coverage_is_skewed_and_every_pair_of_firms_overlaps(world: World) -> None:
    # Execute
    summary = world_summary(world)
    coverage = summary["coverage"]
    overlap_counts = world.meta["overlap"]["counts"]

    # Assert
    for firm, share in coverage.items():
        assert 0.05 <= share <= 0.99, (firm, share)
    assert coverage["telecom"] > 0.85
    assert coverage["matchmaking"] < 0.4 and coverage["p2p_lending"] < 0.3
    for first in FIRMS:
        for second in FIRMS:
            assert overlap_counts[first][second] > 0, (first, second)
    assert summary["coverage"] == pytest.approx(world.meta["coverage"], abs=1e-6)


def test_citizens_belong_to_zero_to_eight_firms(world: World) -> None:
    # Execute
    histogram = {int(k): v for k, v in world_summary(world)["firms_per_citizen"].items()}

    # Assert
    assert set(histogram) <= set(range(len(FIRMS) + 1))
    assert sum(histogram.values()) == N_CITIZENS
    assert histogram[0] > 0
    assert sum(v for k, v in histogram.items() if k >= 3) > 0.3 * N_CITIZENS


def test_firms_are_non_iid_in_label_rate_features_and_demographics(world: World) -> None:
    # Prepare
    rates = world_summary(world)["default_rate"]
    p2p, travel = world.firms["p2p_lending"], world.firms["travel"]

    # Execute
    on_time_gap = travel["on_time_payment_rate"].mean() - p2p["on_time_payment_rate"].mean()
    income_ratio = travel["income_estimate"].median() / p2p["income_estimate"].median()
    age_gap = world.firms["telecom"]["age"].mean() - world.firms["matchmaking"]["age"].mean()

    # Assert
    assert rates["p2p_lending"] > 2 * rates["travel"]
    assert max(rates.values()) - min(rates.values()) > 0.05
    assert on_time_gap > 0.03
    assert income_ratio > 1.3
    assert age_gap > 3


def test_same_seed_gives_byte_identical_files(tmp_path: Path) -> None:
    # Prepare
    first, second, other = tmp_path / "a", tmp_path / "b", tmp_path / "c"

    # Execute
    write_world(generate_world(2_000, seed=3), first)
    write_world(generate_world(2_000, seed=3), second)
    write_world(generate_world(2_000, seed=4), other)

    # Assert
    first_bytes = _file_bytes(first)
    assert len(first_bytes) == len(FIRMS) + 3
    assert first_bytes == _file_bytes(second)
    other_bytes = _file_bytes(other)
    assert first_bytes.keys() == other_bytes.keys()
    assert first_bytes["truth.parquet"] != other_bytes["truth.parquet"]
    assert first_bytes["firms/travel.parquet"] != other_bytes["firms/travel.parquet"]


def test_manifest_declares_exactly_the_columns_of_every_file(tmp_path: Path) -> None:
    # Prepare
    write_world(generate_world(1_000, seed=1), tmp_path)

    # Execute
    loaded = load_world(tmp_path)
    tables: dict[str, pd.DataFrame] = {
        "truth": loaded.truth,
        "government": loaded.government,
        **loaded.firms,
    }

    # Assert
    assert {c.table for c in loaded.columns} == set(tables)
    for name, table in tables.items():
        declared = [c.name for c in loaded.columns_of(name)]
        assert declared == list(table.columns), name
    assert loaded.meta["seed"] == 1 and loaded.meta["source"] == "synthetic"
    assert loaded.meta["n_citizens"] == 1_000 == len(loaded.government)


def test_common_schema_is_the_same_declared_columns_at_every_firm(world: World) -> None:
    # Prepare
    common_by_firm = {f: world.columns_of(f, {"common"}) for f in FIRMS}

    # Execute
    schemas = {
        f: [(c.name, c.kind, c.low, c.high) for c in cols] for f, cols in common_by_firm.items()
    }
    domain_counts = {f: len(world.columns_of(f, {"domain", "sensitive-proxy"})) for f in FIRMS}

    # Assert
    assert 12 <= len(COMMON_SCHEMA) <= 20
    assert all(schema == schemas["ecommerce"] for schema in schemas.values())
    assert all(2 <= count <= 5 for count in domain_counts.values()), domain_counts


def test_every_feature_is_numeric_and_inside_its_declared_range(world: World) -> None:
    # Prepare
    tables = {"government": world.government, **world.firms}
    checked = 0

    # Execute / Assert
    for name, table in tables.items():
        for column in world.columns_of(name, {"common", "domain", "sensitive-proxy", "government"}):
            values = table[column.name]
            assert pd.api.types.is_numeric_dtype(values), (name, column.name)
            assert column.low is not None and column.high is not None
            assert column.low < column.high
            assert values.min() >= column.low and values.max() <= column.high, (name, column.name)
            assert values.nunique() > 1, (name, column.name)
            checked += 1
    assert checked > 8 * 12


def test_sensitive_proxies_correlate_with_the_attribute_they_name(world: World) -> None:
    # Prepare
    edges = {(e["source"], e["target"]) for e in world.meta["causal_model"]["edges"]}
    truth = world.truth[[ID, *SENSITIVE]]
    proxies = [c for f in FIRMS for c in world.columns_of(f, {"sensitive-proxy"})]

    # Execute / Assert
    assert {a for c in proxies for a in SENSITIVE if a in c.description} == set(SENSITIVE)
    for column in proxies:
        (attribute,) = [a for a in SENSITIVE if a in column.description]
        joined = world.firms[column.table][[ID, column.name]].merge(truth, on=ID)
        correlation = np.corrcoef(joined[column.name], joined[attribute])[0, 1]
        assert correlation > 0.1, (column.table, column.name, attribute, correlation)
        assert (attribute, f"{column.table}.{column.name}") in edges


def test_latent_model_drives_default_and_sensitive_attributes_do_not_enter_it(
    world: World,
) -> None:
    # Prepare
    truth = world.truth

    # Execute
    true_pd_auc = roc_auc_score(truth[LABEL], truth["default_probability"])
    reliability_auc = roc_auc_score(truth[LABEL], -truth["reliability"])

    # Assert
    assert true_pd_auc > 0.75
    assert reliability_auc > 0.6
    assert set(DEFAULT_COEFFICIENTS) <= set(LATENTS)
    assert set(world.meta["causal_model"]["default"]["coefficients"]).isdisjoint(SENSITIVE)


def test_government_records_cover_everyone_and_follow_reliability(world: World) -> None:
    # Prepare
    joined = world.government.merge(world.truth[[ID, "reliability", LABEL]], on=ID)

    # Execute
    low_reliability = joined["reliability"] < joined["reliability"].median()

    # Assert
    assert len(world.government) == N_CITIZENS
    assert set(world.government[ID]) == set(world.truth[ID])
    assert (
        joined.loc[low_reliability, "court_debtor"].mean()
        > joined.loc[~low_reliability, "court_debtor"].mean()
    )
    assert joined.loc[joined[LABEL] == 1, "tax_arrears"].mean() > joined["tax_arrears"].mean()


def test_world_doc_tables_match_the_generator_constants() -> None:
    # Prepare
    doc = WORLD_DOC.read_text(encoding="utf-8")

    # Execute
    generated = doc.split(DOC_BEGIN, 1)[1].split(DOC_END, 1)[0]

    # Assert
    assert generated == "\n" + causal_model_markdown(), (
        "run `python -m experiments.world.world_doc`"
    )


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"n_citizens": 0}, "n_citizens"),
        ({"n_citizens": 50.5}, "n_citizens"),
        ({"seed": -1}, "seed"),
    ],
)
def test_bad_arguments_are_rejected_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match=field):
        generate_world(**kwargs)  # type: ignore[arg-type]
