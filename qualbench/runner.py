"""The evaluation loop: dataset → (retriever) → prompt → model → extraction → scorer → run directory.

Predictions are appended to ``predictions.jsonl`` batch by batch; re-running into the same directory
resumes (items already there are not recomputed).
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from qualbench.data import load_dataset, load_dataset_with_report
from qualbench.errors import ConfigError, ResumeRefused
from qualbench.answers import canonical_answer
from qualbench.models.base import Model, ModelError
from qualbench.predictions import PredictionWriter, read_predictions
from qualbench.prompts.fewshot import FewShotSampler
from qualbench.prompts.render import PromptConfig, render_messages
from qualbench.records import Prediction, Question, Request, Response
from qualbench.scoring import extract_answer
from qualbench.scoring.metrics import ExamScoreRule, compute_metrics, exam_score, is_correct, metrics_markdown
from qualbench.scoring.references import below_references, reference_rows

log = logging.getLogger(__name__)

# Config sections whose change makes old predictions in a run directory invalid for resume (``seed``: the
# items sampled under ``limit`` and the model's randomness). Besides these, run_state.json holds a sha256 of
# the data file(s) (and of data files named inside model/prompt, e.g. calibration or few-shot pools) and,
# when the run retrieves, of the corpus: an edited file is refused like a changed config.
RESUME_KEYS = ("data", "model", "prompt", "retriever", "corpus", "limit", "seed")
RESUME_HASHES = ("data_sha256", "corpus_sha256")
NOT_RESUME = frozenset({"cache_dir", "cache_mode", "rebuild", "show_progress"})  # where and how loud, not what


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


def retriever_top_k(cfg: DictConfig) -> int:
    """Passages per item: ``retriever.top_k`` (its one default lives in ``RetrieverConfig``); 0 without a retriever."""
    from retrievers.schema import RetrieverConfig

    if cfg.get("retriever") is None:
        return 0
    return int(cfg.retriever.get("top_k", RetrieverConfig.top_k) or 0)


def retrieval_query(item: Question) -> str:
    return item.text


def _passages(retriever: Any, cfg: DictConfig, items: Sequence[Question]) -> list[list[Any]]:
    k = retriever_top_k(cfg)
    if retriever is None or k <= 0:
        return [[] for _ in items]
    domains = [q.domain for q in items]
    return retriever.search_batch([retrieval_query(q) for q in items], domains, k=k)


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


def _strip_where(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: _strip_where(x) for k, x in v.items() if k not in NOT_RESUME}
    if isinstance(v, list):
        return [_strip_where(x) for x in v]
    return v


def data_fingerprint(data: Any) -> str | None:
    """sha256 over the names and bytes of the file(s) a data config reads (None: nothing local, e.g. the hub)."""
    if not isinstance(data, dict):
        return None
    loader, path = data.get("loader"), data.get("path")
    if loader == "sample":
        from qualbench.data.loaders import SAMPLE_DIR

        files = sorted(Path(SAMPLE_DIR).glob("*.json"))
    elif loader == "hub" or not path:
        return None
    else:
        p = Path(str(path))
        if p.is_dir():
            files = sorted(x for x in p.iterdir() if x.suffix in (".json", ".jsonl"))
        elif p.is_file():
            files = [p]
        else:
            return "missing"
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode("utf-8", "surrogateescape") + b"\0" + hashlib.sha256(f.read_bytes()).digest())
    return h.hexdigest()


def _data_nodes(v: Any, where: str) -> dict[str, Any]:
    """Data configs inside a section (``model.calibration_data``, ``prompt.fewshot_data``, ...)."""
    out: dict[str, Any] = {}
    if isinstance(v, dict):
        if "loader" in v and where:
            out[where] = v
        for k, x in v.items():
            out.update(_data_nodes(x, f"{where}.{k}" if where else k))
    return out


def _uses_retrieval(cfg: DictConfig) -> bool:
    """Whether the run will retrieve (decided as run_eval decides it, without building the model)."""
    if cfg.get("retriever") is None or cfg.get("corpus") is None:
        return False
    try:
        from hydra.utils import get_class

        cls = get_class(str(cfg.model._target_))
        needs = isinstance(cls, type) and issubclass(cls, Model) and bool(cls.needs_retriever)
    except Exception:  # noqa: BLE001 - the model build reports a bad _target_ itself
        needs = False
    return needs or (prompt_config(cfg).rag and retriever_top_k(cfg) > 0)


def resume_state(cfg: DictConfig, cfg_plain: dict[str, Any]) -> dict[str, Any]:
    """What run_state.json records: every config section and file that decides which items or answers."""
    from retrievers.corpus import corpus_hash

    keys: dict[str, Any] = {k: _strip_where(cfg_plain.get(k)) for k in RESUME_KEYS}
    hashes = {"": data_fingerprint(cfg_plain.get("data"))}
    for where, node in _data_nodes({k: cfg_plain.get(k) for k in ("model", "prompt")}, "").items():
        hashes[where] = data_fingerprint(node)
    keys["data_sha256"] = hashes[""] if len(hashes) == 1 else hashes
    keys["corpus_sha256"] = corpus_hash(cfg.corpus.path) if _uses_retrieval(cfg) else None
    return keys


def _check_resume(run_dir: Path, current: dict[str, Any]) -> None:
    """Refuse, before anything is written into ``run_dir``, to add to predictions made under another config."""
    state = run_dir / "run_state.json"
    preds = run_dir / "predictions.jsonl"
    if not preds.exists() or preds.stat().st_size == 0:
        return
    if not state.exists():
        raise ResumeRefused(f"{run_dir} holds predictions.jsonl but no run_state.json, so the config that made them "
                          "is unknown; use a new hydra.run.dir or delete predictions.jsonl")
    try:
        previous = json.loads(state.read_text(encoding="utf-8")).get("resume_keys", {})
    except (ValueError, AttributeError) as e:
        raise ResumeRefused(f"{state}: unreadable ({e}); use a new hydra.run.dir or delete predictions.jsonl") from None
    older = [k for k in current if k not in previous]
    if older:
        log.warning("%s predates the resume check of %s: not compared", state, ", ".join(older))
    changed = [k for k in current if k in previous and _strip_where(previous[k]) != current[k]]
    if changed:
        raise ResumeRefused(
            f"{run_dir} holds predictions from a different config (changed: {', '.join(changed)}); "
            "use a new hydra.run.dir or delete predictions.jsonl"
        )


def no_items_message(data_cfg: Any, report: Any) -> str:
    """Why nothing is left to evaluate: which file, how many records were read and kept, the first drop reasons."""
    where = data_cfg.get("path") or data_cfg.get("name") or "the data"
    if report.n_kept:
        return (f"no items to evaluate in {where}: {report.n_kept} of {report.n_read} record(s) kept, none left after "
                "data.domains / data.types / data.eval_split / limit")
    if not report.n_read:
        return f"no items to evaluate: {where} holds no records"
    first = report.drops[0] if report.drops else None
    detail = f"; first: {first.source}: {first.reason}" if first else ""
    return f"no items to evaluate in {where}: {report.summary()}{detail} (see dropped.csv)"


def _write_resume_state(run_dir: Path, current: dict[str, Any]) -> None:
    (run_dir / "run_state.json").write_text(json.dumps({"resume_keys": current}, ensure_ascii=False, indent=2),
                                            encoding="utf-8")


def passage_id(doc: Any) -> str:
    """A retrieved passage's chunk id (its law and article when the chunker gave none)."""
    md = getattr(doc, "metadata", None) or {}
    return str(md.get("chunk_id") or getattr(doc, "id", None) or f"{md.get('law_title', '')}{md.get('article', '')}")


