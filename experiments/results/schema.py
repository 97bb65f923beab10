"""The models of results.json: one pydantic model per block, a docstring per field.

Fields are declared in the order the harness computes them, so `as_dict()` iterates like the
harness's own dicts did and results.csv and report.html keep their row order; the file itself
sorts its keys. The docstrings are the reference (docs/RESULTS.md is generated from them), which
is why this module is long.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from experiments.config import ExperimentConfig

SCHEMA_VERSION = 3
"""Bumped when a key of results.json is added, removed or changes meaning."""


@dataclass(frozen=True)
class Keys:
    """What the keys of a mapping name (`firm`, `regime`, ...), for the reference docs."""

    name: str


REGIME_PATTERN = (
    r"^(unified|local_only|federated_secagg|federated_plain|federated_flower_secagg|federated_limit"
    r"|federated_dp_eps[0-9.e+-]+)$"
)
RegimeName = Annotated[str, Keys("regime"), StringConstraints(pattern=REGIME_PATTERN)]
FirmName = Annotated[str, Keys("firm"), StringConstraints(min_length=1)]
TierName = Annotated[str, Keys("tier"), StringConstraints(min_length=1)]
GroupName = Annotated[str, Keys("group"), StringConstraints(min_length=1)]
AttributeName = Annotated[str, Keys("attribute"), StringConstraints(min_length=1)]
PartyName = Annotated[
    str,
    Keys("party"),
    StringConstraints(pattern=r"^(central_operator|coordinating_server|firm:.+)$"),
]
ColumnName = Annotated[str, Keys("column"), StringConstraints(min_length=1)]
TargetName = Annotated[str, Keys("target"), StringConstraints(min_length=1)]
InferencePartyName = Annotated[
    str,
    Keys("party"),
    StringConstraints(
        pattern=r"^(central_operator|coordinating_server|firm:.+|colluding_pair:(max|median))$"
    ),
]
KnowledgeLevel = Annotated[
    Literal["kyc", "quasi_identifiers", "quasi_identifiers_and_memberships"], Keys("knowledge")
]


class _Block(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


def _absent(value: object) -> bool:
    return value is None


def _optional() -> Any:
    """A block some runs do not have: absent from the file, never written as null."""
    return Field(default=None, exclude_if=_absent)


class Summary(_Block):
    """A figure measured once per seed, summarised over the seeds.

    Every number below that is typed Summary is stored this way, e.g.
    `{"mean": 0.834, "ci95": [0.802, 0.866], "per_seed": [0.83, 0.85, 0.82]}`. Counts and flags
    measured per seed are summarised too (a flag as 1 or 0, so its mean is the share of seeds).
    """

    mean: float | None
    """Mean over the seeds where the figure could be computed; null when it could be in none."""
    ci95: tuple[float | None, float | None]
    """Student-t 95 % interval of the mean over those seeds, [low, high]; [mean, mean] for one
    seed; [null, null] when the mean is null."""
    per_seed: list[float | None] = Field(min_length=1)
    """The figure in each seed, in the order of `seeds`; null where it could not be computed
    (e.g. an AUC over a single class)."""

    @model_validator(mode="after")
    def _consistent(self) -> Summary:
        low, high = self.ci95
        if self.mean is None:
            if low is not None or high is not None or any(v is not None for v in self.per_seed):
                raise ValueError("a null mean needs a [null, null] ci95 and only null per_seed")
        elif low is None or high is None or not low <= self.mean <= high:
            raise ValueError(f"ci95 {list(self.ci95)} must hold the mean {self.mean}")
        return self


class HoldoutSize(_Block):
    """The held-out citizens of one seed, scored by every regime."""

    pairs: int = Field(ge=0)
    """Held-out (firm, citizen) pairs, i.e. customer rows (count)."""
    citizens: int = Field(ge=0)
    """Held-out citizens (count); a citizen is a customer of several firms."""


class Utility(_Block):
    """How well default probabilities predict default, on held-out (firm, citizen) pairs."""

    auc: Summary
    """Area under the ROC curve, in [0, 1]; 0.5 is chance, higher is better."""
    ks: Summary
    """Kolmogorov–Smirnov statistic: the largest gap between the score distributions of
    defaulters and non-defaulters, in [0, 1]; higher is better."""
    brier: Summary
    """Brier score: mean squared error of the probability of default, in [0, 1]; lower is
    better."""
    ece: Summary
    """Expected calibration error over 10 equal-mass bins: mean |observed default rate −
    predicted probability| weighted by bin size, in [0, 1]; lower is better."""


class Decisions(_Block):
    """The privilege tiers a regime's score grants, and who gets them.

    Scores are probabilities of default mapped onto 350–950 points by the config's `scorecard`.
    A group is a binary sensitive attribute, one level of a categorical one
    (`<attribute>=<level>`), the scrutinized professions together (`scrutinized_profession`)
    or one of them (`occupation=<profession>`). Gaps are null in a seed where the held-out pairs
    are all in the group or all outside it.
    """

    tier_share: dict[TierName, Summary]
    """Share of held-out pairs in each tier, in [0, 1], summing to 1 over the tiers: `none`
    (below every threshold), then the config's `scorecard.tiers`."""
    privileged_share: Summary
    """Share of held-out pairs granted at least the lowest privilege, in [0, 1]."""
    demographic_parity_gap: dict[GroupName, Summary]
    """Privilege rate inside the group − rate outside it, in [−1, 1]; negative: the group is
    privileged less often."""
    equal_opportunity_gap: dict[GroupName, Summary]
    """The same gap among pairs whose citizen did not default, in [−1, 1]."""
    tier_changed_vs_unified: Summary | None = _optional()
    """Share of held-out pairs whose tier differs from the unified score's, in [0, 1]; 0 on
    `unified` itself; absent when the run has no unified regime."""
    privilege_gained_vs_unified: dict[GroupName, Summary] | None = _optional()
    """Per group: share of its held-out pairs granted a privilege here but none under the
    unified score; absent when the run has no unified regime."""
    privilege_lost_vs_unified: dict[GroupName, Summary] | None = _optional()
    """Per group: share of its held-out pairs granted a privilege under the unified score but
    none here."""
    tier_changed_vs_truth: Summary | None = _optional()
    """Share of held-out pairs whose tier differs from the tier of the citizen's true PD
    (synthetic worlds only)."""
    tier_changed_vs_retrained: Summary | None = _optional()
    """The retraining noise floor: share of held-out pairs whose tier differs from the same
    regime retrained with another training seed (same data, same hyperparameters); absent
    without `[tuning]` and for DP regimes."""


