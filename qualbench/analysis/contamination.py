"""Contamination probe (``qualbench experiment=contamination``): the same model on the original items and on a
shuffled-option variant. A model that memorised the exam (letters rather than content) loses accuracy when the
option texts move and keeps answering the original letters; a memory-free model does neither beyond chance.

The shuffle (``qualbench.analysis.shuffling``) keeps options that refer to positions or to the other options
(以上都是, 都不是, 全部正确, "none of the above") in place, derangs the other options among their positions, and
excludes items whose options name other options by letter (A和B, 除A外) or that have fewer than two movable
options; 判断题 are unchanged. Seeded per item: the same seed and idx always give the same permutation.
``shuffle_map.jsonl`` records, per item, which original letter each new letter holds, the pinned and movable
letters, and the exclusion reason.

``letter_memory`` (answered with the original letters) is reported beside its expectation under a memory-free
model, computed from the shuffle design, with a one-sided Poisson-binomial p-value (see docs/studies.md).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from qualbench.analysis.shuffling import (
    EXCLUSION_REASONS,
    PINNED_MOVED,
    ShufflePlan,
    design_maps,
    item_rng,
    plan_map,
    plan_question,
)
from qualbench.analysis.stats import compare_groups, compare_paired
from qualbench.errors import ConfigError, DataError
from qualbench.formatting import p_value as _p, pct as _pct, signed_points as _sp
from qualbench.records import JUDGE, QUESTION_TYPES, Question
from qualbench.results import write_result
from qualbench.study_config import ContaminationStudy, study_settings

log = logging.getLogger(__name__)


def shuffle_question(q: Question, seed: int = 0) -> tuple[Question, dict[str, str], ShufflePlan]:
    """The item with its movable option texts deranged and the answer letters remapped; the map
    new letter → old letter ({} when the item is not shuffled: 判断题 or excluded) and the plan."""
    plan = plan_question(q)
    if not plan.shuffled:
        return q, {}, plan
    mapping = plan_map(q, plan, item_rng(seed, q.idx))
    options = {new: q.options[old] for new, old in mapping.items()}
    inverse = {old: new for new, old in mapping.items()}
    answer = "".join(sorted(inverse[a] for a in q.answer))
    extra = {**q.extra, "shuffle_map": mapping, "original_answer": q.answer}
    return dataclasses.replace(q, options=options, answer=answer, extra=extra), mapping, plan


def map_row(q: Question, shuffled_answer: str | None, mapping: dict[str, str] | None, plan: ShufflePlan,
            design: str) -> dict[str, Any]:
    """One ``shuffle_map.jsonl`` row."""
    return {"idx": q.idx, "question_type": q.question_type, "map": mapping, "original_answer": q.answer,
            "shuffled_answer": shuffled_answer, "pinned": list(plan.pinned), "movable": list(plan.movable),
            "excluded": plan.excluded, "design": design}


def shuffle_dataset(items: Sequence[Question], seed: int = 0
                    ) -> tuple[list[Question], list[Question], list[dict[str, Any]]]:
    """(originals kept, their shuffled copies, ``shuffle_map.jsonl`` rows for every item, excluded ones too)."""
    kept, out, maps = [], [], []
    for q in items:
        s, m, plan = shuffle_question(q, seed)
        maps.append(map_row(q, s.answer if plan.excluded is None else None, m, plan, "derangement"))
        if plan.excluded is None:
            kept.append(q)
            out.append(s)
    return kept, out, maps


def infer_map(orig: Question, shuf: Question) -> dict[str, str] | None:
    """new letter → old letter by matching option texts (None when the texts do not match one to one)."""
    if orig.question_type == JUDGE:
        return {}
    by_text = {v.strip(): k for k, v in orig.options.items()}
    m = {new: by_text.get(text.strip()) for new, text in shuf.options.items()}
    if None in m.values() or len(set(m.values())) != len(m) or len(m) != len(orig.options):
        return None
    return m  # type: ignore[return-value]


def pair_existing(originals: Sequence[Question], shuffled: Sequence[Question]
                  ) -> tuple[list[Question], list[Question], list[dict[str, Any]]]:
    """Match an existing shuffled file to the originals by idx; report items only in one of them. Items the
    plan excludes, or whose supplied shuffle moved a pinned option, are left out (their rows say why)."""
    o = {q.idx: q for q in originals}
    s = {q.idx: q for q in shuffled}
    common = [i for i in o if i in s]
    if not common:
        raise DataError("the shuffled file shares no idx with the original data: cannot pair items")
    if len(common) < len(o) or len(common) < len(s):
        log.warning("contamination: %d original and %d shuffled items; %d paired by idx", len(o), len(s), len(common))
    kept_o, kept_s, maps = [], [], []
    for i in common:
        m = infer_map(o[i], s[i])
        plan = plan_question(o[i])
        if plan.excluded is None and m and any(m.get(k) != k for k in plan.pinned):
            plan = dataclasses.replace(plan, excluded=PINNED_MOVED)
        maps.append(map_row(o[i], s[i].answer, m, plan, "permutation"))
        if plan.excluded is None:
            kept_o.append(o[i])
            kept_s.append(s[i])
    return kept_o, kept_s, maps


def write_official(items: Sequence[Question], path: Path) -> Path:
    """The items as an official-format QualBench JSON list (loadable with ``data=qualbench_json``)."""
    path.write_text(json.dumps([q.to_official() for q in items], ensure_ascii=False, indent=1), encoding="utf-8")
    return path


def write_jsonl(rows: Sequence[Mapping[str, Any]], path: Path) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


# ---------------------------------------------------------------- analysis


def letter_distribution(rows: Sequence[Mapping[str, Any]], field: str) -> Counter:
    """Letter counts over choice items (多选题 count each letter)."""
    c: Counter = Counter()
    for r in rows:
        if r.get("question_type") == JUDGE:
            continue
        v = str(r.get(field) or "")
        if v.isascii() and v.isalpha():
            c.update(v.upper())
    return c


def position_bias(orig: Sequence[Mapping[str, Any]], shuf: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per letter: share among gold answers and among predictions, for both variants."""
    dists = {
        "gold_original": letter_distribution(orig, "answer"),
        "pred_original": letter_distribution(orig, "prediction"),
        "gold_shuffled": letter_distribution(shuf, "answer"),
        "pred_shuffled": letter_distribution(shuf, "prediction"),
    }
    letters = sorted(set().union(*dists.values()))
    tot = {k: sum(v.values()) or 1 for k, v in dists.items()}
    return [{"letter": L, **{k: dists[k][L] / tot[k] for k in dists}, **{f"n_{k}": dists[k][L] for k in dists}}
            for L in letters]


