"""``qualbench experiment=federated``: partition the data over clients, build/locate the base model, run
Flower's simulation engine (or a baseline), then score the final adapter on the clients' test splits with the
``qualbench`` evaluation path (``federation.evaluate``: ``predictions.jsonl``, ``metrics.json``, ``report.md``).
Per round: ``history.json`` (the run's record, read by resume) and ``rounds.jsonl`` (val/test metrics);
at the end ``summary.json`` (each mode's final numbers and the gaps to the baselines)."""

from __future__ import annotations

import logging
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from federation.config import ENGINES, MODES, FederationConfig
from federation.history import completed_rounds, final_round, load_history
from federation.partition import HELDOUT_FILE, partition, save_clients, save_heldout, save_summary
from federation.spec import RunSpec, to_dataclass
from qualbench.errors import ConfigError, QualBenchError
from qualbench.results import HISTORY, write_json, write_result
from qualbench.prompts.render import PromptConfig, render_messages

log = logging.getLogger(__name__)


def quiet_flower_logging() -> None:
    """Flower's logger has its own console handler: stop it propagating to Hydra's (no doubled lines)."""
    logging.getLogger("flwr").propagate = False
    logging.getLogger("alembic").setLevel(logging.WARNING)  # Flower's link-state DB setup chatter


def tokenizer_texts(questions, prompt: PromptConfig) -> list[str]:
    """Everything the tiny tokenizer must be able to spell: rendered prompts, answers, explanations."""
    from federation.train import ANSWER_PREFIX

    texts = [ANSWER_PREFIX, "正确错误"]
    for q in questions:
        texts.extend(m["content"] for m in render_messages(q, prompt))
        texts.extend((q.answer, q.explanation))
    return texts


