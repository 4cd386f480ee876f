"""Federated LoRA fine-tuning end to end on Flower's simulation engine with the tiny local model.

One small simulation serves every assert (a module fixture; pytest-xdist runs a module on one worker): 6 clients, one deliberately failing, one round,
then resumed in the same directory for a second round (each simulation pays Ray's start and one torch import
and model load per client actor, so the resume test shares it instead of adding a third round of its own).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import pytest
from hydra import compose, initialize_config_dir
from hydra.core.global_hydra import GlobalHydra

from federation.history import load_history
from qualbench.results import SCHEMA_VERSION, RoundRecord
from federation.run import run_federated
from qualbench.config import register_configs
from qualbench.domains import canonical_domain
from qualbench.records import QUESTION_TYPES

ROOT = Path(__file__).resolve().parents[1]
FAIL = 5  # client id that raises in training
BASE = ["experiment=federated", "task=federated", "federation.local_steps=4", "federation.plots=true"]


def make_cfg(overrides: list[str]):
    register_configs()
    GlobalHydra.instance().clear()
    with initialize_config_dir(version_base="1.3", config_dir=str(ROOT / "conf")):
        return compose("config", overrides=BASE + overrides)


@pytest.fixture(scope="module")
def fed_runs(tmp_path_factory):
    """(run dir, result, history after round 1, history after resuming to round 2).

    Round 1 runs on two client actors (Ray with 2 CPUs, the 2-core default), the resume on one (1 CPU: as if
    resumed on a smaller machine; one torch import and model load fewer)."""
    run_dir = tmp_path_factory.mktemp("fed")
    run_federated(make_cfg(["federation.num_rounds=1", f"federation.fail_clients=[{FAIL}]",
                            "federation.ray_num_cpus=2"]), run_dir)
    first = load_history(run_dir)
    result = run_federated(make_cfg(["federation.num_rounds=2", f"federation.fail_clients=[{FAIL}]",
                                     "federation.ray_num_cpus=1"]), run_dir)
    return run_dir, result, first, load_history(run_dir)


@pytest.fixture(scope="module")
def fed_run(fed_runs):
    """The two-round run: (run dir, result, history)."""
    run_dir, result, _, hist = fed_runs
    return run_dir, result, hist


def test_every_round_recorded_with_per_domain_and_type_metrics(fed_run):
    run_dir, result, hist = fed_run
    assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
    clients = hist["clients"]
    assert len(clients) == 6
    for r in hist["rounds"]:
        # every client's test split evaluated; the scorer's canonical names (client names are domain slugs)
        assert set(r["test"]["by_domain"]) == {canonical_domain(c) for c in clients.values()}
        assert set(r["test"]["by_type"]) == set(QUESTION_TYPES)
        assert r["test"]["n"] == sum(d["n"] for d in r["test"]["by_domain"].values())
        assert 0.0 <= r["test"]["accuracy"] <= 1.0 and r["val"]["n"] > 0
        assert r["wall_s"] > 0
        # round 0 sends no weights: the clients build the initial adapter and send it up (the server loads no model)
        assert (r["bytes_down"] > 0) if r["round"] else (r["bytes_down"] == 0 and r["bytes_up"] > 0)
    assert hist["privacy"] == {"enabled": False}
    summary = json.loads((run_dir / "summary.json").read_text(encoding="utf-8"))
    assert summary["results"]["federated"]["test_accuracy"] == hist["rounds"][-1]["test"]["accuracy"]
    assert summary["task"] == "federated_summary" and summary["schema_version"] == SCHEMA_VERSION
    assert [RoundRecord.from_dict(r).to_dict() for r in hist["rounds"]] == hist["rounds"]  # the stated shape
    assert result["objective"] == hist["rounds"][-1]["val"]["accuracy"]  # validation, never test
    assert (run_dir / "learning_curve.png").stat().st_size > 10_000
    assert (run_dir / "partition_summary.json").exists() and (run_dir / "partition_summary.csv").exists()


def test_training_loss_falls(fed_run):
    _, _, hist = fed_run
    r1, r2 = hist["rounds"][1], hist["rounds"][2]
    for cid, t in r1["train"].items():
        assert t["loss_last"] < t["loss_first"]  # within a round
        assert r2["train"][cid]["loss_mean"] < t["loss_mean"]  # across rounds, from the aggregated adapter
    assert r2["test"]["loss"] < hist["rounds"][0]["test"]["loss"]  # the global adapter helps held-out items


def test_failing_client_is_recorded_and_the_run_continues(fed_run):
    _, _, hist = fed_run
    for r in hist["rounds"][1:]:
        assert str(FAIL) not in r["train"] and len(r["train"]) == 5
        fails = [f for f in r["failures"] if f["phase"] == "train"]
        assert [f["client"] for f in fails] == [str(FAIL)] and "deliberate failure" in fails[0]["reason"]
        assert str(FAIL) in r["by_client"]  # it still evaluates the global adapter


def test_only_the_adapter_travels(fed_run):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    run_dir, _, hist = fed_run
    base = AutoModelForCausalLM.from_pretrained(run_dir / "base_model")
    n_base = sum(p.numel() for p in base.parameters())
    model = PeftModel.from_pretrained(base, run_dir / "global_adapter")  # the saved peft layout loads
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    n_lora = sum(p.numel() for p in lora)
    assert hist["params"] == {"adapter": n_lora, "base_model": n_base, "adapter_bytes": 4 * n_lora,
                              "base_model_bytes": 4 * n_base}
    r = hist["rounds"][1]
    per_client_up = r["bytes_up"] / len(r["train"])
    # float32 LoRA weights plus per-array metadata (key, dtype, shape): nothing of the base model
    assert 4 * n_lora <= per_client_up <= 4 * n_lora + 256 * len(lora)
    expected_factor = n_base / n_lora
    assert expected_factor > 5
    assert (4 * n_base) / per_client_up == pytest.approx(expected_factor, rel=0.1)


def test_resume_continues_from_the_last_round(fed_runs):
    _, _, first, hist = fed_runs
    assert [r["round"] for r in first["rounds"]] == [0, 1] and first["resumed_at"] == []
    assert [r["round"] for r in hist["rounds"]] == [0, 1, 2]
    assert hist["resumed_at"] == [1]
    assert hist["rounds"][:2] == first["rounds"]  # earlier rounds untouched, not re-run
    assert hist["rounds"][2]["train_loss"] < first["rounds"][1]["train_loss"]  # from the saved global adapter


def test_too_many_failures_stop_with_a_clear_error():
    from federation.server_app import FederationFailed, _check_failures
    from federation.spec import RunSpec

    cfg = make_cfg(["federation.max_failure_fraction=0.3"])
    from federation.config import FederationConfig
    from federation.spec import to_dataclass
    from qualbench.prompts.render import PromptConfig

    spec = RunSpec("d", "b", "c", ["a"] * 6, to_dataclass(FederationConfig, cfg.federation), PromptConfig())
    fails = [{"client": "1", "reason": "boom"}, {"client": "2", "reason": "timeout"}]
    _check_failures(spec, "train", 10, ["ok"] * 8, fails, 1)  # 20% failed: fine
    with pytest.raises(FederationFailed, match=r"round 4 train: 2/6 clients failed .*client 1: boom"):
        _check_failures(spec, "train", 6, ["ok"] * 4, fails, 4)


def test_replies_are_aggregated_in_client_order_whatever_order_they_arrive_in(monkeypatch):
    from flwr.app import Message, MetricRecord, RecordDict
    from flwr.app.error import Error
    from flwr.supercore.task_identity import TaskIdentity

    from federation.server_app import _collect

    for k, v in {"_task_id": 1, "_run_id": 7, "_node_id": 0}.items():  # what run_simulation sets before messages
        monkeypatch.setattr(TaskIdentity, k, v)
    cid_of_node = {11: 2, 12: 0, 13: 1, 14: 3, 15: 4}
    sent = [Message(RecordDict(), message_type="train", dst_node_id=n) for n in cid_of_node]
    reply = {m.metadata.dst_node_id: Message(RecordDict({"metrics": MetricRecord({"client-id": cid_of_node[n]})}),
                                             reply_to=m) for m, n in zip(sent, cid_of_node)}
    known = {12: 0}
    for order in ([11, 13, 12], [13, 12, 11], [12, 11, 13]):
        replies = [reply[n] for n in order] + [Message(Error(code=0, reason="boom"), reply_to=sent[4])]
        ok, failures = _collect(sent, replies, "train", dict(known))
        assert [int(m.content["metrics"]["client-id"]) for m in ok] == [0, 1, 2]
        assert [(f["client"], f["reason"][:7]) for f in failures] == [("node-14", "timeout"), ("node-15", "boom")]


def test_baselines_share_the_history_format(tmp_path):
    cfg = make_cfg(["federation=local_only", "federation.num_rounds=1", "federation.local_steps=2",
                    "federation.baselines=[centralized]", "federation.plots=false"])
    result = run_federated(cfg, tmp_path)
    local = load_history(tmp_path)
    central = load_history(tmp_path / "baselines" / "centralized")
    assert local["mode"] == "local_only" and central["mode"] == "centralized"
    assert len(local["rounds"][1]["train"]) == 6 and list(central["rounds"][1]["train"]) == ["pooled"]
    assert central["rounds"][1]["train"]["pooled"]["steps"] == 6 * 2  # same total steps as 6 clients × 2
    summary = result["summary"]
    assert summary["gap_vs_centralized"] == pytest.approx(
        summary["results"]["local_only"]["test_accuracy"] - summary["results"]["centralized"]["test_accuracy"])
    assert central["rounds"][1]["test"]["loss"] < central["rounds"][0]["test"]["loss"]


def test_heldout_split_is_written_and_overlap_with_training_data_is_refused(fed_run):
    from qualbench.data import load_dataset
    from qualbench.errors import ConfigError
    from qualbench.overlap import check_adapter_overlap

    run_dir, _, _ = fed_run
    heldout = load_dataset({"loader": "qualbench_json", "path": str(run_dir / "heldout_test.json"), "name": "heldout"})
    tests = [q for f in sorted((run_dir / "clients").glob("client_*.json"))
             for q in json.loads(f.read_text(encoding="utf-8"))["test"]]
    assert len(heldout) == len(tests) > 0
    adapter = str(run_dir / "global_adapter")
    assert check_adapter_overlap(heldout, adapter) == 0  # the documented path
    sample = load_dataset({"loader": "sample", "name": "sample"})
    with pytest.raises(ConfigError, match=r"evaluated items are in the training data.*heldout_test\.json"):
        check_adapter_overlap(sample, adapter)
    assert check_adapter_overlap(sample, adapter, allow=True) > 0
    assert check_adapter_overlap(sample, str(run_dir / "nowhere" / "x")) == 0  # not a federated run: no check


def test_report_over_a_real_federated_run_lists_it_and_draws_its_curve(fed_run, tmp_path):
    """The shared scorer's outputs (predictions.jsonl, metrics.json) and history.json feed qualbench-report."""
    from qualbench.report.build import build_report

    run_dir, _, hist = fed_run
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["task"] == "federated" and metrics["n"] == hist["rounds"][-1]["test"]["n"]
    n_pred = len((run_dir / "predictions.jsonl").read_text(encoding="utf-8").splitlines())
    assert n_pred == metrics["n"]
    files = build_report([run_dir], tmp_path / "report", n_boot=20)
    assert files["runs"] == [str(run_dir)]
    assert {"federated_accuracy.png", "federated_loss.png"} <= {Path(p).name for p in files["plots"]}
    from qualbench.analysis.runs import load_run  # the curve is drawn from rounds.jsonl, one row per round

    curve, now = load_run(run_dir).history, load_history(run_dir)  # (a resume test may have added rounds)
    assert [c["round"] for c in curve] == [r["round"] for r in now["rounds"]]
    assert [c["test"]["accuracy"] for c in curve] == [r["test"]["accuracy"] for r in now["rounds"]]
    board = (tmp_path / "report" / "leaderboard.md").read_text(encoding="utf-8")
    assert f"{100 * metrics['accuracy']:.1f}" in board


