"""Every interval over seeds stays within the range of its figure."""

from __future__ import annotations

from typing import Any

from experiments.harness import _summarise_tree, bounds_of


def test_figures_get_the_range_their_name_or_mapping_says() -> None:
    # Assert
    assert bounds_of("auc") == bounds_of("watch_list_precision") == (0.0, 1.0)
    assert bounds_of("tier_changed_vs_truth") == bounds_of("cross_release_linkage") == (0.0, 1.0)
    assert bounds_of("advantage") == bounds_of("demographic_parity_gap") == (-1.0, 1.0)
    assert bounds_of("size_error") is None and bounds_of("epsilon") is None
    assert bounds_of("political_expression") is None  # a group: its mapping decides
    assert bounds_of("firm:market_share") is None  # names from the data never pick up a range


def test_wide_spreads_over_three_seeds_are_clipped_to_the_figures_range() -> None:
    # Prepare: figures near their bounds with a large spread over seeds
    per_seed: list[dict[str, Any]] = [
        {
            "inference": {"central_operator": {"auc": a, "advantage": d}},
            "demographic_parity_gap": {"ethnic_minority": d},
            "size_error": e,
        }
        for a, d, e in ((0.99, 0.9, 3.0), (0.70, -0.9, 0.1), (0.98, 0.8, 9.0))
    ]
    # Execute
    summary = _summarise_tree(per_seed)
    # Assert
    auc = summary["inference"]["central_operator"]["auc"]["ci95"]
    advantage = summary["inference"]["central_operator"]["advantage"]["ci95"]
    gap = summary["demographic_parity_gap"]["ethnic_minority"]["ci95"]
    assert auc[0] >= 0.0 and auc[1] == 1.0
    assert advantage[0] == -1.0 and advantage[1] == 1.0 and gap == advantage
    assert summary["size_error"]["ci95"][0] < 0  # no range: the t interval as it is
