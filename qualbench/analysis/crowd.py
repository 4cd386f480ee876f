"""Crowdsourcing study: aggregate several models' answers to the same items (``qualbench experiment=crowd``).

Methods (all scored on the items *outside* the calibration split, except the labelled leaky variant):

* ``majority_vote`` — one model, one vote.
* ``weighted_vote`` — each model's vote weighs its accuracy on the calibration split (disjoint from scored items).
* ``weighted_vote_in_sample (leaky)`` — the paper's variant: weights are accuracies on the scored items themselves.
* ``dawid_skene``, ``glad``, ``mace`` — crowd-kit's unsupervised aggregators (they never see gold answers),
  fitted separately on 单选题 (letters), 判断题 (正确/错误) and the per-letter tasks of 多选题.
* ``best_single`` — the model most accurate on the calibration split.
* ``oracle`` — an item counts as right when any model got it right (upper bound of any selector).

The vote rules (ties, 多选题) and the crowd-kit fits are in ``qualbench.analysis.voting``; this module aligns the
runs, splits calibration from scored items, scores every method and writes the outputs. Its ``study`` keys and
their defaults: ``CrowdStudy`` (``qualbench/study_config.py``).
"""

from __future__ import annotations

import csv
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig

from qualbench.analysis.runs import RunInfo, load_runs
from qualbench.analysis.stats import bootstrap_mean_ci, compare_groups, group_order
from qualbench.analysis.voting import CROWDKIT_METHODS, MULTI_STRATEGY, TIE_RULE, crowdkit_labels, ranking, vote_items
from qualbench.answers import AnswerError, canonical_answer, canonical_type, guess_type
from qualbench.errors import ConfigError, DataError
from qualbench.formatting import MISSING_MARK, p_value as _p, pct as _pct, signed_points as _sp
from qualbench.records import QUESTION_TYPES
from qualbench.results import write_result
from qualbench.study_config import CrowdStudy, study_settings

log = logging.getLogger(__name__)

LEAKY = "weighted_vote_in_sample (leaky)"


def canon(label: Any, question_type: str | None = None) -> str:
    """Canonical label (:func:`qualbench.answers.canonical_answer`): letters sorted and de-duplicated ("CA" → "AC"),
    对/√ → 正确, "" for none or unreadable. Without ``question_type`` the type is guessed from the label."""
    return canonical_answer(label, question_type or guess_type(label))


# ---------------------------------------------------------------- the item × model table


@dataclass
class CrowdTable:
    """Items aligned across models: ``labels[i][j]`` is model j's canonical answer to item i ("" = none)."""

    idx: list[str]
    domain: list[str]
    qtype: list[str]
    gold: list[str]
    workers: list[str]
    labels: list[list[str]]
    correct: np.ndarray  # [item, worker] 0/1 as scored by each run
    missing: dict[str, list[str]] = field(default_factory=dict)  # worker → ids it lacks that others have

    def rows(self, ids: set[str]) -> np.ndarray:
        return np.array([i for i, x in enumerate(self.idx) if x in ids], dtype=int)


def build_table(runs: list[RunInfo]) -> CrowdTable:
    """Align the runs' predictions by idx (items missing in some run are left out and reported)."""
    if len(runs) < 2:
        raise ConfigError(f"the crowd study needs at least 2 runs, got {len(runs)}")
    from qualbench.report.labels import model_labels

    labels = model_labels(runs)  # the models' own names (metrics.json "model"), settings where those collide
    maps = [r.correctness() for r in runs]
    ids_all = set().union(*map(set, maps))
    common = sorted(set.intersection(*map(set, maps)))
    missing = {lab: sorted(ids_all - set(m)) for lab, m in zip(labels, maps) if ids_all - set(m)}
    if not common:
        raise DataError("the runs share no items (align by idx): " + ", ".join(str(r.path) for r in runs))
    for lab, ids in missing.items():
        log.warning("crowd: %s lacks %d item(s) the others have (e.g. %s); they are left out", lab, len(ids), ids[:3])
    dom, typ, gold, lab_rows, cor = [], [], [], [], []
    for i in common:
        first = maps[0][i]
        try:
            qtype = canonical_type(first.get("question_type", ""))
        except AnswerError as e:
            raise DataError(f"{runs[0].path / 'predictions.jsonl'}: item {i}: {e}") from None
        g = canon(first.get("answer"), qtype)
        if not g:
            raise DataError(f"{runs[0].path / 'predictions.jsonl'}: item {i} has no readable gold answer "
                            f"{first.get('answer')!r} for a {qtype}")
        for r, m in zip(runs, maps):
            if canon(m[i].get("answer"), qtype) != g:
                raise DataError(
                    f"{r.path / 'predictions.jsonl'}: item {i} has gold answer {m[i].get('answer')!r} but "
                    f"{runs[0].path / 'predictions.jsonl'} has {first.get('answer')!r}: not the same dataset"
                )
        dom.append(str(first.get("domain", "")))
        typ.append(qtype)
        gold.append(g)
        lab_rows.append([canon(m[i].get("prediction"), qtype) if not m[i].get("skipped") else "" for m in maps])
        cor.append([float(bool(m[i].get("correct"))) for m in maps])
    return CrowdTable(common, dom, typ, gold, labels, lab_rows, np.array(cor), missing)


