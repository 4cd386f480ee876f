"""The report over a set of run directories: one list of sections (leaderboards, per-domain/type tables, figures,
paired comparisons, failed jobs, studies), rendered to ``report.md`` and ``report.html``, with each table also
written as its own .md/.csv and the figures as PNG files.

DIRs may be single runs, multirun sweep roots (searched for run dirs holding metrics.json) or study outputs
(crowd.md / contamination.md are included as sections).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Sequence

import yaml

from qualbench import plotting
from qualbench.analysis.compare import compare_runs, pair_with_baseline, parse_selector
from qualbench.analysis.prompt_ablation import default_baseline
from qualbench.analysis.runs import RunInfo, find_run_dirs, load_run
from qualbench.errors import DataError, QualBenchError
from qualbench.report import jobs
from qualbench.report import seeds as seedmod
from qualbench.report.figures import plot_federated, run_figures
from qualbench.report.html import render_html
from qualbench.report.labels import prepare_runs, run_labels
from qualbench.report.leaderboard import (
    Table,
    comparison_group_table,
    comparison_table,
    group_table,
    leaderboard,
)
from qualbench.report.sections import Section, render_markdown
from qualbench.results import METRICS, SCORED_TASKS, read_result

log = logging.getLogger("qualbench.report")

STUDY_FILES = ("crowd.md", "contamination.md")
LEADERBOARD_NOTE = ("Columns: the config values that differ across runs, then accuracy (%), its 95% CI, macro "
                    "accuracy over domains, exam score (% of the points), items.")
REFERENCE_NOTE = ("Rows whose run starts with `reference:` are not models: `chance` is the expected accuracy of a "
                  "uniform random answer (单选题 1/n options, 多选题 1/(2^n−1) over non-empty subsets, 判断题 1/2); "
                  "`majority` answers every item with its type's most common gold answer among the evaluated items "
                  "and so reads the labels. `uses_eval_labels` is YES for runs whose model read the evaluated "
                  "items' labels (and for the majority row); `below_reference` names the references a run's "
                  "accuracy is below (point estimates).")


def find_studies(paths: Sequence[Path]) -> list[Path]:
    """The study outputs (crowd.md, contamination.md) at or below ``paths``, each once."""
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
                m = read_result(sub / METRICS)
                data = ""
                hcfg = path.parent / ".hydra" / "config.yaml"  # the study's data, not the original.json it wrote
                if hcfg.exists():
                    d = (yaml.safe_load(hcfg.read_text(encoding="utf-8")) or {}).get("data") or {}
                    data = Path(str(d.get("path"))).name if d.get("path") else str(d.get("name") or "")
                what = f"{m.get('model') or 'model'}" + (f" on {data}" if data else "")
        elif path.stem == "crowd" and (path.parent / "crowd.json").exists():
            workers = list(read_result(path.parent / "crowd.json", tasks=("crowd",)).get("workers") or {})
            if workers:
                what = f"{len(workers)} models: " + ", ".join(map(str, workers))
    except (OSError, ValueError, AttributeError, yaml.YAMLError, DataError):  # a damaged output keeps its section
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


def leaderboard_sections(runs: list[RunInfo], out: Path, files: dict[str, Any]) -> list[Section]:
    """The leaderboard (over seeds too, when runs differ only by seed) and the per-domain/type tables; each table is
    also written as ``out/<name>.md`` and ``.csv``."""
    sections = []
    rules = [t] if (t := exam_rules_text(runs)) else []
    st = seedmod.seed_tables(runs)
    if st:
        st_csv, st_disp = st
        st_csv.to_csv(out / "leaderboard_seeds.csv")
        (out / "leaderboard_seeds.md").write_text(st_disp.to_markdown(), encoding="utf-8")
        n_groups = sum(k != "seed" for k in st_disp.row_kinds)
        sections.append(Section(
            f"Leaderboard over seeds ({n_groups} settings, {len(runs)} runs; accuracy and exam score in %)",
            "leaderboard-seeds", notes=[seedmod.SEED_NOTE, *rules], tables=[("", st_disp)]))
        files["seed_groups"] = [r[0] for r, k in zip(st_csv.rows, st_csv.row_kinds) if k != "seed"]
    lb = leaderboard(runs, groups=seedmod.group_of(runs) if st else None)
    lb.to_csv(out / "leaderboard.csv")
    (out / "leaderboard.md").write_text(lb.to_markdown(), encoding="utf-8")
    sections.append(Section(f"Leaderboard ({len(runs)} runs; accuracy and exam score in %)", "leaderboard",
                            notes=[LEADERBOARD_NOTE, REFERENCE_NOTE, *rules], tables=[("", lb)]))
    for kind, title in (("by_domain", "Accuracy per domain (%)"), ("by_type", "Accuracy per question type (%)")):
        t = group_table(runs, kind, references=True)
        if len(t.header) > 3:
            t.to_csv(out / f"{kind}.csv")
            (out / f"{kind}.md").write_text(t.to_markdown(), encoding="utf-8")
            sections.append(Section(title, kind, tables=[("", t)]))
    return sections


def figure_sections(runs: list[RunInfo], out: Path, files: dict[str, Any]) -> list[Section]:
    """The figures over all runs and the federated learning curves, drawn into ``out``."""
    if not plotting.cjk_font():
        log.info("report: no CJK font (fc-list :lang=zh is empty): plots use English domain slugs")
    figs, fed = run_figures(runs, out), plot_federated(runs, out)
    files["plots"] = [str(p) for p in figs + fed]
    return ([Section("Plots", images=figs)] if figs else []) + (
        [Section("Federated learning curves", images=fed)] if fed else [])


def retrieval_section(runs: list[RunInfo], out: Path) -> Section:
    """``retrieval_eval`` runs: law recall@k and MRR per run (the settings that differ first); also
    ``out/retrieval.md`` and ``.csv``."""
    ks = list(dict.fromkeys(str(k) for r in runs for k in r.metrics.get("ks") or []))
    depth = sorted({r.metrics.get("mrr_depth") for r in runs if r.metrics.get("mrr_depth") is not None})
    mrr = f"MRR@{depth[0]}" if len(depth) == 1 else "MRR"
    header = ["run", "retriever", "routing", "data", "corpus", "cited items"] + [f"law R@{k}" for k in ks] + [mrr]
    rows = [[r.label or r.path.name, r.metrics.get("retriever"), r.metrics.get("routing"), r.metrics.get("data"),
             r.metrics.get("corpus"), r.metrics.get("n_with_citation")]
            + [(r.metrics.get("law_recall") or {}).get(k) for k in ks] + [r.metrics.get("mrr")] for r in runs]
    t = Table(header, rows, pct_cols=tuple(header[6:]))
    t.to_csv(out / "retrieval.csv")
    (out / "retrieval.md").write_text(t.to_markdown(), encoding="utf-8")
    withheld = [r.label or r.path.name for r in runs if r.metrics.get("objective_withheld")]
    notes = ["Law recall@k: the share of items citing a corpus law whose gold law is among the laws of the first k "
             "passages; MRR at the stated depth (trec_eval definition). Both in %."]
    if withheld:
        notes.append(f"Fewer cited items than study.min_cited (no sweep objective): {', '.join(withheld)}.")
    return Section(f"Retrieval ({len(runs)} runs; law recall and MRR in %)", "retrieval", notes=notes,
                   tables=[("", t)])


def comparison_section(runs: list[RunInfo], baseline: str, out: Path, n_boot: int, seed: int,
                       files: dict[str, Any]) -> Section:
    """Each run paired with its baseline run; also written as ``comparisons.json/.csv/.md``."""
    key, value = parse_selector(baseline)
    comps = [compare_runs(b, o, n_boot=n_boot, seed=seed) for b, o in pair_with_baseline(runs, key, value)]
    files["comparisons"] = comps
    (out / "comparisons.json").write_text(json.dumps(comps, ensure_ascii=False, indent=2), encoding="utf-8")
    scored = [c for c in comps if "overall" in c]
    ct = comparison_table(scored)
    ct.to_csv(out / "comparisons.csv")
    section = Section(
        f"Paired comparisons vs {key}={value}", "comparisons",
        notes=[f"Each run against the baseline {key}={value} on the items both answered: Δ = run − baseline "
               "(percentage points), 95% paired-bootstrap CI and two-sided p, McNemar exact p. Per-group p values "
               "are McNemar, Holm-adjusted across the groups of each comparison."],
        tables=[("", ct), ("Per domain", comparison_group_table(scored, "by_domain")),
                ("Per type", comparison_group_table(scored, "by_type"))])
    (out / "comparisons.md").write_text(render_markdown([section], out), encoding="utf-8")
    return section


def study_section(path: Path) -> Section:
    """A study's Markdown file with the PNG files it wrote beside it (``crowd*.png``, ``contamination*.png``)."""
    return Section(study_title(path), markdown=path.read_text(encoding="utf-8"),
                   images=sorted(path.parent.glob(f"{path.stem}*.png")))


