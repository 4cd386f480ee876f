"""Flower ServerApp: drives a Flower strategy round by round, records every round to ``history.json`` (and its
val/test metrics to ``rounds.jsonl``), saves the global adapter after each round and resumes from the last
completed one. Scoring is not done here: clients reply with prediction rows, scored by ``compute_metrics``
(``federation.rows.round_metrics``); the final benchmark evaluation runs after the app (``federation.evaluate``).

The server never loads the base model (nor imports torch): in round 0 it sends no weights, every client
evaluates the seeded initial adapter it builds from the base model and replies with it, the peft config and the
parameter counts; the server checks that all clients agree and keeps the adapter as NumPy arrays
(:mod:`federation.adapters` writes it in peft's layout).
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MessageType, RecordDict
from flwr.serverapp import Grid, ServerApp
from flwr.serverapp import strategy as fl_strategy
from flwr.serverapp.strategy.strategy_utils import sample_nodes

from federation.adapters import ADAPTER_DIR, WEIGHTS_FILE, read_adapter, same_arrays, write_adapter
from federation.history import completed_rounds, load_history
from federation.rows import round_metrics
from federation.spec import RunSpec, load_spec
from qualbench.errors import ConfigError, QualBenchError
from qualbench.results import HISTORY, RoundRecord, write_json, write_rounds

log = logging.getLogger(__name__)

class FederationFailed(QualBenchError):
    """Too many clients failed in a round (see ``federation.max_failure_fraction``)."""


def build_strategy(spec: RunSpec) -> fl_strategy.Strategy:
    """The Flower strategy for ``spec.fed.strategy`` (optionally wrapped with server-side DP)."""
    f, n = spec.fed, spec.num_clients
    n_train = max(1, math.ceil(f.fraction_train * n))
    common = dict(fraction_train=f.fraction_train, fraction_evaluate=1.0, min_train_nodes=n_train,
                  min_evaluate_nodes=n, min_available_nodes=n)
    if f.strategy == "fedavg":
        strat: fl_strategy.Strategy = fl_strategy.FedAvg(**common)
    elif f.strategy == "fedprox":
        strat = fl_strategy.FedProx(**common, proximal_mu=f.mu)
    elif f.strategy in ("fedadam", "fedyogi"):
        cls = fl_strategy.FedAdam if f.strategy == "fedadam" else fl_strategy.FedYogi
        strat = cls(**common, eta=f.eta, eta_l=f.eta_l, beta_1=f.beta_1, beta_2=f.beta_2, tau=f.tau)
    else:
        raise ConfigError(f"unknown federation.strategy {f.strategy!r}; choose fedavg, fedprox, fedadam, fedyogi")
    if f.dp.enabled:
        strat = fl_strategy.DifferentialPrivacyServerSideFixedClipping(
            strat, noise_multiplier=f.dp.noise_multiplier, clipping_norm=f.dp.clipping_norm,
            num_sampled_clients=n_train)
    return strat


def privacy_record(spec: RunSpec) -> dict[str, Any]:
    dp = spec.fed.dp
    if not dp.enabled:
        return {"enabled": False}
    return {"enabled": True, "mechanism": "DifferentialPrivacyServerSideFixedClipping",
            "noise_multiplier": dp.noise_multiplier, "clipping_norm": dp.clipping_norm}


def _cid_of(msg: Message, node_to_cid: dict[int, int]) -> str:
    node = msg.metadata.src_node_id
    return str(node_to_cid.get(node, f"node-{node}"))


def _reply_cid(m: Message) -> int:
    return int(next(iter(m.content.metric_records.values()))["client-id"])


def _collect(sent: list[Message], replies: list[Message], phase: str, node_to_cid: dict[int, int]):
    """Split replies into successes and failures (errors and missing replies = timeouts), both in client order:
    replies arrive in whatever order the clients finish, and aggregating them in that order would make the
    global adapter's floating-point sums (and so every later number) differ from run to run."""
    ok, failures = [], []
    for m in replies:
        if m.has_error():
            reason = m.error.reason.strip().removesuffix("'>").strip()  # Flower appends a class repr tail
            failures.append({"client": _cid_of(m, node_to_cid), "phase": phase, "reason": reason[-500:]})
        else:
            node_to_cid[m.metadata.src_node_id] = _reply_cid(m)
            ok.append(m)
    answered = {m.metadata.src_node_id for m in replies}
    for m in sent:
        if m.metadata.dst_node_id not in answered:
            node = m.metadata.dst_node_id
            failures.append({"client": str(node_to_cid.get(node, f"node-{node}")), "phase": phase,
                             "reason": "timeout (no reply within federation.round_timeout_s)"})
    ok.sort(key=_reply_cid)
    failures.sort(key=lambda f: (len(f["client"]), f["client"]))
    return ok, failures


