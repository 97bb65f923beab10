"""Rounds, checkpoints, resume and the insecure-mode warning, on the in-process grid."""

from __future__ import annotations

import io
import json
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from flwr.app import Message, UserConfigValue
from hypothesis import given
from hypothesis import strategies as st

from clients import records as R
from clients.accounting import read_ledgers
from clients.app import build_client_app
from protocol import Transcript
from server.checkpoint import latest_checkpoint
from server.federation import (
    InsecureAggregationWarning,
    ReproducibleNoiseWarning,
    print_summary,
    run_federation,
)
from server.inprocess import InProcessGrid
from server.rounds import RESULT_FILE, TRANSCRIPT_FILE
from server.settings import RUN_CONFIG_KEYS, FederationRun

Tweak = Callable[..., FederationRun]
"""The `tweak` fixture (conftest.py): a run with some run-config keys changed."""


def test_plain_mode_warns_loudly(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare
    plain = tweak(settings, secagg="none", rounds=1)
    # Execute / Assert
    with pytest.warns(InsecureAggregationWarning, match="IN THE CLEAR"):
        run_federation(make_grid(), plain)


def test_resume_after_a_crash_loses_no_completed_round(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tmp_path: Path,
    tweak: Tweak,
) -> None:
    # Prepare: an uninterrupted 3-round run, and a run that dies after round 2
    base = tweak(settings, secagg="none", rounds=3, optimiser="fedadam", server_learning_rate=0.05)
    reference = run_federation(make_grid(), tweak(base, run_dir=str(tmp_path / "ref")))
    crashed = tweak(base, run_dir=str(tmp_path / "crash"))
    run_federation(make_grid(), crashed, stop_after=2)
    assert latest_checkpoint(tmp_path / "crash" / "checkpoints").round_number == 2  # type: ignore[union-attr]
    # Execute: a fresh server (fresh nodes) resumes
    resumed = run_federation(make_grid(), tweak(crashed, resume=True))
    # Assert
    assert resumed.resumed_from == 2
    assert [r["round"] for r in resumed.history] == [1, 2, 3]
    np.testing.assert_allclose(resumed.weights, reference.weights, rtol=0, atol=1e-12)
    written = json.loads((tmp_path / "crash" / RESULT_FILE).read_text())
    assert written["resumed_from_round"] == 2


def test_a_new_run_into_a_used_run_dir_starts_clean(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare: an earlier run left checkpoints of rounds 1 and 2
    plain = tweak(settings, secagg="none", rounds=3)
    run_federation(make_grid(), plain, stop_after=2)
    checkpoints = Path(plain.run_dir) / "checkpoints"
    # Execute: a new run (resume = false) into the same directory dies after round 1, then is
    # resumed
    run_federation(make_grid(), plain, stop_after=1)
    left = sorted(p.name for p in checkpoints.iterdir())
    resumed = run_federation(make_grid(), tweak(plain, resume=True))
    # Assert: the resume continues the new run (after its round 1), not the earlier one
    assert left == ["round-00001.json", "round-00001.npz"]
    assert resumed.resumed_from == 1
    assert "held an earlier run (checkpoints to round 2)" in " ".join(
        capsys.readouterr().err.split()
    )


def test_every_real_run_writes_its_transcript(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare
    secure = tweak(settings, secagg="ours", rounds=2)
    # Execute
    run_federation(make_grid(), secure)
    # Assert: four stages per round, both directions, every line a transcript entry
    lines = (Path(secure.run_dir) / TRANSCRIPT_FILE).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    assert {e["round"] for e in entries} == {1, 2}
    assert len(entries) == 2 * 4 * 2 * 4  # rounds × stages × directions × firms
    assert all(len(e["sha256"]) == 64 for e in entries)
    assert len(Transcript.from_jsonl("\n".join(lines)).entries) == len(entries)  # protocol reads it


def test_unknown_run_config_key_is_named() -> None:
    # Execute / Assert
    with pytest.raises(ValueError, match="unknown run-config keys \\['round'\\]"):
        FederationRun.from_run_config({"round": 3})


@pytest.mark.parametrize("mode", ["ours", "flower"])
def test_secure_modes_reach_the_plain_fedavg_model(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    mode: str,
    tweak: Tweak,
) -> None:
    # Prepare
    plain = run_federation(make_grid(), tweak(settings, secagg="none", run_dir=""))
    # Execute
    secure = run_federation(make_grid(), tweak(settings, secagg=mode))  # type: ignore[arg-type]
    # Assert: two rounds of quantisation noise, each well below 1e-3 per weight
    np.testing.assert_allclose(secure.weights, plain.weights, rtol=0, atol=1e-3)
    assert not np.allclose(plain.weights, settings.model_spec().initial_weights())
    transcript = (Path(settings.run_dir) / TRANSCRIPT_FILE).read_text().splitlines()
    stages = {json.loads(line)["stage"] for line in transcript}
    assert {"unmask", "secaggplus.unmask"} & stages  # ours or Flower's last stage is recorded
    assert (Path(settings.run_dir) / RESULT_FILE).is_file()


def test_resume_with_other_settings_is_refused(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare
    first = tweak(settings, secagg="none", rounds=2)
    run_federation(make_grid(), first, stop_after=1)
    # Execute / Assert
    with pytest.raises(ValueError, match=r"learning-rate: 0\.01 -> 0\.5"):
        run_federation(make_grid(), tweak(first, resume=True, learning_rate=0.5))


def test_an_aborted_round_leaves_the_model_unchanged_and_the_run_goes_on(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: in round 1 only one firm survives key sharing (t = 3); round 2 is healthy
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        stage = str(request.content.config_records.get(R.SECAGG_RECORD, {}).get(R.STAGE))
        silent = request.metadata.group_id == "1" and "masked_input" in stage and node != 101
        return None if silent else reply

    secure = tweak(settings, secagg="ours", rounds=2, threshold=3)
    # Execute
    result = run_federation(make_grid(intercept), secure)
    # Assert
    first, second = result.history
    assert "fewer than t" in first["aborted"]
    assert second["contributors"] == 4
    assert latest_checkpoint(Path(secure.run_dir) / "checkpoints").round_number == 2  # type: ignore[union-attr]


def test_an_aborted_round_is_in_the_transcript_with_who_dropped_at_which_stage_and_why(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: three of four firms fall silent at round 1's masked input (t = 3)
    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        stage = str(request.content.config_records.get(R.SECAGG_RECORD, {}).get(R.STAGE))
        silent = request.metadata.group_id == "1" and "masked_input" in stage and node != 101
        return None if silent else reply

    secure = tweak(settings, secagg="ours", rounds=1, threshold=3, pipeline=False)
    # Execute
    result = run_federation(make_grid(intercept), secure)
    # Assert: the history and the transcript both name the firms, the stage and the reason
    (record,) = result.history
    timeout = f"{secure.federation.timeout:g}"
    assert record["stage"] == "masked_input"
    assert record["dropped"] == dict.fromkeys(
        ["102", "103", "104"], f"masked_input: no reply within {timeout} s"
    )
    lines = (Path(secure.run_dir) / TRANSCRIPT_FILE).read_text().splitlines()
    entries = [json.loads(line) for line in lines]
    events = [e for e in entries if "event" in e]
    assert [(e["event"], e.get("node")) for e in events] == [
        ("drop", 102),
        ("drop", 103),
        ("drop", 104),
        ("abort", None),
    ]
    assert {e["stage"] for e in events} == {"masked_input"}
    assert events[0]["reason"] == f"no reply within {timeout} s"
    assert "1 clients remain, fewer than t = 3" in events[-1]["reason"]
    messages = [line for line, e in zip(lines, entries, strict=True) if "event" not in e]
    assert {json.loads(m)["stage"] for m in messages} == {
        "advertise_keys",
        "share_keys",
        "masked_input",
    }  # what the server saw before the abort is kept
    assert Transcript.from_jsonl("\n".join(messages)).entries  # the protocol reads the messages
    log = io.StringIO()
    print_summary(result, file=log)  # one line, however long, with who dropped where
    (line,) = log.getvalue().splitlines()
    assert f"dropped node 102: masked_input: no reply within {timeout} s; node 103" in line


def _leaving_after_round_1(node_leaving: int) -> tuple[Callable[..., InProcessGrid], list[int]]:
    """An intercept that disconnects `node_leaving` once it has sent round 1's last reply (its
    SuperNode is gone: the grid no longer lists it)."""
    grids: list[InProcessGrid] = []
    left: list[int] = []

    def intercept(node: int, request: Message, reply: Message) -> Message | None:
        stage = str(request.content.config_records.get(R.SECAGG_RECORD, {}).get(R.STAGE))
        last = request.metadata.message_type == "train" or "unmask" in stage
        if node == node_leaving and request.metadata.group_id == "1" and last:
            grids[0].contexts.pop(node)
            left.append(node)
        return reply

    def attach(grid: InProcessGrid) -> InProcessGrid:
        grids.append(grid)
        return grid

    return lambda make: attach(make(intercept)), left  # type: ignore[no-any-return]


def test_fewer_than_min_clients_stops_cleanly_and_the_run_resumes_later(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare: min-clients = all four firms; one leaves after round 1
    base = tweak(settings, secagg="none", rounds=3, min_clients=4, timeout=0.3, evaluate=True)
    reference = run_federation(make_grid(), tweak(base, run_dir=""))
    leaving, left = _leaving_after_round_1(104)
    # Execute
    stopped = run_federation(leaving(make_grid), base)
    # Assert: no exception; one line saying what happened and how to resume; round 1 kept
    assert left == [104]
    assert [r["round"] for r in stopped.history] == [1]
    assert stopped.stopped is not None
    for words in ("stopped after round 1 of 3", "only 3 firm(s)", "min-clients = 4", "resume=true"):
        assert words in stopped.stopped
    assert stopped.stopped in " ".join(capsys.readouterr().err.split())
    written = json.loads((Path(base.run_dir) / RESULT_FILE).read_text())
    assert written["stopped"] == stopped.stopped
    assert latest_checkpoint(Path(base.run_dir) / "checkpoints").round_number == 1  # type: ignore[union-attr]
    # Execute: the firm is back; the same run config with resume = true
    resumed = run_federation(make_grid(), tweak(base, resume=True))
    # Assert
    assert resumed.stopped is None and resumed.resumed_from == 1
    np.testing.assert_array_equal(resumed.weights, reference.weights)
    assert resumed.history == reference.history  # evaluation included


def test_a_lower_t_because_the_group_shrank_is_said(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Prepare: four firms (t = 3), then three (t = 2)
    leaving, _ = _leaving_after_round_1(104)
    secure = tweak(settings, secagg="ours", rounds=2, min_clients=2, pipeline=False)
    # Execute
    result = run_federation(leaving(make_grid), secure)
    # Assert
    assert [r["secagg"]["threshold"] for r in result.history] == [3, 2]
    err = " ".join(capsys.readouterr().err.split())
    assert "round 2: t lowered from 3 to 2: the group shrank from 4 to 3 firms" in err


def test_dp_firms_keep_their_accounting_and_the_server_records_the_public_budget(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
    tmp_path: Path,
) -> None:
    # Prepare: every reply the server receives
    replies: list[Message] = []

    def intercept(node: int, request: Message, reply: Message) -> Message:
        replies.append(reply)
        return reply

    private = tweak(settings, secagg="ours", rounds=2, dp_epsilon=2.0, batch_size=64)
    ledgers = tmp_path / "ledgers"
    # Execute
    result = run_federation(make_grid(intercept, dp_ledger=str(ledgers)), private)
    # Assert: each firm's ledger, each at most the target after the last round
    spent = read_ledgers(ledgers)
    assert sorted(spent) == [f"firm_{i}" for i in range(4)]
    for entry in spent.values():
        assert entry.round == 2
        assert 1.0 < entry.epsilon <= 2.0 * 1.01
    # ... calibrated to each firm's own size: the smallest firm (208 rows) needs the most noise
    multipliers = {firm: e.noise_multiplier for firm, e in spent.items()}
    assert max(multipliers, key=multipliers.__getitem__) == "firm_2"
    assert multipliers["firm_2"] > multipliers["firm_1"]  # 283 rows, the largest
    # ... none of which reached the server: it holds the public budget only
    assert result.accountant == {"target_epsilon": 2.0, "delta": 1e-5, "rounds": 2}
    assert all(not reply.content.metric_records for reply in replies)
    saved = json.loads((Path(private.run_dir) / RESULT_FILE).read_text())
    assert saved["dp"] == result.accountant


def test_flwr_run_config_lists_every_setting_with_the_models_default() -> None:
    # Prepare: `flwr run --run-config` refuses keys missing from [tool.flwr.app.config]
    import tomllib

    pyproject = Path(__file__).parents[2] / "pyproject.toml"
    listed = tomllib.loads(pyproject.read_text())["tool"]["flwr"]["app"]["config"]
    # Execute
    from_pyproject = FederationRun.from_run_config(listed).to_run_config()
    defaults = FederationRun().to_run_config()
    # Assert: the same names, and the same defaults (with the same types) except the two
    # paths, which `flwr run .` needs somewhere to point by default
    assert set(listed) == set(RUN_CONFIG_KEYS) == set(defaults)
    paths = {"world-dir": "runs/world", "run-dir": "runs/flwr"}
    assert {k: v for k, v in listed.items() if k in paths} == paths
    for key, default in defaults.items():
        if key not in paths:
            assert listed[key] == default, key
            assert type(listed[key]) is type(default), key
            assert from_pyproject[key] == default, key


def test_a_bad_run_config_value_is_named_by_its_key() -> None:
    # Execute / Assert
    with pytest.raises(
        ValueError, match=r"invalid run config:\n  scale-bits: .* less than or equal to 24"
    ):
        FederationRun.from_run_config({"scale-bits": 30})
    with pytest.raises(ValueError, match=r"batch-size: Input should be greater than 0 \(got 0\)"):
        FederationRun.from_run_config({"batch-size": 0})


def test_the_run_config_round_trips_every_setting() -> None:
    # Prepare: a value off its default in every section
    changed = {
        "rounds": 7,
        "adam-beta2": 0.95,
        "learning-rate": 0.5,
        "model-kind": "mlp",
        "seed": 3,
    }
    # Execute
    run = FederationRun.from_run_config(changed)
    # Assert
    assert run.federation.rounds == 7 and run.federation.adam_beta2 == 0.95
    assert run.training.learning_rate == 0.5 and run.model.kind == "mlp"
    assert FederationRun.from_run_config(run.to_run_config()) == run


@pytest.mark.parametrize("mode", ["ours", "none"])
def test_evaluation_rides_in_the_sums_and_leaves_the_model_bit_for_bit(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    mode: str,
    tweak: Tweak,
) -> None:
    # Prepare: held-out rows (firms evaluate on their training rows without a holdout file)
    sent: list[str] = []

    def intercept(node: int, request: Message, reply: Message) -> Message:
        sent.append(request.metadata.message_type)
        return reply

    quiet = tweak(settings, secagg=mode, rounds=3, run_dir="")
    scored = tweak(quiet, evaluate=True)
    # Execute
    without = run_federation(make_grid(), quiet)
    with_evaluation = run_federation(make_grid(intercept), scored)
    reference = run_federation(make_grid(), tweak(scored, secagg="none"))
    # Assert: the same model bit for bit, a figure for every round, no clear evaluate message
    assert np.array_equal(without.weights, with_evaluation.weights)
    assert "evaluate" not in sent
    assert sent.count("train.secagg" if mode == "ours" else "train") > 0
    for secure, plain in zip(with_evaluation.history, reference.history, strict=True):
        figures, exact = secure["evaluation"], plain["evaluation"]
        assert figures["firms"] == 4 and figures["n"] == exact["n"] > 0
        assert figures["loss"] == pytest.approx(exact["loss"], abs=1e-3)
        assert figures["brier"] == pytest.approx(exact["brier"], abs=1e-3)
        assert "accuracy" not in figures
    losses = [r["evaluation"]["loss"] for r in with_evaluation.history]
    assert losses[-1] < losses[0]  # the figures score successive models


def test_two_dp_runs_draw_different_noise_unless_reproducible(
    make_grid: Callable[..., InProcessGrid],
    settings: FederationRun,
    tweak: Tweak,
) -> None:
    # Prepare: the same DP config twice, then twice with reproducible noise (which the firms
    # must accept in their policy)
    private = tweak(settings, secagg="ours", rounds=1, dp_epsilon=2.0, batch_size=64, run_dir="")
    reproducible = tweak(private, reproducible=True)
    consenting = {"policy_allow_reproducible_noise": True}
    # Execute
    fresh = [run_federation(make_grid(), private).weights for _ in range(2)]
    with pytest.warns(ReproducibleNoiseWarning, match="ALL KNOWN TO THE SERVER"):
        seeded = [run_federation(make_grid(**consenting), reproducible).weights for _ in range(2)]
    # Assert
    assert not np.array_equal(fresh[0], fresh[1])
    assert np.array_equal(seeded[0], seeded[1])


def _grid_with_policy(world_dir: Path, policy: dict[str, UserConfigValue]) -> InProcessGrid:
    """Four firms; the first (node 101) with `policy` in its node config."""
    configs: list[dict[str, UserConfigValue]] = [{"partition-id": i} for i in range(4)]
    configs[0].update(policy)
    return InProcessGrid(build_client_app({"world-dir": str(world_dir)}), configs)


def test_a_firm_refuses_a_weaker_proposed_config_and_drops_out_with_the_reason(
    world_dir: Path, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare: firm_0 wants at least 4/5 of the share holders to rebuild a secret
    strict = {"policy-min-threshold-fraction": 0.8}
    weak = tweak(settings, secagg="ours", rounds=2, threshold=3)  # 3 of 4 holders
    strong = tweak(weak, threshold=4, run_dir="")
    # Execute
    refused = run_federation(_grid_with_policy(world_dir, strict), weak)
    accepted = run_federation(_grid_with_policy(world_dir, strict), strong)
    # Assert: dropped from every round, with its reason; the others go on without it
    for record in refused.history:
        assert record["contributors"] == 3
        assert "refuses round" in record["dropped"]["101"]
        assert (
            "proposed threshold t = 3 of k + 1 = 4 holders (0.750), but this firm's policy has "
            "policy-min-threshold-fraction = 0.8" in record["dropped"]["101"]
        )
    assert [r["contributors"] for r in accepted.history] == [4, 4]


def test_a_secure_only_firm_sends_nothing_in_the_clear(
    world_dir: Path, settings: FederationRun, tweak: Tweak
) -> None:
    # Prepare
    plain = tweak(settings, secagg="none", rounds=1, evaluate=True)
    # Execute
    result = run_federation(_grid_with_policy(world_dir, {"policy-secure-only": True}), plain)
    # Assert
    (record,) = result.history
    assert record["contributors"] == 3
    assert (
        "policy (policy-secure-only) answers our secure aggregation only"
        in (record["dropped"]["101"])
    )


@given(
    st.lists(st.lists(st.floats(-1e6, 1e6), min_size=5, max_size=5), min_size=1, max_size=8),
    st.randoms(use_true_random=False),
)
def test_a_plain_round_sums_to_the_same_bits_in_any_arrival_order(
    rows: list[list[float]], shuffle: random.Random
) -> None:
    from server.federation import content_ordered_sum

    # Prepare: the same vectors in another order (as random node ids would order them)
    vectors = [np.array(row) for row in rows]
    reordered = vectors.copy()
    shuffle.shuffle(reordered)
    # Execute / Assert: the same bits, and the sum
    total = content_ordered_sum(vectors, 5)
    assert content_ordered_sum(reordered, 5).tobytes() == total.tobytes()
    assert np.allclose(total, np.sum(vectors, axis=0), rtol=1e-9, atol=1e-3)
