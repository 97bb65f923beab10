"""Malicious-mode rounds through the scheduler (SPEC.md §9 and §10): three messages a round.

    message A:  masked_input(r)      + advertise_keys(r+1)
    message B:  consistency_check(r) + share_keys(r+1)
    message C:  unmask(r)

The nodes are `protocol.nodes.LocalNodes`: real `ClientSessions` holding real identity keys,
answering from wire bytes. Node ids are 64-bit (as Flower's) and the manifest's client ids are
not 1..n, so the tests also show the scheduler numbers each round by the manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np
import pytest
from fakes.transport import Recorder, assert_exact
from hypothesis import given, settings
from hypothesis import strategies as st

from protocol import (
    MALICIOUS_STAGE_ORDER,
    Cohort,
    ConfigMismatch,
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    DropReason,
    IdentityManifest,
    InvalidSignature,
    MalformedMessage,
    PipelineScheduler,
    ProtocolAbort,
    SecAggConfig,
    Stage,
    UnmaskRequest,
    generate_identity,
    parse_message,
    run_rounds,
)
from protocol.identity import check_identity_proof, count_valid_signers, prove_identity
from protocol.nodes import DropoutPlan, LocalNodes
from protocol.pipeline import Part, Reply, TransportMessage

DIMENSION = 5
BIG = 2**40
NODES = [BIG + 9, BIG + 2, BIG + 30, BIG + 4, BIG + 17]
MANIFEST_ID = {node: 3 * index + 7 for index, node in enumerate(sorted(NODES))}
"""Each node's client id in the manifest: 7, 10, 13, ... in node order."""
IDENTITIES = {node: generate_identity() for node in NODES}
MANIFEST = IdentityManifest.of(
    "pipeline-test", {MANIFEST_ID[node]: key for node, key in IDENTITIES.items()}
)


def _config(n: int = 5, **fields: object) -> SecAggConfig:
    return SecAggConfig(num_clients=n, scale=2.0**12, mode="malicious", **fields)  # type: ignore[arg-type]


def _cohort(nodes: Iterable[int], config: SecAggConfig | None = None) -> Cohort:
    members = sorted(nodes)
    return Cohort.of(
        members, config or _config(len(members)), manifest=MANIFEST, client_ids=MANIFEST_ID
    )


def _nodes(cohorts: Mapping[int, Iterable[int]], dropout: DropoutPlan | None = None) -> LocalNodes:
    inputs = {
        r: {node: np.random.default_rng([r, node]).uniform(-1, 1, DIMENSION) for node in nodes}
        for r, nodes in cohorts.items()
    }
    identities = {node: IDENTITIES[node] for nodes in cohorts.values() for node in nodes}
    return LocalNodes(inputs, dropout=dropout, identities=identities, manifest=MANIFEST)


def test_a_malicious_round_is_three_messages_a_b_c_with_the_next_rounds_keys_in_a_and_b() -> None:
    # Prepare: three rounds over five nodes
    nodes = _nodes({r: NODES for r in (1, 2, 3)})
    send = Recorder(nodes)
    scheduler = PipelineScheduler()
    cohort = _cohort(NODES)
    # Execute
    rounds = [
        scheduler.run_round(r, cohort, DIMENSION, send, cohort if r < 3 else None)
        for r in (1, 2, 3)
    ]
    # Assert: bootstrap, then A, B, C per round; the last round prepares nothing
    steady = ["masked_input+advertise_keys", "consistency_check+share_keys", "unmask"]
    assert send.labels() == [
        (1, "advertise_keys"),
        (1, "share_keys"),
        *[(1, label) for label in steady],
        *[(2, label) for label in steady],
        (3, "masked_input"),
        (3, "consistency_check"),
        (3, "unmask"),
    ]
    message_b, message_c = send.sent[3], send.sent[4]
    clients = [MANIFEST_ID[node] for node in sorted(NODES)]
    for node in sorted(NODES):
        batch = message_b.batches[node]
        assert batch.parts == (Part(1, Stage.CONSISTENCY_CHECK), Part(2, Stage.SHARE_KEYS))
        check, share_keys = (parse_message(payload) for payload in batch.payloads)
        assert isinstance(check, ConsistencyCheckRequest)
        assert (check.round, check.receiver, check.survivors) == (1, MANIFEST_ID[node], clients)
        assert (share_keys.round, share_keys.stage) == (2, Stage.SHARE_KEYS)
        assert message_c.batches[node].parts == (Part(1, Stage.UNMASK),)
        (unmask,) = (parse_message(payload) for payload in message_c.batches[node].payloads)
        assert isinstance(unmask, UnmaskRequest)
        assert sorted(s.signer for s in unmask.consistency_signatures) == clients
    # Assert: every sum exact, over the manifest's ids, and no secret left on any node
    for round_ in rounds:
        assert_exact(round_, nodes)
        assert round_.outcome is not None and list(round_.outcome.survivors) == clients
        assert sorted(round_.contributors()) == sorted(NODES)
    assert all(not sessions.open_rounds for sessions in nodes.sessions.values())
    assert {node: sessions.signed_through for node, sessions in nodes.sessions.items()} == (
        dict.fromkeys(NODES, 3)
    )


