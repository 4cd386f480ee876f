"""The evaluation loop: dataset → (retriever) → prompt → model → extraction → scorer → run directory.

Predictions are appended to ``predictions.jsonl`` batch by batch; re-running into the same directory
resumes (items already there are not recomputed).
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from qualbench.data import load_dataset_with_report
from qualbench.errors import ConfigError
from qualbench.models.base import ModelError
from qualbench.predictions import PredictionWriter, read_predictions
from qualbench.prompts.render import PromptConfig, render_messages
from qualbench.records import Prediction, Question, Request, Response
from qualbench.scoring import extract_answer
from qualbench.scoring.metrics import compute_metrics, exam_score, is_correct, metrics_markdown

log = logging.getLogger(__name__)

# Config sections whose change makes old predictions in a run directory invalid for resume.
RESUME_KEYS = ("data", "model", "prompt", "retriever", "corpus", "limit")


def resolved_config(cfg: DictConfig) -> dict[str, Any]:
    """The resolved config as plain data with secrets removed."""
    from qualbench.secrets import redact

    return redact(OmegaConf.to_container(cfg, resolve=True))


def data_config(cfg: DictConfig) -> dict[str, Any]:
    data = OmegaConf.to_container(cfg.data, resolve=True)
    if cfg.get("limit") is not None:
        data["limit"] = cfg.limit
    return data


def prompt_config(cfg: DictConfig) -> PromptConfig:
    node = cfg.get("prompt")
    if node is None:
        return PromptConfig()
    data = OmegaConf.to_container(node, resolve=True)
    return PromptConfig(**{k: v for k, v in data.items() if k in PromptConfig.__dataclass_fields__})


def build_retriever(cfg: DictConfig) -> Any:
    """The retriever described by ``cfg.retriever`` over ``cfg.corpus.path``."""
    if cfg.get("retriever") is None or cfg.get("corpus") is None:
        raise ConfigError("this run needs retrieval: add retriever=<bm25|dense|hybrid> (and corpus=...)")
    from retrievers.build import build_retriever as _build

    return _build(cfg.retriever, cfg.corpus.path, cfg.retriever.get("cache_dir"))


def retrieval_query(item: Question) -> str:
    return item.text


def _passages(retriever: Any, cfg: DictConfig, items: Sequence[Question]) -> list[list[Any]]:
    k = int(cfg.retriever.get("top_k", 5))
    if retriever is None or k <= 0:
        return [[] for _ in items]
    domains = [q.domain for q in items]
    return retriever.search_batch([retrieval_query(q) for q in items], domains, k=k)


def to_prediction(item: Question, resp: Response) -> Prediction:
    """Extract and score one response."""
    if resp.skipped:
        pred = ""
    elif "answer" in resp.meta and resp.meta["answer"] is not None:
        pred = str(resp.meta["answer"])
    else:
        pred = extract_answer(resp.text, item.question_type, "".join(item.options) or None)
    meta = {k: v for k, v in resp.meta.items() if k != "answer"}
    return Prediction(
        idx=item.idx,
        domain=item.domain,
        question_type=item.question_type,
        answer=item.answer,
        prediction=pred,
        correct=bool(pred) and is_correct(item.answer, pred, item.question_type),
        raw=resp.text,
        qualification=item.qualification,
        exam_score=exam_score(item.answer, pred, item.question_type) if pred else 0.0,
        skipped=resp.skipped,
        latency_s=resp.latency_s,
        prompt_tokens=resp.prompt_tokens,
        completion_tokens=resp.completion_tokens,
        meta=meta,
    )


def _check_resume(run_dir: Path, cfg_plain: dict[str, Any]) -> None:
    state = run_dir / "run_state.json"
    current = {k: cfg_plain.get(k) for k in RESUME_KEYS}
    if state.exists() and (run_dir / "predictions.jsonl").exists():
        previous = json.loads(state.read_text(encoding="utf-8")).get("resume_keys", {})
        changed = [k for k in RESUME_KEYS if previous.get(k) != current.get(k)]
        if changed:
            raise ConfigError(
                f"{run_dir} holds predictions from a different config (changed: {', '.join(changed)}); "
                "use a new hydra.run.dir or delete predictions.jsonl"
            )
    state.write_text(json.dumps({"resume_keys": current}, ensure_ascii=False, indent=2), encoding="utf-8")


def evaluate(
    items: Sequence[Question],
    model: Any,
    prompt: PromptConfig,
    run_dir: Path,
    batch_size: int = 32,
    retriever: Any = None,
    cfg: DictConfig | None = None,
) -> list[dict[str, Any]]:
    """Run the model on every item not yet in ``run_dir/predictions.jsonl``; return all predictions."""
    pred_path = run_dir / "predictions.jsonl"
    done = {str(r["idx"]) for r in read_predictions(pred_path, repair=True)}
    todo = [q for q in items if q.idx not in done]
    if done:
        log.info("resuming: %d of %d items already in %s", len(items) - len(todo), len(items), pred_path)
    if todo and getattr(model, "needs_retriever", False):
        model.attach_retriever(retriever)
    if todo and hasattr(model, "prepare"):
        model.prepare(list(items))  # whole file, so cross-fitted folds are the same on resume
    with PredictionWriter(pred_path) as writer, tqdm(
        total=len(items), initial=len(items) - len(todo), desc=f"{getattr(model, 'name', 'model')}", unit="q"
    ) as bar:
        for start in range(0, len(todo), batch_size):
            batch = todo[start : start + batch_size]
            passages = _passages(retriever, cfg, batch) if (prompt.rag and retriever is not None) else [[]] * len(batch)
            requests = [Request(q, render_messages(q, prompt, p), list(p)) for q, p in zip(batch, passages)]
            t0 = time.perf_counter()
            try:
                responses = model.generate(requests)
            except ModelError as err:
                # keep what finished before the failure, then stop with the backend's message
                finished = [(q, r) for q, r in zip(batch, getattr(err, "responses", None) or []) if r is not None]
                writer.write([to_prediction(q, r).to_dict() for q, r in finished])
                log.error("stopped after %d finished items of this batch were saved to %s", len(finished), pred_path)
                raise
            if len(responses) != len(requests):
                raise ConfigError(f"model {model!r} returned {len(responses)} responses for {len(requests)} requests")
            dt = (time.perf_counter() - t0) / max(1, len(batch))
            rows = []
            for q, r in zip(batch, responses):
                if r.latency_s is None:
                    r.latency_s = dt
                rows.append(to_prediction(q, r).to_dict())
            writer.write(rows)
            bar.update(len(batch))
    wanted = {q.idx for q in items}
    seen: dict[str, dict[str, Any]] = {}
    for row in read_predictions(pred_path):
        if str(row["idx"]) in wanted:
            seen[str(row["idx"])] = row
    return [seen[q.idx] for q in items if q.idx in seen]


def write_outputs(run_dir: Path, preds: list[dict[str, Any]], cfg_plain: dict[str, Any], extra: dict[str, Any], n_boot: int, seed: int, plots: bool = True) -> dict[str, Any]:
    """metrics.json, report.md and by_domain.png for a finished set of predictions."""
    metrics = compute_metrics(preds, n_boot=n_boot, seed=seed)
    metrics.update(extra)
    metrics["config"] = cfg_plain
    (run_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    title = f"{extra.get('model', '')} on {extra.get('data', '')}".strip()
    (run_dir / "report.md").write_text(metrics_markdown(metrics, title or "QualBench run"), encoding="utf-8")
    if plots and metrics.get("by_domain"):
        from qualbench.plotting import domain_bar_chart

        domain_bar_chart(metrics["by_domain"], run_dir / "by_domain.png", title=title, overall=metrics["accuracy"])
    return metrics


def run_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The ``eval`` task: score ``cfg.model`` on ``cfg.data`` with ``cfg.prompt``; write the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_plain = resolved_config(cfg)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg_plain)), encoding="utf-8")
    items, report = load_dataset_with_report(data_config(cfg), seed=cfg.get("seed", 0))
    report.write(run_dir)
    if not items:
        raise ConfigError("no items to evaluate after loading and filtering (check data.path, domains, types)")
    _check_resume(run_dir, cfg_plain)
    model = instantiate(cfg.model, _convert_="all")
    prompt = prompt_config(cfg)
    top_k = int(cfg.retriever.get("top_k", 0) or 0) if cfg.get("retriever") is not None else 0
    needs = getattr(model, "needs_retriever", False) or (prompt.rag and top_k > 0)
    retriever = build_retriever(cfg) if needs else None
    preds = evaluate(items, model, prompt, run_dir, int(cfg.run.batch_size), retriever, cfg)
    extra = {
        "model": getattr(model, "name", type(model).__name__),
        "data": cfg.data.get("name", "data"),
        "prompt": prompt.name,
        "cleaning": {"n_read": report.n_read, "n_kept": report.n_kept, "dropped": report.counts()},
    }
    metrics = write_outputs(run_dir, preds, cfg_plain, extra, int(cfg.run.n_boot), int(cfg.get("seed", 0)), bool(cfg.run.plots))
    log.info(
        "%s: accuracy %.4f [%.4f, %.4f] on %d items → %s",
        extra["model"], metrics["accuracy"], *metrics["accuracy_ci95"], metrics["n"], run_dir,
    )
    return metrics
