"""Write synthetic run directories (predictions.jsonl, metrics.json, .hydra/) for report and study tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

from qualbench.domains import DOMAIN_NAMES
from qualbench.records import JUDGE, MULTI, QUESTION_TYPES, SINGLE
from qualbench.results import HISTORY, RoundRecord, write_json, write_result, write_rounds


def make_items(n: int, seed: int = 0) -> list[dict[str, str]]:
    """n items cycling through the six domains and three types, with random gold answers."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        qt = QUESTION_TYPES[i % 3]
        if qt == SINGLE:
            ans = "ABCD"[rng.integers(4)]
        elif qt == MULTI:
            ans = "".join(sorted(rng.choice(list("ABCD"), size=rng.integers(2, 5), replace=False)))
        else:
            ans = ("正确", "错误")[rng.integers(2)]
        items.append({"idx": f"q{i:04d}", "domain": DOMAIN_NAMES[(i // 3) % 6], "question_type": qt, "answer": ans})
    return items


def wrong_answer(item: dict[str, str], rng: np.random.Generator) -> str:
    qt, ans = item["question_type"], item["answer"]
    if qt == JUDGE:
        return "错误" if ans == "正确" else "正确"
    if qt == SINGLE:
        return str(rng.choice([x for x in "ABCD" if x != ans]))
    while True:
        cand = "".join(sorted(rng.choice(list("ABCD"), size=rng.integers(1, 5), replace=False)))
        if cand != ans:
            return cand


def simulate(items: Sequence[dict[str, str]], p_correct: float | Sequence[float], seed: int) -> list[dict[str, Any]]:
    """Prediction rows: each item right with probability p_correct (per item if a sequence)."""
    rng = np.random.default_rng(seed)
    ps = [p_correct] * len(items) if np.isscalar(p_correct) else list(p_correct)
    rows = []
    for it, p in zip(items, ps):
        ok = bool(rng.random() < p)
        pred = it["answer"] if ok else wrong_answer(it, rng)
        rows.append({**it, "prediction": pred, "correct": ok, "raw": f"答案：{pred}", "exam_score": float(ok),
                     "skipped": None})
    return rows


POINTS = {SINGLE: 1.0, MULTI: 2.0, JUDGE: 1.0}  # the default exam-score rule (multi_partial=none)


def metrics_of(rows: Sequence[dict[str, Any]], config: dict[str, Any]) -> dict[str, Any]:
    """metrics.json as qualbench writes it: rates are fractions in [0,1]; exam_score = points won / points possible."""
    c = np.array([r["correct"] for r in rows], dtype=float)
    pts = np.array([POINTS[r["question_type"]] for r in rows], dtype=float)

    def group(key: str) -> dict[str, dict[str, Any]]:
        out = {}
        for g in sorted({r[key] for r in rows}):
            m = np.array([r[key] == g for r in rows])
            out[g] = {"n": int(m.sum()), "accuracy": float(c[m].mean()),
                      "exam_score": float((c[m] * pts[m]).sum() / pts[m].sum())}
        return out

    bd = group("domain")
    se = float(np.sqrt(c.mean() * (1 - c.mean()) / len(c)))
    return {"n": len(rows), "n_unparsed": 0, "accuracy": float(c.mean()),
            "accuracy_ci95": [float(c.mean() - 1.96 * se), float(c.mean() + 1.96 * se)],
            "macro_accuracy": float(np.mean([v["accuracy"] for v in bd.values()])),
            "exam_score": float((c * pts).sum() / pts.sum()), "exam_points": float((c * pts).sum()),
            "exam_points_max": float(pts.sum()), "by_domain": bd, "by_type": group("question_type"), "config": config}


def write_run(run_dir: Path, rows: Sequence[dict[str, Any]], overrides: Sequence[str], config: dict[str, Any],
              choices: dict[str, str] | None = None, history: Sequence[RoundRecord] | None = None,
              extra: dict[str, Any] | None = None) -> Path:
    """A run directory as ``qualbench`` writes it (``extra``: more metrics.json fields, e.g. ``model``); with
    ``history``, a federated run's ``history.json`` and ``rounds.jsonl`` as the server writes them."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "predictions.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    metrics = {"model": "model", "data": "data", **metrics_of(rows, config), **(extra or {})}
    write_result(run_dir, "eval", metrics)
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    hd = run_dir / ".hydra"
    hd.mkdir(exist_ok=True)
    (hd / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)), encoding="utf-8")
    (hd / "config.yaml").write_text(yaml.safe_dump(config, allow_unicode=True), encoding="utf-8")
    ch = {"data": "sample", "model": "random", "prompt": "zero_shot", **(choices or {})}
    (hd / "hydra.yaml").write_text(yaml.safe_dump({"hydra": {"runtime": {"choices": ch}}}), encoding="utf-8")
    if history is not None:
        hist = {"mode": "federated", "rounds": [r.to_dict() for r in history]}
        write_json(run_dir / HISTORY, hist)
        write_rounds(run_dir, hist)
    return run_dir


def base_config(**kw: Any) -> dict[str, Any]:
    cfg = {"task": "eval", "seed": 0, "data": {"loader": "sample", "name": "sample"},
           "model": {"_target_": "qualbench.models.random_baseline.RandomModel", "seed": 0},
           "prompt": {"name": "zero_shot"}, "retriever": {"kind": "bm25", "top_k": 5, "routing": False},
           "run": {"n_boot": 100}}
    for k, v in kw.items():
        node = cfg
        parts = k.split("__")
        for p in parts[:-1]:
            node = node.setdefault(p, {})
        node[parts[-1]] = v
    return cfg


def rag_sweep(root: Path, n_items: int = 60) -> Path:
    """A multirun sweep root: retriever.kind × top_k, accuracy rising with k and by kind."""
    items = make_items(n_items)
    job = 0
    for kind, boost in (("bm25", 0.0), ("dense", 0.1), ("hybrid", 0.15)):
        for k in (1, 3, 5):
            p = 0.3 + boost + 0.05 * k
            rows = simulate(items, p, seed=100 + job)
            cfg = base_config(retriever__kind=kind, retriever__top_k=k)
            write_run(root / str(job), rows, [f"retriever.kind={kind}", f"retriever.top_k={k}", "model=random"], cfg)
            job += 1
    (root / "multirun.yaml").write_text("hydra: {mode: MULTIRUN}\n", encoding="utf-8")
    return root