def _check_failures(spec: RunSpec, phase: str, n_sent: int, ok: list, failures: list, rnd: int) -> None:
    if n_sent and (not ok or len(failures) / n_sent > spec.fed.max_failure_fraction):
        reasons = "; ".join(f"client {f['client']}: {f['reason'].strip().splitlines()[-1][:200]}" for f in failures)
        raise FederationFailed(
            f"round {rnd} {phase}: {len(failures)}/{n_sent} clients failed (more than "
            f"federation.max_failure_fraction={spec.fed.max_failure_fraction}): {reasons}")


def _evaluate_round(spec, strategy, grid, arrays, rnd, node_to_cid) -> tuple[dict, list, int, list[Message]]:
    """(metrics, failures, bytes sent, successful replies) of one evaluation round (round 0: ``arrays`` empty)."""
    msgs = list(strategy.configure_evaluate(rnd, arrays, ConfigRecord(), grid))
    down = sum(m.content["arrays"].count_bytes() for m in msgs)
    replies = list(grid.send_and_receive(msgs, timeout=spec.fed.round_timeout_s))
    ok, failures = _collect(msgs, replies, "evaluate", node_to_cid)
    _check_failures(spec, "evaluate", len(msgs), ok, failures, rnd)
    rows: dict[str, list] = {"val": [], "test": []}
    for m in ok:
        sent = m.content["rows"]
        for split in rows:
            rows[split] += json.loads(str(sent[split]))
    return round_metrics(rows, seed=spec.fed.seed), failures, down, ok


def _initial_adapter(ok: list[Message]) -> tuple[ArrayRecord, str, dict[str, int]]:
    """The initial adapter the clients evaluated in round 0, its peft config text and the parameter counts.

    Every client builds it from the base model, the LoRA settings and the seed; one that built a different one
    (another base model, peft/torch version or seed) would train a different model, so the run stops naming it.
    """
    first = ok[0]
    arrays, config = first.content["arrays"], str(first.content["init"]["adapter-config"])
    differ = [str(_reply_cid(m)) for m in ok[1:]
              if not same_arrays(m.content["arrays"], arrays) or str(m.content["init"]["adapter-config"]) != config]
    if differ:
        raise FederationFailed(
            f"round 0: client(s) {', '.join(differ)} built a different initial adapter than client "
            f"{_reply_cid(first)} (another base model, LoRA config, seed or peft/torch version)")
    mr = next(iter(first.content.metric_records.values()))
    counts = {"adapter": sum(a.numpy().size for a in arrays.values()), "base_model": int(mr["base-params"]),
              "adapter_bytes": sum(a.numpy().nbytes for a in arrays.values()), "base_model_bytes": int(mr["base-bytes"])}
    return arrays, config, counts


def _learn_client_ids(spec: RunSpec, grid: Grid, node_to_cid: dict[int, int]) -> None:
    """Ask every node its client id (a ``query`` message), so that a resumed run names the clients that fail
    before they have answered once (a fresh run learns them from its round-0 evaluation replies)."""
    nodes, _ = sample_nodes(grid, spec.num_clients, spec.num_clients)
    msgs = [Message(RecordDict(), message_type=MessageType.QUERY, dst_node_id=n) for n in nodes]
    for m in grid.send_and_receive(msgs, timeout=spec.fed.round_timeout_s):
        if not m.has_error():
            node_to_cid[m.metadata.src_node_id] = _reply_cid(m)


