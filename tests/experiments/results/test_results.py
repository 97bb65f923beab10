"""The results.json model: a real run's file round-trips through it, a wrong key is named."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from experiments.config import parse_config
from experiments.harness import run_experiment
from experiments.metrics import summarise
from experiments.results import (
    SCHEMA_VERSION,
    Results,
    ResultsError,
    Summary,
    load_results,
    parse_results,
)
from experiments.results.schema import REGIME_PATTERN


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Path]:
    """A small real run: two seeds, both centralised regimes, every attack."""
    out = tmp_path_factory.mktemp("run")
    config = parse_config(
        {
            "experiment": {"name": "results-model", "seeds": [0, 1]},
            "data": {"source": "synthetic", "citizens": 2000},
            "training": {"epochs": 1},
            "membership": {"pool": 200, "shadows": 4},
        }
    )
    return run_experiment(config, out), out / "results.json"


@pytest.fixture
def raw(run: tuple[Results, Path]) -> dict[str, Any]:
    """A fresh copy of the run's results.json content, to break."""
    return json.loads(run[1].read_text())


def refusal(raw: dict[str, Any]) -> str:
    with pytest.raises(ResultsError) as caught:
        parse_results(raw)
    return str(caught.value)


def test_a_real_results_json_round_trips_byte_for_byte(run: tuple[Results, Path]) -> None:
    # Prepare
    returned, path = run

    # Execute
    loaded = load_results(path)

    # Assert
    assert loaded == returned
    assert loaded.to_json() == path.read_text()
    assert loaded.schema_version == SCHEMA_VERSION
    assert set(loaded.regimes) == {"unified", "local_only"}
    assert loaded.regimes["local_only"].membership.lira is not None
    assert len(loaded.regimes["unified"].utility.auc.per_seed) == 2


def test_an_unknown_key_is_refused_with_its_path_and_the_allowed_keys(
    raw: dict[str, Any],
) -> None:
    raw["regimes"]["unified"]["utility"]["auc_typo"] = raw["regimes"]["unified"]["utility"]["auc"]

    message = refusal(raw)

    assert "regimes.unified.utility.auc_typo: unknown key; allowed keys: auc, ks, brier, ece" in (
        message
    )


def test_a_misspelt_key_is_refused_naming_both_spellings(raw: dict[str, Any]) -> None:
    decisions = raw["regimes"]["local_only"]["decisions"]
    decisions["privilege_share"] = decisions.pop("privileged_share")

    message = refusal(raw)

    assert "regimes.local_only.decisions.privilege_share: unknown key" in message
    assert "regimes.local_only.decisions.privileged_share: missing" in message


def test_a_value_of_the_wrong_type_is_named_with_what_was_given(raw: dict[str, Any]) -> None:
    raw["regimes"]["unified"]["release"]["unique_share"]["per_seed"][1] = "high"

    message = refusal(raw)

    assert "regimes.unified.release.unique_share.per_seed.1" in message
    assert "'high'" in message


def test_an_unknown_regime_is_refused_by_name(raw: dict[str, Any]) -> None:
    raw["regimes"]["centralised"] = raw["regimes"].pop("unified")

    message = refusal(raw)

    assert "regimes: key 'centralised'" in message


def test_a_figure_with_a_value_missing_for_a_seed_is_refused(raw: dict[str, Any]) -> None:
    raw["exposure"]["central_operator"]["cells"]["per_seed"].pop()

    message = refusal(raw)

    assert "exposure.central_operator.cells.per_seed has 1 values, one per seed (2)" in message


def test_an_interval_that_misses_its_mean_is_refused(raw: dict[str, Any]) -> None:
    raw["regimes"]["unified"]["utility"]["ks"]["ci95"] = [0.0, 0.01]

    message = refusal(raw)

    assert "regimes.unified.utility.ks: ci95 [0.0, 0.01] must hold the mean" in message


def test_another_schema_version_is_refused_before_any_key(raw: dict[str, Any]) -> None:
    raw["schema_version"] = SCHEMA_VERSION + 1

    message = refusal(raw)

    assert (
        f"schema_version {SCHEMA_VERSION + 1}; this fedscore reads version {SCHEMA_VERSION}"
        in message
    )


def test_a_file_that_is_not_json_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "results.json"
    path.write_text("{not json")

    with pytest.raises(ResultsError, match="is not valid JSON"):
        load_results(path)


def test_a_block_the_run_did_not_measure_stays_absent_not_null(raw: dict[str, Any]) -> None:
    # Prepare: the file of a run without LiRA and without a unified regime
    for name in raw["regimes"]:
        del raw["regimes"][name]["membership"]["lira"]
        del raw["regimes"][name]["decisions"]["tier_changed_vs_unified"]
        del raw["curves"][name]["lira"]
    text = json.dumps(raw, indent=2, sort_keys=True) + "\n"

    # Execute
    results = parse_results(json.loads(text))

    # Assert
    assert results.regimes["unified"].membership.lira is None
    assert results.to_json() == text
    assert '"lira"' not in text
    assert '"tier_changed_vs_unified"' not in text


def test_every_regime_name_the_code_makes_is_a_valid_key() -> None:
    from experiments.regimes.federated import (
        FEDERATED_FLOWER,
        FEDERATED_PLAIN,
        FEDERATED_SECAGG,
        dp_regime_name,
    )
    from experiments.regimes.standalone import LOCAL_ONLY, UNIFIED

    names = [UNIFIED, LOCAL_ONLY, FEDERATED_SECAGG, FEDERATED_PLAIN, FEDERATED_FLOWER]
    names += [dp_regime_name(epsilon) for epsilon in (0.5, 1.0, 8.0, 1e-3)]

    assert [name for name in names if not re.fullmatch(REGIME_PATTERN, name)] == []


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.floats(min_value=-1e6, max_value=1e6)
        | st.sampled_from([float("nan"), float("inf"), float("-inf")])
        | st.none(),
        min_size=1,
        max_size=6,
    )
)
def test_every_summary_the_harness_makes_is_a_valid_summary(values: list[float | None]) -> None:
    # Prepare: the harness turns None into NaN before summarising
    per_seed = [float("nan") if v is None else v for v in values]

    # Execute
    summary = Summary.model_validate(summarise(per_seed))

    # Assert
    assert len(summary.per_seed) == len(values)
    assert Summary.model_validate_json(summary.model_dump_json()) == summary
