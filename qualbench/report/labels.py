"""What ran, in words: the settings that differ across runs, their values as a reader wants them, run labels.

* Keys that never count as a differing setting (``run.*``, ``hydra.*`` output dirs, ``experiment_name``, and any
  ``cache_dir`` / ``cache_mode`` / ``rebuild`` / ``show_progress``) are left out by
  :func:`qualbench.analysis.runs.varying_keys` itself (``is_noise_key``).
* **Seed-like keys** are those whose last part is ``seed``: ``seed``, ``model.seed``, ``federation.seed``,
  ``embedder.seed``, ``study.seed``. Runs that differ only in them are one *seed group* (``qualbench.report.seeds``).
  ``data.split_seed`` and ``study.shuffle_seed`` are **not** seed-like: they change which items are evaluated (the
  eval split) or the probe itself, so runs differing in them stay separate rows.
* ``data`` / ``data.path`` show the data file's name (``QualBench.json``), not the loader choice
  (``qualbench_json``) or ``data.name`` (``qualbench``); a hub id is shown whole.
* Contamination sub-runs (``original/`` and ``shuffled/`` beside ``shuffle_map.jsonl``) take their settings from
  the study's ``.hydra`` files plus ``contamination=original|shuffled``, and their labels start with the model's
  own name from metrics.json (``random(seed=0) contamination=shuffled``).
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any, Sequence

from qualbench.analysis.runs import RunInfo, _load_yaml, parse_overrides, varying_keys

CONTAMINATION_VARIANTS = ("original", "shuffled")
DATA_KEYS = ("data", "data.path")


def is_seed_key(key: str) -> bool:
    """``seed``, ``model.seed``, ``federation.seed`` ... (not ``data.split_seed`` / ``study.shuffle_seed``)."""
    return key.rsplit(".", 1)[-1] == "seed"


def contamination_variant(r: RunInfo) -> str | None:
    """"original" / "shuffled" for the two evaluations inside a contamination study's run dir, else None."""
    if r.path.name in CONTAMINATION_VARIANTS and (r.path.parent / "shuffle_map.jsonl").exists():
        return r.path.name
    return None


def prepare_runs(runs: Sequence[RunInfo]) -> None:
    """Give contamination sub-runs (no ``.hydra`` of their own) the study's overrides and group choices, plus
    ``contamination=<variant>``; otherwise they differ only in the written ``data.path``/``data.name``."""
    for r in runs:
        variant = contamination_variant(r)
        if variant is None or "contamination" in r.overrides:
            continue
        hd = r.path.parent / ".hydra"
        ov: dict[str, str] = {}
        if (hd / "overrides.yaml").exists():
            ov = parse_overrides(_load_yaml(hd / "overrides.yaml") or [])
        if (hd / "hydra.yaml").exists():
            h = _load_yaml(hd / "hydra.yaml") or {}
            choices = (((h.get("hydra") or {}).get("runtime") or {}).get("choices")) or {}
            for group, choice in choices.items():
                if not str(group).startswith("hydra/") and choice is not None:
                    r.config[str(group)] = choice
        r.overrides = {**ov, **r.overrides, "contamination": variant}


def model_name(r: RunInfo) -> str | None:
    """The name the model gave itself in metrics.json (``random(seed=1)``, ``qwen2.5-7b``, ``retrieval``)."""
    name = r.metrics.get("model")
    return str(name) if name not in (None, "") else None


def _data_path(r: RunInfo) -> str | None:
    p = r.overrides.get("data.path") or r.config.get("data.path")
    return None if p in (None, "", "None", "null") else str(p)


def display_value(r: RunInfo, key: str) -> Any:
    """A setting's value as the leaderboard shows it: for ``data``/``data.path`` the data file's name."""
    v = r.value(key)
    if key in DATA_KEYS:
        p = _data_path(r)
        if p is not None:
            hub = str(r.config.get("data.loader") or r.value("data") or "") == "hub"
            return p if hub else Path(p).name
    return v