def calibration_split(
    idx: Sequence[str], strata: Sequence[str], fraction: float, seed: int
) -> set[str]:
    """A seeded, stratified (by domain × type) choice of ``fraction`` of the items for calibration."""
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"study.calibration_fraction must be in (0, 1), got {fraction}")
    rng = np.random.default_rng(seed)
    by: dict[str, list[str]] = defaultdict(list)
    for i, s in zip(idx, strata):
        by[s].append(i)
    cal: set[str] = set()
    for s in sorted(by):
        ids = sorted(by[s])
        k = int(round(fraction * len(ids)))
        cal.update(np.asarray(ids, dtype=object)[rng.permutation(len(ids))[:k]].tolist())
    return cal


def worker_accuracy(table: CrowdTable, rows: np.ndarray) -> np.ndarray:
    """Each model's accuracy on the given rows (abstains count as wrong)."""
    if rows.size == 0:
        raise ConfigError("the calibration split is empty: raise study.calibration_fraction or use more items")
    return table.correct[rows].mean(axis=0)


# ---------------------------------------------------------------- the study


def summarize(correct: np.ndarray, domain: Sequence[str], qtype: Sequence[str], n_boot: int, seed: int) -> dict:
    """Accuracy with bootstrap CI overall, per domain and per type."""

    def one(m: np.ndarray) -> dict[str, Any]:
        acc, lo, hi = bootstrap_mean_ci(correct[m], n_boot=n_boot, seed=seed)
        return {"n": int(m.sum()), "accuracy": acc, "ci95": [lo, hi]}

    d = np.asarray(domain, dtype=object)
    t = np.asarray(qtype, dtype=object)
    res = one(np.ones(len(correct), dtype=bool))
    res["by_domain"] = {k: one(d == k) for k in group_order(d.tolist())}
    res["by_type"] = {k: one(t == k) for k in QUESTION_TYPES if (t == k).any()}
    return res


