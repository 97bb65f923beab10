"""The malicious-server mode over Flower messages (SPEC.md §9 and §10): firms with identities.

Firms read their identity key and the manifest from their node config (here the ClientApp's
defaults, as in simulation: a directory of `<partition-id>.pem`); the server learns which node
holds which manifest entry from one `identify` message, then runs five-stage rounds.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Error, Message, RecordDict

from clients import records as R
from clients.app import build_client_app
from clients.participant import CONTRIBUTION_TAIL
from protocol import ProtocolAbort
from server.federation import run_federation
from server.identities import read_manifest, simulated_identities
from server.inprocess import InProcessGrid, Intercept
from server.secagg_workflow import SecureAggregator, aggregate_securely
from server.settings import FederationRun

N_FIRMS = 4  # as in conftest.py
MALICIOUS_STAGES = ["advertise_keys", "share_keys", "masked_input", "consistency_check", "unmask"]

Tweak = Callable[..., FederationRun]


def _stage_of(message: Message) -> str:
    return str(message.content.config_records[R.SECAGG_RECORD][R.STAGE])


class Federation:
    """Four firms on the shared world, each with a fresh identity (or some without one)."""

    def __init__(self, world_dir: Path, directory: Path, without_identity: tuple[int, ...] = ()):
        self.manifest_path, identities = simulated_identities(
            directory / "identities", range(N_FIRMS), "workflow-test"
        )
        for partition in without_identity:
            (Path(identities[R.IDENTITY_KEY]) / f"{partition}.pem").unlink()
        self.manifest = read_manifest(self.manifest_path)
        self.defaults = {"world-dir": str(world_dir), **identities}

    def grid(self, intercept: Intercept | None = None, identities: bool = True) -> InProcessGrid:
        defaults = self.defaults if identities else {"world-dir": self.defaults["world-dir"]}
        return InProcessGrid(
            build_client_app(defaults),
            [{"partition-id": i} for i in range(N_FIRMS)],
            intercept=intercept,
        )


@pytest.fixture
def federation(world_dir: Path, tmp_path: Path) -> Federation:
    return Federation(world_dir, tmp_path)


def _malicious(settings: FederationRun, tweak: Tweak, federation: Federation, **changes: object):  # type: ignore[no-untyped-def]
    return tweak(
        settings,
        secagg_mode="malicious",
        identity_manifest=str(federation.manifest_path),
        **changes,
    )


def _round_content(settings: FederationRun) -> tuple[RecordDict, int]:
    from flwr.app import Array, ArrayRecord

    spec = settings.model_spec()
    weights = spec.initial_weights()
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
            R.CONFIG_RECORD: settings.round_config(spec, 1).to_record(),
        }
    )
    return content, weights.size + len(CONTRIBUTION_TAIL)


def test_malicious_rounds_reach_exactly_the_semi_honest_model(
    federation: Federation, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: node 101's messages, by round
    sent: dict[str, list[str]] = {}

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node == 101 and R.SECAGG_RECORD in request.content.config_records:
            sent.setdefault(request.metadata.group_id, []).append(_stage_of(request))
        return reply

    secure = tweak(settings, secagg="ours", rounds=3, run_dir="")
    # Execute
    malicious = run_federation(federation.grid(intercept), _malicious(secure, tweak, federation))
    semi_honest = run_federation(federation.grid(identities=False), secure)
    # Assert: one identify message ever; then A, B, C per round; the same sums bit for bit
    assert sent == {
        "1": [
            "identify",
            *MALICIOUS_STAGES[:2],
            "masked_input+advertise_keys",
            "consistency_check+share_keys",
            "unmask",
        ],
        "2": ["masked_input+advertise_keys", "consistency_check+share_keys", "unmask"],
        "3": MALICIOUS_STAGES[2:],
    }
    np.testing.assert_array_equal(malicious.weights, semi_honest.weights)
    assert [r["contributors"] for r in malicious.history] == [N_FIRMS] * 3


def test_the_round_is_numbered_by_the_manifest_and_every_key_is_signed(
    federation: Federation, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare
    grid = federation.grid()
    nodes = sorted(grid.get_node_ids())
    secure = _malicious(settings, tweak, federation)
    content, dimension = _round_content(secure)
    aggregator = SecureAggregator(pipeline=False, manifest=federation.manifest)
    # Execute
    result = aggregator(grid, nodes, content, 1, secure.federation, dimension)
    # Assert: partition p proved manifest id p + 1; five stages in the transcript
    assert aggregator.client_ids == {node: node - 100 for node in nodes}
    assert result.contributors == nodes
    assert {e["stage"] for e in result.transcript} == set(MALICIOUS_STAGES)
    advertised = [e for e in result.transcript if e["message_type"] == "AdvertiseKeysResponse"]
    assert len(advertised) == N_FIRMS


@pytest.mark.parametrize("stage", MALICIOUS_STAGES)
def test_a_firm_silent_at_any_stage_is_a_dropout_the_round_survives(
    federation: Federation, settings: FederationRun, tweak: Tweak, stage: str
) -> None:
    # Prepare: four firms, t = 3, quorum 3; the last firm goes silent at `stage`
    victim = 100 + N_FIRMS

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        return None if node == victim and _stage_of(request) == stage else reply

    grid = federation.grid(intercept)
    nodes = sorted(grid.get_node_ids())
    secure = _malicious(settings, tweak, federation, threshold=3)
    content, dimension = _round_content(secure)
    # Execute
    result = aggregate_securely(
        grid, nodes, content, 1, secure.federation, dimension, manifest=federation.manifest
    )
    # Assert: the victim's input counts if it had sent its masked input
    masked = MALICIOUS_STAGES.index(stage) > MALICIOUS_STAGES.index("masked_input")
    assert result.contributors == (nodes if masked else nodes[:-1])
    assert victim in result.dropped


def test_a_firm_holding_an_identity_refuses_a_semi_honest_proposal(
    federation: Federation, settings: FederationRun
) -> None:
    # Prepare: the server asks firms with identities for a semi-honest round
    refusals: dict[int, str] = {}

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if reply.has_error():
            refusals[node] = reply.error.reason
        return reply

    grid = federation.grid(intercept)
    content, dimension = _round_content(settings)
    # Execute / Assert: every firm refuses at once; nothing is shared
    with pytest.raises(ProtocolAbort, match="advertise_keys"):
        aggregate_securely(
            grid, sorted(grid.get_node_ids()), content, 1, settings.federation, dimension
        )
    assert sorted(refusals) == sorted(grid.get_node_ids())
    assert all("malicious-mode rounds only" in reason for reason in refusals.values())


def test_a_firm_without_an_identity_is_left_out_of_a_malicious_round(
    world_dir: Path, tmp_path: Path, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: partition 2 (node 103) holds no identity key
    federation = Federation(world_dir, tmp_path, without_identity=(2,))
    grid = federation.grid()
    nodes = sorted(grid.get_node_ids())
    secure = _malicious(settings, tweak, federation, threshold=2)
    content, dimension = _round_content(secure)
    # Execute
    result = aggregate_securely(
        grid, nodes, content, 1, secure.federation, dimension, manifest=federation.manifest
    )
    # Assert
    assert result.contributors == [101, 102, 104]
    assert result.dropped[103].startswith("identify: error")
    assert "holds no identity" in result.dropped[103]


def test_a_forged_identity_proof_keeps_its_node_out(
    federation: Federation, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: node 102's proof is replaced by node 101's (a node claiming another's entry)
    proofs: dict[int, Message] = {}

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if _stage_of(request) == R.IDENTIFY:
            proofs[node] = reply
            if node == 102:
                return Message(proofs[101].content, reply_to=request)
        return reply

    grid = federation.grid(intercept)
    nodes = sorted(grid.get_node_ids())
    secure = _malicious(settings, tweak, federation, threshold=2)
    content, dimension = _round_content(secure)
    aggregator = SecureAggregator(pipeline=False, manifest=federation.manifest)
    # Execute
    result = aggregator(grid, nodes, content, 1, secure.federation, dimension)
    # Assert: the proof names node 101, so it is worth nothing for node 102
    assert 102 not in aggregator.client_ids and aggregator.client_ids[101] == 1
    assert "signature does not verify" in result.dropped[102]
    assert result.contributors == [101, 103, 104]


def test_a_malicious_run_needs_the_identity_manifest(settings: FederationRun, tweak: Tweak) -> None:
    with pytest.raises(ValueError, match="identity-manifest"):
        tweak(settings, secagg_mode="malicious")
    # Flower's SecAgg+ and the plain sum have no such mode: nothing to check
    assert tweak(settings, secagg_mode="malicious", secagg="none").federation.secagg_mode


def test_an_error_reply_to_identify_is_a_dropout(
    federation: Federation, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if node == 104 and _stage_of(request) == R.IDENTIFY:
            return Message(Error(code=1, reason="firm crashed"), reply_to=request)
        return reply

    grid = federation.grid(intercept)
    nodes = sorted(grid.get_node_ids())
    secure = _malicious(settings, tweak, federation, threshold=2)
    content, dimension = _round_content(secure)
    # Execute
    result = aggregate_securely(
        grid, nodes, content, 1, secure.federation, dimension, manifest=federation.manifest
    )
    # Assert
    assert result.contributors == nodes[:-1]
    assert result.dropped[104] == "identify: error 1: firm crashed"


def test_a_node_is_asked_who_it_is_once(federation: Federation) -> None:
    # Prepare
    asked: list[int] = []

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        asked.append(node)
        return reply

    grid = federation.grid(intercept)
    aggregator = SecureAggregator(manifest=federation.manifest)
    # Execute
    first = aggregator.identify(grid, {101, 102}, 1, 5.0)
    second = aggregator.identify(grid, {101, 102, 103}, 2, 5.0)
    # Assert
    assert first == second == {}
    assert asked == [101, 102, 103]
    assert aggregator.client_ids == {101: 1, 102: 2, 103: 3}


class _ServerCrash(Exception):
    """The coordinator dies in the middle of a round."""


def test_a_round_cut_after_its_consistency_check_is_refused_on_resume(
    federation: Federation, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: three rounds; the server dies as round 2's unmask requests go out, after every
    # firm signed round 2's survivor set
    crashed: list[bool] = []

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        if request.metadata.group_id == "2" and _stage_of(request) == "unmask" and not crashed:
            crashed.append(True)
            raise _ServerCrash
        return reply

    secure = _malicious(settings, tweak, federation, rounds=3)
    grid = federation.grid(intercept)
    with pytest.raises(_ServerCrash):
        run_federation(grid, secure)
    # Execute: a new server resumes after round 1 on the same firms
    resumed = run_federation(grid, tweak(secure, resume=True))
    # Assert: the firms refuse to sign round 2 twice, so it aborts; round 3 runs
    second, third = resumed.history[1:]
    assert "aborted" in second and "advertise_keys" in second["aborted"]
    assert third["contributors"] == N_FIRMS