class MembershipAttack(_Block):
    """One membership attack on the released model, scored on a pool of candidate citizens.

    Half of the pool's citizens are training citizens of the regime (members: every row at
    every firm trained on), half held out (none), matched on their rows held and rows in
    default, so both halves default equally often, per citizen and per row. A per-row attack
    scores each of the pool citizens' rows on its own; a citizen attack scores each citizen.
    """

    auc: Summary
    """Area under the attack's ROC curve (ties count one half), in [0, 1]; 0.5 is chance."""
    tpr_at_0_1_percent_fpr: Summary
    """True-positive rate at 0.1 % false-positive rate, read off the interpolated ROC, in
    [0, 1]; chance is 0.001."""
    tpr_at_1_percent_fpr: Summary
    """True-positive rate at 1 % false-positive rate, in [0, 1]; chance is 0.01."""
    n_members: Summary
    """Candidates that are members (count): rows for a per-row attack, citizens for a citizen
    attack."""
    n_nonmembers: Summary
    """Candidates that are held out (count): rows, or citizens for a citizen attack."""


class Membership(_Block):
    """Membership inference on the released model(s), up to `membership.pool` candidate
    citizens (each with all their rows)."""

    loss: MembershipAttack
    """The loss-threshold attack per row: the lower a row's loss, the likelier a member."""
    lira: MembershipAttack | None = _optional()
    """Online LiRA (Carlini et al., S&P 2022) per row, with `membership.shadows` shadow models
    trained by the regime's recipe, each on every row of a random half of the pool's citizens
    (a DP regime's shadows with its DP-SGD and its firms' noise multipliers); absent when
    `membership.shadows` is 0."""
    citizen_loss: MembershipAttack | None = _optional()
    """The loss attack per citizen: the mean loss over the citizen's rows (absent in results
    written before schema 3)."""
    citizen_lira: MembershipAttack | None = _optional()
    """LiRA per citizen: the sum of the log-likelihood ratios of the citizen's rows, from the
    same shadows as `lira`; absent when `membership.shadows` is 0."""


