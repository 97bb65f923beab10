"""The round config on the wire: one typed model both sides read and write."""

from __future__ import annotations

import pytest
from fakes.round_configs import round_config
from flwr.app import ConfigRecord
from hypothesis import given
from hypothesis import strategies as st

from clients import records as R
from clients.round_config import RoundConfig
from clients.settings import DPSettings, TrainSettings


def test_every_record_key_is_a_constant_of_the_contract() -> None:
    # Prepare
    constants = {v for k, v in vars(R).items() if k.isupper() and isinstance(v, str)}
    # Execute
    keys = set(round_config().to_record())
    # Assert
    assert keys <= constants
    assert len(keys) == len(RoundConfig.model_fields)


@given(
    round_number=st.integers(0, 10_000),
    learning_rate=st.floats(1e-6, 10.0),
    dp_epsilon=st.sampled_from([0.0, 0.5, 8.0]),
    kind=st.sampled_from(["logistic", "mlp"]),
)
def test_a_config_survives_the_record_unchanged(
    round_number: int, learning_rate: float, dp_epsilon: float, kind: str
) -> None:
    # Prepare
    config = round_config(
        round_number=round_number,
        learning_rate=learning_rate,
        dp_epsilon=dp_epsilon,
        model_kind=kind,
    )
    # Execute
    read = RoundConfig.from_record(config.to_record())
    # Assert
    assert read == config


def test_typed_views_of_the_config() -> None:
    # Prepare
    config = round_config(dp_epsilon=2.0)
    # Execute / Assert
    assert config.training == TrainSettings(
        epochs=1, batch_size=64, learning_rate=0.01, weight_decay=0.0
    )
    assert config.dp == DPSettings(
        target_epsilon=2.0, target_delta=1e-5, max_grad_norm=1.0, total_rounds=5
    )
    assert round_config().dp is None
    assert config.spec.n_features == 5 and config.spec.kind == "logistic"
    assert config.firm_seed("payments") != config.firm_seed("telecom")
    assert 0 <= config.firm_seed("payments") < 2**31


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({R.BATCH_SIZE: None}, r"batch-size: Field required"),
        ({R.BATCH_SIZE: "64"}, r"batch-size: Input should be a valid integer \(got '64'\)"),
        ({R.LEARNING_RATE: -1.0}, r"learning-rate: Input should be greater than 0 \(got -1.0\)"),
        ({R.MODEL_KIND: "forest"}, r"model-kind: Input should be 'logistic' or 'mlp'"),
        ({"learning_rate": 0.1}, r"learning_rate: Extra inputs are not permitted"),
    ],
)
def test_a_bad_record_is_refused_naming_the_key(change: dict[str, object], expected: str) -> None:
    # Prepare
    record = dict(round_config().to_record())
    for key, value in change.items():
        if value is None:
            del record[key]
        else:
            record[key] = value
    # Execute / Assert
    with pytest.raises(ValueError, match=r"invalid round config record:\n  " + expected):
        RoundConfig.from_record(ConfigRecord(record))  # type: ignore[arg-type]