def crowd_study(
    runs: list[RunInfo], *, calibration_fraction: float, seed: int, n_boot: int, methods: Sequence[str]
) -> dict[str, Any]:
    """Run every aggregation method (``methods``: the crowd-kit ones); returns the ``crowd.json`` structure."""
    table = build_table(runs)
    strata = [f"{d}|{t}" for d, t in zip(table.domain, table.qtype)]
    cal_ids = calibration_split(table.idx, strata, calibration_fraction, seed)
    cal = table.rows(cal_ids)
    scored = table.rows(set(table.idx) - cal_ids)
    if scored.size == 0:
        raise ConfigError("no items left to score after the calibration split: lower study.calibration_fraction")
    acc_cal = worker_accuracy(table, cal)
    rank = ranking(acc_cal, table.workers)
    acc_in = table.correct[scored].mean(axis=0)
    rank_in = ranking(acc_in, table.workers)
    gold = np.asarray(table.gold, dtype=object)[scored]

    def right(labels: Sequence[str]) -> np.ndarray:
        return (np.asarray(labels, dtype=object) == gold).astype(float)

    correct: dict[str, np.ndarray] = {}
    notes: dict[str, str] = {}
    labels = [table.labels[i] for i in scored]
    qtypes = [table.qtype[i] for i in scored]
    correct["majority_vote"] = right(vote_items(labels, qtypes, None, rank))
    correct["weighted_vote"] = right(vote_items(labels, qtypes, acc_cal.tolist(), rank))
    correct[LEAKY] = right(vote_items(labels, qtypes, acc_in.tolist(), rank_in))
    notes[LEAKY] = "weights estimated on the scored items themselves (as in the paper): optimistic"
    for m in methods:
        try:
            lab = crowdkit_labels(table.idx, table.qtype, table.workers, table.labels, m)
        except Exception as e:  # noqa: BLE001 - report and go on with the other methods
            log.error("crowd: crowd-kit %s failed (%s: %s); it is left out of the results", m, type(e).__name__, e)
            notes[m] = f"FAILED: {type(e).__name__}: {e}"
            continue
        correct[m] = right([lab[table.idx[i]] for i in scored])
    best = rank[0]
    correct["best_single"] = table.correct[scored, best]
    notes["best_single"] = f"{table.workers[best]} (calibration accuracy {acc_cal[best]:.3f})"
    correct["oracle"] = table.correct[scored].max(axis=1)
    notes["oracle"] = "right when any model is right (upper bound)"

    dom = [table.domain[i] for i in scored]
    results: dict[str, Any] = {}
    for name, c in correct.items():
        res = summarize(c, dom, qtypes, n_boot, seed)
        if name != "best_single":
            cmp = compare_groups(correct["best_single"], c, dom, n_boot=n_boot, seed=seed)
            res["vs_best_single"] = {k: v.to_dict() for k, v in cmp.items()}
        if name in notes:
            res["note"] = notes[name]
        results[name] = res
    return {
        "n_items": len(table.idx),
        "n_calibration": int(cal.size),
        "n_scored": int(scored.size),
        "calibration_fraction": calibration_fraction,
        "seed": seed,
        "tie_rule": TIE_RULE,
        "multi_strategy": MULTI_STRATEGY,
        "missing": table.missing,
        "workers": {
            w: {
                "path": str(r.path),
                "calibration_accuracy": float(acc_cal[j]),
                "scored_accuracy": float(acc_in[j]),
            }
            for j, (w, r) in enumerate(zip(table.workers, runs))
        },
        "failed": {k: v for k, v in notes.items() if v.startswith("FAILED")},
        "methods": results,
    }


# ---------------------------------------------------------------- outputs


def _ci(ci: Sequence[float]) -> str:
    return f"[{_pct(ci[0])}, {_pct(ci[1])}]"


def write_csv(res: Mapping[str, Any], path: Path) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["method", "group_kind", "group", "n", "accuracy", "ci_low", "ci_high"])
        for m, r in res["methods"].items():
            w.writerow([m, "all", "all", r["n"], r["accuracy"], *r["ci95"]])
            for kind in ("by_domain", "by_type"):
                for g, s in r[kind].items():
                    w.writerow([m, kind[3:], g, s["n"], s["accuracy"], *s["ci95"]])