def test_client_actors_run_torch_with_their_cpu_reservation():
    from federation.resources import actor_threads

    assert [actor_threads(c) for c in (0.5, 1, 1.0, 2, 3.7)] == [1, 1, 1, 2, 3]


@pytest.mark.parametrize("clients,cpus,per,expected", [
    (6, 2, None, (2, 2, 1.0, 1)),  # a 2-core machine: two actors, one torch thread each
    (6, 16, None, (16, 6, 2.66, 2)),  # one actor per client, the cores shared out
    (2, 16, None, (16, 2, 8.0, 8)),
    (6, 7, None, (7, 6, 1.16, 1)),
    (6, 16, 1.0, (6, 6, 1.0, 1)),  # an explicit reservation: Ray gets no CPUs for actors no client needs
    (6, 2, 0.5, (2, 4, 0.5, 1)),
    (3, 16, 1.5, (5, 3, 1.5, 1)),
])
def test_actor_plan_fits_clients_and_cpus(clients, cpus, per, expected):
    from federation.resources import plan_actors

    plan = plan_actors(clients, cpus, per)
    assert (plan.cpus, plan.actors, plan.cpus_per_actor, plan.threads) == expected
    # what Flower's pool creates from Ray's CPUs and the reservation, within Ray's 1e-4 resource granularity
    assert int(plan.cpus / plan.cpus_per_actor) == plan.actors
    assert plan.actors * round(plan.cpus_per_actor, 4) <= plan.cpus


def test_actor_plan_refuses_a_reservation_larger_than_the_machine():
    from federation.resources import plan_actors
    from qualbench.errors import ConfigError

    with pytest.raises(ConfigError, match=r"num_cpus_per_client=3.*\(0, 2\]"):
        plan_actors(6, 2, 3)
