"""A client may join the key stages first and give its input only at the masked-input stage."""

import numpy as np
import pytest

from protocol import MissingInput, SecAggClient, SecAggConfig, Stage, UnexpectedStage


def test_an_input_given_at_the_masked_input_stage_is_what_gets_summed(manual_round) -> None:
    # Prepare: client 1 starts with a placeholder and gets its real input late
    round_ = manual_round(num_clients=4, dimension=5)
    round_.play_until(Stage.MASKED_INPUT)
    late = np.linspace(-0.5, 0.5, 5)

    # Execute
    round_.clients[1].provide_input(late)
    round_.inputs[1] = late
    round_.play(Stage.MASKED_INPUT)
    round_.play(Stage.UNMASK)

    # Assert
    assert round_.result is not None
    np.testing.assert_array_equal(round_.result.integer_sum, round_.expected_sum([1, 2, 3, 4]))
    np.testing.assert_allclose(round_.result.float_sum, sum(round_.inputs.values()), atol=1e-2)


def test_a_client_without_input_refuses_to_mask() -> None:
    client = SecAggClient(1, SecAggConfig(num_clients=3), dimension=4)

    assert client.dimension == 4 and client.quantized_input is None
    with pytest.raises(ValueError, match="dimension"):
        SecAggClient(1, SecAggConfig(num_clients=3))


def test_a_missing_input_at_masked_input_is_named(manual_round) -> None:
    round_ = manual_round(num_clients=3, dimension=4)
    round_.play_until(Stage.MASKED_INPUT)
    round_.clients[2].quantized_input = None  # as a client built with its dimension only

    with pytest.raises(MissingInput, match="provide_input"):
        round_.answer(Stage.MASKED_INPUT)


def test_the_input_is_frozen_once_masked_and_can_then_be_released(manual_round) -> None:
    round_ = manual_round(num_clients=3, dimension=4)
    client = round_.clients[1]
    with pytest.raises(UnexpectedStage, match="not sent"):
        client.release_input()
    round_.play_until(Stage.UNMASK)

    with pytest.raises(UnexpectedStage, match="can no longer change"):
        client.provide_input(np.zeros(4))
    client.release_input()
    assert client.quantized_input is None


def test_a_late_input_of_the_wrong_length_is_refused() -> None:
    from protocol import VectorLengthError

    client = SecAggClient(1, SecAggConfig(num_clients=3), dimension=4)

    with pytest.raises(VectorLengthError, match="length 4"):
        client.provide_input(np.zeros(5))


def test_a_rounding_seed_makes_the_encoding_repeatable() -> None:
    config = SecAggConfig(num_clients=3, scale=2.0**4)
    vector = np.linspace(-0.9, 0.9, 50)
    a, b = (SecAggClient(1, config, dimension=50) for _ in range(2))

    a.provide_input(vector, rounding_seed=7)
    b.provide_input(vector, rounding_seed=7)

    assert a.quantized_input is not None and b.quantized_input is not None
    np.testing.assert_array_equal(a.quantized_input, b.quantized_input)
