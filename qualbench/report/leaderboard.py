"""Tables: the leaderboard (only the config keys that differ across runs), per-domain and per-type accuracy."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

from qualbench.analysis.runs import RunInfo, varying_keys
from qualbench.domains import DOMAIN_NAMES
from qualbench.records import QUESTION_TYPES


@dataclass
class Table:
    """A plain table: header and rows of raw values (numbers stay numbers for CSV)."""

    header: list[str]
    rows: list[list[Any]]
    pct_cols: tuple[str, ...] = ()  # columns shown as percentages in Markdown/HTML

    def cell(self, col: str, v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return "—"
        if col in self.pct_cols and isinstance(v, (int, float)):
            return f"{100 * v:.1f}"
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    def formatted(self) -> list[list[str]]:
        return [[self.cell(c, v) for c, v in zip(self.header, r)] for r in self.rows]

    def to_markdown(self) -> str:
        esc = [[s.replace("|", "\\|") for s in r] for r in self.formatted()]
        lines = ["| " + " | ".join(self.header) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        return "\n".join(lines) + "\n"

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(self.header)
            w.writerows([["" if v is None else v for v in r] for r in self.rows])
        return path


def _ci(m: dict[str, Any]) -> tuple[float | None, float | None]:
    ci = m.get("accuracy_ci95") or m.get("ci95")
    if isinstance(ci, dict):
        return ci.get("low", ci.get("lo")), ci.get("high", ci.get("hi"))
    if isinstance(ci, (list, tuple)) and len(ci) == 2:
        return ci[0], ci[1]
    return None, None


def relative_paths(runs: Sequence[RunInfo]) -> list[str]:
    """Run paths relative to their common parent (short and unique)."""
    import os

    paths = [str(r.path.resolve()) for r in runs]
    if len(paths) == 1:
        return [runs[0].path.name]
    common = os.path.commonpath(paths)
    return [os.path.relpath(p, common) for p in paths]


def leaderboard(runs: list[RunInfo]) -> Table:
    """One row per run, best accuracy first: the varying config keys, then the metrics."""
    keys = varying_keys(runs)
    rel = relative_paths(runs)
    rows = []
    for r, p in zip(runs, rel):
        m = r.metrics
        lo, hi = _ci(m)
        rows.append(
            [r.value(k) for k in keys]
            + [m.get("accuracy"), lo, hi, m.get("macro_accuracy"), m.get("exam_score"), m.get("n"),
               m.get("n_unparsed"), p]
        )
    ai = len(keys)
    rows.sort(key=lambda row: -(row[ai] if isinstance(row[ai], (int, float)) else -1))
    header = keys + ["accuracy", "ci95_low", "ci95_high", "macro_accuracy", "exam_score", "n", "n_unparsed", "run"]
    return Table(header, rows, pct_cols=("accuracy", "ci95_low", "ci95_high", "macro_accuracy"))


def group_table(runs: list[RunInfo], kind: str) -> Table:
    """Accuracy per domain (``kind="by_domain"``) or per type (``"by_type"``), one row per run."""
    order = DOMAIN_NAMES if kind == "by_domain" else QUESTION_TYPES
    present: list[str] = []
    for r in runs:
        present += [g for g in (r.metrics.get(kind) or {}) if g not in present]
    groups = [g for g in order if g in present] + [g for g in present if g not in order]
    rows = []
    for r in runs:
        d = r.metrics.get(kind) or {}
        rows.append([r.label] + [(d.get(g) or {}).get("accuracy") for g in groups])
    return Table(["run"] + groups, rows, pct_cols=tuple(groups))


def comparison_table(comparisons: list[dict[str, Any]]) -> Table:
    """Overall paired comparison rows: Δ, its CI, bootstrap and McNemar p."""
    rows = []
    for c in comparisons:
        o = c.get("overall") or {}
        rows.append([
            c["run"], c["baseline"], c["n_common"], o.get("acc_a"), o.get("acc_b"), o.get("delta"),
            o.get("ci_low"), o.get("ci_high"), o.get("p_bootstrap"), o.get("p_mcnemar"),
            o.get("discordant_a_only"), o.get("discordant_b_only"),
        ])
    header = ["run", "baseline", "n", "acc_baseline", "acc_run", "delta", "delta_ci_low", "delta_ci_high",
              "p_bootstrap", "p_mcnemar", "baseline_only_right", "run_only_right"]
    return Table(header, rows, pct_cols=("acc_baseline", "acc_run", "delta", "delta_ci_low", "delta_ci_high"))


def comparison_group_table(comparisons: list[dict[str, Any]], kind: str) -> Table:
    """Per-domain/type Δ [CI] with Holm-adjusted McNemar p (Holm across the groups of one comparison)."""
    groups: list[str] = []
    for c in comparisons:
        groups += [g for g in (c.get(kind) or {}) if g not in groups]
    order = DOMAIN_NAMES if kind == "by_domain" else QUESTION_TYPES
    groups = [g for g in order if g in groups] + [g for g in groups if g not in order]
    rows = []
    for c in comparisons:
        cells = []
        for g in groups:
            v = (c.get(kind) or {}).get(g)
            if not v:
                cells.append("—")
                continue
            cells.append(
                f"{100 * v['delta']:+.1f} [{100 * v['ci_low']:+.1f}, {100 * v['ci_high']:+.1f}] "
                f"p={v['p_holm']:.3g} (n={v['n']})"
            )
        rows.append([c["run"]] + cells)
    return Table(["run"] + groups, rows)