def build_report(
    paths: Sequence[str | Path],
    out: str | Path,
    baseline: str | None = None,
    n_boot: int = 1000,
    seed: int = 0,
    title: str = "QualBench report",
) -> dict[str, Any]:
    """Write the report's sections as ``report.md`` and ``report.html`` into ``out``, each table as .md/.csv and
    the figures as PNG; returns what was written (``runs``, ``plots``, ``comparisons``, ``jobs``, ...)."""
    paths = [Path(p) for p in paths]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    loaded = [load_run(d) for d in find_run_dirs(paths)]
    runs = [r for r in loaded if r.metrics["task"] in SCORED_TASKS]
    retrieval = [r for r in loaded if r.metrics["task"] == "retrieval_eval"]
    studies = find_studies(paths)
    problems = jobs.problem_jobs(paths)
    if not runs and not retrieval and not studies and not problems:
        raise QualBenchError(f"no run directories (metrics.json) or study outputs under {', '.join(map(str, paths))}")
    prepare_runs(runs)  # contamination sub-runs get their study's settings
    run_labels(runs)  # differing settings as displayed (data file names; no cache/hydra/run.* keys)
    run_labels(retrieval)
    log.info("report: %d run(s), %d retrieval run(s), %d study file(s)", len(runs), len(retrieval), len(studies))
    files: dict[str, Any] = {"runs": [str(r.path) for r in runs], "retrieval_runs": [str(r.path) for r in retrieval]}
    sections: list[Section] = []
    if retrieval:
        sections.append(retrieval_section(retrieval, out))
    if runs:
        sections += leaderboard_sections(runs, out, files) + figure_sections(runs, out, files)
        if not baseline:
            baseline = default_baseline(runs)
            if baseline:
                log.info("report: prompt sweep with study.baseline_prompt: comparing against %s", baseline)
    if baseline:
        sections.append(comparison_section(runs, baseline, out, n_boot, seed, files))
    files["jobs"] = jobs.job_records(problems)
    if (js := jobs.jobs_section(problems)) is not None:
        sections.append(js)
    sections += [study_section(s) for s in studies]
    files["studies"] = [str(s) for s in studies]
    (out / "report.md").write_text(render_markdown(sections, out, title), encoding="utf-8")
    (out / "report.html").write_text(render_html(sections, title), encoding="utf-8")
    files["html"] = str(out / "report.html")
    return files
