"""Exposure: what each party holds in raw form, and how identifiable what is released is.

A party's holdings are tables keyed by national id. Counting is over (citizen × attribute)
cells that are present (not missing), so a citizen who is not a firm's customer adds nothing.
Every party that holds a table here holds national ids (real-name registration): it has
identified everyone it holds already, so quasi-identifier uniqueness is not measured for it.
Identifiability matters for what leaves the parties, the released scores beside the
quasi-identifiers a score consumer sees (`release_exposure`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd

from experiments.world.tables import ID, LABEL, World

K_BUCKETS: tuple[tuple[int, int | None], ...] = ((1, 1), (2, 4), (5, 9), (10, None))
"""Equivalence-class sizes reported in the k-anonymity distribution: 1, 2–4, 5–9, 10+."""


@dataclass(frozen=True)
class PartyExposure:
    """What one party holds in raw form.

    cells: present (citizen × attribute) cells, the id column excluded.
    sensitive_proxy_cells: of which, cells of columns that proxy a sensitive attribute.
    citizens: distinct citizens in any of its tables.
    linked_citizens: citizens it can link across two or more domains (sources).
    """

    party: str
    cells: int
    sensitive_proxy_cells: int
    citizens: int
    linked_citizens: int

    def to_json(self) -> dict[str, object]:
        return {
            "cells": self.cells,
            "sensitive_proxy_cells": self.sensitive_proxy_cells,
            "citizens": self.citizens,
            "linked_citizens": self.linked_citizens,
        }


def _bucket_name(low: int, high: int | None) -> str:
    if high is None:
        return f"k>={low}"
    return f"k={low}" if low == high else f"k={low}-{high}"


def k_anonymity(quasi_identifiers: pd.DataFrame) -> tuple[float, dict[str, float]]:
    """Share of rows unique on the given columns, and the share per class-size bucket.

    quasi_identifiers: one row per citizen, one column per quasi-identifier. With no columns,
    everyone shares one class (nothing identifies anyone).
    """
    n = len(quasi_identifiers)
    if n == 0:
        return 0.0, {_bucket_name(lo, hi): 0.0 for lo, hi in K_BUCKETS}
    if quasi_identifiers.shape[1] == 0:
        sizes = np.full(n, n)
    else:
        sizes = (
            quasi_identifiers.groupby(list(quasi_identifiers.columns), observed=True, dropna=False)[
                quasi_identifiers.columns[0]
            ]
            .transform("size")
            .to_numpy()
        )
    distribution = {
        _bucket_name(lo, hi): float(np.mean((sizes >= lo) & (sizes <= (hi if hi else n))))
        for lo, hi in K_BUCKETS
    }
    return float(np.mean(sizes == 1)), distribution


def party_exposure(
    party: str,
    tables: Mapping[str, pd.DataFrame],
    sensitive_proxy_columns: Mapping[str, set[str]],
    identity_sources: frozenset[str] = frozenset(),
) -> PartyExposure:
    """Exposure of a party holding `tables` (source name -> table with an ID column).

    The party can join its tables on the id (real-name registration), so a citizen present in
    two sources is a cross-domain link.
    `identity_sources` (e.g. a population register) identify citizens but are no domain of
    behaviour, so they do not count towards links.
    """
    cells = proxy_cells = 0
    presence: list[pd.Series] = []
    for source, table in tables.items():
        values = table.drop(columns=[ID, LABEL], errors="ignore")
        present = values.notna()
        cells += int(present.to_numpy().sum())
        proxies = [c for c in values.columns if c in sensitive_proxy_columns.get(source, set())]
        proxy_cells += int(present[proxies].to_numpy().sum())
        index = pd.Index(table[ID].to_numpy(), name=ID)
        presence.append(pd.Series(source not in identity_sources, index=index, name=source))
    citizens = pd.concat(presence, axis=1) if presence else pd.DataFrame()
    domains_per_citizen = citizens.fillna(False).astype(bool).sum(axis=1)
    return PartyExposure(
        party=party,
        cells=cells,
        sensitive_proxy_cells=proxy_cells,
        citizens=len(domains_per_citizen),
        linked_citizens=int((domains_per_citizen >= 2).sum()),
    )


def world_exposure(world: World) -> dict[str, PartyExposure]:
    """Every party's raw holdings in the world, under any regime.

    - "central_operator": the national database (unified regime): every firm's table, the
      government records and the population register's quasi-identifiers.
    - "coordinating_server": the federated server holds no raw table at all; what it learns
      from updates is measured by the server-view metrics, not here.
    - "firm:<name>": each firm's own customer table (it holds it in every regime).
    """
    proxies = {f: {c.name for c in world.columns_of(f, {"sensitive-proxy"})} for f in world.firms}
    register = world.truth[[ID, *register_quasi_identifiers(world)]]
    exposures = {
        f"firm:{firm}": party_exposure(f"firm:{firm}", {firm: table}, proxies)
        for firm, table in world.firms.items()
    }
    operator_tables = {
        "population_register": register,
        "government": world.government,
        **world.firms,
    }
    exposures["central_operator"] = party_exposure(
        "central_operator",
        operator_tables,
        proxies,
        identity_sources=frozenset({"population_register"}),
    )
    exposures["coordinating_server"] = party_exposure("coordinating_server", {}, {})
    return exposures


def register_quasi_identifiers(world: World) -> list[str]:
    """The quasi-identifiers of the population register: what a score consumer sees beside a
    released score (an applicant's age, sex, region, ...) and can find in public records."""
    return [c.name for c in world.columns_of("truth", {"quasi-identifier"})]


def release_quasi_identifiers(world: World) -> list[str]:
    """What a score consumer sees beside a released score: the register's quasi-identifiers
    that firms also hold (KYC: what an applicant shows every firm, e.g. age, sex, region), or
    all of the register's when no firm holds one (a table whose firms hold none)."""
    register = register_quasi_identifiers(world)
    held = {c.name for f in world.firms for c in world.columns_of(f, {"quasi-identifier"})}
    return [q for q in register if q in held] or register


SCORE_BAND_POINTS = 10.0
"""A released score is read in bands of this many scorecard points (a bureau's report)."""


def score_bands(points: np.ndarray) -> np.ndarray:
    """The band of each released score: its points rounded down to `SCORE_BAND_POINTS`."""
    bands: np.ndarray = np.floor(np.asarray(points, dtype=np.float64) / SCORE_BAND_POINTS)
    return bands


def _class_sizes(frame: pd.DataFrame, columns: list[str]) -> np.ndarray:
    """Each row's equivalence-class size on `columns` (missing values form a class of their own)."""
    sizes: np.ndarray = (
        frame.groupby(columns, observed=True, dropna=False)[columns[0]].transform("size").to_numpy()
    )
    return sizes


@dataclass(frozen=True)
class ReleaseExposure:
    """How identifiable a regime's released scores are, beside the quasi-identifiers.

    The release: one record per held-out (firm, citizen) pair, the citizen's quasi-identifiers
    as a consumer sees them (`release_quasi_identifiers`) and the score band, without the id.
    unique_share / unique_share_qi_only: share of records unique in their firm's release on QIs
    and band / on QIs alone (singling out; the difference is what the score adds).
    register_linkage: share of records a consumer holding the population register (identities
    and QIs) links to the right identity, as the expected success of picking one of the
    register's citizens that share the record's QIs (the score is not in the register, so this
    is the same for every regime: what releasing the QIs costs).
    cross_release_linkage / cross_release_linkage_qi_only: over every citizen released by two
    firms and each ordered pair of them, the share whose record at the first firm is linked to
    their record at the second: its only match on QIs, or where several share them, its only
    match on QIs and band / on QIs alone. A score that is the same at every firm (a national
    score) links a citizen's contexts; per-firm scores differ and add little.
    """

    unique_share: float
    unique_share_qi_only: float
    register_linkage: float
    cross_release_linkage: float
    cross_release_linkage_qi_only: float

    def to_json(self) -> dict[str, float]:
        return {
            "unique_share": self.unique_share,
            "unique_share_qi_only": self.unique_share_qi_only,
            "register_linkage": self.register_linkage,
            "cross_release_linkage": self.cross_release_linkage,
            "cross_release_linkage_qi_only": self.cross_release_linkage_qi_only,
        }


BAND = "score_band"


def _codes(release: pd.DataFrame, key: list[str]) -> np.ndarray:
    codes: np.ndarray = release.groupby(key, observed=True, dropna=False).ngroup().to_numpy()
    return codes


def _cross_release_linkage(release: pd.DataFrame, qis: list[str]) -> tuple[float, float]:
    """Over every (citizen, firm a, firm b ≠ a) with the citizen at both: the share whose record
    at a is linked to theirs at b, (with the score, on QIs alone); NaN when no citizen is at two
    firms.

    The linker takes the only record at b with the same QIs; where several share them, the only
    one that also shares the score band. A citizen's QIs are the same at every firm, so a
    unique QI match is always right; the band can only help where the scores agree.
    """
    firms = pd.factorize(release["firm"])[0]
    by_qis, by_band = _codes(release, qis), _codes(release, [*qis, BAND])
    at_firm = {}
    for name, codes in (("qis", by_qis), ("band", by_band)):
        counts = np.zeros((firms.max() + 1, codes.max() + 1), dtype=np.int64)
        np.add.at(counts, (firms, codes), 1)
        at_firm[name] = counts
    records = pd.DataFrame(
        {ID: release[ID].to_numpy(), "firm": firms, "qis": by_qis, "band": by_band}
    )
    pairs = records.merge(records, on=ID, suffixes=("_a", "_b"))
    pairs = pairs[pairs["firm_a"] != pairs["firm_b"]]
    if pairs.empty:
        return float("nan"), float("nan")
    firm_b = pairs["firm_b"].to_numpy()
    band_a, band_b = pairs["band_a"].to_numpy(), pairs["band_b"].to_numpy()
    by_qis_alone = at_firm["qis"][firm_b, pairs["qis_a"].to_numpy()] == 1
    by_band_too = (band_a == band_b) & (at_firm["band"][firm_b, band_a] == 1)
    return float(np.mean(by_qis_alone | by_band_too)), float(np.mean(by_qis_alone))


def release_exposure(world: World, pairs: pd.DataFrame, points: np.ndarray) -> ReleaseExposure:
    """The identifiability of a release: `pairs` (firm, ID per held-out pair) scored `points`.

    The register's quasi-identifiers are joined to every pair by id; the id then plays no part
    but to check that a link is right.
    """
    qis = release_quasi_identifiers(world)
    register = world.truth[[ID, *qis]]
    release = pairs[["firm", ID]].merge(register, on=ID, how="left")
    release[BAND] = score_bands(points)
    with_band = [*qis, BAND]
    register_sizes = _class_sizes(register, qis)
    size_of = pd.Series(register_sizes, index=register[ID].to_numpy())
    linkage, linkage_qi_only = _cross_release_linkage(release, qis)
    return ReleaseExposure(
        unique_share=float(np.mean(_class_sizes(release, ["firm", *with_band]) == 1)),
        unique_share_qi_only=float(np.mean(_class_sizes(release, ["firm", *qis]) == 1)),
        register_linkage=float(np.mean(1.0 / size_of.reindex(release[ID].to_numpy()).to_numpy())),
        cross_release_linkage=linkage,
        cross_release_linkage_qi_only=linkage_qi_only,
    )
