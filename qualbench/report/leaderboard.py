"""Tables: the leaderboard (only the config keys that differ across runs), per-domain and per-type accuracy.

Units: every rate (accuracy, its CI, macro accuracy, exam score, per-domain/type accuracy) is a fraction in [0,1]
in metrics.json. Markdown/HTML show it in % with one decimal and say so in the header (``accuracy %``); the CSV
keeps the fraction under the metric's own name (``accuracy``) and adds the same value in % as ``<name>_pct``
(the last columns, rounded to 4 decimals), so both are there.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from qualbench.analysis.runs import RunInfo
from qualbench.domains import DOMAIN_NAMES
from qualbench.formatting import MISSING_MARK, pct
from qualbench.records import QUESTION_TYPES
from qualbench.report.labels import contamination_variant, display_values, model_name, setting_keys
from qualbench.scoring.references import REFERENCE_LABELS

LABELS_COL = "uses_eval_labels"  # True: the model read the evaluated items' labels (e.g. calibration=crossfit)
LABELS_MARK = "YES (reads eval labels)"


@dataclass
class Table:
    """A plain table: header and rows of raw values (numbers stay numbers for CSV)."""

    header: list[str]
    rows: list[list[Any]]
    pct_cols: tuple[str, ...] = ()  # columns shown as percentages in Markdown/HTML
    row_kinds: list[str] = field(default_factory=list)  # per row: "model", "labels" (reads eval labels), "reference"
    marks: dict[tuple[int, str], str] = field(default_factory=dict)  # (row, column) → note after the value (MD/HTML)
    units: dict[str, str] = field(default_factory=dict)  # column → unit in MD/HTML headers (default "%" for pct_cols)

    def unit(self, col: str) -> str:
        return self.units.get(col, "%" if col in self.pct_cols else "")

    def display_header(self) -> list[str]:
        """Headers for Markdown/HTML: percentage columns say so (``accuracy %``)."""
        return [f"{h} {self.unit(h)}" if self.unit(h) else h for h in self.header]

    def cell(self, col: str, v: Any) -> str:
        if v is None or (isinstance(v, float) and v != v):
            return MISSING_MARK
        if col == LABELS_COL and isinstance(v, bool):
            return LABELS_MARK if v else "no"
        if col in self.pct_cols and isinstance(v, (int, float)):
            return pct(v)
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    def formatted(self) -> list[list[str]]:
        return [[self.cell(c, v) + (f" ({self.marks[i, c]})" if (i, c) in self.marks else "")
                 for c, v in zip(self.header, r)] for i, r in enumerate(self.rows)]

    def to_markdown(self) -> str:
        esc = [[s.replace("|", "\\|") for s in r] for r in self.formatted()]
        lines = ["| " + " | ".join(self.display_header()) + " |", "|" + "---|" * len(self.header)]
        lines += ["| " + " | ".join(r) + " |" for r in esc]
        return "\n".join(lines) + "\n"

    def csv_rows(self) -> tuple[list[str], list[list[Any]]]:
        """Header and rows as the CSV has them: fractions under the column's name, then ``<name>_pct`` twins."""
        pcts = [i for i, h in enumerate(self.header) if h in self.pct_cols]

        def pct(v: Any) -> Any:
            ok = isinstance(v, (int, float)) and not isinstance(v, bool) and v == v
            return round(100 * v, 4) if ok else None

        header = self.header + [f"{self.header[i]}_pct" for i in pcts]
        rows = [list(r) + [pct(r[i]) for i in pcts] for r in self.rows]
        return header, rows

    def to_csv(self, path: str | Path) -> Path:
        path = Path(path)
        header, rows = self.csv_rows()
        with path.open("w", newline="", encoding="utf-8") as f:
            w = csv.writer(f)
            w.writerow(header)
            w.writerows([["" if v is None else v for v in r] for r in rows])
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


def data_names(runs: Sequence[RunInfo]) -> list[str]:
    """What each run evaluated: its data file's name (``QualBench.json``), else data.name / metrics' ``data``."""
    files = display_values(runs, "data.path")
    return [str(f if f is not None else (r.metrics.get("data") or r.value("data") or r.path.name))
            for r, f in zip(runs, files)]


