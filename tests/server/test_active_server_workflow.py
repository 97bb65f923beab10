"""An active server against real firms over Flower messages (SPEC.md §1 and §10), end to end.

The ServerApp's own workflow runs the rounds; the grid underneath (tests/fakes/active_server.py)
is the server's hand on the wire: it rewrites its requests, reads every response, and gets the
stored state of a colluding firm. Key substitution and lying about who dropped recover a firm's
contribution in the semi-honest mode, and get nothing in the malicious mode.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from fakes.active_server import ActiveServerGrid
from fakes.attacks import KeySubstitution, pair_seeds_from_masking_key, public_keys, strip_masks
from flwr.app import Array, ArrayRecord, ConfigRecord, Context, RecordDict

from clients import records as R
from clients.app import TrainingFirm, build_client_app
from clients.participant import CONTRIBUTION_TAIL, LocalResult
from experiments.world.datasets import load_german_credit
from experiments.world.tables import write_world
from protocol import (
    ConsistencyCheckRequest,
    ConsistencyCheckResponse,
    IdentityManifest,
    MaskedInputResponse,
    ProtocolAbort,
    SecAggConfig,
    SurvivorSignature,
    UnmaskRequest,
    UnmaskResponse,
    dequantize,
    shamir,
)
from protocol.identity import session_context, sign, survivors_statement
from protocol.messages import Message as ProtocolMessage
from server.identities import read_manifest, simulated_identities
from server.messaging import exchange
from server.secagg_workflow import aggregate_securely, secagg_config
from server.settings import FederationRun, FederationSettings

VICTIM_NODE = 102  # partition 1: client 2 in both modes


@dataclass(frozen=True)
class RecordingFirm(TrainingFirm):
    """A real training firm that also keeps what it contributed (to check what was stolen)."""

    contributions: dict[int, np.ndarray] = field(default_factory=dict, compare=False, hash=False)

    def contribute(self, content: RecordDict, context: Context) -> LocalResult:
        result = super().contribute(content, context)
        self.contributions[context.node_id] = result.contribution
        return result


@dataclass
class Setting:
    firms: int
    world_dir: Path
    identities: dict[str, str]
    manifest: IdentityManifest
    manifest_path: Path

    def run(self, mode: str, **federation: object) -> FederationRun:
        settings = FederationSettings(
            weight_scale=1000.0,
            secagg_mode=mode,
            **federation,  # type: ignore[arg-type]
        )
        return FederationRun(
            federation=settings,
            world_dir=str(self.world_dir),
            identity_manifest=str(self.manifest_path),
            evaluate=False,
        )

    def grid(
        self,
        mode: str,
        rewrite,
        observe,
        corrupt: tuple[int, ...] = (),  # type: ignore[no-untyped-def]
    ) -> tuple[ActiveServerGrid, RecordingFirm]:
        defaults = {"world-dir": str(self.world_dir)}
        if mode == "malicious":
            defaults.update(self.identities)
        firm = RecordingFirm(defaults)
        grid = ActiveServerGrid(
            build_client_app(defaults, firm),
            [{"partition-id": i} for i in range(self.firms)],
            rewrite,
            observe,
            corrupt,
            defaults,
        )
        return grid, firm


def _setting(directory: Path, firms: int) -> Setting:
    world_dir = directory / "world"
    write_world(load_german_credit(n_firms=firms, seed=0), world_dir)
    manifest_path, identities = simulated_identities(
        directory / "identities", range(firms), "active-server-test"
    )
    return Setting(firms, world_dir, identities, read_manifest(manifest_path), manifest_path)


@pytest.fixture(scope="module")
def four_firms(tmp_path_factory: pytest.TempPathFactory) -> Setting:
    return _setting(tmp_path_factory.mktemp("four"), 4)


@pytest.fixture(scope="module")
def five_firms(tmp_path_factory: pytest.TempPathFactory) -> Setting:
    return _setting(tmp_path_factory.mktemp("five"), 5)


def _content(run: FederationRun) -> tuple[RecordDict, int]:
    spec = run.model_spec()
    weights = spec.initial_weights()
    content = RecordDict(
        {
            R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
            R.CONFIG_RECORD: run.round_config(spec, 1).to_record(),
        }
    )
    return content, weights.size + len(CONTRIBUTION_TAIL)


def _assert_recovered(words: np.ndarray, config: SecAggConfig, contribution: np.ndarray) -> None:
    """The stolen encoding is the victim's contribution, up to stochastic rounding."""
    clipped = np.clip(contribution, -config.clip, config.clip)
    np.testing.assert_allclose(dequantize(words, config), clipped, atol=1 / config.scale)


