"""Predict and score: items → prompts → a ``Model`` → extraction → scorer → ``predictions.jsonl`` and ``metrics.json``.

The library half of an evaluation, shared by ``qualbench`` (``qualbench.runner`` builds the pieces from the config)
and by federated evaluation (``federation.evaluate``). Takes values, never the Hydra config. Predictions are appended
to ``predictions.jsonl`` as they finish; calling :func:`evaluate` again on the same directory resumes (items
already there are not recomputed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

from tqdm.auto import tqdm

from qualbench.answers import canonical_answer
from qualbench.errors import ConfigError
from qualbench.models.base import Model, ModelError
from qualbench.predictions import PredictionWriter, read_predictions
from qualbench.prompts.fewshot import FewShotSampler
from qualbench.prompts.render import PromptConfig, render_messages
from qualbench.records import Prediction, Question, Request, Response
from qualbench.results import PREDICTIONS, write_result
from qualbench.scoring import extract_answer
from qualbench.scoring.metrics import ExamScoreRule, compute_metrics, exam_score, is_correct, metrics_markdown
from qualbench.scoring.references import below_references

log = logging.getLogger(__name__)

WHERE_ONLY = frozenset({"cache_dir", "cache_mode", "rebuild", "show_progress"})  # where and how loud, not what


def retrieval_query(item: Question) -> str:
    return item.text


def passages_for(retriever: Any, items: Sequence[Question], top_k: int) -> list[list[Any]]:
    """``top_k`` passages per item (``[]`` each without a retriever or with ``top_k`` 0)."""
    if retriever is None or top_k <= 0:
        return [[] for _ in items]
    return retriever.search_batch([retrieval_query(q) for q in items], [q.domain for q in items], k=top_k)


def to_prediction(item: Question, resp: Response, rule: ExamScoreRule | None = None) -> Prediction:
    """Score one response: ``resp.answer`` when the backend set it, else the answer extracted from its text."""
    options = "".join(item.options) or None
    if resp.skipped:
        pred = ""
    elif resp.answer is not None:  # the backend decided the answer itself: canonicalise, do not extract
        pred = canonical_answer(resp.answer, item.question_type, options)
    else:
        pred = extract_answer(resp.text, item.question_type, options)
    meta = dict(resp.meta)
    return Prediction(
        idx=item.idx,
        domain=item.domain,
        question_type=item.question_type,
        answer=item.answer,
        prediction=pred,
        correct=bool(pred) and is_correct(item.answer, pred, item.question_type),
        raw=resp.text,
        qualification=item.qualification,
        exam_score=exam_score(item.answer, pred, item.question_type, rule) if pred else 0.0,
        skipped=resp.skipped,
        latency_s=resp.latency_s,
        prompt_tokens=resp.prompt_tokens,
        completion_tokens=resp.completion_tokens,
        meta=meta,
    )


def require_model(model: Any) -> Model:
    """``model`` if it subclasses :class:`qualbench.models.base.Model` (the contract the runner relies on)."""
    if not isinstance(model, Model):
        raise ConfigError(f"model {type(model).__module__}.{type(model).__qualname__} does not subclass "
                          "qualbench.models.base.Model (see docs/ARCHITECTURE.md, 'Model contract')")
    return model


def passage_id(doc: Any) -> str:
    """A retrieved passage's chunk id (its law and article when the chunker gave none)."""
    md = getattr(doc, "metadata", None) or {}
    return str(md.get("chunk_id") or getattr(doc, "id", None) or f"{md.get('law_title', '')}{md.get('article', '')}")