class AttributeInference(_Block):
    """A sensitive attribute guessed from the released score plus quasi-identifiers, against
    the same learner on quasi-identifiers alone (the imputation baseline).

    One held-out row per citizen; out-of-fold predictions of stratified K-fold
    cross-validation. An attribute with fewer than 5 citizens in one class is left out.
    """

    n_rows: Summary
    """Citizens attacked (count)."""
    prevalence: Summary
    """Share of them with the attribute, in [0, 1]."""
    rare: Summary
    """1 where the prevalence is below 10 % or above 90 %, else 0: AUC then flatters the
    attack, so read G-mean and MCC."""
    learner: Literal["logistic", "boosting"]
    """The attacker's learner (the same in every seed)."""
    n_folds: Summary
    """Cross-validation folds (count)."""
    auc_score_and_qi: Summary
    """Out-of-fold AUC from the score and the quasi-identifiers, in [0, 1]."""
    auc_qi_only: Summary
    """Out-of-fold AUC from the quasi-identifiers alone, in [0, 1]."""
    advantage: Summary
    """auc_score_and_qi − auc_qi_only, in [−1, 1]: what the released score adds."""
    g_mean_score_and_qi: Summary
    """Geometric mean of TPR and TNR of hard decisions (Youden-J threshold chosen on each
    fold's training rows) from the score and the quasi-identifiers, in [0, 1]."""
    g_mean_qi_only: Summary
    """The same from the quasi-identifiers alone, in [0, 1]."""
    mcc_score_and_qi: Summary
    """Matthews correlation of those hard decisions with the attribute, score and
    quasi-identifiers, in [−1, 1]; 0 is chance."""
    mcc_qi_only: Summary
    """The same from the quasi-identifiers alone, in [−1, 1]."""


class Inference(_Block):
    """One party (or a score consumer) inferring one target about citizens, against a
    baseline learner on the same citizens (`experiments/leakage/inference.py`).

    A target is a sensitive attribute, the scrutinized professions together
    (`scrutinized_profession`), one of them (`occupation=<profession>`), or for cross-context
    inference a firm's customership. The learner is ridge regression on all targets at once
    (penalty per target by generalised cross-validation; a linear attacker, so a lower bound),
    scored out of fold over `[inference] folds` folds on up to `[inference] rows` citizens.
    A profession is inferred without the occupation quasi-identifier. Rare targets (a
    profession is 0.2-1 % of citizens): read the watch-list precision, not the AUC.
    """

    n_rows: Summary
    """Citizens scored (count)."""
    prevalence: Summary
    """Share of them in the target group, in [0, 1]: a random watch list's precision."""
    auc: Summary
    """Out-of-fold AUC from what the party holds plus the baseline knowledge, in [0, 1]."""
    auc_baseline: Summary
    """Out-of-fold AUC from the baseline knowledge alone, in [0, 1]: the quasi-identifiers for
    a party; the knowledge level for a score consumer."""
    advantage: Summary
    """auc − auc_baseline, in [−1, 1]: what the party's data (or the score) adds."""
    watch_list_precision: Summary
    """Share of the target group among the party's top 1 % of citizens by inferred score, in
    [0, 1] (ties at the cut count by their mean)."""
    watch_list_precision_baseline: Summary
    """The same from the baseline knowledge alone, in [0, 1]."""


class Privacy(_Block):
    """The differential-privacy guarantee of a DP regime (DP-SGD at each firm, Opacus)."""

    target_epsilon: Summary
    """The ε each firm was asked to stay within over all rounds."""
    epsilon: Summary
    """The largest ε any firm spent over all rounds (the weakest guarantee), read from the
    firms' own ledgers (no firm reports it to the server: it would reveal the firm's size);
    null in a seed where no ledger has one."""
    citizen_epsilon_median: Summary | None = _optional()
    """The median over training citizens of their ε: a citizen's rows at several firms are
    protected by the composition of those firms' DP-SGD, so each firm's RDP curve (Opacus
    `compute_rdp`, from the noise multiplier in its ledger, its sample rate and steps) is added
    over the firms the citizen is a customer of, and converted to ε at `delta` (absent in
    results written before schema 3)."""
    citizen_epsilon_max: Summary | None = _optional()
    """The largest such ε over training citizens: the citizen in the most (or the noisiest
    composition of) firms."""
    delta: Summary
    """The δ of the (ε, δ) guarantee, per record."""
    noise: Literal["os-generator", "run-seed"]
    """Where each firm's DP noise and Poisson sampling came from. `os-generator`: seeds from
    each firm's OS generator, which no other party can know. `run-seed`: seeds from the run
    seed, the round and the firm's name (`[federation] reproducible = true`), so the run repeats
    exactly, but the coordinating server knows those seeds and could regenerate and remove the
    noise: the (ε, δ) guarantee then holds against every party but the server."""


