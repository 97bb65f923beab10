"""The Flower ClientApp of a pilot firm (Flower 1.42 Message API).

A firm finds its data from its node config (`world-dir` and `firm`, or `partition-id` resolved
against the manifest's firm list in simulation), optionally a `holdout-file` (.npy of citizen
ids it must never train on), and reads nothing but its own table and the public manifest. A DP
firm keeps its own accounting in `dp-ledger` (`clients/accounting.py`) and sends none of it, and
a firm refuses whatever its `policy-*` keys rule out (`clients/policy.py`).

Message types it answers:
- `train`: train from the global weights, reply with the contribution vector in the clear
  (`secagg = "none"`), or, when the message carries Flower's SecAgg+ configs, take part in
  Flower's legacy SecAgg+ (`secagg = "flower"`) through `secaggplus_mod`;
- `train.secagg`: one stage of our secure aggregation (`protocol/`); the masked-input stage
  trains and fixes the input, the state machine lives in the node's Context between stages;
- `evaluate`: score the global model on the firm's held-out rows, reply with sums in the clear.
  Only Flower's SecAgg+ mode asks for it: with `none` and `ours` the held-out sums travel inside
  the contribution vector (`clients/participant.py`), masked with `ours`.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import numpy as np
from flwr.app import (
    Array,
    ArrayRecord,
    Context,
    Message,
    MetricRecord,
    MetricRecordValues,
    RecordDict,
    UserConfigValue,
)
from flwr.client import NumPyClient
from flwr.client.message_handler.message_handler import handle_legacy_message_from_msgtype
from flwr.client.mod import secaggplus_mod
from flwr.clientapp import ClientApp
from flwr.common import Scalar
from flwr.common.secure_aggregation.secaggplus_constants import RECORD_KEY_CONFIGS

from clients import records as R
from clients.accounting import LedgerEntry, append_entry
from clients.data import read_manifest
from clients.participant import (
    FirmData,
    LocalResult,
    evaluate_global,
    evaluation_contribution,
    load_firm_data,
    local_round,
)
from clients.policy import FirmPolicy
from clients.round_config import RoundConfig


@functools.lru_cache(maxsize=64)
def _cached_firm_data(world_dir: str, firm: str, holdout_file: str) -> FirmData:
    """A firm's table is read once per process, not once per message."""
    heldout = np.load(holdout_file) if holdout_file else None
    return load_firm_data(Path(world_dir), firm, heldout)


def _setting(context: Context, defaults: Mapping[str, UserConfigValue], key: str) -> str:
    """Node config first (deployment), then app defaults (simulation), then run config."""
    for source in (context.node_config, defaults, context.run_config):
        if key in source and source[key] != "":
            return str(source[key])
    return ""


def node_setting(context: Context, defaults: Mapping[str, UserConfigValue], key: str) -> str:
    """Node config first, then app defaults, never the run config: for what only the firm may
    decide (where its ledger lives, its policy), since the server writes the run config."""
    for source in (context.node_config, defaults):
        if key in source and source[key] != "":
            return str(source[key])
    return ""


def firm_policy(context: Context, defaults: Mapping[str, UserConfigValue]) -> FirmPolicy:
    """This node's policy: the `policy-*` keys of its node config over the app's defaults."""
    return FirmPolicy.from_node_config({**defaults, **context.node_config})


def firm_data(context: Context, defaults: Mapping[str, UserConfigValue]) -> FirmData:
    """Resolve this node's firm and load its rows (cached)."""
    world_dir = _setting(context, defaults, R.WORLD_DIR)
    if not world_dir:
        raise ValueError(
            f"node has no {R.WORLD_DIR!r}: set it in the node config "
            f"(--node-config \"{R.WORLD_DIR}='...' {R.FIRM}='...'\") or the run config"
        )
    firm = _setting(context, defaults, R.FIRM)
    if not firm:
        firms = read_manifest(Path(world_dir))["firms"]
        partition = context.node_config.get(R.PARTITION_ID)
        if not isinstance(partition, int) or not 0 <= partition < len(firms):
            raise ValueError(
                f"node config needs {R.FIRM!r}, or {R.PARTITION_ID!r} in [0, {len(firms)}) "
                f"to pick one of {firms}; got {R.PARTITION_ID}={partition!r}"
            )
        firm = str(firms[partition])
    return _cached_firm_data(world_dir, firm, _setting(context, defaults, R.HOLDOUT_FILE))


def train_locally(content: RecordDict, data: FirmData) -> LocalResult:
    """The one local step every aggregation mode shares: train (unless the round only evaluates)
    and build the contribution, held-out sums included when the round asks for them."""
    config = RoundConfig.from_record(content.config_records[R.CONFIG_RECORD])
    global_weights = np.asarray(
        content.array_records[R.GLOBAL_RECORD][R.WEIGHTS].numpy(), dtype=np.float64
    )
    seed = config.firm_seed(data.firm)
    if not config.train:
        return evaluation_contribution(data, config.spec, global_weights, config.weight_scale, seed)
    return local_round(
        data,
        config.spec,
        global_weights,
        config.training,
        weight_scale=config.weight_scale,
        seed=seed,
        dp=config.dp,
        completed_rounds=config.round_number - 1,
        evaluate=config.evaluate_weights,
        noise_seeds=config.noise_seeds(data.firm),
    )


def _metric_record(metrics: Mapping[str, float]) -> MetricRecord:
    """A MetricRecord of float metrics. Its constructor takes a mutable
    `dict[str, MetricRecordValues]` (it may empty it), which a `dict[str, float]` is not."""
    values: dict[str, MetricRecordValues] = dict(metrics)
    return MetricRecord(values)