def settings_hash(cfg_plain: dict[str, Any], rag: bool) -> str:
    """Short hash of what decides a response: model and prompt settings (and retriever and corpus under RAG)."""
    keys = ["model", "prompt"] + (["retriever", "corpus"] if rag else [])
    where_only = {"cache_dir", "cache_mode", "rebuild", "show_progress"}  # where and how loud, not what

    def strip(v: Any) -> Any:
        return {k: x for k, x in v.items() if k not in where_only} if isinstance(v, dict) else v

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
    cfg: DictConfig | None = None,
    fewshot: FewShotSampler | None = None,
    log_samples: bool = True,
    settings: str | None = None,
) -> list[dict[str, Any]]:
    """Run the model on every item not yet in ``run_dir/predictions.jsonl``; return all predictions.

    With ``log_samples`` each line also carries the rendered messages, the passage ids and ``settings``."""

    def row(q: Question, r: Response, req: Request) -> dict[str, Any]:
        out = to_prediction(q, r, rule).to_dict()
        if log_samples:
            out.update(sample_log(req, settings))
        return out

    rule = ExamScoreRule.from_config(cfg.get("scoring") if cfg is not None else None)  # bad rule: fail first
    pred_path = run_dir / "predictions.jsonl"
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
        passages = _passages(retriever, cfg, batch) if (prompt.rag and retriever is not None) else [[]] * len(batch)
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