class Calibration(_Block):
    """The regime's PD mapped by Platt scaling fitted on the validation pairs (`[tuning]` on);
    decisions (points, tiers, gaps) read the calibrated PD, utility the raw one (the map is
    monotone: AUC and KS are the same either way)."""

    ece_before: Summary
    """ECE of the raw PD on the held-out pairs."""
    ece_after: Summary
    """ECE of the calibrated PD on the held-out pairs."""
    mean_pd_before: Summary
    """Mean raw PD over the held-out pairs."""
    mean_pd_after: Summary
    """Mean calibrated PD over the held-out pairs."""
    slope: Summary
    """Platt slope on the PD's logit (below 1: the raw PDs were too spread)."""
    intercept: Summary
    """Platt intercept."""


class ReleaseExposure(_Block):
    """How identifiable a regime's release is: one record per held-out (firm, citizen) pair, the
    citizen's quasi-identifiers as a score consumer sees them (the register's that firms also
    hold, e.g. age, sex, region; all of the register's when firms hold none) beside the
    released score in bands of 10 scorecard points, without the id.

    This replaces quasi-identifier uniqueness per party: every party that holds a table holds
    national ids and has identified its citizens already."""

    unique_share: Summary
    """Share of released records unique in their firm's release on quasi-identifiers and score
    band (singled out, k = 1), in [0, 1]."""
    unique_share_qi_only: Summary
    """The same on the quasi-identifiers alone: the difference is what the score adds."""
    register_linkage: Summary
    """Share of released records a consumer holding the population register (identities and
    quasi-identifiers) links to the right identity (expected success of picking one of the
    register's citizens with the record's quasi-identifiers), in [0, 1]. The score is not in
    the register, so this is the same for every regime: the cost of releasing the
    quasi-identifiers."""
    cross_release_linkage: Summary
    """Over every citizen released by two firms and each ordered pair of them: the share whose
    record at the first firm is linked to theirs at the second, in [0, 1]: the only record there
    with the same quasi-identifiers or, where several share them, the only one that also shares
    the score band. A score that is the same at every firm (a national score) links a
    citizen's contexts; firm-level scores differ from firm to firm and add little."""
    cross_release_linkage_qi_only: Summary
    """The same on the quasi-identifiers alone, in [0, 1] (both are null when no citizen is at
    two firms)."""


class Regime(_Block):
    """One scoring regime's figures, over the seeds.

    Regimes: `unified`, `local_only`, `federated_secagg`, `federated_plain`,
    `federated_flower_secagg`, `federated_dp_eps<ε>`. All are scored on the same held-out
    (firm, citizen) pairs: the unified score is the citizen's national score at every firm; a
    firm-level score is that firm's own model (local) or the shared model (federated) on that
    firm's row.
    """

    utility: Utility
    """Over every held-out pair."""
    within_firm_auc: Summary | None = _optional()
    """Each firm's AUC over its own held-out customers, averaged weighted by their number
    (`data.firms` gives each firm's n): ranking that firm identity cannot explain."""
    per_firm: dict[FirmName, Utility]
    """Over each firm's held-out customers."""
    decisions: Decisions
    """Tiers and group gaps."""
    membership: Membership
    """Membership inference on the released model."""
    attribute_inference: dict[AttributeName, AttributeInference]
    """What the released score adds to guessing each sensitive attribute (`<attribute>` or
    `<attribute>=<level>`)."""
    score_consumer: dict[KnowledgeLevel, dict[TargetName, Inference]] | None = _optional()
    """What a consumer of the released scores infers about each sensitive attribute and
    scrutinized profession, by what it knows beside the score (one held-out row per citizen):
    `kyc`, the quasi-identifiers every firm's know-your-customer record holds (age, sex,
    region); `quasi_identifiers`, all of them; `quasi_identifiers_and_memberships`, also which
    firms the citizen is a customer of. auc_baseline is the same knowledge without the score.
    Absent when `[inference] enabled` is false."""
    cross_context: dict[FirmName, Inference] | None = _optional()
    """Cross-context inference: whether the citizen is a customer of each firm, inferred from
    the released score plus all quasi-identifiers, against the quasi-identifiers alone. A
    national score built from every firm's data may reveal which services a citizen uses."""
    privacy: Privacy | None = _optional()
    """The DP guarantee; DP regimes only."""
    calibration: Calibration | None = _optional()
    """Platt scaling on the validation pairs, before decisions (absent without `[tuning]`)."""
    release: ReleaseExposure
    """How identifiable the released scores are beside the quasi-identifiers."""


class Reference(_Block):
    """A reference model scored like the regimes on the same held-out pairs, but not released
    (no attacks, no decisions): `federated_limit` is one central model on every firm's rows with
    the common columns, the model FedAvg approximates."""

    utility: Utility
    """AUC, KS, Brier and ECE over every held-out pair (intervals within [0, 1])."""
    within_firm_auc: Summary | None = _optional()
    """Each firm's AUC over its own held-out customers, weighted by their number."""


