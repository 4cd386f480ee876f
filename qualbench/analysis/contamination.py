"""Contamination probe (``qualbench experiment=contamination``): the same model on the original items and on a
shuffled-option variant. A model that memorised the exam (letters rather than content) loses accuracy when the
option texts move; a paired McNemar test per domain and type tells whether the drop is more than chance.

Shuffling is seeded per item (the same seed and idx always give the same permutation), never the identity for
items with two or more options; 判断题 are unchanged. ``shuffle_map.jsonl`` records, per item, which original
letter each new letter holds.
"""

from __future__ import annotations

import csv
import dataclasses
import hashlib
import json
import logging
import random
from collections import Counter
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
from omegaconf import DictConfig, OmegaConf

from qualbench.analysis.stats import compare_groups
from qualbench.errors import ConfigError, DataError
from qualbench.records import JUDGE, QUESTION_TYPES, Question

log = logging.getLogger(__name__)


def _rng(seed: int, idx: str) -> random.Random:
    h = hashlib.sha256(f"shuffle|{seed}|{idx}".encode()).hexdigest()
    return random.Random(int(h[:16], 16))


def shuffle_question(q: Question, seed: int = 0) -> tuple[Question, dict[str, str]]:
    """The item with its option texts permuted and the answer letters remapped; mapping new letter → old."""
    if q.question_type == JUDGE or len(q.options) < 2:
        return q, {}
    letters = list(q.options)
    rng = _rng(seed, q.idx)
    perm = letters[:]
    while perm == letters:
        rng.shuffle(perm)
    mapping = dict(zip(letters, perm))  # new letter → the old letter whose text it now shows
    options = {new: q.options[old] for new, old in mapping.items()}
    inverse = {old: new for new, old in mapping.items()}
    answer = "".join(sorted(inverse[a] for a in q.answer))
    extra = {**q.extra, "shuffle_map": mapping, "original_answer": q.answer}
    return dataclasses.replace(q, options=options, answer=answer, extra=extra), mapping


def shuffle_dataset(items: Sequence[Question], seed: int = 0) -> tuple[list[Question], list[dict[str, Any]]]:
    """Shuffled copies of all items and their ``shuffle_map.jsonl`` rows."""
    out, maps = [], []
    for q in items:
        s, m = shuffle_question(q, seed)
        out.append(s)
        maps.append({"idx": q.idx, "question_type": q.question_type, "map": m, "original_answer": q.answer,
                     "shuffled_answer": s.answer})
    return out, maps


def infer_map(orig: Question, shuf: Question) -> dict[str, str] | None:
    """new letter → old letter by matching option texts (None when the texts do not match one to one)."""
    if orig.question_type == JUDGE:
        return {}
    by_text = {v.strip(): k for k, v in orig.options.items()}
    m = {new: by_text.get(text.strip()) for new, text in shuf.options.items()}
    if None in m.values() or len(set(m.values())) != len(m) or len(m) != len(orig.options):
        return None
    return m  # type: ignore[return-value]


def pair_existing(originals: Sequence[Question], shuffled: Sequence[Question]) -> tuple[list[Question], list[Question], list[dict[str, Any]]]:
    """Match an existing shuffled file to the originals by idx; report items only in one of them."""
    o = {q.idx: q for q in originals}
    s = {q.idx: q for q in shuffled}
    common = [i for i in o if i in s]
    if not common:
        raise DataError("the shuffled file shares no idx with the original data: cannot pair items")
    if len(common) < len(o) or len(common) < len(s):
        log.warning("contamination: %d original and %d shuffled items; %d paired by idx", len(o), len(s), len(common))
    maps = []
    for i in common:
        m = infer_map(o[i], s[i])
        maps.append({"idx": i, "question_type": o[i].question_type, "map": m, "original_answer": o[i].answer,
                     "shuffled_answer": s[i].answer})
    return [o[i] for i in common], [s[i] for i in common], maps


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