def test_a_malicious_round_alone_is_five_messages() -> None:
    # Prepare
    nodes = _nodes({r: NODES for r in (1, 2)})
    send = Recorder(nodes)
    scheduler = PipelineScheduler(pipelined=False)
    cohort = _cohort(NODES)
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, send, cohort)
    second = scheduler.run_round(2, cohort, DIMENSION, send)
    # Assert
    stages = [stage.value for stage in MALICIOUS_STAGE_ORDER]
    assert send.labels() == [(1, s) for s in stages] + [(2, s) for s in stages]
    assert_exact(first, nodes)
    assert_exact(second, nodes)


def test_when_the_consistency_check_fails_the_prepared_round_goes_on() -> None:
    # Prepare: in round 1's message B, two of five nodes return a bad signature on the
    # survivor set (quorum 4: round 1 aborts) but valid share_keys responses for round 2
    nodes = _nodes({1: NODES, 2: NODES})
    send = Recorder(nodes)
    spoilt = sorted(NODES)[:2]

    def tampering(message: TransportMessage) -> Mapping[int, Reply]:
        replies = dict(send(message))
        if (message.round_number, message.label) == (1, "consistency_check+share_keys"):
            for node in spoilt:
                check, keys = replies[node]  # type: ignore[misc]
                signed = parse_message(check)
                assert isinstance(signed, ConsistencyCheckResponse)
                forged = signed.model_copy(update={"signature": bytes(64)})
                replies[node] = [forged.to_bytes(), keys]
        return replies

    scheduler = PipelineScheduler()
    cohort = _cohort(NODES)
    # Execute
    first = scheduler.run_round(1, cohort, DIMENSION, tampering, cohort)
    prepared = scheduler.prepared
    prepared_stage = None if prepared is None else prepared.stage
    second = scheduler.run_round(2, cohort, DIMENSION, tampering)
    # Assert: round 1 stopped before asking for any share; round 2 kept every node
    assert first.aborted is not None and first.aborted.stage is Stage.CONSISTENCY_CHECK
    assert "quorum" in str(first.aborted)
    view = first.aborted.view
    assert view is not None and not view.revealed_self_mask_shares
    assert not view.revealed_masking_key_shares
    assert {first.server.drops[MANIFEST_ID[n]].reason for n in spoilt} == {
        DropReason.INVALID_SIGNATURE
    }
    assert prepared is second and prepared_stage is Stage.MASKED_INPUT
    assert send.labels()[4:] == [
        (2, "masked_input"),
        (2, "consistency_check"),
        (2, "unmask"),
    ]
    assert_exact(second, nodes)
    assert sorted(second.contributors()) == sorted(NODES)


