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
import yaml

from qualbench.analysis.compare import compare_runs, pair_with_baseline, parse_selector
from qualbench.analysis.runs import RunInfo, find_run_dirs, load_run
from qualbench.errors import QualBenchError
from qualbench.report import jobs, plots
from qualbench.report import seeds as seedmod
from qualbench.report.html import Page, img_html, markdown_html, table_html
from qualbench.report.labels import prepare_runs, run_labels
from qualbench.report.leaderboard import (
    comparison_group_table,
    comparison_table,
    group_table,
    leaderboard,
)

log = logging.getLogger("qualbench.report")

STUDY_FILES = ("crowd.md", "contamination.md")
REFERENCE_NOTE = ("Rows whose run starts with `reference:` are not models: `chance` is the expected accuracy of a "
                  "uniform random answer (单选题 1/n options, 多选题 1/(2^n−1) over non-empty subsets, 判断题 1/2); "
                  "`majority` answers every item with its type's most common gold answer among the evaluated items "
                  "and so reads the labels. `uses_eval_labels` is YES for runs whose model read the evaluated "
                  "items' labels (and for the majority row); `below_reference` names the references a run's "
                  "accuracy is below (point estimates).")
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


def study_title(path: Path) -> str:
    """"Study: contamination — random(seed=0) on QualBench.json (DIR)", "Study: crowd — 3 models: a, b, c (DIR)":
    the models come from the study's own outputs (contamination: original/metrics.json; crowd: crowd.json)."""
    what = ""
    try:
        if path.stem == "contamination":
            sub = next((path.parent / v for v in ("original", "shuffled") if (path.parent / v / "metrics.json").exists()),
                       None)
            if sub is not None:
                m = json.loads((sub / "metrics.json").read_text(encoding="utf-8"))
                data = ""
                hcfg = path.parent / ".hydra" / "config.yaml"  # the study's data, not the original.json it wrote
                if hcfg.exists():
                    d = (yaml.safe_load(hcfg.read_text(encoding="utf-8")) or {}).get("data") or {}
                    data = Path(str(d.get("path"))).name if d.get("path") else str(d.get("name") or "")
                what = f"{m.get('model') or 'model'}" + (f" on {data}" if data else "")
        elif path.stem == "crowd" and (path.parent / "crowd.json").exists():
            workers = list((json.loads((path.parent / "crowd.json").read_text(encoding="utf-8")).get("workers") or {}))
            if workers:
                what = f"{len(workers)} models: " + ", ".join(map(str, workers))
    except (OSError, ValueError, AttributeError, yaml.YAMLError):  # a damaged study output still gets its section
        what = ""
    return f"Study: {path.stem}" + (f" — {what}" if what else "") + f" ({path.parent})"


def exam_rules_text(runs: Sequence[RunInfo]) -> str:
    """"Exam score rule: multi_partial=none; points 单选题 1, 多选题 2, 判断题 1" (one line per distinct rule)."""
    seen: list[str] = []
    for r in runs:
        rule = r.metrics.get("exam_score_rule")
        if isinstance(rule, dict):
            pts = ", ".join(f"{t} {v:g}" for t, v in (rule.get("points") or {}).items())
            text = f"multi_partial={rule.get('multi_partial')}; points {pts}"
            if text not in seen:
                seen.append(text)
    if not seen:
        return ""
    return ("Exam score rule: " if len(seen) == 1 else "Exam score rules (they differ across runs): ") + " | ".join(seen)


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
    problems = jobs.problem_jobs(paths)  # failed / missing sweep jobs (qualbench.report.jobs)
    if not runs and not studies and not problems:
        raise QualBenchError(f"no run directories (metrics.json) or study outputs under {', '.join(map(str, paths))}")
    prepare_runs(runs)  # contamination sub-runs get their study's settings
    run_labels(runs)  # differing settings as displayed (data file names; no cache/hydra/run.* keys)
    log.info("report: %d run(s), %d study file(s)", len(runs), len(studies))
    page = Page(title)
    md = [f"# {title}", ""]
    files: dict[str, Any] = {"runs": [str(r.path) for r in runs]}

    if runs:
        st = seedmod.seed_tables(runs)
        groups = seedmod.group_of(runs) if st else None
        lb = leaderboard(runs, groups=groups)
        lb.to_csv(out / "leaderboard.csv")
        (out / "leaderboard.md").write_text(lb.to_markdown(), encoding="utf-8")
        rules = exam_rules_text(runs)
        if st:
            st_csv, st_disp = st
            st_csv.to_csv(out / "leaderboard_seeds.csv")
            (out / "leaderboard_seeds.md").write_text(st_disp.to_markdown(), encoding="utf-8")
            n_groups = sum(k != "seed" for k in st_disp.row_kinds)
            title_s = f"Leaderboard over seeds ({n_groups} settings, {len(runs)} runs; accuracy and exam score in %)"
            md += [f"## {title_s}", "", seedmod.SEED_NOTE, ""] + ([rules, ""] if rules else []) + [st_disp.to_markdown()]
            page.section(title_s, page.note(seedmod.SEED_NOTE), *([page.note(rules)] if rules else []),
                         table_html(st_disp, "leaderboard-seeds"))
            files["seed_groups"] = [r[0] for r, k in zip(st_csv.rows, st_csv.row_kinds) if k != "seed"]
        md += [f"## Leaderboard ({len(runs)} runs; accuracy and exam score in %)", "", REFERENCE_NOTE, ""]
        md += ([rules, ""] if rules else []) + [lb.to_markdown()]
        page.section(f"Leaderboard ({len(runs)} runs)",
                     page.note("Columns: the config values that differ across runs, then accuracy (%), its 95% CI, "
                               "macro accuracy over domains, exam score (% of the points), items. " + REFERENCE_NOTE),
                     *([page.note(rules)] if rules else []),
                     table_html(lb, "leaderboard"))
        for kind, name in (("by_domain", "Accuracy per domain (%)"), ("by_type", "Accuracy per question type (%)")):
            t = group_table(runs, kind, references=True)
            if len(t.header) > 3:
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

    jobs.add_to_report(problems, md, page, files)
    for s in studies:
        text = s.read_text(encoding="utf-8")
        imgs = [img_html(p, p.stem) for p in sorted(s.parent.glob(f"{s.stem}*.png"))]
        head = study_title(s)
        page.section(head, markdown_html(text), *imgs)
        md += [f"## {head}", "", text]
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
    for line in jobs.summary_lines(files.get("jobs") or []):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
