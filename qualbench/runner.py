"""The ``eval`` task: the Hydra config → dataset, retriever, prompt, model → :func:`qualbench.evaluation.evaluate`
→ run directory. This module reads the config (once, at the task boundary) and guards resume; predicting and
scoring live in :mod:`qualbench.evaluation`.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any, Sequence

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from qualbench.data import load_dataset, load_dataset_with_report
from qualbench.errors import ConfigError, ResumeRefused
from qualbench.evaluation import WHERE_ONLY, evaluate, require_model, settings_hash, write_outputs
from qualbench.models.base import Model
from qualbench.prompts.fewshot import FewShotSampler
from qualbench.prompts.render import PromptConfig
from qualbench.records import Question
from qualbench.scoring.metrics import ExamScoreRule
from qualbench.scoring.references import reference_rows

log = logging.getLogger(__name__)

# Config sections whose change makes old predictions in a run directory invalid for resume (``seed``: the
# items sampled under ``limit`` and the model's randomness). Besides these, run_state.json holds a sha256 of
# the data file(s) (and of data files named inside model/prompt, e.g. calibration or few-shot pools) and,
# when the run retrieves, of the corpus: an edited file is refused like a changed config.
RESUME_KEYS = ("data", "model", "prompt", "retriever", "corpus", "limit", "seed")
RESUME_HASHES = ("data_sha256", "corpus_sha256")
NOT_RESUME = WHERE_ONLY


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
    preds = evaluate(items, model, prompt, run_dir, int(cfg.run.batch_size), retriever, retriever_top_k(cfg),
                     ExamScoreRule.from_config(cfg.get("scoring")), fewshot,
                     log_samples=bool(cfg.run.log_samples), settings=settings_hash(cfg_plain, prompt.rag))
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