class PartyExposure(_Block):
    """What one party holds in raw form.

    Parties: `central_operator` (the national database: every firm's table, the government
    records and the population register), `coordinating_server` (the federated server: no raw
    table) and `firm:<name>` (its own customers). Every party that holds a table holds national
    ids, so how unique its citizens are on quasi-identifiers says nothing: identifiability is
    measured on what is released (`regimes.<regime>.release`).
    """

    cells: Summary
    """Present (citizen × attribute) cells, the id column excluded (count)."""
    sensitive_proxy_cells: Summary
    """Of those, cells of columns that proxy a sensitive attribute (count)."""
    citizens: Summary
    """Distinct citizens in any of its tables (count)."""
    linked_citizens: Summary
    """Citizens it links across two or more domains (count)."""


class ServerInference(_Block):
    """The coordinating server's errors about the firms from round 1 of a federated run; 0
    means learnt exactly.

    Read from the contribution vectors the run's server received (`received.jsonl` in its run
    directory): a firm's size from the vector's weight entry (n / weight_scale), its default rate
    from its training Brier score B read as ȳ (1 − ȳ) = B (ȳ ≤ 1/2; a model that ranks lowers B,
    so the reading is low by its resolution, alike for every firm). From a sum over k firms, the
    same readings give the mean size and the pooled rate, the server's guess for every firm.
    """

    default_rate_error: Summary
    """|inferred − true default rate of the firm's training rows|, in [0, 1]."""
    size_error: Summary
    """|inferred − true training rows| / true training rows, ≥ 0."""


class ServerViewPerFirm(_Block):
    """The server's errors about each firm separately."""

    baseline: dict[FirmName, ServerInference]
    """The heterogeneity baseline: the best guess shared by every firm."""
    plain: dict[FirmName, ServerInference] | None = _optional()
    """From that firm's own vector (federated_plain; absent when it did not run)."""
    secagg: dict[FirmName, ServerInference] | None = _optional()
    """From the sum secure aggregation returned (federated_secagg; absent when it did not run)."""


class FirstRound(_Block):
    """What the server infers about the firms from round 1 of the run, beside the baseline."""

    baseline: ServerInference
    """Heterogeneity baseline: per metric, the error of the best single guess for every firm
    (the firm value minimising the mean error, which only an oracle knows). A server that sees
    only the sum of a round all firms join gives every firm one guess, so cannot beat it."""
    plain: ServerInference | None = _optional()
    """From each firm's own vector (federated_plain), averaged over firms."""
    secagg: ServerInference | None = _optional()
    """From the sum our secure aggregation returned (federated_secagg), averaged over firms."""
    per_firm: ServerViewPerFirm
    """The same errors for each firm."""


class RunDisaggregation(_Block):
    """The disaggregation attack (Lam et al., ICML 2021) on the run's own round sums and
    participant sets: least squares per node. With every firm in every round
    (`federation.fraction = 1`, the default) the system has rank 1 and gives nothing back."""

    rank: Summary
    """Rank of the participation matrix over the rounds the server saw (count); at `firms`,
    every constant entry of each firm's vector (its size) comes back, up to quantisation."""
    firms: Summary
    """Firms in the federation (count)."""
    default_rate_error: Summary
    """Mean over firms of |inferred − true default rate| from the attack's per-node vector,
    read as in round 1 (it averages the Brier scores of the rounds a firm joined)."""
    size_error: Summary
    """Mean over firms of |inferred − true training rows| / true rows; near 0 at full rank
    (quantisation aside), the error of guessing the mean size at rank 1. Nodes are paired with
    firms one to one by size, which flatters the attack only where its estimates are poor (the
    server knows which node is which firm)."""
    completed_round_share: Summary
    """Share of the run's rounds that gave the server a sum, in [0, 1]."""
    mean_participants: Summary
    """Firms per round that gave a sum (count)."""


class Disaggregation(_Block):
    """Recovering each firm's vector from round sums over changing participant sets, on the
    firms' real round-1 vectors (from the federated_plain run), 20 simulated rounds, each firm
    online with probability 0.75."""

    rank: Summary
    """Rank of the participation matrix over the rounds that ran (count); at `firms`, every
    firm's vector is recovered exactly."""
    firms: Summary
    """Firms in the federation (count)."""
    relative_error: Summary
    """‖estimate − truth‖ / ‖truth‖ over every firm's vector; 0 = recovered exactly."""
    completed_round_share: Summary
    """Share of rounds that could run under the policy, in [0, 1]: the defence's cost."""
    mean_participants: Summary
    """Firms per round that ran (count); fewer means slower learning."""


