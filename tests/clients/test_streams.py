"""The named random streams: their values are part of every result, so they are pinned."""

from __future__ import annotations

import numpy as np

from clients.streams import (
    Stream,
    bench_node_seed,
    firm_round_seed,
    generator,
    local_model_seed,
    reproducible_noise_seeds,
    retrain_seed,
    shadow_init_seed,
    shadow_round_seed,
)


def test_stream_constants_are_the_ones_every_earlier_result_used() -> None:
    # Assert: changing any of these moves figures in results.json
    assert {s.name: s.value for s in Stream} == {
        "NODE_SAMPLING": 0x5A4D,
        "HOLDOUT": 0x4E57,
        "DISAGGREGATION": 0xD15A,
        "POOL_UNIFIED": 0x3E3B,
        "POOL_LOCAL": 0x10CA,
        "POOL_FEDERATED": 0xFEDA,
        "ATTRIBUTE_ROWS": 0xA771,
        "MEMBERSHIP_SPLIT": 1,
        "SHADOW_MEMBERSHIP": 2,
        "SHADOW_DP_NOISE": 0xD9A0,
        "VALIDATION": 0x7A11,
        "INFERENCE_ROWS": 0x1DF3,
    }


def test_a_stream_is_numpys_generator_of_seed_path_and_constant() -> None:
    # Execute
    drawn = generator(Stream.NODE_SAMPLING, 5, 2).integers(1 << 30)
    # Assert
    assert drawn == np.random.default_rng([5, 2, 0x5A4D]).integers(1 << 30) == 762811793
    assert generator(Stream.HOLDOUT, np.int64(0)).integers(1 << 30) == 201879894


def test_derived_seeds_keep_their_values() -> None:
    # Assert: known answers of the formulas every earlier run used
    assert firm_round_seed(7, 3, "payments") == 1843695122
    assert firm_round_seed(0, 1, "telecom") == 1701610595
    assert local_model_seed(2, 0) == 1002
    assert shadow_init_seed(1, 3) == 23758
    assert shadow_round_seed(1, 2, 3) == 2022
    assert bench_node_seed(2**31 + 5, 4) == 5049
    assert retrain_seed(2) == 500_011


def test_reproducible_noise_seeds_hash_the_whole_firm_name_and_suit_torch() -> None:
    # Execute: names that share their first 4 bytes (firm_round_seed would not tell them apart)
    seeds = [reproducible_noise_seeds(0, 1, f"firm_{i}") for i in range(8)]
    later = reproducible_noise_seeds(0, 2, "firm_0")
    # Assert
    assert len({firm_round_seed(0, 1, f"firm_{i}") for i in range(8)}) == 1
    values = [v for s in [*seeds, later] for v in (s.sampler, s.noise)]
    assert len(set(values)) == len(values)
    assert all(0 <= v < 2**64 for v in values)
    assert reproducible_noise_seeds(0, 1, "firm_0") == seeds[0]  # repeatable
    assert seeds[0].sampler == 0xDEF7FC9E3260DC  # pinned: it moves the DP regimes' figures


def test_firm_round_seeds_differ_by_firm_and_round_and_suit_torch() -> None:
    # Execute
    seeds = {firm_round_seed(0, r, f) for r in range(1, 6) for f in ("payments", "telecom")}
    # Assert
    assert len(seeds) == 10
    assert all(0 <= s < 2**31 for s in seeds)
