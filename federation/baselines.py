"""Non-federated references on the same code path: ``local_only`` (each client trains alone) and
``centralized`` (pooled training data, same total optimizer steps). Same history.json / rounds.jsonl format as
Flower runs, the same per-round scoring (``federation.train.predict`` → ``round_metrics``) and the same final
evaluation (``federation.evaluate.final_evaluation``: predictions.jsonl, metrics.json)."""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from federation.adapters import ADAPTER_DIR
from federation.history import completed_rounds, load_history
from federation.partition import ClientData, load_client
from federation.spec import RunSpec
from qualbench.results import HISTORY, RoundRecord, write_json, write_rounds
from federation.rows import round_metrics
from federation.train import (
    eval_model, get_adapter, initial_adapter, load_peft, predict, set_adapter, train_local, training_examples,
)

log = logging.getLogger(__name__)


def _evaluate_all(hf, spec: RunSpec, clients: list[ClientData], state_of) -> dict[str, Any]:
    rows: dict[str, list] = {"val": [], "test": []}
    for c in clients:
        set_adapter(hf.model, state_of(c.cid))
        for split in rows:
            rows[split] += predict(hf, c.split(split), spec.prompt, client=c.cid, loss_batch_size=spec.fed.eval_batch_size)
    return round_metrics(rows, seed=spec.fed.seed)


def _train_entry(stats, too_long: int) -> dict[str, Any]:
    return {"num_examples": stats.num_examples, "loss_mean": stats.mean_loss, "loss_first": stats.losses[0],
            "loss_last": stats.losses[-1], "steps": len(stats.losses), "n_too_long": too_long}


def run_baseline(spec: RunSpec, mode: str, config: dict[str, Any] | None = None) -> tuple[dict, dict]:
    """Run ``local_only`` or ``centralized`` for ``spec.fed.num_rounds`` round-equivalents into spec.run_dir and
    evaluate the final adapter(s); returns (history, metrics.json)."""
    from federation.evaluate import final_evaluation, is_current, read_metrics

    run_dir = Path(spec.run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    old = load_history(run_dir)
    if (spec.fed.resume and old and old.get("mode") == mode and completed_rounds(old) >= spec.fed.num_rounds
            and is_current(run_dir, completed_rounds(old), mode)):
        return old, read_metrics(run_dir)
    f = spec.fed
    model, tok = load_peft(spec.base_model, spec.lora, f.seed)
    hf = eval_model(model, tok, f"{mode}", max_new_tokens=f.eval_max_new_tokens, batch_size=f.eval_batch_size)
    init = initial_adapter(spec.base_model, spec.lora, f.seed)
    clients = [load_client(spec.clients_dir, cid) for cid in range(spec.num_clients)]
    if mode == "local_only":
        states = {c.cid: init for c in clients}
        state_of = states.__getitem__
    elif mode == "centralized":
        shared = {"state": init}
        state_of = lambda cid: shared["state"]  # noqa: E731
    else:
        raise ValueError(f"unknown baseline {mode!r}")
    history: dict[str, Any] = {"mode": mode, "strategy": mode, "num_rounds": f.num_rounds,
                               "clients": {str(c.cid): c.name for c in clients},
                               "privacy": {"enabled": False}, "rounds": []}
    t0 = time.perf_counter()
    history["rounds"].append(RoundRecord.from_evaluation(0, _evaluate_all(hf, spec, clients, state_of),
                                                         wall_s=time.perf_counter() - t0).to_dict())
    pooled = [q for c in clients for q in c.train]
    for rnd in tqdm(range(1, f.num_rounds + 1), desc=mode, unit="round"):
        t0 = time.perf_counter()
        train = {}
        kw = dict(lr=f.lr, batch_size=f.batch_size, grad_accum=f.grad_accum, mu=0.0)
        if mode == "local_only":
            for c in clients:
                set_adapter(model, states[c.cid])
                examples, too_long = training_examples(hf, c.train, spec.prompt, f.max_length)
                stats = train_local(model, tok, examples, steps=f.local_steps, epochs=f.local_epochs,
                                    seed=f.seed * 1000 + rnd * 100 + c.cid, **kw)
                states[c.cid] = get_adapter(model)
                train[str(c.cid)] = _train_entry(stats, too_long)
        else:
            set_adapter(model, shared["state"])
            epochs = f.local_epochs  # same passes over the (pooled) data as each client makes over its own
            examples, too_long = training_examples(hf, pooled, spec.prompt, f.max_length)
            stats = train_local(model, tok, examples, steps=f.local_steps * len(clients), epochs=epochs,
                                seed=f.seed * 1000 + rnd, **kw)
            shared["state"] = get_adapter(model)
            train["pooled"] = _train_entry(stats, too_long)
        ev = _evaluate_all(hf, spec, clients, state_of)
        history["rounds"].append(RoundRecord.from_evaluation(rnd, ev, train=train,
                                                             wall_s=time.perf_counter() - t0).to_dict())
        write_json(run_dir / HISTORY, history)
        write_rounds(run_dir, history)
    if mode == "centralized":
        set_adapter(model, shared["state"])
        model.save_pretrained(run_dir / ADAPTER_DIR)
    if f.plots:
        from qualbench.plotting import learning_curves

        learning_curves(history, run_dir / "learning_curve.png")
    metrics = final_evaluation(spec, mode, state_of, f.num_rounds, config)
    return history, metrics