def letter_memory(shuf: Sequence[Mapping[str, Any]], maps: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """On shuffled choice items whose answer letters moved: how often the model still answers the *original*
    letters (which now hold other texts) — a sign of memorised answer keys."""
    n = hits = 0
    for r in shuf:
        m = maps.get(str(r["idx"]))
        if not m or r.get("question_type") == JUDGE or m["original_answer"] == m["shuffled_answer"]:
            continue
        n += 1
        hits += str(r.get("prediction") or "") == m["original_answer"]
    return {"n": n, "original_letter_answers": hits, "rate": hits / n if n else float("nan")}


def analyse(
    orig_rows: Sequence[Mapping[str, Any]],
    shuf_rows: Sequence[Mapping[str, Any]],
    maps: Sequence[Mapping[str, Any]],
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """Paired accuracy change (shuffled − original) overall, per domain and per type; position bias."""
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
    mp = {str(m["idx"]): m for m in maps}
    return {
        "n": len(ids),
        "only_original": len(set(o) - set(s)),
        "only_shuffled": len(set(s) - set(o)),
        "overall": overall.to_dict(),
        "by_domain": {k: v.to_dict() for k, v in by_dom.items()},
        "by_type": {k: v.to_dict() for k in QUESTION_TYPES for kk, v in by_typ.items() if kk == k},
        "position_bias": position_bias([o[i] for i in ids], [s[i] for i in ids]),
        "letter_memory": letter_memory([s[i] for i in ids], mp),
        "unmapped_items": sum(1 for m in maps if m.get("map") is None),
    }


def _pct(x: Any) -> str:
    return "—" if x is None or x != x else f"{100 * x:.1f}"


def _sp(x: Any) -> str:
    return "—" if x is None or x != x else f"{100 * x:+.1f}"


def _p(p: Any) -> str:
    return "—" if p is None or p != p else (f"{p:.3g}" if p >= 1e-4 else "<1e-4")


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
    for k, c in res["by_domain"].items():
        L.append(row(k, c))
    for k, c in res["by_type"].items():
        L.append(row(k, c))
    lm = res["letter_memory"]
    L += ["", "## Position bias (choice items; share of letters in %)", "",
          "| letter | gold original | predicted original | gold shuffled | predicted shuffled |", "|---|---|---|---|---|"]
    for r in res["position_bias"]:
        L.append(f"| {r['letter']} | {_pct(r['gold_original'])} | {_pct(r['pred_original'])} | "
                 f"{_pct(r['gold_shuffled'])} | {_pct(r['pred_shuffled'])} |")
    L += ["", f"- Shuffled choice items whose answer letters moved: {lm['n']}; answered with the *original* letters "
          f"(now holding other texts): {lm['original_letter_answers']} ({_pct(lm['rate'])}%)."]
    if res.get("unmapped_items"):
        L.append(f"- {res['unmapped_items']} item(s) of the shuffled file could not be mapped to the original "
                 "options by text (see shuffle_map.jsonl).")
    return "\n".join(L) + "\n"


def write_outputs(res: Mapping[str, Any], out: Path) -> None:
    (out / "contamination.json").write_text(json.dumps(res, ensure_ascii=False, indent=2), encoding="utf-8")
    (out / "contamination.md").write_text(to_markdown(res), encoding="utf-8")
    with (out / "contamination.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["group_kind", "group", "n", "acc_original", "acc_shuffled", "delta", "ci_low", "ci_high",
                    "p_mcnemar", "p_holm", "p_bootstrap"])
        rows = [("all", "all", res["overall"])] + [("domain", k, v) for k, v in res["by_domain"].items()]
        rows += [("type", k, v) for k, v in res["by_type"].items()]
        for kind, g, c in rows:
            w.writerow([kind, g, c["n"], c["acc_a"], c["acc_b"], c["delta"], c["ci_low"], c["ci_high"],
                        c["p_mcnemar"], c.get("p_holm"), c["p_bootstrap"]])
    from qualbench.report.plots import grouped_bars

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

    run_dir = Path(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    study = cfg.get("study") or {}
    seed = int(study.get("shuffle_seed", cfg.get("seed", 0)))
    items = load_dataset(data_config(cfg), seed=cfg.get("seed", 0))
    if not items:
        raise ConfigError("no items to probe after loading and filtering (check data.path, domains, types)")
    shuffled_path = study.get("shuffled_path")
    if shuffled_path:
        shuf_items = load_dataset({"loader": "auto", "path": str(shuffled_path), "dedupe": False})
        items, shuf_items, maps = pair_existing(items, shuf_items)
        log.info("contamination: %d items paired with %s", len(items), shuffled_path)
    else:
        shuf_items, maps = shuffle_dataset(items, seed)
    name = str(cfg.data.get("name", "data"))
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
        n_boot=int(cfg.run.get("n_boot", 1000)) if cfg.get("run") is not None else 1000,
        seed=int(cfg.get("seed", 0)),
    )
    res["shuffle_seed"] = seed
    res["shuffled_source"] = str(shuffled_path) if shuffled_path else "generated"
    write_outputs(res, run_dir)
    log.info("contamination: accuracy %.4f (original) → %.4f (shuffled), Δ %+.4f, McNemar p %.3g → %s",
             m_orig["accuracy"], m_shuf["accuracy"], res["overall"]["delta"], res["overall"]["p_mcnemar"],
             run_dir / "contamination.md")
    return {"accuracy": m_shuf["accuracy"], "accuracy_original": m_orig["accuracy"],
            "delta": res["overall"]["delta"], "p_mcnemar": res["overall"]["p_mcnemar"]}