def display_values(runs: Sequence[RunInfo], key: str) -> list[Any]:
    """:func:`display_value` for every run; data file names that collide for different paths are shown whole."""
    vals = [display_value(r, key) for r in runs]
    if key in DATA_KEYS:
        paths = [_data_path(r) for r in runs]
        by_name: dict[Any, set[Any]] = {}
        for v, p in zip(vals, paths):
            by_name.setdefault(v, set()).add(p)
        vals = [p if p is not None and len(by_name[v]) > 1 else v for v, p in zip(vals, paths)]
    return vals


def setting_keys(runs: Sequence[RunInfo]) -> list[str]:
    """The varying keys (noise keys already left out); ``data.path`` is dropped when ``data`` itself differs
    (the ``data`` column already shows the file)."""
    keys = varying_keys(list(runs))
    if "data" in keys:
        keys = [k for k in keys if k != "data.path"]
    return keys


def short_key(k: str) -> str:
    return k.rsplit(".", 1)[-1] if k.count(".") > 1 else k


def settings_text(runs: Sequence[RunInfo], keys: Sequence[str]) -> list[str]:
    """``key=value ...`` per run over ``keys`` (values as displayed; keys with no value left out)."""
    cols = [display_values(runs, k) for k in keys]
    return [" ".join(f"{short_key(k)}={col[i]}" for k, col in zip(keys, cols) if col[i] is not None)
            for i in range(len(runs))]


def _unique(labels: list[str], runs: Sequence[RunInfo]) -> list[str]:
    counts = Counter(labels)
    if any(c > 1 for c in counts.values()):  # still ambiguous: add the directory name to those
        labels = [f"{lab} [{r.path.name}]" if counts[lab] > 1 else lab for lab, r in zip(labels, runs)]
    return labels


def run_labels(runs: Sequence[RunInfo], assign: bool = True) -> list[str]:
    """Short unique labels from the differing settings (the directory name when none differ); contamination
    sub-runs start with their model's name. With ``assign`` they are stored in ``RunInfo.label``."""
    labels = []
    for r, text in zip(runs, settings_text(runs, setting_keys(runs))):
        lab = text or r.path.name
        name = model_name(r)
        if contamination_variant(r) and name and name not in lab:
            lab = f"{name} {lab}" if text else f"{name} contamination={contamination_variant(r)}"
        labels.append(lab)
    labels = _unique(labels, runs)
    if assign:
        for r, lab in zip(runs, labels):
            r.label = lab
    return labels


def model_labels(runs: Sequence[RunInfo], assign: bool = True) -> list[str]:
    """Labels that name the models (crowd workers): the model's own name from metrics.json where that is unique,
    else that name followed by the differing settings; runs without a name get :func:`run_labels`."""
    base = run_labels(runs, assign=False)
    names = [model_name(r) for r in runs]
    counts = Counter(n for n in names if n)
    labels = []
    for n, b in zip(names, base):
        if not n:
            labels.append(b)
        elif counts[n] == 1:
            labels.append(n)
        else:
            labels.append(b if b.startswith(n) else f"{n} {b}")
    labels = _unique(labels, runs)
    if assign:
        for r, lab in zip(runs, labels):
            r.label = lab
    return labels


def model_prefix(runs: Sequence[RunInfo]) -> str:
    """The model's own name when all runs share it, else their common ``model=<choice>``, else ""."""
    names = {model_name(r) for r in runs}
    if len(names) == 1 and None not in names:
        return str(next(iter(names)))
    choices = {r.value("model") for r in runs}
    return f"model={next(iter(choices))}" if len(choices) == 1 and None not in choices else ""


def constant_text(runs: Sequence[RunInfo]) -> str:
    """What all runs share, for a group with no differing setting: ``model=random data=sample``."""
    if not runs:
        return ""
    r = runs[0]
    parts = []
    for k in ("model", "data"):
        v = display_value(r, k)
        if v is not None and all(display_value(x, k) == v for x in runs):
            parts.append(f"{k}={v}")
    return " ".join(parts)
