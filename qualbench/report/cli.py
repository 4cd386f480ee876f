"""``qualbench-report DIR... [--out DIR] [--baseline KEY=VALUE]``: one report for any set of run directories.

DIRs may be single runs, multirun sweep roots (searched for run dirs holding metrics.json) or study outputs
(crowd.md / contamination.md are included as sections).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from qualbench.analysis.compare import compare_runs, pair_with_baseline, parse_selector
from qualbench.analysis.runs import RunInfo, assign_labels, find_run_dirs, load_run
from qualbench.errors import QualBenchError
from qualbench.report import plots
from qualbench.report.html import Page, img_html, markdown_html, table_html
from qualbench.report.leaderboard import (
    comparison_group_table,
    comparison_table,
    group_table,
    leaderboard,
)

log = logging.getLogger("qualbench.report")

STUDY_FILES = ("crowd.md", "contamination.md")
MAX_BAR_RUNS = 12  # the per-domain bar chart shows the best runs only; the heatmap shows all


def _float(v: Any) -> float | None:
    try:
        return float(v)
    except (TypeError, ValueError):
        return None


def plot_domains(runs: list[RunInfo], out: Path) -> Path | None:
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
    return plots.grouped_bars(tab.header[1:], series, out / "by_domain.png", title=title)


def plot_heatmap(runs: list[RunInfo], out: Path) -> Path | None:
    tab = group_table(runs, "by_domain")
    if len(tab.header) < 2:
        return None
    vals = np.array([[np.nan if v is None else v for v in row[1:]] for row in tab.rows], dtype=float)
    return plots.heatmap([r[0] for r in tab.rows], tab.header[1:], vals, out / "heatmap.png",
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
    return plots.lines(series, out / "topk.png", xlabel="retriever.top_k",
                       title="Accuracy vs top-k, one line per retriever kind")


def _round_accuracy(h: dict[str, Any]) -> float | None:
    if h.get("accuracy") is not None:
        return float(h["accuracy"])
    d = h.get("accuracy_by_domain") or {}
    vals = [v.get("accuracy") if isinstance(v, dict) else v for v in d.values()]
    vals = [float(v) for v in vals if v is not None]
    return float(np.mean(vals)) if vals else None


def plot_federated(runs: list[RunInfo], out: Path) -> list[Path]:
    """Learning curves from history.json: accuracy (mean over domains when only per-domain is logged) and loss."""
    acc, loss = {}, {}
    for r in runs:
        hist = r.history
        if not hist:
            continue
        rounds = [int(h.get("round", i + 1)) for i, h in enumerate(hist)]
        a = [(x, _round_accuracy(h)) for x, h in zip(rounds, hist)]
        a = [(x, y) for x, y in a if y is not None]
        if a:
            acc[r.label] = ([x for x, _ in a], [y for _, y in a])
        lo = [(x, h.get("train_loss")) for x, h in zip(rounds, hist) if h.get("train_loss") is not None]
        if lo:
            loss[r.label] = ([x for x, _ in lo], [float(y) for _, y in lo])
    made = []
    if acc:
        made.append(plots.lines(acc, out / "federated_accuracy.png", xlabel="round",
                                title="Federated: accuracy per round"))
    if loss:
        made.append(plots.lines(loss, out / "federated_loss.png", xlabel="round", ylabel="train loss",
                                title="Federated: training loss per round"))
    return made


def find_studies(paths: Sequence[Path]) -> list[Path]:
    found = []
    for p in paths:
        p = Path(p)
        for name in STUDY_FILES:
            found += sorted(x for x in ([p / name] if (p / name).exists() else []) + list(p.rglob(name)))
    seen, out = set(), []
    for f in found:
        if f.resolve() not in seen:
            seen.add(f.resolve())
            out.append(f)
    return out


def build_report(
    paths: Sequence[str | Path],
    out: str | Path,
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "QualBench report",
) -> dict[str, Any]:
    """Write leaderboard/tables/plots/comparisons (MD + CSV + PNG) and ``report.html`` into ``out``."""
    paths = [Path(p) for p in paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    runs = [load_run(d) for d in find_run_dirs(paths)]
    studies = find_studies(paths)
    if not runs and not studies:
        raise QualBenchError(f"no run directories (metrics.json) or study outputs under {', '.join(map(str, paths))}")
    assign_labels(runs)
    log.info("report: %d run(s), %d study file(s)", len(runs), len(studies))
    page = Page(title)
    md = [f"# {title}", ""]
    files: dict[str, Any] = {"runs": [str(r.path) for r in runs]}

    if runs:
        lb = leaderboard(runs)
        lb.to_csv(out / "leaderboard.csv")
        (out / "leaderboard.md").write_text(lb.to_markdown(), encoding="utf-8")
        md += [f"## Leaderboard ({len(runs)} runs; accuracy in %)", "", lb.to_markdown()]
        page.section(f"Leaderboard ({len(runs)} runs)",
                     page.note("Columns: the config values that differ across runs, then accuracy (%), its 95% CI, "
                               "macro accuracy over domains, exam score, items."),
                     table_html(lb, "leaderboard"))
        for kind, name in (("by_domain", "Accuracy per domain (%)"), ("by_type", "Accuracy per question type (%)")):
            t = group_table(runs, kind)
            if len(t.header) > 1:
                t.to_csv(out / f"{kind}.csv")
                (out / f"{kind}.md").write_text(t.to_markdown(), encoding="utf-8")
                md += [f"## {name}", "", t.to_markdown()]
                page.section(name, table_html(t, kind))
        figs = []
        if not plots.cjk_font():
            log.info("report: no CJK font (fc-list :lang=zh is empty): plots use English domain slugs")
        for fn in (plot_domains, plot_heatmap, plot_topk):
            p = fn(runs, out)
            if p:
                figs.append(p)
        fed = plot_federated(runs, out)
        files["plots"] = [str(p) for p in figs + fed]
        if figs:
            page.section("Plots", *[img_html(p, p.stem) for p in figs])
            md += ["## Plots", ""] + [f"![{p.stem}]({p.name})" for p in figs] + [""]
        if fed:
            page.section("Federated learning curves", *[img_html(p, p.stem) for p in fed])
            md += ["## Federated learning curves", ""] + [f"![{p.stem}]({p.name})" for p in fed] + [""]

    if not baseline and runs:
        from qualbench.analysis.prompt_ablation import default_baseline

        baseline = default_baseline(runs)
        if baseline:
            log.info("report: prompt sweep with study.baseline_prompt: comparing against %s", baseline)
    if baseline:
        key, value = parse_selector(baseline)
        comps = [compare_runs(b, o, n_boot=n_boot, seed=seed) for b, o in pair_with_baseline(runs, key, value)]
        (out / "comparisons.json").write_text(json.dumps(comps, ensure_ascii=False, indent=2), encoding="utf-8")
        ct = comparison_table([c for c in comps if "overall" in c])
        ct.to_csv(out / "comparisons.csv")
        cd = comparison_group_table([c for c in comps if "overall" in c], "by_domain")
        cty = comparison_group_table([c for c in comps if "overall" in c], "by_type")
        expl = (f"Each run against the baseline {key}={value} on the items both answered: Δ = run − baseline "
                "(percentage points), 95% paired-bootstrap CI and two-sided p, McNemar exact p. Per-group p values "
                "are McNemar, Holm-adjusted across the groups of each comparison.")
        md += [f"## Paired comparisons vs {key}={value}", "", expl, "", ct.to_markdown(),
               "", "### Per domain", "", cd.to_markdown(), "", "### Per type", "", cty.to_markdown()]
        (out / "comparisons.md").write_text("\n".join(md[md.index(f"## Paired comparisons vs {key}={value}"):]),
                                            encoding="utf-8")
        page.section(f"Paired comparisons vs {key}={value}", page.note(expl), table_html(ct, "comparisons"),
                     "<h3>Per domain</h3>", table_html(cd), "<h3>Per type</h3>", table_html(cty))
        files["comparisons"] = comps

    for s in studies:
        text = s.read_text(encoding="utf-8")
        imgs = [img_html(p, p.stem) for p in sorted(s.parent.glob(f"{s.stem}*.png"))]
        page.section(f"Study: {s.stem} ({s.parent})", markdown_html(text), *imgs)
        md += [f"## Study: {s.stem} ({s.parent})", "", text]
    (out / "report.md").write_text("\n".join(md) + "\n", encoding="utf-8")
    page.write(out / "report.html")
    files["html"] = str(out / "report.html")
    files["studies"] = [str(s) for s in studies]
    return files


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="qualbench-report",
        description="One report (leaderboard, per-domain/type tables, plots, paired comparisons, HTML) for run dirs.",
    )
    ap.add_argument("dirs", nargs="+", help="run directories, multirun sweep roots or study outputs")
    ap.add_argument("--out", default=None, help="output folder (default: ./qualbench_report)")
    ap.add_argument("--baseline", default=None, help="KEY=VALUE selecting the baseline runs, e.g. prompt=zero_shot")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--title", default="QualBench report")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out or "qualbench_report")
    try:
        files = build_report(args.dirs, out, baseline=args.baseline, n_boot=args.n_boot, seed=args.seed,
                             title=args.title)
    except QualBenchError as e:
        print(f"qualbench-report: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(files['runs'])} run(s) → {out}/report.html, leaderboard.md/.csv, by_domain/by_type tables, plots")
    return 0


if __name__ == "__main__":
    sys.exit(main())