def _letter_set(x: Any) -> frozenset[str] | None:
    v = str(x or "").strip().upper()
    return frozenset(v) if v and v.isascii() and v.isalpha() else None


_DESIGN_CACHE: dict[tuple[tuple[str, ...], tuple[str, ...], str], list[dict[str, str]]] = {}


def _design(letters: Sequence[str], movable: Sequence[str], design: str) -> list[dict[str, str]]:
    key = (tuple(letters), tuple(movable), design)
    if key not in _DESIGN_CACHE:
        _DESIGN_CACHE[key] = design_maps(letters, movable, design)
    return _DESIGN_CACHE[key]


def counts_for_letter_memory(row: Mapping[str, Any]) -> bool:
    """A shuffled choice item whose answer letters moved (only there can "the original letters" be a memory)."""
    m = row.get("map")
    if not m or row.get("excluded") or row.get("question_type") == JUDGE:
        return False
    return _letter_set(row.get("shuffled_answer")) != _letter_set(row.get("original_answer"))


def expected_original_letter(prediction: Any, row: Mapping[str, Any]) -> tuple[bool, float]:
    """(observed, expected) for one item that ``counts_for_letter_memory``: observed is whether ``prediction``
    (letters on the shuffled item) equals the original answer letters; expected is the probability of that for a
    memory-free model that picks the same option *texts* whatever their arrangement, over the shuffles the design
    can draw that move the answer. An unparsable prediction or one outside the options: (False, 0.0)."""
    mapping: Mapping[str, str] = row["map"]
    gold = _letter_set(row["original_answer"]) or frozenset()
    pred = _letter_set(prediction)
    if pred is None or not pred <= set(mapping):
        return False, 0.0
    observed = pred == gold
    contents = {mapping[p] for p in pred}  # original letters of the chosen texts
    letters = list(mapping)
    movable = row.get("movable") or [k for k in letters if k not in set(row.get("pinned") or [])]
    moved = hits = 0
    for sigma in _design(letters, movable, str(row.get("design") or "derangement")):
        if frozenset(n for n in letters if sigma[n] in gold) == gold:
            continue  # this shuffle would not have moved the answer
        moved += 1
        hits += frozenset(n for n in letters if sigma[n] in contents) == gold
    return observed, (hits / moved if moved else 0.0)


