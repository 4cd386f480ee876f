"""The report's figures: runs → ``by_domain.png``, ``heatmap.png``, ``topk.png``, ``federated_accuracy.png`` and
``federated_loss.png`` (drawn by :mod:`qualbench.plotting`)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from qualbench import plotting
from qualbench.analysis.runs import RunInfo
from qualbench.report.leaderboard import group_table

MAX_BAR_RUNS = 12  # the per-domain bar chart shows the best runs only; the heatmap shows all


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def plot_domains(runs: list[RunInfo], out: Path) -> Path | None:
    """by_domain.png: accuracy per domain of the best runs, with CIs."""
    tab = group_table(runs, "by_domain")
    if len(tab.header) < 2:
        return None
    best = sorted(runs, key=lambda r: -(r.metrics.get("accuracy") or 0))[:MAX_BAR_RUNS]
    series = {}
    for r in best:
        d = r.metrics.get("by_domain") or {}
        vals = []
        for g in tab.header[1:]:
            s = d.get(g) or {}
            a = s.get("accuracy", float("nan"))
            ci = s.get("ci95") or [a, a]
            vals.append((a, ci[0], ci[1]))
        series[r.label] = vals
    title = "Accuracy by domain" + (f" (best {MAX_BAR_RUNS} of {len(runs)} runs)" if len(runs) > MAX_BAR_RUNS else "")
    return plotting.grouped_bars(tab.header[1:], series, out / "by_domain.png", title=title)


def plot_heatmap(runs: list[RunInfo], out: Path) -> Path | None:
    """heatmap.png: accuracy per domain × run."""
    tab = group_table(runs, "by_domain")
    if len(tab.header) < 2:
        return None
    vals = np.array([[np.nan if v is None else v for v in row[1:]] for row in tab.rows], dtype=float)
    return plotting.heatmap([r[0] for r in tab.rows], tab.header[1:], vals, out / "heatmap.png",
                         title="Accuracy: domain × config")


def plot_topk(runs: list[RunInfo], out: Path) -> Path | None:
    """Accuracy vs retriever.top_k, one line per retriever.kind (mean over runs at the same point)."""
    ks = {_float(r.value("retriever.top_k")) for r in runs} - {None}
    if len(ks) < 2:
        return None
    pts: dict[str, dict[float, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        k = _float(r.value("retriever.top_k"))
        acc = r.metrics.get("accuracy")
        if k is None or acc is None:
            continue
        pts[str(r.value("retriever.kind") or r.value("retriever") or "—")][k].append(float(acc))
    series = {}
    for kind, d in sorted(pts.items()):
        xs = sorted(d)
        series[kind] = (xs, [float(np.mean(d[x])) for x in xs])
    return plotting.lines(series, out / "topk.png", xlabel="retriever.top_k",
                       title="Accuracy vs top-k, one line per retriever kind")


def _split_accuracy(row: dict[str, Any], split: str) -> float | None:
    v = (row.get(split) or {}).get("accuracy")
    return None if v is None else float(v)


def plot_federated(runs: list[RunInfo], out: Path) -> list[Path]:
    """Learning curves from each federated run's ``rounds.jsonl`` (:class:`qualbench.results.RoundRecord` rows):
    test and validation accuracy per round, and the clients' training loss."""
    acc, loss = {}, {}
    for r in runs:
        for row_split, name in (("test", r.label), ("val", f"{r.label} (val)")):
            pts = [(int(h["round"]), _split_accuracy(h, row_split)) for h in r.history or []]
            pts = [(x, y) for x, y in pts if y is not None]
            if pts:
                acc[name] = ([x for x, _ in pts], [y for _, y in pts])
        lo = [(int(h["round"]), float(h["train_loss"])) for h in r.history or [] if h.get("train_loss") is not None]
        if lo:
            loss[r.label] = ([x for x, _ in lo], [y for _, y in lo])
    made = []
    if acc:
        made.append(plotting.lines(acc, out / "federated_accuracy.png", xlabel="round",
                                   title="Federated: accuracy per round (test, and val where the label says so)"))
    if loss:
        made.append(plotting.lines(loss, out / "federated_loss.png", xlabel="round", ylabel="train loss",
                                   title="Federated: training loss per round"))
    return made


def run_figures(runs: list[RunInfo], out: Path) -> list[Path]:
    """The figures over all runs that apply: by_domain.png, heatmap.png, topk.png (when top_k varies)."""
    return [p for p in (plot_domains(runs, out), plot_heatmap(runs, out), plot_topk(runs, out)) if p]
