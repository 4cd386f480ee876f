"""Paired comparisons of runs against a baseline run on the items they share (McNemar, paired bootstrap, Holm)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from qualbench.analysis.runs import RunInfo, varying_keys
from qualbench.analysis.stats import compare_groups
from qualbench.errors import ConfigError

log = logging.getLogger(__name__)


def _norm(v: Any) -> str:
    s = str(v)
    return s.lower() if s.lower() in ("true", "false", "none", "null") else s


def parse_selector(text: str) -> tuple[str, str]:
    """``"prompt=zero_shot"`` → ("prompt", "zero_shot")."""
    if "=" not in text:
        raise ConfigError(f"--baseline expects KEY=VALUE (e.g. prompt=zero_shot), got {text!r}")
    k, v = text.split("=", 1)
    return k.strip().lstrip("+"), v.strip()


def pair_with_baseline(runs: list[RunInfo], key: str, value: str) -> list[tuple[RunInfo, RunInfo]]:
    """(baseline, other) pairs: each run not matching KEY=VALUE is paired with the baseline run that agrees
    with it on every other varying key (e.g. the same seed); with a single baseline run, that one."""
    base = [r for r in runs if _norm(r.value(key)) == _norm(value)]
    if not base:
        seen = sorted({_norm(r.value(key)) for r in runs})
        raise ConfigError(f"no run has {key}={value}; values of {key} in these runs: {', '.join(seen)}")
    others = [r for r in runs if r not in base]
    keys = [k for k in varying_keys(runs) if k != key]
    pairs = []
    for o in others:
        match = [b for b in base if all(_norm(b.value(k)) == _norm(o.value(k)) for k in keys)]
        if not match and len(base) == 1:
            match = base
        if not match:
            log.warning("report: no baseline run with %s=%s matches %s on %s; skipped", key, value, o.path, keys)
            continue
        pairs.append((match[0], o))
    return pairs


def compare_runs(base: RunInfo, other: RunInfo, n_boot: int = 1000, seed: int = 0) -> dict[str, Any]:
    """other − base on the shared items: overall, per domain and per type (Holm within each family)."""
    a, b = base.correctness(), other.correctness()
    ids = sorted(set(a) & set(b))
    res: dict[str, Any] = {
        "baseline": base.label or str(base.path),
        "run": other.label or str(other.path),
        "n_common": len(ids),
        "only_baseline": len(set(a) - set(b)),
        "only_run": len(set(b) - set(a)),
    }
    if not ids:
        log.warning("report: %s and %s share no items; no paired comparison", base.path, other.path)
        return res
    x = np.array([float(bool(a[i].get("correct"))) for i in ids])
    y = np.array([float(bool(b[i].get("correct"))) for i in ids])
    dom = [str(a[i].get("domain", "")) for i in ids]
    typ = [str(a[i].get("question_type", "")) for i in ids]
    by_dom = compare_groups(x, y, dom, n_boot=n_boot, seed=seed)
    by_typ = compare_groups(x, y, typ, n_boot=n_boot, seed=seed)
    res["overall"] = by_dom.pop("all").to_dict()
    by_typ.pop("all")
    res["by_domain"] = {k: v.to_dict() for k, v in by_dom.items()}
    res["by_type"] = {k: v.to_dict() for k, v in by_typ.items()}
    return res