def reference_sets(runs: Sequence[RunInfo]) -> list[tuple[str, dict[str, Any]]]:
    """The distinct ``references`` of the runs (chance, majority per type: see qualbench.scoring.references),
    each with a suffix naming its data when the runs hold more than one set (runs on different items)."""
    seen: dict[str, tuple[str, dict[str, Any]]] = {}
    for r, data in zip(runs, data_names(runs)):
        refs = r.metrics.get("references")
        if isinstance(refs, dict) and refs:
            seen.setdefault(json.dumps(refs, sort_keys=True, ensure_ascii=False), (data, refs))
    many = len(seen) > 1
    return [(f" [{data}]" if many else "", refs) for data, refs in seen.values()]


def _ref_label(name: str, ref: dict[str, Any], suffix: str) -> str:
    return f"reference: {ref.get('label') or REFERENCE_LABELS.get(name, name)}{suffix}"


def _below(acc: Any, ref: Any) -> bool:
    return isinstance(acc, (int, float)) and isinstance(ref, (int, float)) and acc < ref - 1e-12


def below_text(m: dict[str, Any]) -> str:
    """"below chance; 多选题: below majority" for a run's metrics ("" when at or above every reference)."""
    refs = m.get("references")
    if not isinstance(refs, dict):
        return ""
    parts = [f"below {n}" for n, ref in refs.items() if isinstance(ref, dict) and _below(m.get("accuracy"),
                                                                                       ref.get("accuracy"))]
    by_type = m.get("by_type") or {}
    for t in [t for t in QUESTION_TYPES if t in by_type] + [t for t in by_type if t not in QUESTION_TYPES]:
        v = by_type[t]
        names = [n for n, ref in refs.items() if isinstance(ref, dict)
                 and _below((v or {}).get("accuracy"), ((ref.get("by_type") or {}).get(t) or {}).get("accuracy"))]
        if names:
            parts.append(f"{t}: below {' and '.join(names)}")
    return "; ".join(parts)


def _macro(ref: dict[str, Any]) -> float | None:
    accs = [v.get("accuracy") for v in (ref.get("by_domain") or {}).values() if isinstance(v, dict)]
    accs = [a for a in accs if isinstance(a, (int, float))]
    return sum(accs) / len(accs) if accs else None


def leaderboard(runs: list[RunInfo], references: bool = True, groups: dict[int, str] | None = None) -> Table:
    """One row per run, best accuracy first: the varying config keys (values as displayed: the data file's
    name for ``data``), then the metrics. With ``groups`` (id(run) → seed group label, see
    qualbench.report.seeds) a ``group`` column names each run's seed group.

    ``uses_eval_labels`` marks runs whose model read the evaluated items' labels; ``below_reference`` says
    where a run's accuracy (overall or per type) is below its own reference rows. With ``references`` the
    reference rows of the evaluated items (chance; majority answer per type, which reads the labels) are
    ranked among the runs, their ``run`` cell starting with ``reference:``.
    """
    keys = setting_keys(runs)
    cols = [display_values(runs, k) for k in keys]
    if any(contamination_variant(r) for r in runs) and "model" not in keys:  # contamination rows name their model
        keys = keys + ["model"]
        cols.append([model_name(r) or r.value("model") for r in runs])
    rel = relative_paths(runs)
    rows, kinds = [], []
    for i, (r, p) in enumerate(zip(runs, rel)):
        m = r.metrics
        lo, hi = _ci(m)
        labels = m.get(LABELS_COL)
        rows.append(
            [c[i] for c in cols]
            + [m.get("accuracy"), lo, hi, m.get("macro_accuracy"), m.get("exam_score"), m.get("n"),
               m.get("n_unparsed"), None if labels is None else bool(labels), below_text(m), "model"]
            + ([groups.get(id(r), "")] if groups is not None else []) + [p]
        )
        kinds.append("labels" if labels else "model")
    if references:
        for suffix, refs in reference_sets(runs):
            for name, ref in refs.items():
                if not isinstance(ref, dict):
                    continue
                rows.append([None] * len(keys) + [ref.get("accuracy"), None, None, _macro(ref), None, ref.get("n"),
                                                  None, bool(ref.get("reads_labels")), "", "reference"]
                            + ([""] if groups is not None else []) + [_ref_label(name, ref, suffix)])
                kinds.append("reference")
    ai = len(keys)
    order = sorted(range(len(rows)), key=lambda i: -(rows[i][ai] if isinstance(rows[i][ai], (int, float)) else -1))
    header = keys + ["accuracy", "ci95_low", "ci95_high", "macro_accuracy", "exam_score", "n", "n_unparsed",
                     LABELS_COL, "below_reference", "row_kind"] + (["group"] if groups is not None else []) + ["run"]
    return Table(header, [rows[i] for i in order],
                 pct_cols=("accuracy", "ci95_low", "ci95_high", "macro_accuracy", "exam_score"),
                 row_kinds=[kinds[i] for i in order])


