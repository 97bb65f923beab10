"""The leakage figures draw what they are given, on the axes the report promises."""

import io

import numpy as np
import pytest
from matplotlib.figure import Figure

from experiments.leakage.attribute import AttributeResult
from experiments.leakage.membership import roc_summary
from experiments.report.plots import attribute_bars_figure, membership_roc_figure

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def png_bytes(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def attribute_result(auc: float, baseline: float, rare: bool = False) -> AttributeResult:
    return AttributeResult(
        n_rows=1_000, prevalence=0.05 if rare else 0.3, rare=rare, learner="logistic", n_folds=5,
        auc_score_and_qi=auc, auc_qi_only=baseline, advantage=auc - baseline,
        g_mean_score_and_qi=0.5, g_mean_qi_only=0.5, mcc_score_and_qi=0.1, mcc_qi_only=0.1,
    )  # fmt: skip


def test_membership_roc_is_log_log_with_one_line_per_regime_and_the_diagonal() -> None:
    rng = np.random.default_rng(0)
    is_member = np.r_[np.ones(500, bool), np.zeros(500, bool)]
    leaky = roc_summary(np.r_[rng.normal(1, 1, 500), rng.normal(0, 1, 500)], is_member)
    curves = {"unified": leaky, "federated": (np.array([0.0, 0.5, 1.0]), np.array([0, 0.5, 1]))}

    figure = membership_roc_figure(curves)

    axes = figure.axes[0]
    lines = {line.get_label(): line for line in axes.get_lines()}
    assert axes.get_xscale() == "log" and axes.get_yscale() == "log"
    assert {"unified", "federated", "chance"} <= set(lines)
    assert (lines["federated"].get_xdata() > 0).all()  # the (0, 0) point is left out
    np.testing.assert_allclose(lines["federated"].get_xdata(), [0.5, 1.0])
    assert axes.get_xlim()[0] == pytest.approx(0.0005)  # below 0.1 %, resolved only to 1/500
    assert png_bytes(figure).startswith(PNG_MAGIC)


def test_membership_roc_rejects_curves_of_two_lengths_by_regime_name() -> None:
    with pytest.raises(ValueError, match="curve 'local'"):
        membership_roc_figure({"local": (np.array([0.0, 1.0]), np.array([0.0, 0.5, 1.0]))})
    with pytest.raises(ValueError, match="at least one regime"):
        membership_roc_figure({})


def test_attribute_bars_draw_each_auc_its_baseline_and_its_advantage() -> None:
    results = {
        "unified": {"religious_practice": attribute_result(0.9, 0.6), "chronic_health":
                    attribute_result(0.8, 0.7, rare=True)},
        "federated": {"religious_practice": attribute_result(0.65, 0.6)},
    }  # fmt: skip

    figure = attribute_bars_figure(results)

    auc_axes, advantage_axes = figure.axes
    auc_heights = [patch.get_height() for patch in auc_axes.patches]
    advantage_heights = [patch.get_height() for patch in advantage_axes.patches]
    np.testing.assert_allclose(auc_heights, [0.9, 0.8, 0.65])
    np.testing.assert_allclose(advantage_heights, [0.3, 0.1, 0.05])
    baseline_heights = [
        segment[0, 1] for ticks in auc_axes.collections for segment in ticks.get_segments()
    ]
    np.testing.assert_allclose(
        sorted(h for h in baseline_heights if np.isfinite(h)), [0.6, 0.6, 0.7]
    )
    tick_labels = [t.get_text() for t in auc_axes.get_xticklabels()]
    assert tick_labels == ["religious_practice", "chronic_health\n(rare)"]
    assert png_bytes(figure).startswith(PNG_MAGIC)


def test_attribute_bars_reject_empty_results() -> None:
    with pytest.raises(ValueError, match="at least one regime with one attribute"):
        attribute_bars_figure({"unified": {}})
