"""The report flags DP regimes whose noise the server could regenerate."""

from __future__ import annotations

from typing import Any

from experiments.report.html import reproducible_noise_notice
from experiments.report.tables import privacy_table


def _summary(value: float) -> dict[str, Any]:
    return {"mean": value, "ci95": [value, value], "per_seed": [value]}


def _results(noise: str) -> dict[str, Any]:
    def regime(epsilon: float) -> dict[str, Any]:
        privacy = {
            "target_epsilon": _summary(epsilon),
            "epsilon": _summary(epsilon * 0.99),
            "delta": _summary(1e-5),
            "noise": noise,
        }
        return {"utility": {"auc": _summary(0.8)}, "privacy": privacy}

    return {
        "regimes": {
            "federated_secagg": {"utility": {"auc": _summary(0.82)}},
            "federated_dp_eps1": regime(1.0),
            "federated_dp_eps8": regime(8.0),
        }
    }


def test_reproducible_noise_is_flagged_at_the_top_and_in_the_privacy_table() -> None:
    # Prepare
    results = _results("run-seed")
    # Execute
    notice, table = reproducible_noise_notice(results), privacy_table(results)
    # Assert
    assert "reproducible = true" in notice
    assert "ε = 1" in notice and "ε = 8" in notice and "Federated + secure" not in notice
    assert "against every party but the server" in notice
    assert table.count("run seed: the server could regenerate it") == 2


def test_noise_from_the_os_generator_raises_no_flag() -> None:
    # Prepare
    results = _results("os-generator")
    # Execute / Assert
    assert reproducible_noise_notice(results) == ""
    assert privacy_table(results).count("each firm&#x27;s OS generator") == 2
