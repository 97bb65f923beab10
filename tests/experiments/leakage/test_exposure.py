import numpy as np
import pandas as pd
import pytest

from experiments.leakage.exposure import (
    SCORE_BAND_POINTS,
    k_anonymity,
    party_exposure,
    register_quasi_identifiers,
    release_exposure,
    world_exposure,
)
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID, World


def test_k_anonymity_on_a_hand_built_table() -> None:
    # Prepare: classes of size 1, 2 and 5 on (age, sex)
    qis = pd.DataFrame({"age": [20, 30, 30, *[40] * 5], "sex": ["f", "m", "m", *["f"] * 5]})

    # Execute
    unique, distribution = k_anonymity(qis)

    # Assert
    assert unique == pytest.approx(1 / 8)
    assert distribution == pytest.approx({"k=1": 1 / 8, "k=2-4": 2 / 8, "k=5-9": 5 / 8, "k>=10": 0})


def test_cells_proxies_and_links_are_counted_per_present_value() -> None:
    shop = pd.DataFrame({ID: [1, 2, 3], "spend": [1.0, np.nan, 3.0], "pharmacy": [1, 0, 1]})
    ride = pd.DataFrame({ID: [2, 3, 4], "trips": [5, 6, 7]})

    exposure = party_exposure(
        "operator",
        {"shop": shop, "ride": ride},
        sensitive_proxy_columns={"shop": {"pharmacy"}},
    )

    assert exposure.cells == 2 + 3 + 3  # one spend missing
    assert exposure.sensitive_proxy_cells == 3
    assert exposure.citizens == 4
    assert exposure.linked_citizens == 2  # citizens 2 and 3 are in both sources


def test_identity_sources_do_not_count_as_links() -> None:
    register = pd.DataFrame({ID: [1, 2], "age": [30, 40]})
    shop = pd.DataFrame({ID: [1], "spend": [1.0]})

    exposure = party_exposure(
        "op",
        {"register": register, "shop": shop},
        {},
        identity_sources=frozenset({"register"}),
    )

    assert exposure.linked_citizens == 0
    assert exposure.citizens == 2


def test_the_central_operator_holds_and_links_far_more_than_any_firm() -> None:
    world = generate_world(5_000, seed=2)

    exposure = world_exposure(world)

    operator = exposure["central_operator"]
    firms = [e for p, e in exposure.items() if p.startswith("firm:")]
    assert operator.cells > sum(f.cells for f in firms)  # plus register and government
    assert operator.linked_citizens > 0.9 * len(world.truth)
    assert all(f.linked_citizens == 0 for f in firms)
    assert exposure["coordinating_server"].cells == 0


def _pairs(world: World, citizens: int) -> pd.DataFrame:
    """Every firm's rows of the first `citizens` citizens: a release's (firm, citizen) pairs."""
    ids = world.truth[ID].to_numpy()[:citizens]
    return pd.concat(
        [
            pd.DataFrame({"firm": firm, ID: t[ID].to_numpy()})[np.isin(t[ID].to_numpy(), ids)]
            for firm, t in world.firms.items()
        ],
        ignore_index=True,
    )


@pytest.fixture(scope="module")
def world() -> World:
    return generate_world(3_000, seed=4)


def test_a_score_shared_by_every_firm_links_a_citizens_contexts(world: World) -> None:
    # Prepare: a national score (one value per citizen, at every firm) and firm-level scores
    # (a value per row), both spread over 50 bands
    pairs = _pairs(world, 1_000)
    rng = np.random.default_rng(0)
    per_citizen = pd.Series(rng.uniform(400, 900, len(world.truth)), index=world.truth[ID])
    national = per_citizen.reindex(pairs[ID].to_numpy()).to_numpy()
    per_firm = rng.uniform(400, 900, len(pairs))

    # Execute
    unified = release_exposure(world, pairs, national)
    firms = release_exposure(world, pairs, per_firm)

    # Assert: the shared score links nearly every pair of a citizen's firms; a firm-level score
    # adds only where the bands agree by chance (1 in 50) to what the QIs alone link
    assert unified.cross_release_linkage > 0.9
    qi_only = firms.cross_release_linkage_qi_only
    assert qi_only <= firms.cross_release_linkage < qi_only + 0.05
    assert unified.cross_release_linkage_qi_only == qi_only
    assert unified.cross_release_linkage > unified.cross_release_linkage_qi_only
    assert unified.unique_share >= unified.unique_share_qi_only
    assert unified.register_linkage == firms.register_linkage  # the score is not in the register


def test_release_figures_on_a_hand_built_world(world: World) -> None:
    # Prepare: two citizens with the same QIs at firms a and b; their scores in distinct bands
    twins = world.truth.iloc[:2].copy()
    for column in register_quasi_identifiers(world):
        twins[column] = twins[column].iloc[0]
    small = World(
        truth=twins,
        government=world.government.iloc[:0],
        firms={
            "a": world.firms[next(iter(world.firms))].iloc[:0],
            "b": world.firms[next(iter(world.firms))].iloc[:0],
        },
        columns=world.columns,
        meta=world.meta,
    )
    ids = twins[ID].to_numpy()
    pairs = pd.DataFrame({"firm": ["a", "a", "b", "b"], ID: [ids[0], ids[1], ids[0], ids[1]]})
    points = np.array([600.0, 700.0, 600.0, 700.0 + SCORE_BAND_POINTS / 2])

    # Execute
    release = release_exposure(small, pairs, points)

    # Assert: QIs alone: nobody unique, each record links to 2 register citizens (1/2), and no
    # context is linked uniquely; with the band each record is unique, and each citizen's record
    # at a matches theirs at b alone
    assert release.unique_share_qi_only == 0.0
    assert release.unique_share == 1.0
    assert release.register_linkage == pytest.approx(0.5)
    assert release.cross_release_linkage_qi_only == 0.0
    assert release.cross_release_linkage == 1.0