# -- key substitution ---------------------------------------------------------------------


def _substitute_keys(setting: Setting, mode: str) -> tuple[KeySubstitution, object, RecordingFirm]:
    """One round of the server's own workflow with the victim's requests rewritten; returns
    the attack, what the workflow returned (its sum or its abort) and the firms."""
    run = setting.run(mode)
    config = secagg_config(run.federation, setting.firms)
    attack = KeySubstitution(2, round_number=1, threshold=config.reconstruction_threshold)
    grid, firm = setting.grid(
        mode,
        lambda node, request: attack.alter_request(request),  # type: ignore[arg-type,return-value]
        lambda node, response: attack.observe_response(response),
    )
    content, dimension = _content(run)
    manifest = setting.manifest if mode == "malicious" else None
    nodes = sorted(grid.get_node_ids())
    try:
        outcome: object = aggregate_securely(
            grid, nodes, content, 1, run.federation, dimension, manifest=manifest
        )
    except ProtocolAbort as abort:
        outcome = abort
    return attack, outcome, firm


def test_key_substitution_over_flower_reads_a_firms_contribution_in_semi_honest_mode(
    four_firms: Setting,
) -> None:
    # Execute: no colluder; the other firms cannot open the victim's shares and the round
    # aborts, but only after the victim masked under the server's keys
    attack, outcome, firm = _substitute_keys(four_firms, "semi-honest")
    # Assert
    assert isinstance(outcome, ProtocolAbort)
    config = secagg_config(four_firms.run("semi-honest").federation, 4)
    _assert_recovered(attack.recover(), config, firm.contributions[VICTIM_NODE])


def test_key_substitution_over_flower_gets_nothing_in_malicious_mode(four_firms: Setting) -> None:
    # Execute
    attack, outcome, _ = _substitute_keys(four_firms, "malicious")
    # Assert: the victim refused the unsigned keys before sealing a share; the round finished
    # without it (quorum 3 of 4)
    assert attack.seed_shares == {} and attack.masked_vector is None
    with pytest.raises(AssertionError, match="never sent its masked input"):
        attack.recover()
    assert not isinstance(outcome, ProtocolAbort)
    assert outcome.contributors == [101, 103, 104]  # type: ignore[attr-defined]
    assert "signature" in outcome.dropped[VICTIM_NODE]  # type: ignore[attr-defined]


# -- lying about who dropped ----------------------------------------------------------------

COLLUDER_NODE = 105  # client 5
TOLD_DROPPED = {103, 104}  # clients 3 and 4


@dataclass
class Liar:
    """The server tells holders 3, 4 that the victim dropped (and, in malicious mode, shows
    them a survivor set without it), 1 and 2 that it survived; it keeps every response."""

    mode: str
    responses: dict[tuple[str, int], ProtocolMessage] = field(default_factory=dict)

    def rewrite(self, node: int, request: ProtocolMessage) -> ProtocolMessage:
        if node not in TOLD_DROPPED:
            return request
        if isinstance(request, ConsistencyCheckRequest):
            return request.model_copy(
                update={"survivors": [c for c in request.survivors if c != 2]}
            )
        if isinstance(request, UnmaskRequest) and self.mode == "semi-honest":
            return request.model_copy(
                update={
                    "survivors": [c for c in request.survivors if c != 2],
                    "dropped": sorted({*request.dropped, 2}),
                }
            )
        return request

    def observe(self, node: int, response: ProtocolMessage) -> None:
        self.responses[(type(response).__name__, node)] = response


def _shares(responses: list[UnmaskResponse], kind: str) -> dict[int, int]:
    return {
        response.sender: shamir.decode_share(share.value)
        for response in responses
        for share in response.shares
        if share.owner == 2 and share.kind == kind
    }


