"""Seed groups: runs that differ only in seed-like keys (``seed``, ``model.seed``, ``federation.seed`` ...; see
:func:`qualbench.report.labels.is_seed_key`) become one row with mean ± sample sd (n − 1 in the denominator) of
accuracy, exam score and macro accuracy, overall and per question type, followed by one row per seed.

Two tables come out of the same rows: a CSV one (fractions in [0,1] under ``<metric>_mean`` / ``<metric>_sd``,
with ``_pct`` twins; ``n_seeds``; ``row_kind`` = ``group`` | ``seed``; every row carries its ``group`` label)
and a display one for Markdown/HTML (percentages with one decimal, ``mean ± sd`` in one cell, seed rows indented
``↳`` below their group).
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from qualbench.analysis.runs import RunInfo
from qualbench.formatting import pct as _pct
from qualbench.records import QUESTION_TYPES
from qualbench.report.labels import (
    constant_text,
    contamination_variant,
    display_values,
    is_seed_key,
    model_prefix,
    setting_keys,
    settings_text,
)
from qualbench.report.leaderboard import LABELS_COL, Table, relative_paths

log = logging.getLogger(__name__)

METRICS = ("accuracy", "exam_score", "macro_accuracy")  # overall; per type: accuracy and exam_score
METRIC_NAMES = {"accuracy": "accuracy", "exam_score": "exam score", "macro_accuracy": "macro accuracy"}


@dataclass
class SeedGroup:
    label: str
    runs: list[RunInfo]
    seed_labels: list[str] = field(default_factory=list)  # "model.seed=1" per run
    seed_values: dict[str, list[Any]] = field(default_factory=dict)  # seed key → value per run


def mean_sd(values: Sequence[Any]) -> tuple[float | None, float | None, int]:
    """Mean, sample sd (None for fewer than 2 values) and n over the numeric values."""
    xs = [float(v) for v in values if isinstance(v, (int, float)) and not isinstance(v, bool) and v == v]
    if not xs:
        return None, None, 0
    m = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - m) ** 2 for x in xs) / (len(xs) - 1)) if len(xs) > 1 else None
    return m, sd, len(xs)


def metric_columns(runs: Sequence[RunInfo]) -> list[tuple[str, str | None, str]]:
    """(column stem, question type or None, metric) for the overall metrics and each type present."""
    types: list[str] = []
    for r in runs:
        types += [t for t in (r.metrics.get("by_type") or {}) if t not in types]
    types = [t for t in QUESTION_TYPES if t in types] + [t for t in types if t not in QUESTION_TYPES]
    cols: list[tuple[str, str | None, str]] = [(m, None, m) for m in METRICS]
    for t in types:
        cols += [(f"{t}_accuracy", t, "accuracy"), (f"{t}_exam_score", t, "exam_score")]
    return cols


def _value(r: RunInfo, qtype: str | None, metric: str) -> Any:
    if qtype is None:
        return r.metrics.get(metric)
    return ((r.metrics.get("by_type") or {}).get(qtype) or {}).get(metric)


def seed_keys(runs: Sequence[RunInfo]) -> list[str]:
    return [k for k in setting_keys(runs) if is_seed_key(k)]


def seed_groups(runs: Sequence[RunInfo]) -> list[SeedGroup]:
    """Runs grouped by every differing setting except the seed-like ones (first-seen order); [] when no
    seed-like key differs."""
    keys = setting_keys(runs)
    skeys = [k for k in keys if is_seed_key(k)]
    if not skeys:
        return []
    gkeys = [k for k in keys if not is_seed_key(k)]
    gtext = settings_text(runs, gkeys)
    stext = settings_text(runs, skeys)
    svals = {k: display_values(runs, k) for k in skeys}
    groups: dict[str, SeedGroup] = {}
    for i, (r, g, s) in enumerate(zip(runs, gtext, stext)):
        grp = groups.setdefault(g, SeedGroup(label=g, runs=[]))
        grp.runs.append(r)
        grp.seed_labels.append(s or r.path.name)
        for k in skeys:
            grp.seed_values.setdefault(k, []).append(svals[k][i])
    for grp in groups.values():
        if not grp.label:
            grp.label = constant_text(grp.runs) or "all runs"
        elif any(contamination_variant(r) for r in grp.runs):  # contamination rows name their model
            pre = model_prefix(grp.runs)
            grp.label = f"{pre} {grp.label}" if pre and pre not in grp.label else grp.label
        seen = [tuple(grp.seed_values[k][i] for k in skeys) for i in range(len(grp.runs))]
        if len(set(seen)) < len(seen):
            log.warning("report: seed group %r holds runs with the same seeds (%s): each run counts as one seed",
                        grp.label, ", ".join(grp.seed_labels))
    return list(groups.values())


def _join(vals: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in vals)


def seed_tables(runs: Sequence[RunInfo]) -> tuple[Table, Table] | None:
    """(CSV table, display table) over the seed groups, best mean accuracy first; None when no seed differs."""
    groups = seed_groups(runs)
    if not groups:
        return None
    keys = setting_keys(runs)
    gkeys = [k for k in keys if not is_seed_key(k)]
    skeys = [k for k in keys if is_seed_key(k)]
    cols = metric_columns(runs)
    rel = dict(zip((id(r) for r in runs), relative_paths(list(runs))))
    gvals = {k: dict(zip((id(r) for r in runs), display_values(runs, k))) for k in gkeys}

    def stats(grp: SeedGroup) -> dict[str, tuple[float | None, float | None, int]]:
        return {stem: mean_sd([_value(r, t, m) for r in grp.runs]) for stem, t, m in cols}

    order = sorted(groups, key=lambda g: -(stats(g)["accuracy"][0] if stats(g)["accuracy"][0] is not None else -1))
    csv_header = (["group", "row_kind"] + gkeys + skeys + ["n_seeds"]
                  + [f"{stem}_{x}" for stem, _, _ in cols for x in ("mean", "sd")] + [LABELS_COL, "run"])
    disp_header = (["group / seed"] + gkeys + skeys + ["n_seeds"]
                   + [f"{stem.replace('_', ' ')} % (mean ± sd)" for stem, _, _ in cols] + [LABELS_COL, "run"])
    csv_rows: list[list[Any]] = []
    disp_rows: list[list[Any]] = []
    kinds: list[str] = []
    for grp in order:
        st = stats(grp)
        first = grp.runs[0]
        labels = [r.metrics.get(LABELS_COL) for r in grp.runs]
        lab = None if all(x is None for x in labels) else any(bool(x) for x in labels)
        gv = [gvals[k][id(first)] for k in gkeys]
        sv = [_join(grp.seed_values[k]) for k in skeys]
        csv_rows.append([grp.label, "group"] + gv + sv + [len(grp.runs)]
                        + [x for stem, _, _ in cols for x in st[stem][:2]] + [lab, ""])
        disp_rows.append([grp.label] + gv + sv + [len(grp.runs)]
                         + [f"{_pct(st[stem][0])} ± {_pct(st[stem][1])}" for stem, _, _ in cols] + [lab, ""])
        kinds.append("labels" if lab else "group")
        for i, r in enumerate(grp.runs):
            vals = [_value(r, t, m) for _, t, m in cols]
            own = r.metrics.get(LABELS_COL)
            own = None if own is None else bool(own)
            seeds = [grp.seed_values[k][i] for k in skeys]
            csv_rows.append([grp.label, "seed"] + gv + seeds + [1] + [x for v in vals for x in (v, None)]
                            + [own, rel[id(r)]])
            disp_rows.append([f"↳ {grp.seed_labels[i]}"] + gv + seeds + [1]
                             + [_pct(v if isinstance(v, (int, float)) else None) for v in vals] + [own, rel[id(r)]])
            kinds.append("seed")
    pct = tuple(f"{stem}_{x}" for stem, _, _ in cols for x in ("mean", "sd"))
    return (Table(csv_header, csv_rows, pct_cols=pct, row_kinds=kinds),
            Table(disp_header, disp_rows, row_kinds=kinds))


def group_of(runs: Sequence[RunInfo]) -> dict[int, str]:
    """id(run) → its seed group's label (empty when no seed differs)."""
    return {id(r): g.label for g in seed_groups(runs) for r in g.runs}


SEED_NOTE = ("Runs that differ only in seed-like keys (`seed`, `model.seed`, `federation.seed`, ...; not "
             "`data.split_seed`) are one group: mean ± sample sd (n − 1) over its seeds, in %, one decimal; `n_seeds` "
             "runs; each seed's own row is indented below (↳). With `limit`, `seed` also picks which items are "
             "evaluated, so the sd includes item sampling.")