class _FirmNumPyClient(NumPyClient):
    """Flower's legacy client interface, only for `secagg = "flower"` (SecAgg+ needs it)."""

    def __init__(self, data: FirmData) -> None:
        self.data = data

    def fit(
        self, parameters: list[np.ndarray], config: Mapping[str, object]
    ) -> tuple[list[np.ndarray], int, dict[str, Scalar]]:
        from clients.model import get_weights, set_weights
        from clients.training import train_model

        round_config = RoundConfig.from_record(config)
        model = round_config.spec.build()
        set_weights(model, parameters)
        train_model(
            model,
            self.data.train_features,
            self.data.train_labels,
            round_config.training,
            round_config.firm_seed(self.data.firm),
        )
        return get_weights(model), len(self.data.train_labels), {}


class Firm(Protocol):
    """What a node does at each step; `TrainingFirm` is the real one (benchmarks plug in others)."""

    def contribute(self, content: RecordDict, context: Context) -> LocalResult: ...

    def legacy_client(self, context: Context) -> NumPyClient: ...

    def evaluate(self, content: RecordDict, context: Context) -> dict[str, float]: ...


@dataclass(frozen=True)
class TrainingFirm:
    """A pilot firm training on its own table; `defaults` fill in missing data settings."""

    defaults: Mapping[str, UserConfigValue] = field(default_factory=dict)

    def contribute(self, content: RecordDict, context: Context) -> LocalResult:
        data = firm_data(context, self.defaults)
        result = train_locally(content, data)
        ledger = node_setting(context, self.defaults, R.DP_LEDGER)
        if ledger and result.epsilon is not None and result.noise_multiplier is not None:
            config = RoundConfig.from_record(content.config_records[R.CONFIG_RECORD])
            entry = LedgerEntry(
                config.round_number, result.epsilon, config.dp_delta, result.noise_multiplier
            )
            append_entry(Path(ledger), data.firm, entry)
        return result

    def legacy_client(self, context: Context) -> NumPyClient:
        return _FirmNumPyClient(firm_data(context, self.defaults))

    def evaluate(self, content: RecordDict, context: Context) -> dict[str, float]:
        data = firm_data(context, self.defaults)
        config = RoundConfig.from_record(content.config_records[R.CONFIG_RECORD])
        global_weights = content.array_records[R.GLOBAL_RECORD][R.WEIGHTS].numpy()
        return evaluate_global(data, config.spec, np.asarray(global_weights, dtype=np.float64))


class _FirmClientApp(ClientApp):
    """A ClientApp that pickles as the call that builds it.

    The simulation engine pickles the ClientApp with every message it hands a Ray actor; by
    value (the handlers below are closures) that cost the driver about 1.4 ms a message, a
    third of its per-message work, and the same again to unpickle in the actor. As
    `build_client_app(defaults, firm)` it costs 0.06 ms.
    """

    def __init__(self, defaults: Mapping[str, UserConfigValue] | None, firm: Firm | None) -> None:
        super().__init__()
        self._recipe = (dict(defaults) if defaults is not None else None, firm)

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return (build_client_app, self._recipe)


def build_client_app(
    defaults: Mapping[str, UserConfigValue] | None = None, firm: Firm | None = None
) -> ClientApp:
    """A ClientApp whose data settings and policy fall back to `defaults` (what `fedscore run`
    passes for every simulated firm)."""
    settings = dict(defaults or {})
    behaviour: Firm = firm if firm is not None else TrainingFirm(settings)
    app = _FirmClientApp(defaults, firm)

    def contribute(content: RecordDict, context: Context, policy: FirmPolicy) -> LocalResult:
        policy.check_round(RoundConfig.from_record(content.config_records[R.CONFIG_RECORD]))
        return behaviour.contribute(content, context)

    @app.train()
    def train(msg: Message, context: Context) -> Message:
        policy = firm_policy(context, settings)
        if RECORD_KEY_CONFIGS in msg.content.config_records:
            policy.check_in_the_clear("Flower's SecAgg+")
            legacy = behaviour.legacy_client(context).to_client()
            return secaggplus_mod(
                msg,
                context,
                lambda m, c: handle_legacy_message_from_msgtype(lambda _: legacy, m, c),
            )
        policy.check_in_the_clear("its contribution (secagg = 'none')")
        result = contribute(msg.content, context, policy)
        reply = RecordDict(
            {R.CONTRIBUTION_RECORD: ArrayRecord({R.VECTOR: Array(result.contribution)})}
        )
        return Message(reply, reply_to=msg)

    @app.train("secagg")
    def secagg_stage(msg: Message, context: Context) -> Message:
        from clients.secagg import answer_stage

        policy = firm_policy(context, settings)
        return answer_stage(
            msg,
            context,
            lambda: contribute(msg.content, context, policy),
            policy.check_secagg,
            defaults,  # a simulated node's identity
        )

    @app.evaluate()
    def evaluate(msg: Message, context: Context) -> Message:
        firm_policy(context, settings).check_in_the_clear("held-out sums")
        sums = behaviour.evaluate(msg.content, context)
        return Message(RecordDict({R.METRICS_RECORD: _metric_record(sums)}), reply_to=msg)

    return app


app = build_client_app()
"""What `flwr run .` and a SuperNode load (`clients.app:app`)."""

__all__ = [
    "Firm",
    "TrainingFirm",
    "app",
    "build_client_app",
    "firm_data",
    "firm_policy",
    "train_locally",
]
