"""Prompt ablation (``qualbench experiment=prompt_ablation``, a Hydra multirun over ``prompt``).

The sweep itself is plain ``eval`` runs; the study is the paired analysis of each prompt against
``study.baseline_prompt`` on the items they share (McNemar exact + paired bootstrap, Holm across domains),
which ``qualbench-report SWEEP_DIR`` does automatically for such a sweep (or explicitly with
``--baseline prompt=zero_shot``).
"""

from __future__ import annotations

from typing import Sequence

from qualbench.analysis.runs import RunInfo, varying_keys


def default_baseline(runs: Sequence[RunInfo]) -> str | None:
    """``prompt=<study.baseline_prompt>`` when the runs vary ``prompt`` and agree on a baseline prompt."""
    runs = list(runs)
    if len(runs) < 2 or "prompt" not in varying_keys(runs):
        return None
    chosen = {r.config.get("study.baseline_prompt") for r in runs} - {None}
    if len(chosen) != 1:
        return None
    value = chosen.pop()
    return f"prompt={value}" if any(str(r.value("prompt")) == str(value) for r in runs) else None