def write_outputs(run_dir: Path, preds: list[dict[str, Any]], cfg_plain: dict[str, Any], extra: dict[str, Any], n_boot: int, seed: int, plots: bool = True) -> dict[str, Any]:
    """metrics.json, report.md and by_domain.png for a finished set of predictions."""
    metrics = compute_metrics(preds, n_boot=n_boot, seed=seed, rule=cfg_plain.get("scoring"))
    metrics.update(extra)
    if metrics.get("references"):
        metrics["below_reference"] = below_references(metrics)
    metrics["config"] = cfg_plain
    (run_dir / "metrics.json").write_text(json.dumps(metrics, ensure_ascii=False, indent=2), encoding="utf-8")
    title = f"{extra.get('model', '')} on {extra.get('data', '')}".strip()
    (run_dir / "report.md").write_text(metrics_markdown(metrics, title or "QualBench run"), encoding="utf-8")
    if plots and metrics.get("by_domain"):
        from qualbench.plotting import domain_bar_chart

        domain_bar_chart(metrics["by_domain"], run_dir / "by_domain.png", title=title, overall=metrics["accuracy"])
    return metrics


def fewshot_sampler(prompt: PromptConfig, items: Sequence[Question], seed: int) -> FewShotSampler | None:
    """The k-shot pool (``prompt.fewshot_data``, default the bundled sample set) minus the evaluated items."""
    if not prompt.num_fewshot:
        return None
    data = dict(prompt.fewshot_data) if prompt.fewshot_data else {"loader": "sample", "name": "sample"}
    sampler = FewShotSampler(load_dataset(data), int(prompt.num_fewshot), seed, exclude=items)
    sampler.check(items)
    if sampler.n_excluded:
        log.info("few-shot pool: %d items equal evaluated items and were removed", sampler.n_excluded)
    return sampler


def _locked(fn: Any) -> Any:
    """Hold the run directory (``qualbench.runlock``) for the whole call; a second run is refused at once."""
    import functools

    @functools.wraps(fn)
    def wrapper(cfg: DictConfig, run_dir: Path, *args: Any, **kwargs: Any) -> Any:
        from qualbench.runlock import run_dir_lock

        with run_dir_lock(run_dir):
            return fn(cfg, run_dir, *args, **kwargs)

    return wrapper


@_locked
def run_eval(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """The ``eval`` task: score ``cfg.model`` on ``cfg.data`` with ``cfg.prompt``; write the run directory."""
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    cfg_plain = resolved_config(cfg)
    state = resume_state(cfg, cfg_plain)
    _check_resume(run_dir, state)  # before anything is written: a refused resume leaves the directory as it was
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.create(cfg_plain)), encoding="utf-8")
    items, report = load_dataset_with_report(data_config(cfg), seed=cfg.get("seed", 0))
    report.write(run_dir)
    if not items:
        raise ConfigError(no_items_message(cfg.data, report))
    from qualbench.overlap import check_adapter_overlap  # a federated adapter is not scored on its training data

    check_adapter_overlap(items, cfg.model.get("adapter"), bool(cfg.data.get("allow_train_overlap", False)))
    _write_resume_state(run_dir, state)
    model = require_model(instantiate(cfg.model, _convert_="all"))
    try:
        return _run_model(cfg, run_dir, cfg_plain, items, report, model)
    finally:
        model.close()


def _run_model(cfg: DictConfig, run_dir: Path, cfg_plain: dict[str, Any], items: list[Question], report: Any,
               model: Model) -> dict[str, Any]:
    prompt = prompt_config(cfg)
    needs = model.needs_retriever or (prompt.rag and retriever_top_k(cfg) > 0)
    retriever = build_retriever(cfg) if needs else None
    fewshot = fewshot_sampler(prompt, items, int(cfg.get("seed", 0)))
    preds = evaluate(items, model, prompt, run_dir, int(cfg.run.batch_size), retriever, cfg, fewshot,
                     log_samples=bool(cfg.run.get("log_samples", True)), settings=settings_hash(cfg_plain, prompt.rag))
    extra = {
        "model": model.name,
        "data": cfg.data.get("name", "data"),
        "prompt": prompt.name,
        "cleaning": {"n_read": report.n_read, "n_kept": report.n_kept, "dropped": report.counts()},
        "uses_eval_labels": bool(model.uses_eval_labels),
        "references": reference_rows(items),  # chance and majority-per-type, from the evaluated items
    }
    if model.max_empty_share is not None:  # API backends: content null/"" is a server problem, counted and warned
        from qualbench.models.openai_compat import check_empty_completions

        extra["n_empty_completions"] = check_empty_completions(preds, model.max_empty_share, repr(model))
    extra.update(model.run_report())  # e.g. model=replay: which idx had no response, which matched no item
    metrics = write_outputs(run_dir, preds, cfg_plain, extra, int(cfg.run.n_boot), int(cfg.get("seed", 0)), bool(cfg.run.plots))
    log.info(
        "%s: accuracy %.4f [%.4f, %.4f] on %d items → %s",
        extra["model"], metrics["accuracy"], *metrics["accuracy_ci95"], metrics["n"], run_dir,
    )
    return metrics