def prepare(cfg: DictConfig, run_dir: Path) -> RunSpec:
    """Partition files, partition summary, base model and ``spec.json`` in ``run_dir``."""
    from qualbench.data import load_dataset

    fed = to_dataclass(FederationConfig, cfg.federation)
    if fed.mode not in MODES:
        raise ConfigError(f"unknown federation.mode {fed.mode!r}; choose one of {', '.join(MODES)}")
    prompt = to_dataclass(PromptConfig, cfg.prompt)
    questions = load_dataset(cfg.data)
    clients = partition(questions, fed.partition, fed.num_clients, fed.alpha, fed.split_fractions, fed.seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    save_clients(clients, run_dir / "clients")
    save_heldout(clients, run_dir / HELDOUT_FILE)
    save_summary(clients, run_dir)
    if fed.model_path:
        base = Path(fed.model_path).expanduser()
        if not base.is_dir():
            raise ConfigError(f"federation.model_path={fed.model_path}: not a directory with an HF model")
    else:
        base = run_dir / "base_model"
        if not (base / "config.json").exists():
            from qualbench.models.tiny import save_tiny

            t = fed.tiny
            save_tiny(base, tokenizer_texts(questions, prompt), hidden_size=t.hidden_size, num_layers=t.num_layers,
                      num_heads=t.num_heads, max_positions=t.max_positions, seed=fed.seed)
    spec = RunSpec(run_dir=str(run_dir.resolve()), base_model=str(base.resolve()),
                   clients_dir=str((run_dir / "clients").resolve()), client_names=[c.name for c in clients],
                   fed=fed, prompt=prompt)
    spec.save(run_dir / "spec.json")
    return spec


def _load_server_side() -> None:
    """This process's imports (Flower's engine and the two apps; neither loads torch here) while Ray starts.
    A failure is only logged: the simulation imports the same again and reports it there."""
    try:
        import flwr.simulation  # noqa: F401

        import federation.client_app  # noqa: F401
        import federation.server_app  # noqa: F401
    except Exception:  # noqa: BLE001
        log.debug("importing the server side ahead of the simulation failed", exc_info=True)


def simulate(spec: RunSpec) -> dict[str, Any]:
    """Run the ServerApp/ClientApp pair on Flower's simulation engine (Ray backend), with min(clients, CPUs)
    client actors sharing the CPUs (:func:`federation.resources.plan_actors`)."""
    from federation.resources import backend_config, machine_cpus, plan_actors, shutdown_ray, start_ray

    run_dir = Path(spec.run_dir)
    hist = load_history(run_dir)
    if spec.fed.resume and hist and completed_rounds(hist) >= spec.fed.num_rounds and not hist.get("error"):
        log.info("all %d rounds already in %s; nothing to do", spec.fed.num_rounds, run_dir)
        return hist
    if hist and hist.get("error"):  # a failed earlier attempt: retry from its last completed round
        hist.pop("error")
        write_json(run_dir / HISTORY, hist)
    quiet_flower_logging()
    plan = plan_actors(spec.num_clients, spec.fed.ray_num_cpus or machine_cpus(), spec.fed.num_cpus_per_client)
    log.info("simulation: %d client actors × %g CPUs, %d torch thread(s) each, on %d CPUs", plan.actors,
             plan.cpus_per_actor, plan.threads, plan.cpus)
    spec_path = str(run_dir / "spec.json")
    try:
        # Ray's processes start while this one imports Flower's engine (ray.init itself must run in this thread)
        side = threading.Thread(target=_load_server_side, name="import-server-side", daemon=True)
        side.start()
        start_ray(plan)
        side.join()
        from flwr.simulation import run_simulation

        from federation.client_app import make_client_app
        from federation.server_app import make_server_app

        run_simulation(server_app=make_server_app(spec_path), client_app=make_client_app(spec_path, plan.threads),
                       num_supernodes=spec.num_clients,
                       backend_config=backend_config(plan, spec.fed.num_gpus_per_client))
    except QualBenchError:
        raise
    except Exception as e:  # the engine wraps ServerApp errors; the history says what happened
        hist = load_history(run_dir) or {}
        if hist.get("error"):
            raise QualBenchError(hist["error"]) from e
        raise
    finally:
        shutdown_ray()
    hist = load_history(run_dir)
    if not hist:
        raise QualBenchError(f"{run_dir}: the simulation ended without writing history.json")
    if hist.get("error"):
        raise QualBenchError(hist["error"])
    return hist


def final_numbers(history: dict[str, Any], metrics: dict[str, Any]) -> dict[str, Any]:
    """A mode's line in summary.json: test numbers from its metrics.json, val and losses from its last round."""
    last = final_round(history)
    val, test = last.get("val") or {}, last.get("test") or {}
    return {"rounds": last["round"], "test_accuracy": metrics["accuracy"], "test_accuracy_ci95": metrics["accuracy_ci95"],
            "test_exam_score": metrics["exam_score"], "test_n": metrics["n"], "test_loss": test.get("loss"),
            "val_accuracy": val.get("accuracy"), "val_loss": val.get("loss"), "train_loss": last["train_loss"],
            "test_by_domain": {d: v["accuracy"] for d, v in metrics["by_domain"].items()}}


APP_PROJECT = Path(__file__).resolve().parent / "app_project"


def deployment_command(spec: RunSpec, superlink: str = "<connection>") -> str:
    """The ``flwr run`` line that runs this spec on a SuperLink (see docs/federation.md)."""
    spec_path = Path(spec.run_dir) / "spec.json"
    return f"flwr run {APP_PROJECT} {superlink} --run-config \"spec-path='{spec_path}'\" --stream"


def run_mode(spec: RunSpec, mode: str, config: dict[str, Any] | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    """Train ``mode`` into ``spec.run_dir`` and evaluate its final adapter: (history, metrics.json)."""
    if mode == "federated":
        from federation.evaluate import evaluate_global, is_current, read_metrics

        hist = simulate(spec)
        rounds = completed_rounds(hist)
        if is_current(spec.run_dir, rounds, mode):  # resumed a finished run: its final evaluation is there
            return hist, read_metrics(spec.run_dir)
        return hist, evaluate_global(spec, mode, rounds, config)
    from federation.baselines import run_baseline

    return run_baseline(spec, mode, config)


def run_federated(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The ``federated`` task: returns ``objective`` (validation accuracy) and the final test accuracy."""
    if cfg.get("federation") is None:
        raise ConfigError("task=federated needs a federation config: use experiment=federated or federation=fedavg")
    spec = prepare(cfg, Path(run_dir))
    if spec.fed.engine == "prepare":
        cmd = deployment_command(spec)
        log.info("prepared %s for the deployment engine; run:\n  %s", run_dir, cmd)
        return {"spec": str(Path(spec.run_dir) / "spec.json"), "command": cmd}
    if spec.fed.engine not in ENGINES:
        raise ConfigError(f"unknown federation.engine {spec.fed.engine!r}; choose one of {', '.join(ENGINES)}")
    from qualbench.secrets import redact

    config = redact(cfg)  # the resolved config, secrets removed
    results = {spec.fed.mode: final_numbers(*run_mode(spec, spec.fed.mode, config))}
    for b in spec.fed.baselines:
        if b == spec.fed.mode:
            continue
        if b not in MODES:
            raise ConfigError(f"federation.baselines: unknown mode {b!r}; choose from {', '.join(MODES)}")
        sub = RunSpec(**{**asdict(spec), "fed": spec.fed, "prompt": spec.prompt,
                         "run_dir": str(Path(spec.run_dir) / "baselines" / b)})
        Path(sub.run_dir).mkdir(parents=True, exist_ok=True)
        results[b] = final_numbers(*run_mode(sub, b, config))
    summary: dict[str, Any] = {"mode": spec.fed.mode, "strategy": spec.fed.strategy, "results": results}
    main = results[spec.fed.mode]
    for b in ("local_only", "centralized"):
        if b in results and b != spec.fed.mode and main["test_accuracy"] is not None:
            summary[f"gap_vs_{b}"] = main["test_accuracy"] - results[b]["test_accuracy"]
    write_result(run_dir, "federated_summary", summary)
    log.info("final test accuracy %s (val %s); summary in %s", main["test_accuracy"], main["val_accuracy"],
             Path(run_dir) / "summary.json")
    return {"objective": main["val_accuracy"], "accuracy": main["test_accuracy"], "val_accuracy": main["val_accuracy"],
            "train_loss": main["train_loss"], "summary": summary}
