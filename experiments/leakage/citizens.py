"""The citizen as the unit of privacy: candidate pools of citizens, and ε per citizen.

A citizen sits in several firms' tables, so a row is not the unit a privacy promise is made
to. Membership inference here draws citizens, not rows: a candidate citizen is IN (every row at
every firm in the training data) or OUT (none), in the target and in every shadow alike, and the
attack score of a citizen adds up the evidence of all their rows. The pool is matched on each
citizen's row profile (rows held, rows in default), so members and non-members have exactly the
same default rate, per citizen and per row: a loss attack cannot win by telling defaulters from
payers. DP composes the same way: a citizen in firms F is protected by the composition of the
mechanisms of F, whose RDP curves add.

Array shapes: rows = rows of the universe (one table, or every firm's rows in firm order),
c = citizens in the pool, s = shadows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

RDP_ORDERS: tuple[float, ...] = (*(1 + x / 10.0 for x in range(1, 100)), *range(12, 64))
"""Rényi orders ε is optimised over: Opacus's `RDPAccountant.DEFAULT_ALPHAS`, the grid of each
firm's own ledger, so a citizen in one firm gets exactly that firm's ε (composing firms lowers
the optimal order, so the grid's top, 63, binds no less often than for one firm)."""


@dataclass(frozen=True)
class CitizenPool:
    """A pool of candidate citizens laid over a universe of rows.

    citizens: (c,) national ids, sorted; is_member: (c,) in the target's training data;
    labels: (c,) 1 if the citizen defaulted at any of their rows. rows: sorted universe indices
    of every row of a pool citizen; citizen_of_row: (len(rows),) index into `citizens`. rest:
    sorted universe indices of the training rows of citizens outside the pool, which every
    shadow trains on.
    """

    citizens: np.ndarray
    is_member: np.ndarray
    labels: np.ndarray
    rows: np.ndarray
    citizen_of_row: np.ndarray
    rest: np.ndarray

    def row_membership(self, citizen_membership: np.ndarray) -> np.ndarray:
        """(len(rows), s) shadow membership of the pool rows from the citizens' (c, s): a
        citizen's rows move together."""
        if citizen_membership.shape[0] != len(self.citizens):
            raise ValueError(
                f"citizen_membership must have one row per pool citizen ({len(self.citizens)}), "
                f"got shape {citizen_membership.shape}"
            )
        rows: np.ndarray = citizen_membership[self.citizen_of_row]
        return rows


def citizen_pool(
    ids: npt.ArrayLike,
    labels: npt.ArrayLike,
    is_member: npt.ArrayLike,
    size: int,
    rng: np.random.Generator,
) -> CitizenPool:
    """Up to size/2 member and as many non-member citizens, matched on their row profile.

    ids, labels, is_member: (rows,) over the universe; membership must be the same on every
    row of a citizen. A citizen's profile is (rows held, rows in default); the side with fewer
    citizens draws size/2 at random, and the other side draws as many of each profile (a
    profile the other side lacks is dropped), so both sides have exactly the same default rate,
    per citizen and per row, and the same number of rows.
    """
    row_ids = np.asarray(ids)
    row_labels = np.asarray(labels).astype(np.int64)
    row_member = np.asarray(is_member, dtype=bool)
    if not (row_ids.shape == row_labels.shape == row_member.shape) or row_ids.ndim != 1:
        raise ValueError(
            f"ids, labels and is_member must be 1-D of one length, got {row_ids.shape}, "
            f"{row_labels.shape} and {row_member.shape}"
        )
    if size < 2:
        raise ValueError(f"pool size must be >= 2 citizens, got {size}")
    citizens, first, index = np.unique(row_ids, return_index=True, return_inverse=True)
    n_rows = np.bincount(index)
    members_per_citizen = np.bincount(index, weights=row_member)
    if not np.all((members_per_citizen == 0) | (members_per_citizen == n_rows)):
        raise ValueError("is_member must be the same on every row of a citizen")
    defaults = np.bincount(index, weights=row_labels).astype(np.int64)
    profile = n_rows * (int(n_rows.max()) + 1) + defaults
    member = row_member[first]
    inside, outside = np.flatnonzero(member), np.flatnonzero(~member)
    scarce, plenty = (inside, outside) if len(inside) <= len(outside) else (outside, inside)
    drawn = rng.permutation(scarce)[: size // 2]
    shuffled = rng.permutation(plenty)
    chosen = []
    for value in np.unique(profile[drawn]):
        a, b = drawn[profile[drawn] == value], shuffled[profile[shuffled] == value]
        matched = min(len(a), len(b))
        chosen += [a[:matched], b[:matched]]
    picked = np.sort(np.concatenate(chosen)) if chosen else np.empty(0, dtype=np.int64)
    in_pool = np.isin(index, picked)
    rows = np.flatnonzero(in_pool)
    return CitizenPool(
        citizens=citizens[picked],
        is_member=member[picked],
        labels=(defaults[picked] > 0).astype(np.int64),
        rows=rows,
        citizen_of_row=np.searchsorted(picked, index[rows]),
        rest=np.flatnonzero(row_member & ~in_pool),
    )


def per_citizen(row_scores: npt.ArrayLike, citizen_of_row: np.ndarray, n: int) -> np.ndarray:
    """(n,) sum of each citizen's row scores: LiRA's log-likelihood ratios add when a citizen's
    rows are independent evidence."""
    total: np.ndarray = np.bincount(
        citizen_of_row, weights=np.asarray(row_scores, dtype=np.float64), minlength=n
    )
    return total


def per_citizen_mean(row_scores: npt.ArrayLike, citizen_of_row: np.ndarray, n: int) -> np.ndarray:
    """(n,) mean of each citizen's row scores: the loss attack's per-citizen loss, which a sum
    would make depend on how many firms a citizen uses."""
    counts = np.bincount(citizen_of_row, minlength=n)
    return per_citizen(row_scores, citizen_of_row, n) / np.maximum(counts, 1)


# ------------------------------------------------------------------------------ ε per citizen


@dataclass(frozen=True)
class FirmMechanism:
    """One firm's DP-SGD over the whole federation: Opacus's (noise, sample rate, steps)."""

    noise_multiplier: float
    sample_rate: float
    steps: int


def firm_rdp(mechanism: FirmMechanism, orders: Sequence[float] = RDP_ORDERS) -> np.ndarray:
    """The firm's RDP curve at `orders` (Opacus `compute_rdp`): what one record there spends."""
    from opacus.accountants.analysis.rdp import compute_rdp

    return np.asarray(
        compute_rdp(
            q=mechanism.sample_rate,
            noise_multiplier=mechanism.noise_multiplier,
            steps=mechanism.steps,
            orders=list(orders),
        ),
        dtype=np.float64,
    )


def composed_epsilon(
    mechanisms: Sequence[FirmMechanism], delta: float, orders: Sequence[float] = RDP_ORDERS
) -> float:
    """ε at `delta` of a citizen protected by every mechanism in `mechanisms` together: their
    RDP curves add (sequential composition), then Opacus converts to (ε, δ)."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    if not mechanisms:
        return 0.0
    rdp = np.sum([firm_rdp(m, orders) for m in mechanisms], axis=0)
    epsilon, _ = get_privacy_spent(orders=list(orders), rdp=rdp, delta=delta)
    return float(epsilon)


def citizen_epsilons(
    firms_of_citizen: Sequence[frozenset[str]],
    mechanisms: Mapping[str, FirmMechanism],
    delta: float,
) -> np.ndarray:
    """(citizens,) each citizen's ε over the firms they belong to; a firm without a mechanism
    (no DP ledger) counts as none. Each firm's RDP curve is computed once, and citizens sharing
    a set of firms share one conversion (`composed_epsilon`'s arithmetic)."""
    from opacus.accountants.analysis.rdp import get_privacy_spent

    curves = {firm: firm_rdp(mechanism) for firm, mechanism in mechanisms.items()}
    cache: dict[frozenset[str], float] = {}
    out = np.empty(len(firms_of_citizen))
    for i, firms in enumerate(firms_of_citizen):
        if firms not in cache:
            held = [curves[f] for f in sorted(firms) if f in curves]
            if not held:
                cache[firms] = 0.0
            else:
                rdp = np.sum(held, axis=0)
                epsilon, _ = get_privacy_spent(orders=list(RDP_ORDERS), rdp=rdp, delta=delta)
                cache[firms] = float(epsilon)
        out[i] = cache[firms]
    return out


def firm_mechanism(
    training_rows: int, batch_size: int, local_epochs: int, rounds: int, noise_multiplier: float
) -> FirmMechanism:
    """What `clients.training.train_model_dp` ran at a firm of `training_rows` rows over
    `rounds` rounds: one step per batch, each row sampled at 1 / batches."""
    if training_rows < 1:
        raise ValueError(f"training_rows must be >= 1, got {training_rows}")
    batches = -(-training_rows // min(batch_size, training_rows))
    return FirmMechanism(noise_multiplier, 1.0 / batches, local_epochs * batches * rounds)


def citizen_privacy(
    firm_ids: Mapping[str, np.ndarray],
    ledgers: Mapping[str, Mapping[str, float]],
    batch_size: int,
    local_epochs: int,
    delta: float,
) -> dict[str, float]:
    """The median and largest ε over the citizens a DP federation trained on.

    firm_ids: each firm's training rows' national ids; ledgers: each firm's latest ledger line
    (`clients.accounting.LedgerEntry` as a dict: round, epsilon, noise_multiplier). Each firm's
    mechanism is rebuilt from its rows and the recipe, and must give the ε its own ledger
    recorded: a mismatch means the rebuild is not what the firm ran, and is an error.
    """
    mechanisms: dict[str, FirmMechanism] = {}
    for firm, ids in firm_ids.items():
        if firm not in ledgers or len(ids) == 0:
            continue
        entry = ledgers[firm]
        mechanism = firm_mechanism(
            len(ids), batch_size, local_epochs, int(entry["round"]), entry["noise_multiplier"]
        )
        rebuilt = composed_epsilon([mechanism], delta)
        if not np.isclose(rebuilt, entry["epsilon"], rtol=1e-6):
            raise RuntimeError(
                f"firm {firm}: its ledger spent ε = {entry['epsilon']}, the rebuilt mechanism "
                f"{mechanism} gives {rebuilt}"
            )
        mechanisms[firm] = mechanism
    firms_of: dict[int, set[str]] = {}
    for firm, ids in firm_ids.items():
        for citizen in np.asarray(ids).tolist():
            firms_of.setdefault(citizen, set()).add(firm)
    if not firms_of:
        return {"citizen_epsilon_median": float("nan"), "citizen_epsilon_max": float("nan")}
    epsilons = citizen_epsilons([frozenset(f) for f in firms_of.values()], mechanisms, delta)
    return {
        "citizen_epsilon_median": float(np.median(epsilons)),
        "citizen_epsilon_max": float(np.max(epsilons)),
    }