def settings_hash(cfg_plain: Mapping[str, Any], rag: bool) -> str:
    """Short hash of what decides a response: model and prompt settings (and retriever and corpus under RAG)."""
    keys = ["model", "prompt"] + (["retriever", "corpus"] if rag else [])

    def strip(v: Any) -> Any:
        return {k: x for k, x in v.items() if k not in WHERE_ONLY} if isinstance(v, dict) else v

    blob = json.dumps({k: strip(cfg_plain.get(k)) for k in keys}, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def sample_log(req: Request, settings: str | None) -> dict[str, Any]:
    """The per-sample fields of a prediction line: rendered messages, passage ids, settings hash."""
    return {"messages": req.messages, "passage_ids": [passage_id(d) for d in req.passages], "settings_hash": settings}


def _stream(model: Any, todo: Sequence[Question], requests_of: Any, batch_size: int, writer: PredictionWriter,
            bar: Any, row: Any, pred_path: Path, flush_s: float = 1.0) -> None:
    """Backends with ``generate_stream`` keep their own pool of requests in flight for the whole run; prompts
    are rendered ``batch_size`` at a time as the pool asks for them, and predictions are appended (and
    fsynced) as they finish, every ``batch_size`` rows or ``flush_s`` seconds."""
    pending: list[dict[str, Any]] = []
    last = time.perf_counter()

    def flush() -> None:
        nonlocal last
        if pending:
            writer.write(pending)
            bar.update(len(pending))
            pending.clear()
        last = time.perf_counter()

    def requests() -> Any:
        for start in range(0, len(todo), batch_size):
            yield from requests_of(todo[start : start + batch_size])

    def on_result(req: Request, resp: Response) -> None:
        pending.append(row(req.item, resp, req))
        if len(pending) >= batch_size or time.perf_counter() - last >= flush_s:
            flush()

    try:
        model.generate_stream(requests(), on_result)
    except ModelError:
        n = len(pending)
        flush()
        log.error("stopped; every finished item (the last %d included) was saved to %s", n, pred_path)
        raise
    flush()


def evaluate(
    items: Sequence[Question],
    model: Any,
    prompt: PromptConfig,
    run_dir: Path,
    batch_size: int = 32,
    retriever: Any = None,
    top_k: int = 0,
    rule: ExamScoreRule | None = None,
    fewshot: FewShotSampler | None = None,
    log_samples: bool = True,
    settings: str | None = None,
) -> list[dict[str, Any]]:
    """Run the model on every item not yet in ``run_dir/predictions.jsonl``; return all predictions.

    Under ``prompt.rag`` each prompt gets ``top_k`` passages from ``retriever``; a backend with
    ``needs_retriever`` is handed ``retriever`` itself. ``rule`` scores ``exam_score`` (default: no partial
    credit). With ``log_samples`` each line also carries the rendered messages, the passage ids and ``settings``."""

    def row(q: Question, r: Response, req: Request) -> dict[str, Any]:
        out = to_prediction(q, r, rule).to_dict()
        if log_samples:
            out.update(sample_log(req, settings))
        return out

    pred_path = Path(run_dir) / PREDICTIONS
    done = {str(r["idx"]) for r in read_predictions(pred_path, repair=True)}
    todo = [q for q in items if q.idx not in done]
    if done:
        log.info("resuming: %d of %d items already in %s", len(items) - len(todo), len(items), pred_path)
    require_model(model)
    if model.needs_retriever:
        model.attach_retriever(retriever)
    # whole file, so cross-fitted folds are the same on resume; also when nothing is left to do, so that what
    # the model reports into metrics.json (replay's missing/unknown idx, calibration) is the same on every resume
    model.prepare(list(items))

    def requests_of(batch: Sequence[Question]) -> list[Request]:
        passages = passages_for(retriever, batch, top_k) if prompt.rag else [[]] * len(batch)
        return [Request(q, render_messages(q, prompt, p, fewshot.demos(q) if fewshot else ()), list(p))
                for q, p in zip(batch, passages)]

    with PredictionWriter(pred_path) as writer, tqdm(
        total=len(items), initial=len(items) - len(todo), desc=model.name, unit="q"
    ) as bar:
        if model.streams:
            if todo:
                _stream(model, todo, requests_of, batch_size, writer, bar, row, pred_path)
            batches = []
        else:
            batches = [todo[i : i + batch_size] for i in range(0, len(todo), batch_size)]
        for batch in batches:
            requests = requests_of(batch)
            t0 = time.perf_counter()
            try:
                responses = model.generate(requests)
            except ModelError as err:
                # keep what finished before the failure, then stop with the backend's message
                finished = [(q, r, rq) for q, r, rq in zip(batch, getattr(err, "responses", None) or [], requests)
                            if r is not None]
                writer.write([row(q, r, rq) for q, r, rq in finished])
                log.error("stopped after %d finished items of this batch were saved to %s", len(finished), pred_path)
                raise
            if len(responses) != len(requests):
                raise ConfigError(f"model {model!r} returned {len(responses)} responses for {len(requests)} requests")
            dt = (time.perf_counter() - t0) / max(1, len(batch))
            rows = []
            for q, r, rq in zip(batch, responses, requests):
                if r.latency_s is None:
                    r.latency_s = dt
                rows.append(row(q, r, rq))
            writer.write(rows)
            bar.update(len(batch))
    wanted = {q.idx for q in items}
    seen: dict[str, dict[str, Any]] = {}
    for rec in read_predictions(pred_path):
        if str(rec["idx"]) in wanted:
            seen[str(rec["idx"])] = rec
    return [seen[q.idx] for q in items if q.idx in seen]


def write_outputs(run_dir: Path, preds: list[dict[str, Any]], config: Mapping[str, Any], extra: Mapping[str, Any],
                  n_boot: int, seed: int, plots: bool = True, task: str = "eval") -> dict[str, Any]:
    """``metrics.json`` (``task``'s result, :mod:`qualbench.results`), ``report.md`` and ``by_domain.png`` for a
    finished set of predictions; ``config`` (the resolved config, secrets removed) is stored beside the numbers."""
    metrics = compute_metrics(preds, n_boot=n_boot, seed=seed, rule=config.get("scoring"))
    metrics.update(extra)
    if metrics.get("references"):
        metrics["below_reference"] = below_references(metrics)
    metrics["config"] = dict(config)
    metrics = write_result(run_dir, task, metrics)
    title = f"{extra.get('model', '')} on {extra.get('data', '')}".strip()
    (Path(run_dir) / "report.md").write_text(metrics_markdown(metrics, title or "QualBench run"), encoding="utf-8")
    if plots and metrics.get("by_domain"):
        from qualbench.plotting import domain_bar_chart

        domain_bar_chart(metrics["by_domain"], Path(run_dir) / "by_domain.png", title=title,
                         overall=metrics["accuracy"])
    return metrics
