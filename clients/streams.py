"""Every named random stream of a run, in one place.

A draw that must not move when another one changes (the held-out citizens when a training seed
changes, the node sample when a firm is added) gets a stream of its own: numpy's
`default_rng([seed, ..., STREAM])`, whose constant separates it from every other stream of the
same seed. Seeds derived for torch or for stochastic rounding are written here as functions, so
every multiplier has a name and a reason.

The values are part of the results: changing one moves every figure that depends on it, so
results.json would no longer match an earlier run of the same config. `protocol/` needs none of
them (it takes its seeds as arguments); every other package imports this module.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import IntEnum

import numpy as np


class Stream(IntEnum):
    """Constants of the independent numpy streams, each mixed with the run's seed."""

    NODE_SAMPLING = 0x5A4D
    """server: which firms a round invites (with the round number, so a resumed run samples as
    an uninterrupted one)."""
    HOLDOUT = 0x4E57
    """experiments: the held-out citizens no regime trains on."""
    DISAGGREGATION = 0xD15A
    """experiments: who is online in each round of the disaggregation attack."""
    POOL_UNIFIED = 0x3E3B
    """experiments: the membership-inference candidate pool of the unified score."""
    POOL_LOCAL = 0x10CA
    """experiments: the candidate pool of the local-only scores."""
    POOL_FEDERATED = 0xFEDA
    """experiments: the candidate pool of the federated scores."""
    ATTRIBUTE_ROWS = 0xA771
    """experiments: the one held-out row per citizen that attribute inference uses."""
    MEMBERSHIP_SPLIT = 1
    """experiments: the half of a candidate pool a membership target trains on (independent of
    `SHADOW_MEMBERSHIP` for the same seed)."""
    SHADOW_MEMBERSHIP = 2
    """experiments: which half of the pool each LiRA shadow trains on."""
    SHADOW_DP_NOISE = 0xD9A0
    """experiments: the DP-SGD noise of a DP regime's LiRA shadows (per round and firm)."""
    VALIDATION = 0x7A11
    """experiments: the validation citizens inside the training rows (tuning, early stopping,
    calibration); drawn after the held-out citizens, so it never moves them."""
    INFERENCE_ROWS = 0x1DF3
    """experiments: the citizens each party's inference is measured on (`[inference] rows`),
    and the sample of colluding pairs."""


def generator(stream: Stream, seed: int, *path: int) -> np.random.Generator:
    """`default_rng([seed, *path, stream])`: the stream of `seed`, optionally per round etc."""
    return np.random.default_rng([int(seed), *(int(p) for p in path), int(stream)])


_RUN_STRIDE = 1_000_003
"""Large prime: run seeds s and s + 1 put every firm's round seeds far apart."""
_ROUND_STRIDE = 7919
"""Prime: a firm's batch order differs from one round to the next."""
_SHADOW_STRIDE = 7919
"""Prime: LiRA shadow j starts from its own initial weights."""
_SHADOW_ROUND_STRIDE = 1009
"""Prime: a federated shadow's local training walks other batches in every round."""
_BENCH_NODE_STRIDE = 1009
"""Prime: a benchmark node's synthetic update differs per node and per round."""
_LOCAL_FIRM_STRIDE = 1000
"""A local-only firm's model seed sits this far from the next firm's."""
_RETRAIN_OFFSET = 500_009
"""Prime: a regime retrained for its noise floor starts far from every seed a run uses."""


def firm_round_seed(run_seed: int, round_number: int, firm: str) -> int:
    """A federated firm's torch seed in one round: batch order without DP, stochastic rounding.

    Distinct per round, repeatable for a given run seed; below 2**31 for torch. Only the first 4
    bytes of the name count (kept: changing it would move every federated figure), so firms
    whose names share them share this seed; DP noise never comes from it
    (`reproducible_noise_seeds`).
    """
    firm_hash = int.from_bytes(firm.encode()[:4].ljust(4, b"\0"), "little")
    return (run_seed * _RUN_STRIDE + round_number * _ROUND_STRIDE + firm_hash) % 2**31


@dataclass(frozen=True)
class NoiseSeeds:
    """Torch seeds of one DP-SGD round at one firm: its Poisson sampler and its Gaussian noise."""

    sampler: int
    noise: int


def reproducible_noise_seeds(run_seed: int, round_number: int, firm: str) -> NoiseSeeds:
    """`[federation] reproducible = true` only: a DP firm's seeds in one round, from public values.

    The server knows the run seed, the round and every firm's name, so it can regenerate this
    noise and subtract it: the DP guarantee then holds against everyone but the server (by
    default the seeds come from the OS generator, `clients/training.py`). The whole name is
    hashed, with SHA-256; `firm_round_seed` reads only its first 4 bytes, so `firm_0` to
    `firm_7` would share their seeds. Both seeds are below 2**64, as torch requires.
    """
    material = f"fedscore/dp-noise/{int(run_seed)}/{int(round_number)}/".encode() + firm.encode()
    digest = hashlib.sha256(material).digest()
    return NoiseSeeds(
        sampler=int.from_bytes(digest[:8], "little"), noise=int.from_bytes(digest[8:16], "little")
    )


def local_model_seed(seed: int, firm_index: int) -> int:
    """The local-only model of the firm at `firm_index` (0-based, in world order)."""
    return seed + _LOCAL_FIRM_STRIDE * (firm_index + 1)


def retrain_seed(seed: int) -> int:
    """The training seed of a regime retrained on the same data: its tier noise floor."""
    return seed + _RETRAIN_OFFSET


def shadow_init_seed(seed: int, shadow: int) -> int:
    """Initial weights of LiRA shadow model `shadow` of a recipe seeded `seed`."""
    return seed + _SHADOW_STRIDE * shadow


def shadow_round_seed(seed: int, round_index: int, firm_index: int) -> int:
    """Batch order of firm `firm_index` training the federated shadows in round `round_index`
    (0-based)."""
    return seed + _SHADOW_ROUND_STRIDE * round_index + firm_index


def bench_node_seed(node_id: int, round_number: int) -> int:
    """A benchmark node's synthetic update in one round."""
    return (node_id % 2**31) * _BENCH_NODE_STRIDE + round_number