def to_markdown(res: Mapping[str, Any]) -> str:
    meth = res["methods"]
    L = ["# Crowdsourcing study", ""]
    L.append(
        f"{res['n_items']} items aligned across {len(res['workers'])} models; {res['n_calibration']} for calibration "
        f"(seeded stratified split, fraction {res['calibration_fraction']}, seed {res['seed']}), "
        f"**{res['n_scored']} scored**. Accuracy in %, 95% bootstrap CI."
    )
    L += ["", f"- Tie rule: {res['tie_rule']}.", f"- 多选题: {res['multi_strategy']}."]
    for w, ids in res["missing"].items():
        L.append(f"- {w} lacks {len(ids)} item(s) the others have (left out), e.g. {', '.join(ids[:5])}.")
    for m, err in res["failed"].items():
        L.append(f"- {m}: {err} — left out.")
    L += ["", "## Models", "", "| model | calibration acc | scored acc |", "|---|---|---|"]
    for w, s in res["workers"].items():
        L.append(f"| {w} | {_pct(s['calibration_accuracy'])} | {_pct(s['scored_accuracy'])} |")
    L += ["", "## Methods vs the best single model", ""]
    L += ["| method | acc | 95% CI | Δ vs best single | Δ 95% CI | p (bootstrap) | p (McNemar) | note |"]
    L += ["|---|---|---|---|---|---|---|---|"]
    for m, r in meth.items():
        c = r.get("vs_best_single", {}).get("all")
        d = (_sp(c["delta"]), f"[{_sp(c['ci_low'])}, {_sp(c['ci_high'])}]", _p(c["p_bootstrap"]), _p(c["p_mcnemar"])) if c else (MISSING_MARK,) * 4
        L.append(f"| {m} | {_pct(r['accuracy'])} | {_ci(r['ci95'])} | {' | '.join(d)} | {r.get('note', '')} |")
    for kind, title in (("by_domain", "Per domain"), ("by_type", "Per type")):
        groups = list(next(iter(meth.values()))[kind])
        L += ["", f"## {title} (acc % [95% CI])", "", "| method | " + " | ".join(groups) + " |"]
        L.append("|---|" + "---|" * len(groups))
        for m, r in meth.items():
            cells = [f"{_pct(r[kind][g]['accuracy'])} {_ci(r[kind][g]['ci95'])}" for g in groups]
            L.append(f"| {m} | " + " | ".join(cells) + " |")
    groups = list(next(iter(meth.values()))["by_domain"])
    L += ["", "## Per domain: Δ vs best single (p McNemar, Holm-adjusted across domains)", ""]
    L += ["| method | " + " | ".join(groups) + " |", "|---|" + "---|" * len(groups)]
    for m, r in meth.items():
        v = r.get("vs_best_single")
        if not v:
            continue
        cells = [f"{_sp(v[g]['delta'])} [{_sp(v[g]['ci_low'])}, {_sp(v[g]['ci_high'])}] p={_p(v[g]['p_holm'])}" for g in groups]
        L.append(f"| {m} | " + " | ".join(cells) + " |")
    return "\n".join(L) + "\n"


def plot(res: Mapping[str, Any], path: Path) -> Path:
    from qualbench.plotting import grouped_bars

    meth = res["methods"]
    groups = ["all"] + list(next(iter(meth.values()))["by_domain"])
    series = {}
    for m, r in meth.items():
        vals = [r] + [r["by_domain"][g] for g in groups[1:]]
        series[m] = [(v["accuracy"], v["ci95"][0], v["ci95"][1]) for v in vals]
    return grouped_bars(groups, series, path, title=f"Crowd aggregation ({res['n_scored']} scored items)")


def write_outputs(res: Mapping[str, Any], out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    write_result(out_dir, "crowd", res)
    (out_dir / "crowd.md").write_text(to_markdown(res), encoding="utf-8")
    write_csv(res, out_dir / "crowd.csv")
    plot(res, out_dir / "crowd.png")


def run_crowd(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Task ``crowd``: ``study.runs`` (run dirs or sweep roots) → crowd.json / .md / .csv / .png in run_dir."""
    study = study_settings(cfg, CrowdStudy)
    if not study.runs:
        raise ConfigError("experiment=crowd needs study.runs=[DIR,...]: run directories of models on the same items")
    unknown = [m for m in study.methods if m not in CROWDKIT_METHODS]
    if unknown:
        raise ConfigError(f"study.methods: unknown {', '.join(map(repr, unknown))} "
                          f"(choose from {', '.join(CROWDKIT_METHODS)})")
    runs = load_runs(study.runs)
    log.info("crowd: %d runs from %s", len(runs), study.runs)
    res = crowd_study(runs, calibration_fraction=study.calibration_fraction, seed=study.seed, n_boot=cfg.run.n_boot,
                      methods=study.methods)
    run_dir = Path(run_dir)
    write_outputs(res, run_dir)
    log.info("crowd: wrote %s", run_dir / "crowd.md")
    best = max((k for k in res["methods"] if k not in ("oracle", LEAKY)), key=lambda k: res["methods"][k]["accuracy"])
    return {"accuracy": res["methods"]["majority_vote"]["accuracy"], "best_method": best, "n_scored": res["n_scored"]}
