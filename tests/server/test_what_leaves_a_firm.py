"""Every byte each firm sends to the server, recorded: with `secagg = "ours"` nothing derived
from a firm's data travels outside the masked vectors, evaluation and DP included (SPEC.md §1).

The same federation runs twice, on the real tables and on twins whose every label is flipped
(same firms, rows and ids; other data, so other updates, losses and held-out figures). What a
firm sends is then split into its masked vectors and everything else. Every protocol byte string
(public keys, share ciphertexts, share values, digests, the masked vector) is reduced to its
length: keys, shares and ciphertexts come from the OS generator and the masked vector is what
may carry data. Everything else, and every length, must be the same byte for byte in both runs,
and the masked vectors must look uniform. The positive control runs `secagg = "none"`, where
the same comparison sees the data.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message, RecordDict
from flwr.common.serde import recorddict_to_proto

from clients import records as R
from clients.app import build_client_app
from experiments.world.datasets import load_german_credit
from experiments.world.tables import ID, LABEL, write_world
from protocol import MaskedInputResponse, parse_message
from server.federation import run_federation
from server.inprocess import InProcessGrid
from server.settings import FederationRun

Tweak = Callable[..., FederationRun]
Sent = list[tuple[int, str, Message]]
"""(node, message type it answered, its reply), in the order the server received them."""


@pytest.fixture(scope="module")
def twin_worlds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """The real tables, the same with every label flipped, and one held-out id list for both."""
    real = load_german_credit(n_firms=4, seed=0)
    flipped = dataclasses.replace(
        real,
        firms={f: t.assign(**{LABEL: 1 - t[LABEL]}) for f, t in real.firms.items()},
    )
    root = tmp_path_factory.mktemp("twins")
    for name, world in (("real", real), ("flipped", flipped)):
        write_world(world, root / name)
    np.save(root / "heldout.npy", real.truth[ID].to_numpy()[::5])
    return root / "real", root / "flipped", root / "heldout.npy"


def _record(world: Path, heldout: Path, run: FederationRun) -> Sent:
    sent: Sent = []

    def intercept(node: int, request: Message, reply: Message) -> Message:
        sent.append((node, request.metadata.message_type, reply))
        return reply

    app = build_client_app({R.WORLD_DIR: str(world), R.HOLDOUT_FILE: str(heldout)})
    grid = InProcessGrid(app, [{R.PARTITION_ID: i} for i in range(4)], intercept=intercept)
    result = run_federation(grid, run)
    assert all("evaluation" in record for record in result.history)  # evaluation was done
    return sent


def _lengths_only(value: object) -> object:
    """`value` with every byte string replaced by its length."""
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    if isinstance(value, dict):
        return {k: _lengths_only(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_lengths_only(v) for v in value]
    return value


def _outside_masked_vectors(content: RecordDict) -> object:
    """Everything a reply carries, its protocol payloads parsed, their byte strings as lengths."""
    configs = {}
    for name, record in content.config_records.items():
        configs[name] = {
            key: (
                [_lengths_only(parse_message(p).model_dump()) for p in value]  # type: ignore[arg-type]
                if key == R.PAYLOADS and isinstance(value, list)
                else value
            )
            for key, value in record.items()
        }
    return {
        "configs": configs,
        "arrays": {
            name: {key: array.numpy().tolist() for key, array in record.items()}
            for name, record in content.array_records.items()
        },
        "metrics": {name: dict(record) for name, record in content.metric_records.items()},
    }


def _masked_vectors(sent: Sent) -> list[np.ndarray]:
    vectors = []
    for _, _, reply in sent:
        for payload in reply.content.config_records[R.SECAGG_RECORD][R.PAYLOADS]:  # type: ignore[union-attr]
            message = parse_message(payload)  # type: ignore[arg-type]
            if isinstance(message, MaskedInputResponse):
                vectors.append(np.frombuffer(message.masked_vector, dtype="<u4"))
    return vectors


def test_nothing_derived_from_a_firms_data_leaves_it_outside_the_masked_vectors(
    twin_worlds: tuple[Path, Path, Path], settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: secure rounds with evaluation (pipelined: the evaluation-only round included)
    # and DP, whose accounting a firm used to send in the clear
    real, flipped, heldout = twin_worlds
    run = tweak(
        settings, secagg="ours", rounds=2, evaluate=True, dp_epsilon=4.0, world_dir=str(real)
    )
    # Execute
    sent = _record(real, heldout, run)
    twin = _record(flipped, heldout, tweak(run, world_dir=str(flipped)))
    # Assert: only protocol messages, each reply one secagg record and nothing else
    assert {kind for _, kind, _ in sent} == {R.SECAGG_MESSAGE_TYPE}
    for _, _, reply in sent:
        assert not reply.has_error()
        assert not reply.content.array_records and not reply.content.metric_records
        assert set(reply.content.config_records) == {R.SECAGG_RECORD}
        assert set(reply.content.config_records[R.SECAGG_RECORD]) == {R.STAGE, R.PAYLOADS}
    # ... every byte outside the masked vectors and every length is the same on other data
    assert [(node, kind) for node, kind, _ in sent] == [(node, kind) for node, kind, _ in twin]
    for (_, _, mine), (_, _, theirs) in zip(sent, twin, strict=True):
        assert _outside_masked_vectors(mine.content) == _outside_masked_vectors(theirs.content)
        size = recorddict_to_proto(mine.content).ByteSize()
        assert size == recorddict_to_proto(theirs.content).ByteSize()
    # ... and the masked vectors are masked: the contribution's small fixed-point words would
    # start with 0x00 or 0xFF; uniform words do with probability 2/256
    words = np.concatenate(_masked_vectors(sent))
    assert len(_masked_vectors(sent)) == 4 * 3  # 4 firms, 2 rounds and the evaluation round
    top = words >> np.uint32(24)
    assert np.mean((top == 0) | (top == 0xFF)) < 0.05


def test_in_the_clear_the_same_comparison_sees_the_data(
    twin_worlds: tuple[Path, Path, Path], settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: the positive control, secagg = "none"
    real, flipped, heldout = twin_worlds
    run = tweak(settings, secagg="none", rounds=1, evaluate=True, world_dir=str(real), run_dir="")
    # Execute
    sent = _record(real, heldout, run)
    twin = _record(flipped, heldout, tweak(run, world_dir=str(flipped)))
    # Assert: every firm's reply differs outside any masked vector
    assert len(sent) == len(twin) == 4 * 2  # the round and the evaluation round
    for (_, _, mine), (_, _, theirs) in zip(sent, twin, strict=True):
        assert _outside_masked_vectors(mine.content) != _outside_masked_vectors(theirs.content)