class DisaggregationPolicies(_Block):
    """The disaggregation attack under each participation policy."""

    any: Disaggregation
    """Every online firm joins (at least 2 per round): the attack's case."""
    fixed: Disaggregation
    """A round runs only when every firm is online: a defence."""
    groups: Disaggregation
    """Firms are tied in fixed pairs that join only together: a defence for individuals."""


class ServerDisaggregation(_Block):
    """Disaggregation across rounds: on the run itself, and under simulated policies."""

    run: RunDisaggregation
    """On the federated_secagg run's sums (federated_plain's when it alone ran)."""
    policies: DisaggregationPolicies | None = _optional()
    """Simulated participation policies on the plain run's real round-1 vectors, with what each
    defence costs (absent without federated_plain)."""


class ServerView(_Block):
    """What the coordinating server infers about the firms from what the federated runs
    actually sent it (absent when neither federated_plain nor federated_secagg ran)."""

    first_round: FirstRound
    """From round 1's vectors (plain) or sum (secure aggregation)."""
    disaggregation: ServerDisaggregation
    """Across rounds."""


class RocCurve(_Block):
    """One seed's ROC curve of a membership attack, for plots: at most 500 points, on a
    log-FPR grid when the full curve is longer."""

    fpr: list[float | None]
    """False-positive rates, in [0, 1], increasing."""
    tpr: list[float | None]
    """True-positive rates at those FPRs, in [0, 1]."""


class MembershipCurves(_Block):
    """A regime's membership ROC curves, one per seed in the order of `seeds`."""

    loss: list[RocCurve]
    """The loss-threshold attack."""
    lira: list[RocCurve] | None = _optional()
    """Online LiRA; absent when `membership.shadows` is 0."""
    citizen_loss: list[RocCurve] | None = _optional()
    """The loss attack per citizen (absent before schema 3)."""
    citizen_lira: list[RocCurve] | None = _optional()
    """LiRA per citizen; absent when `membership.shadows` is 0."""


class LabelMeaning(_Block):
    """Which column is the label and which of its values means default."""

    column: str
    """The label column of the table."""
    positive: str | int | float | bool | None
    """The value that means default (bad); null when the column is already 0/1 with 1 = default."""


class Partition(_Block):
    """How the table's rows were split into firms."""

    method: Literal["column", "dirichlet-covariate", "dirichlet-label-skew"]
    """`column`: one firm per value of a column; `dirichlet-covariate`: a Dirichlet draw per
    level of a covariate, so firms differ in that covariate's mix and the label plays no part;
    `dirichlet-label-skew`: a Dirichlet draw per label, so firms differ in default rate (drawn
    per seed; firm identity then carries label information)."""
    column: str | None = _optional()
    """The column whose values name the firms (method `column`) or whose levels the Dirichlet
    is drawn over (method `dirichlet-covariate`)."""
    label_skew: bool | None = _optional()
    """True when firms were drawn from the label: figures then reward firm identity."""
    from_training_rows: bool | None = _optional()
    """A label-skew split that read the training rows' labels only (held-out rows join firms
    in proportion to their sizes, whatever their label)."""
    alpha: float | None = _optional()
    """The Dirichlet concentration (method `dirichlet-label-skew`)."""
    n_firms: int | None = _optional()
    """The number of firms drawn (method `dirichlet-label-skew`)."""
    non_empty: str | None = _optional()
    """How an empty firm is avoided (method `dirichlet-label-skew`)."""


class Imputation(_Block):
    """Missing cells filled before encoding (`[data] impute`)."""

    method: Literal["median", "mode"]
    """How they were filled."""
    missing_per_column: dict[ColumnName, int]
    """Missing cells per column, before filling."""


class FirmFigures(_Block):
    """One firm's share of a table, summarised over seeds."""

    rows: Summary
    """The firm's rows."""
    default_rate: Summary
    """Share of the firm's rows that defaulted, in [0, 1]."""
    heldout: Summary
    """The firm's held-out rows: the n behind its per-firm figures."""
    heldout_defaults: Summary
    """Defaults among the firm's held-out rows."""


