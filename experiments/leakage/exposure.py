"""Exposure: what each party holds in raw form, and how identifiable the people in it are.

A party's holdings are tables keyed by national id. Counting is over (citizen × attribute)
cells that are present (not missing), so a citizen who is not a firm's customer adds nothing.
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
    unique_share: share of its citizens unique on the quasi-identifiers it holds (k = 1).
    k_anonymity: share of its citizens per equivalence-class size bucket (K_BUCKETS).
    """

    party: str
    cells: int
    sensitive_proxy_cells: int
    citizens: int
    linked_citizens: int
    unique_share: float
    k_anonymity: dict[str, float]

    def to_json(self) -> dict[str, object]:
        return {
            "cells": self.cells,
            "sensitive_proxy_cells": self.sensitive_proxy_cells,
            "citizens": self.citizens,
            "linked_citizens": self.linked_citizens,
            "unique_share": self.unique_share,
            "k_anonymity": self.k_anonymity,
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
    quasi_identifier_columns: Mapping[str, set[str]],
    identity_sources: frozenset[str] = frozenset(),
) -> PartyExposure:
    """Exposure of a party holding `tables` (source name -> table with an ID column).

    The party can join its tables on the id (real-name registration), so its quasi-identifiers
    are the union over its tables, and a citizen present in two sources is a cross-domain link.
    `identity_sources` (e.g. a population register) identify citizens but are no domain of
    behaviour, so they do not count towards links.
    """
    cells = proxy_cells = 0
    presence: list[pd.Series] = []
    qi_parts: list[pd.DataFrame] = []
    for source, table in tables.items():
        values = table.drop(columns=[ID, LABEL], errors="ignore")
        present = values.notna()
        cells += int(present.to_numpy().sum())
        proxies = [c for c in values.columns if c in sensitive_proxy_columns.get(source, set())]
        proxy_cells += int(present[proxies].to_numpy().sum())
        index = pd.Index(table[ID].to_numpy(), name=ID)
        presence.append(pd.Series(source not in identity_sources, index=index, name=source))
        qis = [c for c in values.columns if c in quasi_identifier_columns.get(source, set())]
        if qis:
            qi_parts.append(table.set_index(ID)[qis])
    citizens = pd.concat(presence, axis=1) if presence else pd.DataFrame()
    domains_per_citizen = citizens.fillna(False).astype(bool).sum(axis=1)
    known: dict[str, pd.Series] = {}  # one column per QI name; the first source that has it wins
    for part in qi_parts:
        for name in part.columns:
            known[name] = known[name].combine_first(part[name]) if name in known else part[name]
    joined = pd.DataFrame(known).reindex(citizens.index)
    unique, distribution = k_anonymity(joined)
    return PartyExposure(
        party=party,
        cells=cells,
        sensitive_proxy_cells=proxy_cells,
        citizens=len(domains_per_citizen),
        linked_citizens=int((domains_per_citizen >= 2).sum()),
        unique_share=unique,
        k_anonymity=distribution,
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
    qis = {f: {c.name for c in world.columns_of(f, {"quasi-identifier"})} for f in world.firms}
    register_qis = [c.name for c in world.columns_of("truth", {"quasi-identifier"})]
    register = world.truth[[ID, *register_qis]]
    exposures = {
        f"firm:{firm}": party_exposure(f"firm:{firm}", {firm: table}, proxies, qis)
        for firm, table in world.firms.items()
    }
    operator_tables = {
        "population_register": register,
        "government": world.government,
        **world.firms,
    }
    operator_qis = {**qis, "population_register": set(register_qis)}
    exposures["central_operator"] = party_exposure(
        "central_operator",
        operator_tables,
        proxies,
        operator_qis,
        identity_sources=frozenset({"population_register"}),
    )
    exposures["coordinating_server"] = party_exposure("coordinating_server", {}, {}, {})
    return exposures
