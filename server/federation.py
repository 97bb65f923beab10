"""R rounds of FedAvg over Flower messages, the aggregation chosen by `secagg`.

Every round: sample nodes, send them the global weights, obtain the *sum* of their contribution
vectors (in the clear for `none`, through our secure aggregation for `ours`), recover the
weighted mean update from it, apply the server optimiser, checkpoint. The layout of a
contribution is documented in `clients/participant.py`. Evaluation rides in the next round's
sums, and one evaluation-only round follows the last (`server/rounds.py` says why).
"""

from __future__ import annotations

import hashlib
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np
from flwr.app import Array, ArrayRecord, RecordDict
from flwr.serverapp import Grid
from rich.console import Console

from clients import records as R
from clients.participant import CONTRIBUTION_TAIL, read_contribution_sum
from clients.streams import Stream, generator
from protocol import ProtocolAbort, Stage
from server.checkpoint import Checkpoint, clear_checkpoints, latest_checkpoint, save_checkpoint
from server.faults import (
    RoundAborted,
    abort_event,
    drop_events,
    stopped_line,
    threshold_lowered_line,
)
from server.flower_secaggplus import run_flower_secaggplus
from server.identities import read_manifest
from server.messaging import TooFewNodes, exchange, wait_for_nodes
from server.optimiser import server_optimiser
from server.rounds import (
    RECEIVED_FILE,
    RESULT_FILE,
    TRANSCRIPT_FILE,
    WEIGHTS_FILE,
    Aggregate,
    FederationResult,
    RoundAggregate,
    dp_budget,
    evaluate_final_model,
    received_line,
    record_evaluation,
)
from server.secagg_workflow import SecureAggregator
from server.settings import FederationRun, FederationSettings


class InsecureAggregationWarning(UserWarning):
    """The server is about to see every firm's update in the clear."""


def warn_insecure() -> None:
    """Loud on purpose: `none` exists to measure what a server would see, not to be used."""
    message = (
        "secagg = 'none': every firm's model update reaches the server IN THE CLEAR. "
        "Use it only to measure what the server would see; use secagg = 'ours' otherwise."
    )
    Console(stderr=True).print(f"[bold red on white] WARNING [/] [bold red]{message}[/]")
    warnings.warn(message, InsecureAggregationWarning, stacklevel=2)


class ReproducibleNoiseWarning(UserWarning):
    """Every DP firm's noise comes from seeds the server knows."""


def warn_reproducible_noise() -> None:
    """Loud on purpose: `reproducible = true` makes a DP run repeatable by giving up the DP
    guarantee against the server (`clients.streams.reproducible_noise_seeds`)."""
    message = (
        "reproducible = true: every firm's DP noise is seeded from the run seed, the round and "
        "the firm's name, ALL KNOWN TO THE SERVER, which could regenerate and remove it. Use it "
        "for repeatable experiments only; results.json and the report flag the run."
    )
    Console(stderr=True).print(f"[bold red on white] WARNING [/] [bold red]{message}[/]")
    warnings.warn(message, ReproducibleNoiseWarning, stacklevel=2)


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def aggregate_in_the_clear(
    grid: Grid,
    nodes: list[int],
    content: RecordDict,
    round_number: int,
    settings: FederationSettings,
    dimension: int,
    next_nodes: list[int] | None = None,
) -> RoundAggregate:
    """`secagg = "none"`: each node sends its contribution vector as is; the server sums.
    (`next_nodes` is unused: there is nothing to prepare.)"""
    stage = exchange(
        grid, dict.fromkeys(nodes, content), "train", str(round_number), settings.timeout
    )
    contributors: list[int] = []
    dropped = dict(stage.dropped)
    transcript: list[dict[str, Any]] = []
    individual: dict[int, np.ndarray] = {}
    for node, reply in sorted(stage.replies.items()):
        vector = np.asarray(
            reply.content.array_records[R.CONTRIBUTION_RECORD][R.VECTOR].numpy(), dtype=np.float64
        )
        if vector.shape != (dimension,) or not np.all(np.isfinite(vector)):
            dropped[node] = f"contribution of shape {vector.shape} (expected ({dimension},))"
            continue
        contributors.append(node)
        individual[node] = vector
        payload = vector.tobytes()
        transcript.append(
            {
                "round": round_number,
                "stage": "plain_update",
                "sender": node,
                "receiver": 0,
                "message_type": "PlainContribution",
                "bytes": len(payload),
                "sha256": _digest(payload),
            }
        )
    total = content_ordered_sum(list(individual.values()), dimension)
    return RoundAggregate(total, contributors, dropped, {}, transcript, individual=individual)


def content_ordered_sum(vectors: list[np.ndarray], dimension: int) -> np.ndarray:
    """The sum of `vectors`, added in an order their contents set, not their senders' ids.

    Float addition is not associative, and simulated nodes get random ids: summed in node order,
    the same round's sum differed in its last bits from run to run."""
    total = np.zeros(dimension)
    for vector in sorted(vectors, key=lambda v: v.tobytes()):
        total += vector
    return total