def group_table(runs: list[RunInfo], kind: str, references: bool = False) -> Table:
    """Accuracy per domain (``kind="by_domain"``) or per type (``"by_type"``), one row per run.

    With ``references``: the runs' reference rows are added (``reference: ...``), cells below a reference are
    marked in Markdown/HTML ("below chance"), and a ``below_reference`` column lists them (for the CSV).
    """
    order = DOMAIN_NAMES if kind == "by_domain" else QUESTION_TYPES
    present: list[str] = []
    for r in runs:
        present += [g for g in (r.metrics.get(kind) or {}) if g not in present]
    groups = [g for g in order if g in present] + [g for g in present if g not in order]
    rows: list[list[Any]] = []
    kinds: list[str] = []
    marks: dict[tuple[int, str], str] = {}
    for r in runs:
        d = r.metrics.get(kind) or {}
        row: list[Any] = [r.label] + [(d.get(g) or {}).get("accuracy") for g in groups]
        if references:
            refs = r.metrics.get("references") if isinstance(r.metrics.get("references"), dict) else {}
            notes = []
            for g, acc in zip(groups, row[1:]):
                names = [n for n, ref in refs.items() if isinstance(ref, dict)
                         and _below(acc, (((ref.get(kind) or {}).get(g)) or {}).get("accuracy"))]
                if names:
                    marks[len(rows), g] = "below " + " and ".join(names)
                    notes.append(f"{g}: below {' and '.join(names)}")
            row += [bool(r.metrics[LABELS_COL]) if LABELS_COL in r.metrics else None, "; ".join(notes)]
        rows.append(row)
        kinds.append("labels" if r.metrics.get(LABELS_COL) else "model")
    if not references:
        return Table(["run"] + groups, rows, pct_cols=tuple(groups))
    for suffix, refs in reference_sets(runs):
        for name, ref in refs.items():
            if isinstance(ref, dict):
                by = ref.get(kind) or {}
                for g in groups:
                    if (by.get(g) or {}).get("answer"):
                        marks[len(rows), g] = f"answer {by[g]['answer']}"
                rows.append([_ref_label(name, ref, suffix)] + [(by.get(g) or {}).get("accuracy") for g in groups]
                            + [bool(ref.get("reads_labels")), ""])
                kinds.append("reference")
    return Table(["run"] + groups + [LABELS_COL, "below_reference"], rows, pct_cols=tuple(groups),
                 row_kinds=kinds, marks=marks)


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
    return Table(header, rows, pct_cols=("acc_baseline", "acc_run", "delta", "delta_ci_low", "delta_ci_high"),
                 units={"delta": "pp", "delta_ci_low": "pp", "delta_ci_high": "pp"})


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
                cells.append(MISSING_MARK)
                continue
            cells.append(
                f"{100 * v['delta']:+.1f} [{100 * v['ci_low']:+.1f}, {100 * v['ci_high']:+.1f}] "
                f"p={v['p_holm']:.3g} (n={v['n']})"
            )
        rows.append([c["run"]] + cells)
    return Table(["run"] + groups, rows)
