import numpy as np
import pandas as pd
import pytest

from experiments.leakage.exposure import k_anonymity, party_exposure, world_exposure
from experiments.world.synthetic import generate_world
from experiments.world.tables import ID


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
        quasi_identifier_columns={},
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
        {"register": {"age"}},
        identity_sources=frozenset({"register"}),
    )

    assert exposure.linked_citizens == 0
    assert exposure.unique_share == 1.0


def test_the_central_operator_holds_and_links_far_more_than_any_firm() -> None:
    world = generate_world(5_000, seed=2)

    exposure = world_exposure(world)

    operator = exposure["central_operator"]
    firms = [e for p, e in exposure.items() if p.startswith("firm:")]
    assert operator.cells > sum(f.cells for f in firms)  # plus register and government
    assert operator.linked_citizens > 0.9 * len(world.truth)
    assert all(f.linked_citizens == 0 for f in firms)
    assert operator.unique_share > max(f.unique_share for f in firms)
    assert exposure["coordinating_server"].cells == 0