def run_server(grid: Grid, spec: RunSpec) -> dict[str, Any]:
    """The whole federated run; returns the history (also written to ``<run>/history.json``)."""
    run_dir = Path(spec.run_dir)
    adapter_dir = run_dir / ADAPTER_DIR
    history = load_history(run_dir) if spec.fed.resume else None
    done = completed_rounds(history)
    strategy = build_strategy(spec)
    node_to_cid: dict[int, int] = {}
    train_cfg = {"lr": spec.fed.lr, "proximal-mu": spec.fed.mu}
    if done >= 0 and (adapter_dir / WEIGHTS_FILE).exists():
        arrays, adapter_config = read_adapter(adapter_dir)
        log.info("resuming from round %d (%s)", done, adapter_dir)
        history["resumed_at"].append(done)
        _learn_client_ids(spec, grid, node_to_cid)
    else:  # round 0: the initial adapter, before any training (built and sent by the clients)
        t0 = time.perf_counter()
        ev, failures, down, ok = _evaluate_round(spec, strategy, grid, ArrayRecord(), 0, node_to_cid)
        arrays, adapter_config, params = _initial_adapter(ok)
        history = {
            "mode": "federated", "strategy": spec.fed.strategy, "num_rounds": spec.fed.num_rounds,
            "clients": {str(i): n for i, n in enumerate(spec.client_names)},
            "privacy": privacy_record(spec), "params": params, "resumed_at": [], "rounds": [],
        }
        up = sum(m.content["arrays"].count_bytes() for m in ok)
        history["rounds"].append(RoundRecord.from_evaluation(0, ev, failures=failures, bytes_down=down, bytes_up=up,
                                                             wall_s=time.perf_counter() - t0).to_dict())
        write_adapter(adapter_dir, arrays, adapter_config)
        write_json(run_dir / HISTORY, history)
        write_rounds(run_dir, history)
        done = 0
    history["num_rounds"] = spec.fed.num_rounds
    dtypes = {k: a.numpy().dtype for k, a in arrays.items()}  # aggregation keeps no dtype promise; files do

    for rnd in range(done + 1, spec.fed.num_rounds + 1):
        t0 = time.perf_counter()
        msgs = list(strategy.configure_train(rnd, arrays, ConfigRecord(dict(train_cfg)), grid))
        down = sum(m.content["arrays"].count_bytes() for m in msgs)
        replies = list(grid.send_and_receive(msgs, timeout=spec.fed.round_timeout_s))
        ok, failures = _collect(msgs, replies, "train", node_to_cid)
        _check_failures(spec, "train", len(msgs), ok, failures, rnd)
        up = sum(m.content["arrays"].count_bytes() for m in ok)
        new_arrays, _ = strategy.aggregate_train(rnd, ok)
        if new_arrays is None:
            raise FederationFailed(f"round {rnd}: aggregation produced no model ({len(ok)} replies)")
        arrays = new_arrays
        train = {}
        for m in ok:
            mr = next(iter(m.content.metric_records.values()))
            train[str(int(mr["client-id"]))] = {
                "num_examples": int(mr["num-examples"]), "loss_mean": mr["train_loss"],
                "loss_first": mr["train_loss_first"], "loss_last": mr["train_loss_last"],
                "steps": int(mr["steps"]), "n_too_long": int(mr["n_too_long"]), "train_s": mr["train_s"]}
        ev, ev_fail, ev_down, _ = _evaluate_round(spec, strategy, grid, arrays, rnd, node_to_cid)
        record = RoundRecord.from_evaluation(rnd, ev, train=dict(sorted(train.items())), failures=failures + ev_fail,
                                             bytes_down=down + ev_down, bytes_up=up, wall_s=time.perf_counter() - t0)
        history["rounds"].append(record.to_dict())
        write_adapter(adapter_dir, arrays, adapter_config, dtypes)
        write_json(run_dir / HISTORY, history)
        write_rounds(run_dir, history)
        log.info("round %d/%d: train loss %.4f, test acc %s, val acc %s, failures %d", rnd, spec.fed.num_rounds,
                 record.train_loss, ev["test"]["accuracy"], ev["val"]["accuracy"], len(record.failures))
        if spec.fed.plots:
            from qualbench.plotting import learning_curves

            learning_curves(history, run_dir / "learning_curve.png")
    return history


def make_server_app(spec_path: str | None = None) -> ServerApp:
    """A ServerApp reading its run spec from ``spec_path`` (simulation) or run config ``spec-path``."""
    sapp = ServerApp()

    @sapp.main()
    def main(grid: Grid, context: Context) -> None:
        spec = load_spec(spec_path or str(context.run_config["spec-path"]))
        try:
            run_server(grid, spec)
        except QualBenchError as e:  # recorded so the driver can report it after the engine returns
            hist = load_history(spec.run_dir) or {"rounds": []}
            hist["error"] = str(e)
            write_json(Path(spec.run_dir) / HISTORY, hist)
            raise

    return sapp


# Deployment engine entry point (pyproject: [tool.flwr.app.components] serverapp).
app = make_server_app()