def sample_nodes(nodes: list[int], run: FederationRun, round_number: int) -> list[int]:
    """A seeded sample per round, so a resumed run samples exactly as an uninterrupted one.

    The draw picks positions in `nodes`, not the ids themselves: node ids are unsigned 64-bit,
    and numpy turns a list holding ids on both sides of 2**63 into float64, which rounds them to
    ids no node has. (`Generator.choice` on a list draws these same positions, so a sample
    between ids below 2**63 is unchanged.)"""
    federation = run.federation
    wanted = max(federation.min_clients, int(np.ceil(federation.fraction * len(nodes))))
    if wanted >= len(nodes):
        return sorted(nodes)
    rng = generator(Stream.NODE_SAMPLING, run.seed, round_number)
    return sorted(nodes[int(i)] for i in rng.choice(len(nodes), size=wanted, replace=False))


def _aggregator(run: FederationRun) -> Aggregate:
    if run.secagg == "none":
        return aggregate_in_the_clear
    malicious = run.federation.secagg_mode == "malicious"  # SPEC §10: needs the firms' manifest
    manifest = read_manifest(run.identity_manifest) if malicious else None
    return SecureAggregator(pipeline=run.federation.pipeline, manifest=manifest)


def _check_same_run(saved: dict[str, Any], run: FederationRun) -> None:
    """Resuming with other settings would mix two experiments in one model: refuse it."""
    current = run.to_run_config()
    changed = sorted(
        key
        for key in set(saved) | set(current)
        if key not in ("resume", "timeout") and saved.get(key) != current.get(key)
    )
    if changed:
        details = ", ".join(f"{k}: {saved.get(k)!r} -> {current.get(k)!r}" for k in changed)
        raise ValueError(f"cannot resume: the checkpoint was made with other settings ({details})")