def test_a_prepared_round_that_aborts_leaves_the_current_round_alone() -> None:
    # Prepare: round 2's cohort is three nodes (quorum 3); one of them is silent in round 1's
    # message A, which carries round 2's advertise request
    small = sorted(NODES)[:3]
    nodes = _nodes({1: NODES, 2: small}, dropout={1: {small[0]: Stage.MASKED_INPUT}})
    send = Recorder(nodes)
    scheduler = PipelineScheduler()
    # Execute
    first = scheduler.run_round(1, _cohort(NODES), DIMENSION, send, _cohort(small))
    abandoned = scheduler.prepared
    second = scheduler.run_round(2, _cohort(small), DIMENSION, send)
    # Assert: round 1 sums without the silent node, its messages B and C carry round 1 alone
    assert_exact(first, nodes)
    assert sorted(first.contributors()) == sorted(NODES)[1:]
    assert abandoned is None
    assert send.labels()[2:5] == [
        (1, "masked_input+advertise_keys"),
        (1, "consistency_check"),
        (1, "unmask"),
    ]
    assert_exact(second, nodes)
    assert sorted(second.contributors()) == small


def test_nodes_holding_identities_refuse_a_semi_honest_round() -> None:
    # Prepare: a server that would rather not be checked asks the same nodes for a semi-honest
    # round
    nodes = _nodes({1: NODES})
    # Execute
    round_ = PipelineScheduler().run_round(
        1, Cohort.of(NODES, SecAggConfig(num_clients=5)), DIMENSION, nodes
    )
    # Assert: nobody advertised keys; the round aborted before anything was shared
    assert round_.aborted is not None and round_.aborted.stage is Stage.ADVERTISE_KEYS
    assert all(isinstance(error, ConfigMismatch) for error in nodes.errors[1].values())
    assert sorted(nodes.errors[1]) == sorted(NODES)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({}, "needs the identity manifest"),
        ({"manifest": MANIFEST, "client_ids": {}}, "no manifest id for nodes"),
        (
            {"manifest": MANIFEST, "client_ids": dict.fromkeys(NODES, 7)},
            "share a client id",
        ),
        (
            {"manifest": MANIFEST, "client_ids": {n: 100 + i for i, n in enumerate(NODES)}},
            "not in the identity manifest",
        ),
    ],
    ids=["no-manifest", "unmapped", "shared-id", "stranger"],
)
def test_a_malicious_cohort_needs_one_manifest_id_per_node(
    kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        Cohort.of(NODES, _config(), **kwargs)  # type: ignore[arg-type]


def test_a_semi_honest_cohort_takes_no_manifest() -> None:
    with pytest.raises(ValueError, match="semi-honest cohort"):
        Cohort.of(NODES, SecAggConfig(num_clients=5), manifest=MANIFEST, client_ids=MANIFEST_ID)


@settings(max_examples=20, deadline=None)
@given(
    n=st.integers(4, 7),
    rounds=st.integers(2, 3),
    events=st.lists(
        st.tuples(st.integers(1, 7), st.integers(1, 3), st.sampled_from(MALICIOUS_STAGE_ORDER)),
        max_size=5,
    ),
    pipelined=st.booleans(),
    persist=st.booleans(),
)
def test_malicious_rounds_are_exact_or_abort_under_any_dropouts(
    n: int,
    rounds: int,
    events: list[tuple[int, int, Stage]],
    pipelined: bool,
    persist: bool,
) -> None:
    # Prepare: any node may go silent in any message of any round (and with it every round the
    # message carries); the smallest t the config accepts on the complete graph; quorum
    # ⌊2n/3⌋ + 1
    threshold = n // 2 + 1
    config = _config(n, threshold=threshold)
    plan: dict[int, dict[int, Stage]] = {}
    for node, r, stage in events:
        if node <= n and r <= rounds:
            earliest = plan.setdefault(r, {}).get(node, stage)
            plan[r][node] = min(earliest, stage, key=lambda s: s.position)
    inputs = [
        {c: np.random.default_rng([c, r]).uniform(-0.5, 0.5, DIMENSION) for c in range(1, n + 1)}
        for r in range(1, rounds + 1)
    ]
    # Execute
    outcomes = run_rounds(config, inputs, dropout=plan, pipelined=pipelined, persist=persist)
    # Assert: each round either sums exactly the inputs of those that masked, or aborted, and
    # an abort before unmask revealed nothing
    for outcome in outcomes:
        silent = plan.get(outcome.round_number, {})
        if outcome.abort is not None:
            assert isinstance(outcome.abort, ProtocolAbort) and outcome.result is None
            view = outcome.abort.view
            if outcome.abort.stage is not Stage.UNMASK and view is not None:
                assert not view.revealed_self_mask_shares
                assert not view.revealed_masking_key_shares
            continue
        assert outcome.result is not None and outcome.exact
        survivors = set(outcome.result.survivors)
        masked = Stage.MASKED_INPUT.position
        assert not {c for c, s in silent.items() if s.position <= masked} & survivors
        signed = n - len([c for c, s in silent.items() if s.position <= masked + 1])
        assert signed >= config.consistency_quorum
        assert not outcome.result.client_errors


def test_the_server_stops_a_round_below_the_quorum_before_asking_anyone_to_share_keys() -> None:
    # Prepare: five invited, quorum 4, two stay silent at advertise_keys; t = 3 alone would
    # let the round go on, but every honest client would refuse a share-keys request whose
    # participants cannot reach the quorum (and a pipelined node would lose its other round)
    nodes = _nodes({1: NODES}, dropout={1: dict.fromkeys(sorted(NODES)[:2], Stage.ADVERTISE_KEYS)})
    send = Recorder(nodes)
    # Execute
    cohort = _cohort(NODES, _config(threshold=3))
    round_ = PipelineScheduler().run_round(1, cohort, DIMENSION, send)
    # Assert
    assert round_.aborted is not None and round_.aborted.stage is Stage.ADVERTISE_KEYS
    assert "below the consistency quorum 4" in str(round_.aborted)
    assert send.labels() == [(1, "advertise_keys")]


# -- which node is which client: the identity proof -----------------------------------------


def test_a_node_proves_which_manifest_entry_it_holds() -> None:
    # Prepare
    node = sorted(NODES)[1]
    challenge = bytes(range(32))
    # Execute
    proof = prove_identity(IDENTITIES[node], MANIFEST, node, challenge)
    # Assert
    assert check_identity_proof(MANIFEST, node, challenge, proof) == MANIFEST_ID[node]


@pytest.mark.parametrize("fault", ["other-node", "other-challenge", "other-manifest", "short"])
def test_an_identity_proof_for_anything_else_is_refused(fault: str) -> None:
    # Prepare: a proof made for another node id, challenge or manifest, or cut short
    node = sorted(NODES)[1]
    challenge = bytes(range(32))
    proof = prove_identity(IDENTITIES[node], MANIFEST, node, challenge)
    manifest = MANIFEST
    if fault == "other-node":
        node += 1
    elif fault == "other-challenge":
        challenge = bytes(32)
    elif fault == "other-manifest":
        manifest = MANIFEST.model_copy(update={"federation": "another federation"})
    else:
        proof = proof[:-1]
    # Execute / Assert
    error = MalformedMessage if fault == "short" else InvalidSignature
    with pytest.raises(error):
        check_identity_proof(manifest, node, challenge, proof)


def test_a_node_whose_key_is_not_in_its_manifest_cannot_prove_anything() -> None:
    with pytest.raises(InvalidSignature, match="not in its identity manifest"):
        prove_identity(generate_identity(), MANIFEST, 1, bytes(32))


def test_a_client_stops_verifying_signatures_once_it_has_its_quorum() -> None:
    # Prepare: five valid signatures on one statement; a quorum of three
    statement = b"the survivor set"
    signatures = [(MANIFEST_ID[n], IDENTITIES[n].sign(statement)) for n in sorted(NODES)]
    eligible = list(MANIFEST_ID.values())
    # Execute
    everyone = count_valid_signers(MANIFEST, statement, signatures, eligible)
    enough = count_valid_signers(MANIFEST, statement, signatures, eligible, enough=3)
    # Assert: the first three in order, and no more checked
    assert everyone == set(eligible)
    assert enough == {MANIFEST_ID[n] for n in sorted(NODES)[:3]}