def test_lying_about_a_dropout_over_flower_reads_a_firms_contribution_in_semi_honest_mode(
    five_firms: Setting,
) -> None:
    # Prepare: n = 5, complete graph, t = 3, firm 5 colludes: 2t - 1 = 5 <= k + 1
    run = five_firms.run("semi-honest", threshold=3)
    config = secagg_config(run.federation, 5)
    liar = Liar("semi-honest")
    grid, firm = five_firms.grid("semi-honest", liar.rewrite, liar.observe, (COLLUDER_NODE,))
    content, dimension = _content(run)
    # Execute: the server's workflow, with the lie in its unmask requests
    result = aggregate_securely(
        grid, sorted(grid.get_node_ids()), content, 1, run.federation, dimension
    )
    # Assert: t shares of each of the victim's secrets, its masks stripped
    unmasked = [r for (kind, _), r in liar.responses.items() if kind == "UnmaskResponse"]
    seeds, keys = _shares(unmasked, "self_mask"), _shares(unmasked, "masking_key")  # type: ignore[arg-type]
    colluder = grid.loot[COLLUDER_NODE].rounds[1]  # what firm 5 held before its unmask
    seeds[5] = shamir.decode_share(colluder.held_self_mask_shares[2])
    keys[5] = shamir.decode_share(colluder.held_key_shares[2])
    assert len(seeds) >= 3 and len(keys) >= 3
    advertised = {
        node - 100: public_keys(r)  # type: ignore[arg-type]
        for (kind, node), r in liar.responses.items()
        if kind == "AdvertiseKeysResponse"
    }
    masked = liar.responses[("MaskedInputResponse", VICTIM_NODE)]
    assert isinstance(masked, MaskedInputResponse)
    pair_seeds = pair_seeds_from_masking_key(
        1,
        shamir.combine(keys, 3),
        advertised[2],
        [k for c, k in advertised.items() if c != 2],
    )
    words = strip_masks(
        1, masked.masked_vector, shamir.combine(seeds, 3), advertised[2], pair_seeds
    )
    _assert_recovered(words, config, firm.contributions[VICTIM_NODE])
    # the round even looks ordinary: the lied-to holders' odd replies are dropped, the sum is out
    assert result.contributors == [101, 102, 103, 104, 105]
    assert sorted(result.dropped) == sorted(TOLD_DROPPED)


def test_lying_about_a_dropout_over_flower_gets_nothing_in_malicious_mode(
    five_firms: Setting,
) -> None:
    # Prepare: the same parameters and colluder; quorum 4 of 5
    run = five_firms.run("malicious", threshold=3)
    config = secagg_config(run.federation, 5)
    liar = Liar("malicious")
    grid, _ = five_firms.grid("malicious", liar.rewrite, liar.observe, (COLLUDER_NODE,))
    content, dimension = _content(run)
    # Execute: the server's workflow shows holders 3, 4 a survivor set without the victim; its
    # own check then finds only three signatures on the real set and stops
    with pytest.raises(ProtocolAbort, match="quorum"):
        aggregate_securely(
            grid,
            sorted(grid.get_node_ids()),
            content,
            1,
            run.federation,
            dimension,
            manifest=five_firms.manifest,
        )
    # Execute: the liar carries on alone, asking each group for shares under its own set with
    # every signature it has on that set (the colluder signs both)
    everyone, without_victim = [1, 2, 3, 4, 5], [1, 3, 4, 5]
    colluder_key = Path(five_firms.identities[R.IDENTITY_KEY]) / "4.pem"  # partition 4
    colluder = load_pem_private_key(colluder_key.read_bytes(), password=None)
    context = session_context(five_firms.manifest, config, dimension, 1)
    signatures: dict[tuple[int, ...], list[SurvivorSignature]] = {}
    for members in (everyone, without_victim):
        statement = survivors_statement(context, everyone, members)
        signed = [
            SurvivorSignature(signer=node - 100, signature=response.signature)
            for (kind, node), response in liar.responses.items()
            if kind == "ConsistencyCheckResponse"
            and isinstance(response, ConsistencyCheckResponse)
            and node != COLLUDER_NODE
            and (node in TOLD_DROPPED) == (members == without_victim)
        ]
        signed.append(SurvivorSignature(signer=5, signature=sign(colluder, statement)))  # type: ignore[arg-type]
        signatures[tuple(members)] = signed
    contents = {}
    for node in (101, 102, 103, 104):
        members = without_victim if node in TOLD_DROPPED else everyone
        request = UnmaskRequest(
            round=1,
            sender=0,
            receiver=node - 100,
            survivors=members,
            dropped=sorted(set(everyone) - set(members)),
            consistency_signatures=signatures[tuple(members)],
        )
        contents[node] = RecordDict(
            {R.SECAGG_RECORD: ConfigRecord({R.STAGE: "unmask", R.PAYLOADS: [request.to_bytes()]})}
        )
    outcome = exchange(grid, contents, R.SECAGG_MESSAGE_TYPE, "1", 5.0)
    # Assert: three signatures on each set, one short of the quorum: every firm refused, and no
    # share of anyone left any firm
    assert {len(s) for s in signatures.values()} == {3} and config.consistency_quorum == 4
    assert not outcome.replies
    assert all("quorum" in reason for reason in outcome.dropped.values())
    assert not [kind for kind, _ in liar.responses if kind == "UnmaskResponse"]