class DataRecord(_Block):
    """Where a table's figures come from (file, German credit, Lending Club; absent for the
    synthetic world)."""

    source: str
    """The data source (`file`, `german_credit`, `lending_club`)."""
    file_name: str | None = _optional()
    """The file the rows were read from."""
    path: str | None = _optional()
    """Its path when the run read it."""
    sha256: str | None = _optional()
    """SHA-256 of the file's bytes, to tell which version of a table a result is on."""
    label: LabelMeaning
    """The label column and its meaning."""
    sensitive: list[str]
    """Columns declared sensitive (never features)."""
    quasi_identifiers: list[str]
    """Columns declared quasi-identifiers."""
    features: list[str] | None = _optional()
    """The feature columns (file source)."""
    excluded: list[str] | None = _optional()
    """Columns the config excluded from the features (file source)."""
    rows_read: int | None = _optional()
    """Rows in the file (file source)."""
    rows_used: int | None = _optional()
    """Rows kept after `impute = "drop-rows"` (file source)."""
    rows_dropped: int | None = _optional()
    """Rows dropped for missing cells (file source, `impute = "drop-rows"`)."""
    impute: Imputation | None = _optional()
    """How missing cells were filled (file source)."""
    bins: dict[ColumnName, list[float]] | None = _optional()
    """Bin edges of numeric sensitive attributes, by column (file source)."""
    partition: Partition
    """The split into firms."""
    rows: int
    """Rows (citizens) in the world built from the table."""
    firms: dict[FirmName, FirmFigures]
    """Each firm's rows, default rate and held-out n."""


class Fallback(_Block):
    """A firm a regime scored without a model."""

    regime: RegimeName
    """The regime."""
    seed: int
    """The seed."""
    firm: FirmName
    """The firm."""
    kind: Literal["base-rate"]
    """`base-rate`: its training rows hold one class, so it is scored by its (Laplace-smoothed)
    default rate."""
    reason: str
    """Why, in words."""


class Tuning(_Block):
    """One regime's (or one local-only firm's) tuning in one seed (`[tuning]`)."""

    grid: list[tuple[float, float]]
    """The (learning rate, weight decay) pairs tried, side by side."""
    learning_rate: float
    """The chosen Adam step size."""
    weight_decay: float
    """The chosen L2 penalty."""
    passes: int = Field(ge=1)
    """The chosen epochs (central regimes) or rounds (federated): the pass with the lowest
    validation loss."""
    unit: Literal["epochs", "rounds"]
    """What a pass is: an epoch over the rows, or a FedAvg round of `local_epochs` epochs."""
    budget: int = Field(ge=1)
    """The most passes any grid point could take (the same data passes for every regime)."""
    passes_run: int = Field(ge=1)
    """Passes every grid point took before early stopping (`patience` passes after the best)."""
    models_trained: int = Field(ge=1)
    """Grid points trained side by side; passes_run x models_trained is the budget spent."""
    validation_rows: int = Field(ge=0)
    """Validation rows the losses are measured on."""
    curve: list[float]
    """Validation loss of the chosen grid point after each pass run: its convergence."""
    design: Literal["common", "pooled", "blocks"] | None = None
    """The unified design validation chose (unified only)."""
    design_losses: dict[Annotated[str, Keys("design")], float] | None = None
    """The best validation loss of each unified design tried (unified only)."""
    tuned_without_dp: bool = False
    """A DP regime runs with the non-private federated regime's tuning (tuning under DP would
    itself spend privacy budget)."""


class RegimeTuning(_Block):
    """A regime's tuning per seed: one record, or one per firm for local-only."""

    per_seed: list[Tuning | dict[FirmName, Tuning]]
    """Per seed, in `seeds` order."""


_REGIME = REGIME_PATTERN.removeprefix("^").removesuffix("$")
PairName = Annotated[
    str,
    Keys("pair"),
    StringConstraints(pattern=rf"^{_REGIME} - {_REGIME}$"),
]


class PairedDifference(_Block):
    """One difference `a - b` of utility metrics, computed per seed and then summarised
    (its interval clipped to [-1, 1]): the seeds share world and held-out citizens, so this
    interval, not two overlapping marginal ones, says whether a beats b."""

    auc: Summary
    """AUC of a minus AUC of b."""
    ks: Summary
    """KS of a minus KS of b."""
    brier: Summary
    """Brier score of a minus that of b (negative: a is better)."""
    ece: Summary
    """ECE of a minus that of b (negative: a is better calibrated)."""