def poisson_binomial_sf(k: int, probs: Sequence[float]) -> float:
    """P(X ≥ k) for X a sum of independent Bernoulli(p_i) (exact, by convolution)."""
    if k <= 0:
        return 1.0
    pmf = np.ones(1)
    for p in probs:
        pmf = np.convolve(pmf, [1.0 - p, p])
    return float(min(1.0, max(0.0, pmf[k:].sum())))


def _memory_summary(obs: Sequence[bool], exp: Sequence[float], invalid: int) -> dict[str, Any]:
    n, hits, e = len(obs), int(sum(obs)), float(sum(exp))
    nan = float("nan")
    return {"n": n, "original_letter_answers": hits, "rate": hits / n if n else nan,
            "expected": e, "expected_rate": e / n if n else nan,
            "p_value": poisson_binomial_sf(hits, exp) if n else nan, "unparsed_predictions": invalid}


def letter_memory(shuf: Sequence[Mapping[str, Any]], maps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """On shuffled choice items whose answer letters moved: how often the model still answers the *original*
    letters (which now hold other texts), beside the count expected of a memory-free model and the one-sided
    p-value of seeing at least that many (Poisson-binomial over the items); overall and per type."""
    groups: dict[str, list[tuple[bool, float, bool]]] = {}
    for r in shuf:
        m = maps.get(str(r["idx"]))
        if not m or not counts_for_letter_memory(m):
            continue
        o, e = expected_original_letter(r.get("prediction"), m)
        unparsed = _letter_set(r.get("prediction")) is None
        for key in ("all", str(m.get("question_type"))):
            groups.setdefault(key, []).append((o, e, unparsed))

    def summary(g: list[tuple[bool, float, bool]]) -> dict[str, Any]:
        return _memory_summary([x[0] for x in g], [x[1] for x in g], sum(x[2] for x in g))

    out = summary(groups.get("all", []))
    out["by_type"] = {t: summary(groups[t]) for t in QUESTION_TYPES if t in groups}
    return out


def plan_counts(maps: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How many items were shuffled, had pinned options, were left unchanged (判断题) or excluded (by reason)."""
    kept = [m for m in maps if not m.get("excluded")]
    choice = [m for m in kept if m.get("question_type") != JUDGE]
    excluded = Counter(str(m["excluded"]) for m in maps if m.get("excluded"))
    return {
        "items": len(maps),
        "shuffled": len(choice),
        "judge_unchanged": len(kept) - len(choice),
        "with_pinned": sum(1 for m in choice if m.get("pinned")),
        "pinned_options": sum(len(m.get("pinned") or []) for m in choice),
        "excluded": sum(excluded.values()),
        "excluded_by_reason": {r: excluded.get(r, 0) for r in EXCLUSION_REASONS},
        "excluded_idx": [str(m["idx"]) for m in maps if m.get("excluded")],
    }


def analyse(
    orig_rows: Sequence[Mapping[str, Any]],
    shuf_rows: Sequence[Mapping[str, Any]],
    maps: Sequence[Mapping[str, Any]],
    *,
    n_boot: int,
    seed: int,
) -> dict[str, Any]:
    """Paired accuracy change (shuffled − original) overall, on the shuffled choice items, per domain and per
    type; position bias; letter memory against its expectation; the shuffle plan's counts."""
    o = {str(r["idx"]): r for r in orig_rows}
    s = {str(r["idx"]): r for r in shuf_rows}
    ids = sorted(set(o) & set(s))
    if not ids:
        raise DataError("the original and shuffled runs share no items")
    a = np.array([float(bool(o[i]["correct"])) for i in ids])
    b = np.array([float(bool(s[i]["correct"])) for i in ids])
    dom = [str(o[i]["domain"]) for i in ids]
    typ = [str(o[i]["question_type"]) for i in ids]
    by_dom = compare_groups(a, b, dom, n_boot=n_boot, seed=seed)
    by_typ = compare_groups(a, b, typ, n_boot=n_boot, seed=seed)
    overall = by_dom.pop("all")
    by_typ.pop("all")
    choice = np.array([t != JUDGE for t in typ])
    mp = {str(m["idx"]): m for m in maps}
    return {
        "n": len(ids),
        "only_original": len(set(o) - set(s)),
        "only_shuffled": len(set(s) - set(o)),
        "overall": overall.to_dict(),
        "shuffled_items": compare_paired(a[choice], b[choice], n_boot=n_boot, seed=seed).to_dict(),
        "by_domain": {k: v.to_dict() for k, v in by_dom.items()},
        "by_type": {k: v.to_dict() for k in QUESTION_TYPES for kk, v in by_typ.items() if kk == k},
        "position_bias": position_bias([o[i] for i in ids], [s[i] for i in ids]),
        "letter_memory": letter_memory([s[i] for i in ids], mp),
        "shuffle_plan": plan_counts(maps),
        "unmapped_items": sum(1 for m in maps if m.get("map") is None and not m.get("excluded")),
    }


def to_markdown(res: Mapping[str, Any]) -> str:
    o = res["overall"]
    L = ["# Contamination probe: original vs shuffled options", ""]
    L.append(
        f"{res['n']} paired items. Δ = shuffled − original accuracy in points, 95% paired-bootstrap CI; "
        "p: McNemar exact (per group: Holm-adjusted across the groups of the table)."
    )
    L += ["", "| group | n | acc original | acc shuffled | Δ | Δ 95% CI | p (McNemar) | p (Holm) | p (bootstrap) |",
          "|---|---|---|---|---|---|---|---|---|"]

    def row(name: str, c: Mapping[str, Any]) -> str:
        return (f"| {name} | {c['n']} | {_pct(c['acc_a'])} | {_pct(c['acc_b'])} | {_sp(c['delta'])} | "
                f"[{_sp(c['ci_low'])}, {_sp(c['ci_high'])}] | {_p(c['p_mcnemar'])} | {_p(c.get('p_holm'))} | "
                f"{_p(c['p_bootstrap'])} |")

    L.append(row("**all**", o))
    if res.get("shuffled_items"):
        L.append(row("**shuffled choice items**", res["shuffled_items"]))
    for k, c in res["by_domain"].items():
        L.append(row(k, c))
    for k, c in res["by_type"].items():
        L.append(row(k, c))
    sp = res.get("shuffle_plan")
    if sp:
        why = sp["excluded_by_reason"]
        L += ["", "## Shuffle", "",
              f"- {sp['items']} items loaded: {sp['shuffled']} choice items shuffled, {sp['judge_unchanged']} 判断题 "
              f"unchanged, {sp['excluded']} excluded ({why.get('letter_reference', 0)} with an option naming other "
              f"options by letter, {why.get('fewer_than_2_movable', 0)} with fewer than 2 movable options, "
              f"{why.get('pinned_option_moved', 0)} whose supplied shuffle moved a pinned option).",
              f"- {sp['with_pinned']} shuffled items have pinned options ({sp['pinned_options']} options such as "
              "以上都是 / 都不是 kept at their letters); the other options are deranged among the remaining letters."]
    lm = res["letter_memory"]
    L += ["", "## Letter memory (shuffled choice items whose answer letters moved)", "",
          "Observed: answered with the *original* letters (now holding other texts). Expected: the same count for a "
          "memory-free model that picks the same option texts whatever their arrangement, from the shuffle design; "
          "p: one-sided Poisson-binomial P(at least the observed count).", "",
          "| items | n | observed | observed % | expected | expected % | p |", "|---|---|---|---|---|---|---|"]

    def mrow(name: str, m: Mapping[str, Any]) -> str:
        return (f"| {name} | {m['n']} | {m['original_letter_answers']} | {_pct(m['rate'])} | {m['expected']:.1f} | "
                f"{_pct(m['expected_rate'])} | {_p(m['p_value'])} |")

    L.append(mrow("**all**", lm))
    for t, m in (lm.get("by_type") or {}).items():
        L.append(mrow(t, m))
    L += ["", "## Position bias (choice items; share of letters in %)", "",
          "| letter | gold original | predicted original | gold shuffled | predicted shuffled |", "|---|---|---|---|---|"]
    for r in res["position_bias"]:
        L.append(f"| {r['letter']} | {_pct(r['gold_original'])} | {_pct(r['pred_original'])} | "
                 f"{_pct(r['gold_shuffled'])} | {_pct(r['pred_shuffled'])} |")
    if res.get("unmapped_items"):
        L += ["", f"- {res['unmapped_items']} item(s) of the shuffled file could not be mapped to the original "
              "options by text (see shuffle_map.jsonl)."]
    return "\n".join(L) + "\n"


def write_outputs(res: Mapping[str, Any], out: Path) -> None:
    write_result(out, "contamination", res)
    (out / "contamination.md").write_text(to_markdown(res), encoding="utf-8")
    with (out / "contamination.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["group_kind", "group", "n", "acc_original", "acc_shuffled", "delta", "ci_low", "ci_high",
                    "p_mcnemar", "p_holm", "p_bootstrap"])
        rows = [("all", "all", res["overall"])]
        if res.get("shuffled_items"):
            rows.append(("shuffled", "choice", res["shuffled_items"]))
        rows += [("domain", k, v) for k, v in res["by_domain"].items()]
        rows += [("type", k, v) for k, v in res["by_type"].items()]
        for kind, g, c in rows:
            w.writerow([kind, g, c["n"], c["acc_a"], c["acc_b"], c["delta"], c["ci_low"], c["ci_high"],
                        c["p_mcnemar"], c.get("p_holm"), c["p_bootstrap"]])
    from qualbench.plotting import grouped_bars

    groups = ["all"] + list(res["by_domain"]) + list(res["by_type"])
    cs = [res["overall"]] + list(res["by_domain"].values()) + list(res["by_type"].values())
    series = {"original": [(c["acc_a"],) * 3 for c in cs], "shuffled": [(c["acc_b"],) * 3 for c in cs]}
    grouped_bars(groups, series, out / "contamination.png", title="Accuracy: original vs shuffled options")


# ---------------------------------------------------------------- the task


def _variant_cfg(cfg: DictConfig, path: Path, name: str) -> DictConfig:
    """``cfg`` evaluating exactly the items in ``path`` (filters/limits were applied when it was written)."""
    plain = OmegaConf.to_container(cfg, resolve=True)
    data = dict(plain.get("data") or {})
    data.update({"loader": "qualbench_json", "path": str(path), "name": name, "domains": [], "types": [],
                 "limit": None, "eval_split": None})
    plain.update({"data": data, "limit": None, "task": "eval"})
    return OmegaConf.create(plain)


def run_contamination(cfg: DictConfig, run_dir: Path) -> dict[str, Any]:
    """Task ``contamination``: write original.json / shuffled.json / shuffle_map.jsonl, evaluate the model on
    both (sub-dirs ``original/`` and ``shuffled/``, resumable) and write contamination.{json,md,csv,png}."""
    from qualbench.data import load_dataset
    from qualbench.runner import data_config, run_eval

    study = study_settings(cfg, ContaminationStudy)
    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    items = load_dataset(data_config(cfg), seed=cfg.seed)
    if not items:
        raise ConfigError("no items to probe after loading and filtering (check data.path, domains, types)")
    shuffled_path = study.shuffled_path
    if shuffled_path:
        shuf_items = load_dataset({"loader": "auto", "path": str(shuffled_path), "dedupe": False})
        items, shuf_items, maps = pair_existing(items, shuf_items)
        log.info("contamination: %d items paired with %s", len(items), shuffled_path)
    else:
        items, shuf_items, maps = shuffle_dataset(items, study.shuffle_seed)
    sp = plan_counts(maps)
    log.info("contamination: %d choice items shuffled (%d with pinned options), %d 判断题 unchanged, %d excluded %s",
             sp["shuffled"], sp["with_pinned"], sp["judge_unchanged"], sp["excluded"], sp["excluded_by_reason"])
    if not items:
        raise ConfigError("every loaded item was excluded from the shuffle (see shuffle_map.jsonl)")
    name = cfg.data.name
    orig_file = write_official(items, run_dir / "original.json")
    shuf_file = write_official(shuf_items, run_dir / "shuffled.json")
    write_jsonl(maps, run_dir / "shuffle_map.jsonl")
    log.info("contamination: wrote %s, %s and shuffle_map.jsonl", orig_file, shuf_file)
    m_orig = run_eval(_variant_cfg(cfg, orig_file, f"{name}-original"), run_dir / "original")
    m_shuf = run_eval(_variant_cfg(cfg, shuf_file, f"{name}-shuffled"), run_dir / "shuffled")
    from qualbench.predictions import read_predictions

    res = analyse(
        read_predictions(run_dir / "original" / "predictions.jsonl"),
        read_predictions(run_dir / "shuffled" / "predictions.jsonl"),
        maps,
        n_boot=cfg.run.n_boot,
        seed=cfg.seed,
    )
    res["shuffle_seed"] = study.shuffle_seed
    res["shuffled_source"] = str(shuffled_path) if shuffled_path else "generated"
    write_outputs(res, run_dir)
    lm = res["letter_memory"]
    log.info("contamination: accuracy %.4f (original) → %.4f (shuffled), Δ %+.4f, McNemar p %.3g; original letters "
             "%d of %d (expected %.1f, p %.3g) → %s", m_orig["accuracy"], m_shuf["accuracy"], res["overall"]["delta"],
             res["overall"]["p_mcnemar"], lm["original_letter_answers"], lm["n"], lm["expected"], lm["p_value"],
             run_dir / "contamination.md")
    return {"accuracy": m_shuf["accuracy"], "accuracy_original": m_orig["accuracy"],
            "delta": res["overall"]["delta"], "p_mcnemar": res["overall"]["p_mcnemar"],
            "letter_memory_rate": lm["rate"], "letter_memory_expected_rate": lm["expected_rate"],
            "letter_memory_p": lm["p_value"], "excluded": res["shuffle_plan"]["excluded"]}
