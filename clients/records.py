"""The names both sides of a Flower message agree on: record keys, message types, config keys.

Kept in one place so the ClientApp and the ServerApp cannot drift apart; imports nothing from
Flower, so the server's tests and the protocol side can read it too.
"""

from __future__ import annotations

from typing import Final

GLOBAL_RECORD: Final = "global"
"""ArrayRecord sent by the server: the flat global weights under `WEIGHTS`."""
WEIGHTS: Final = "weights"
CONFIG_RECORD: Final = "config"
"""ConfigRecord sent by the server: a `clients.round_config.RoundConfig` (keys below)."""
CONTRIBUTION_RECORD: Final = "contribution"
"""ArrayRecord sent back in the clear (secagg none): the contribution vector under `VECTOR`."""
VECTOR: Final = "vector"
METRICS_RECORD: Final = "metrics"
SECAGG_RECORD: Final = "secagg"
"""ConfigRecord of one message: `STAGE` names (`+`-joined when a pipelined message carries two
rounds' stages) and `PAYLOADS`, the protocol messages' bytes, one per round."""
STAGE: Final = "stage"
PAYLOADS: Final = "payloads"

SECAGG_MESSAGE_TYPE: Final = "train.secagg"
"""Every stage of our secure aggregation is a `train.secagg` message; the stage is in the record."""
IDENTIFY: Final = "identify"
"""`STAGE` of the `train.secagg` message that asks a node which identity it holds (malicious
mode): `PAYLOADS` is the server's challenge, the reply's the node's proof."""

CLIENT_STATE_RECORD: Final = "fedscore_secagg_state"
"""A node's own protocol state between stages (never sent anywhere)."""

# Keys of CONFIG_RECORD: the fields of `clients.round_config.RoundConfig`, one for one
MODEL_KIND: Final = "model-kind"
MODEL_HIDDEN: Final = "model-hidden"
N_FEATURES: Final = "n-features"
MODEL_SEED: Final = "model-seed"
EPOCHS: Final = "local-epochs"
BATCH_SIZE: Final = "batch-size"
LEARNING_RATE: Final = "learning-rate"
WEIGHT_DECAY: Final = "weight-decay"
WEIGHT_SCALE: Final = "weight-scale"
SEED: Final = "seed"
ROUND: Final = "round"
TOTAL_ROUNDS: Final = "total-rounds"
DP_EPSILON: Final = "dp-epsilon"
"""0 turns DP-SGD off."""
DP_DELTA: Final = "dp-delta"
DP_MAX_GRAD_NORM: Final = "dp-max-grad-norm"
REPRODUCIBLE: Final = "reproducible"
"""True: DP noise from public seeds, so the server could regenerate it (experiments only)."""
TRAIN: Final = "train"
"""False: an evaluation-only round, the firm only scores the weights it receives."""
EVALUATE_WEIGHTS: Final = "evaluate-weights"
"""True: the firm appends the held-out sums of the weights it receives to its contribution."""

# Node / run config keys a firm reads to find its own data
WORLD_DIR: Final = "world-dir"
FIRM: Final = "firm"
HOLDOUT_FILE: Final = "holdout-file"
PARTITION_ID: Final = "partition-id"
DP_LEDGER: Final = "dp-ledger"
"""A directory where a DP firm keeps its own accounting (`clients/accounting.py`); read from the
node config or the app's defaults only, never from the server's run config."""

# Node config keys of a firm's long-term identity (malicious mode); never read from the run
# config, which the server controls
IDENTITY_KEY: Final = "identity-key"
"""The firm's Ed25519 identity private key (PKCS#8 PEM); in simulation a directory of
`<partition-id>.pem`."""
IDENTITY_MANIFEST: Final = "identity-manifest"
"""The federation's public identity manifest (JSON), as the firm received it out of band."""