def run_federation(
    grid: Grid, run: FederationRun, stop_after: int | None = None
) -> FederationResult:
    """Run (or resume) the federation; `stop_after` ends early after that round (crash tests)."""
    if run.secagg == "flower":
        flower = run_flower_secaggplus(grid, run)
        if run.run_dir:
            write_result(Path(run.run_dir), flower, run)
        return flower
    if run.secagg == "none":
        warn_insecure()
    if run.dp_epsilon > 0 and run.federation.reproducible:
        warn_reproducible_noise()
    federation = run.federation
    spec = run.model_spec()
    run_dir = Path(run.run_dir) if run.run_dir else None
    checkpoints = run_dir / "checkpoints" if run_dir else None
    weights = spec.initial_weights()
    optimiser = server_optimiser(federation)
    history: list[dict[str, Any]] = []
    accountant = dp_budget(run)
    first_round = 1
    if federation.resume and checkpoints is not None:
        checkpoint = latest_checkpoint(checkpoints)
        if checkpoint is not None:
            _check_same_run(checkpoint.settings, run)
            weights, history, accountant = (
                checkpoint.weights,
                checkpoint.history,
                checkpoint.accountant,
            )
            optimiser.load_state(checkpoint.optimiser_state)
            first_round = checkpoint.round_number + 1
    elif checkpoints is not None and (earlier := clear_checkpoints(checkpoints)):
        # A new run into a used run-dir: a later resume must continue this run, not that one.
        Console(stderr=True, soft_wrap=True).print(
            f"[yellow]{run_dir} held an earlier run (checkpoints to round {earlier}); "
            "resume = false: they are removed and this run starts clean[/]"
        )
    if run_dir is not None:
        run_dir.mkdir(parents=True, exist_ok=True)
        if first_round == 1:  # a fresh run starts a fresh transcript, and no stale result
            (run_dir / TRANSCRIPT_FILE).write_text("")
            (run_dir / RECEIVED_FILE).write_text("")
            (run_dir / RESULT_FILE).unlink(missing_ok=True)
            (run_dir / WEIGHTS_FILE).unlink(missing_ok=True)
    aggregate = _aggregator(run)
    dimension = weights.size + len(CONTRIBUTION_TAIL)
    available: list[int] = []
    stopped: str | None = None
    for round_number in range(first_round, federation.rounds + 1):
        try:
            available = wait_for_nodes(grid, federation.min_clients, federation.timeout)
        except TooFewNodes as shortage:  # stop cleanly: the checkpoints stay for a resume
            stopped = stopped_line(round_number - 1, federation.rounds, shortage, run_dir)
            Console(stderr=True, soft_wrap=True).print(f"[bold yellow]{stopped}[/]")
            break
        nodes = sample_nodes(available, run, round_number)
        next_nodes = (
            sample_nodes(available, run, round_number + 1)
            if round_number < federation.rounds
            else available
            if run.evaluate
            else None  # the evaluation-only round's cohort
        )
        # Round 1 carries the agreed initial weights: nothing worth scoring.
        config = run.round_config(spec, round_number, evaluate=run.evaluate and round_number > 1)
        content = RecordDict(
            {
                R.GLOBAL_RECORD: ArrayRecord({R.WEIGHTS: Array(weights)}),
                R.CONFIG_RECORD: config.to_record(),
            }
        )
        events: list[dict[str, Any]] = []
        try:
            result = aggregate(
                grid, nodes, content, round_number, federation, dimension, next_nodes
            )
            if not result.contributors:
                raise RoundAborted(
                    ProtocolAbort(Stage.MASKED_INPUT, "no firm contributed to the round"),
                    result.dropped,
                    result.transcript,
                )
        except ProtocolAbort as abort:
            # Too few firms left: nothing was revealed, the global model stays as it was.
            Console(stderr=True, soft_wrap=True).print(
                f"[bold yellow]round {round_number} aborted:[/] {abort}"
            )
            lost = abort.dropped if isinstance(abort, RoundAborted) else {}
            history.append(
                {
                    "round": round_number,
                    "invited": len(nodes),
                    "aborted": str(abort),
                    "stage": abort.stage.value,
                    "dropped": {str(k): v for k, v in lost.items()},
                }
            )
            seen = abort.transcript if isinstance(abort, RoundAborted) else []
            result = RoundAggregate(np.zeros(dimension), [], lost, transcript=seen)
            events = [*drop_events(round_number, lost), abort_event(round_number, abort)]
        else:
            events = drop_events(round_number, result.dropped)
            update = read_contribution_sum(result.total, federation.weight_scale)
            weights = optimiser.step(weights, update.mean_update)
            history.append(
                {
                    "round": round_number,
                    "invited": len(nodes),
                    "contributors": len(result.contributors),
                    "contributor_nodes": sorted(result.contributors),
                    "dropped": {str(k): v for k, v in result.dropped.items()},
                    "train_loss": update.mean_train_loss,
                    "train_brier": update.train_brier,
                    "train_examples": update.total_examples,
                    **result.info,
                }
            )
            record_evaluation(history, round_number - 1, result, federation.weight_scale)
        if (lowered := threshold_lowered_line(history)) is not None:
            Console(stderr=True, soft_wrap=True).print(f"[bold yellow]{lowered}[/]")
        if run_dir is not None and checkpoints is not None:
            with open(run_dir / TRANSCRIPT_FILE, "a") as handle:
                handle.writelines(
                    json.dumps(e, sort_keys=True) + "\n" for e in [*result.transcript, *events]
                )
            if result.contributors:
                with open(run_dir / RECEIVED_FILE, "a") as handle:
                    handle.write(json.dumps(received_line(round_number, result)) + "\n")
            save_checkpoint(
                checkpoints,
                Checkpoint(
                    round_number,
                    weights,
                    optimiser.state(),
                    history,
                    accountant,
                    run.to_run_config(),
                ),
            )
        if stop_after is not None and round_number >= stop_after:
            break
    if stopped is None and run.evaluate and history and history[-1]["round"] == federation.rounds:
        nodes = available
        if not nodes:
            try:
                nodes = wait_for_nodes(grid, federation.min_clients, federation.timeout)
            except TooFewNodes as shortage:  # every round is in; only the last score is missing
                stopped = stopped_line(federation.rounds, federation.rounds, shortage, run_dir)
                Console(stderr=True, soft_wrap=True).print(f"[bold yellow]{stopped}[/]")
        if nodes:
            evaluate_final_model(grid, run, spec, weights, aggregate, nodes, history)
    outcome = FederationResult(weights, spec, history, accountant, first_round - 1, stopped)
    if run_dir is not None:
        write_result(run_dir, outcome, run)
    return outcome


def write_result(run_dir: Path, result: FederationResult, run: FederationRun) -> None:
    np.save(run_dir / WEIGHTS_FILE, result.weights)
    summary = {
        "settings": run.to_run_config(),
        "model": {
            "kind": result.spec.kind,
            "n_features": result.spec.n_features,
            "hidden": result.spec.hidden,
            "seed": result.spec.seed,
        },
        "history": result.history,
        "dp": result.accountant,
        "resumed_from_round": result.resumed_from,
    }
    if result.stopped is not None:
        summary["stopped"] = result.stopped
    (run_dir / RESULT_FILE).write_text(json.dumps(summary, indent=2, sort_keys=True) + "\n")


def print_summary(result: FederationResult, file: Any = sys.stderr) -> None:
    """One line per round (however long: `flwr log` would show rich's wrapping at 80 columns):
    who took part, the training loss, the held-out loss and Brier; aborted rounds with who
    dropped where."""
    console = Console(file=file, soft_wrap=True)
    for record in result.history:
        evaluation = record.get("evaluation", {})
        if "aborted" in record:
            dropped = "; ".join(f"node {n}: {why}" for n, why in record.get("dropped", {}).items())
            console.print(
                f"round {record['round']}: aborted ({record['aborted']})"
                + (f"; dropped {dropped}" if dropped else "")
            )
            continue
        console.print(
            f"round {record['round']}: {record.get('contributors', '?')}/{record['invited']} "
            f"firms, train loss {record.get('train_loss', float('nan')):.4f}, "
            f"held-out loss {evaluation.get('loss', float('nan')):.4f}, "
            f"held-out Brier {evaluation.get('brier', float('nan')):.4f}"
        )
