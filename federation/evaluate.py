"""The final benchmark evaluation of a federated (or baseline) run, done outside the Flower apps.

The final adapter is scored on every client's **test** split (the items of ``heldout_test.json``) by the code
``qualbench`` runs for ``model=hf``: ``qualbench.evaluation.evaluate`` (``HFModel.generate`` → ``to_prediction``)
writes ``predictions.jsonl`` and ``qualbench.evaluation.write_outputs`` (``compute_metrics``) writes ``metrics.json``
(with ``task: federated``), ``report.md`` and ``by_domain.png`` into the run directory, so ``qualbench-report``
lists the run like any other. ``python -m federation.evaluate RUN_DIR`` does it for a run made on the
deployment engine (``python -m federation.deploy``).
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any, Callable, Sequence

from federation.adapters import ADAPTER_DIR, read_adapter
from federation.history import completed_rounds, load_history
from federation.partition import HELDOUT_FILE, load_client
from federation.spec import RunSpec, load_spec
from federation.train import eval_model, load_peft, set_adapter
from qualbench.errors import QualBenchError
from qualbench.results import METRICS, PREDICTIONS, read_result

log = logging.getLogger(__name__)

def model_name(spec: RunSpec, mode: str) -> str:
    """``<base model dir>+<strategy>`` for a federated run, ``<base model dir>+<mode>`` for a baseline."""
    return f"{Path(spec.base_model.rstrip('/')).name}+{spec.fed.strategy if mode == 'federated' else mode}"


def read_metrics(run_dir: str | Path) -> dict[str, Any] | None:
    """The run's ``metrics.json`` (a federated or eval result), None when there is none yet."""
    p = Path(run_dir) / METRICS
    return read_result(p, tasks=("federated", "eval")) if p.exists() else None


def is_current(run_dir: str | Path, rounds: int, mode: str) -> bool:
    """Whether ``metrics.json`` scores the adapter after ``rounds`` rounds of ``mode`` (so it need not be redone)."""
    m = read_metrics(run_dir)
    return bool(m) and m.get("task") == "federated" and m.get("mode") == mode and m.get("rounds") == rounds \
        and (Path(run_dir) / PREDICTIONS).exists()


def final_evaluation(spec: RunSpec, mode: str, state_of: Callable[[int], dict], rounds: int,
                     config: dict[str, Any] | None = None) -> dict[str, Any]:
    """Score the adapter(s) on the clients' test splits; write predictions.jsonl, metrics.json, report.md.

    ``state_of(cid)`` is the adapter client ``cid``'s test items are answered with: the global adapter for
    ``federated`` and ``centralized``, each client's own for ``local_only``. ``config`` is the run's resolved
    config (written into metrics.json; when empty, ``qualbench-report`` reads the run's config.yaml).
    """
    from qualbench.evaluation import evaluate, settings_hash, write_outputs
    from qualbench.scoring.metrics import ExamScoreRule
    from qualbench.scoring.references import reference_rows

    run_dir = Path(spec.run_dir)
    for f in (METRICS, PREDICTIONS):  # a new final adapter: earlier predictions are not its own
        (run_dir / f).unlink(missing_ok=True)
    config = dict(config or {})
    if isinstance(config.get("federation"), dict) and config["federation"].get("mode") != mode:
        config["federation"] = {**config["federation"], "mode": mode}  # a baseline's run dir: its own mode
    clients = [load_client(spec.clients_dir, cid) for cid in range(spec.num_clients)]
    items = [q for c in clients for q in c.test]
    if not items:
        raise QualBenchError(f"{spec.clients_dir}: no client has test items; nothing to evaluate")
    model, tok = load_peft(spec.base_model, spec.lora, spec.fed.seed)
    name = model_name(spec, mode)
    hf = eval_model(model, tok, name, max_new_tokens=spec.fed.eval_max_new_tokens, batch_size=spec.fed.eval_batch_size)
    groups: list[tuple[dict, list]] = []  # consecutive clients sharing one adapter are answered in one pass
    for c in clients:
        state = state_of(c.cid)
        if groups and groups[-1][0] is state:
            groups[-1][1].extend(c.test)
        else:
            groups.append((state, list(c.test)))
    settings = settings_hash(config, spec.prompt.rag) if config else None
    preds: list[dict[str, Any]] = []
    for state, group in groups:
        if group:
            set_adapter(model, state)
            preds += evaluate(group, hf, spec.prompt, run_dir, batch_size=spec.fed.eval_batch_size,
                              rule=ExamScoreRule.from_config(config.get("scoring")), settings=settings)
    adapter = run_dir / ADAPTER_DIR
    extra = {
        "model": name, "data": Path(HELDOUT_FILE).stem, "prompt": spec.prompt.name,
        "mode": mode, "strategy": spec.fed.strategy if mode == "federated" else mode, "rounds": rounds,
        "num_clients": spec.num_clients, "base_model": spec.base_model,
        "adapter": str(adapter) if mode != "local_only" and adapter.is_dir() else None,
        "uses_eval_labels": False, "references": reference_rows(items),
    }
    run = config.get("run") or {}
    metrics = write_outputs(run_dir, preds, config, extra, int(run.get("n_boot", 1000)),
                            int(config.get("seed", spec.fed.seed)), bool(spec.fed.plots), task="federated")
    log.info("%s (%s, %d rounds): test accuracy %.4f [%.4f, %.4f] on %d items → %s", name, mode, rounds,
             metrics["accuracy"], *metrics["accuracy_ci95"], metrics["n"], run_dir / METRICS)
    return metrics


def load_saved_adapter(directory: str | Path) -> dict:
    """The saved adapter's weights as a torch state dict (for ``set_adapter``)."""
    return read_adapter(directory)[0].to_torch_state_dict()


def evaluate_global(spec: RunSpec, mode: str, rounds: int, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """:func:`final_evaluation` of the saved ``global_adapter/`` (federated and centralized runs)."""
    state = load_saved_adapter(Path(spec.run_dir) / ADAPTER_DIR)
    return final_evaluation(spec, mode, lambda cid: state, rounds, config)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m federation.evaluate",
        description="Score a federated run's global adapter on its clients' test splits: predictions.jsonl, "
                    "metrics.json, report.md (as qualbench experiment=federated does after the simulation).")
    ap.add_argument("run_dir", help="the run directory (holds spec.json, history.json and global_adapter/)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    run_dir = Path(args.run_dir)
    try:
        spec = load_spec(run_dir / "spec.json")
        hist = load_history(run_dir)
        if not hist or completed_rounds(hist) < 0:
            raise QualBenchError(f"{run_dir}: no completed round in history.json; run the federation first")
        if hist.get("error"):
            raise QualBenchError(f"{run_dir}: the run failed ({hist['error']}); nothing to evaluate")
        mode = hist.get("mode", "federated")
        if mode == "local_only":
            raise QualBenchError(f"{run_dir}: local_only keeps no adapters; its evaluation runs with the baseline")
        metrics = evaluate_global(spec, mode, completed_rounds(hist))
    except QualBenchError as e:
        print(f"federation.evaluate: error: {e}", file=sys.stderr)
        return 2
    print(f"test accuracy {metrics['accuracy']:.4f} on {metrics['n']} items → {run_dir / METRICS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