class Results(_Block):
    """The whole of results.json.

    `fedscore run CONFIG --out DIR` writes `DIR/results.json` (keys sorted, indented by 2),
    `DIR/results.csv` and `DIR/report.html`. The same config and seeds give a byte-identical
    results.json, except that DP regimes draw fresh noise in every run unless the config sets
    `[federation] reproducible = true` (see `privacy.noise`).
    """

    schema_version: Literal[3]
    """The schema of this file; bumped when a key is added, removed or changes meaning."""
    config: ExperimentConfig
    """The validated experiment config with every default filled in (`experiments/config.py`
    documents its keys)."""
    seeds: list[int] = Field(min_length=1)
    """The seeds, in run order; every `per_seed` list follows it."""
    holdout: list[HoldoutSize]
    """Per seed, the held-out citizens every regime is scored on."""
    regimes: dict[RegimeName, Regime]
    """Each regime's figures."""
    exposure: dict[PartyName, PartyExposure]
    """What each party holds in raw form (the same under every regime)."""
    server_view: ServerView | None = _optional()
    """What the coordinating server infers from what the federated runs sent it (absent when
    neither federated_plain nor federated_secagg ran)."""
    curves: dict[RegimeName, MembershipCurves]
    """Each regime's membership ROC curves."""
    inference: dict[InferencePartyName, dict[TargetName, Inference]] | None = _optional()
    """Inference by party, the same under every regime (it needs no score): party -> target
    -> figure. `central_operator`: the national database (every firm's columns for each
    citizen, the government records, the register), over the population; `firm:<name>`: its
    own table, over its customers; `colluding_pair:max`: two firms joining their tables on
    the national ID, over the union of their customers, the pair with the highest AUC for the
    target (`[inference] max_pairs` pairs, a seeded sample when there are more);
    `colluding_pair:median`: the median over those pairs of each figure;
    `coordinating_server`: the federated server, which receives only the aggregate of the
    firms' updates (the global model) and holds no row about any citizen, so its inference is
    the population prior, AUC 0.5. Every party holding national IDs also gets the
    quasi-identifiers; auc_baseline is them alone. Absent when `[inference] enabled` is
    false."""
    data: DataRecord | None = _optional()
    """The table behind the figures: provenance, split and firm sizes (absent for the synthetic
    world)."""
    fallbacks: list[Fallback] | None = _optional()
    """Every firm a regime scored without a model (absent when there is none)."""
    paired: dict[PairName, PairedDifference] | None = _optional()
    """Paired differences over seeds: unified - federated, federated - local_only, federated
    - each DP regime (federated: the first of federated_secagg, federated_plain,
    federated_flower_secagg that ran), and with the federated limit when it ran: unified -
    federated_limit, federated - federated_limit."""
    tuning: dict[RegimeName, RegimeTuning] | None = _optional()
    """What each regime's tuning tried, chose and spent (absent when `[tuning]` is off)."""
    references: dict[RegimeName, Reference] | None = _optional()
    """Reference models (`[regimes] federated_limit`), absent when none is on."""

    @model_validator(mode="after")
    def _one_value_per_seed(self) -> Results:
        seeds = len(self.seeds)
        if self.seeds != self.config.experiment.seeds:
            raise ValueError(f"seeds {self.seeds} differ from config.experiment.seeds")
        if len(self.holdout) != seeds:
            raise ValueError(f"holdout has {len(self.holdout)} entries, one per seed ({seeds})")
        if set(self.curves) != set(self.regimes):
            raise ValueError(
                f"curves has regimes {sorted(self.curves)}, not {sorted(self.regimes)}"
            )
        for name, curves in self.curves.items():
            for attack in (curves.loss, curves.lira, curves.citizen_loss, curves.citizen_lira):
                if attack is not None and len(attack) != seeds:
                    raise ValueError(f"curves.{name} has {len(attack)} curves, one per seed")
        tree: dict[str, object] = {"regimes": self.regimes, "exposure": self.exposure}
        if self.server_view is not None:
            tree["server_view"] = self.server_view
        if self.inference is not None:
            tree["inference"] = self.inference
        if self.data is not None:
            tree["data.firms"] = self.data.firms
        if self.paired is not None:
            tree["paired"] = self.paired
        for path, summary in _summaries(tree, ""):
            if len(summary.per_seed) != seeds:
                raise ValueError(
                    f"{path}.per_seed has {len(summary.per_seed)} values, one per seed ({seeds})"
                )
        return self

    def as_dict(self) -> dict[str, Any]:
        """results.json's content as plain dicts and lists, keys in computation order."""
        return self.model_dump(mode="json")

    def to_json(self) -> str:
        """The text of results.json: keys sorted, indent 2, NaN written as JSON's `NaN`."""
        return json.dumps(self.as_dict(), indent=2, sort_keys=True) + "\n"


def _summaries(node: object, path: str) -> Iterator[tuple[str, Summary]]:
    """Every Summary under `node`, with its dotted key path."""
    if isinstance(node, Summary):
        yield path, node
    elif isinstance(node, BaseModel):
        for name in type(node).model_fields:
            yield from _summaries(getattr(node, name), f"{path}.{name}".lstrip("."))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _summaries(value, f"{path}.{key}".lstrip("."))
