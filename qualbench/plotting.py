"""Small matplotlib helpers shared by runs and reports (Agg backend; English labels render everywhere)."""

from __future__ import annotations

from pathlib import Path
from typing import Mapping

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from qualbench.domains import get_domain  # noqa: E402


def domain_label(name: str) -> str:
    """English label for a domain (CJK fonts are often missing on servers)."""
    try:
        return get_domain(name).english
    except ValueError:
        return name


def domain_bar_chart(
    by_domain: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "Accuracy by domain",
    overall: float | None = None,
    chance: Mapping[str, float] | None = None,
) -> Path:
    """Bar chart of accuracy per domain with 95% CI whiskers when ``ci95`` is present."""
    names = list(by_domain)
    acc = [by_domain[n]["accuracy"] for n in names]
    lo = [max(0.0, a - by_domain[n].get("ci95", [a, a])[0]) for n, a in zip(names, acc)]
    hi = [max(0.0, by_domain[n].get("ci95", [a, a])[1] - a) for n, a in zip(names, acc)]
    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=120)
    x = range(len(names))
    ax.bar(x, acc, yerr=[lo, hi], capsize=3, color="#4C72B0")
    for i, n in enumerate(names):
        ax.text(i, acc[i] + 0.02, f"{acc[i]:.2f}\n(n={int(by_domain[n].get('n', 0))})", ha="center", fontsize=7)
    if overall is not None:
        ax.axhline(overall, color="#C44E52", ls="--", lw=1, label=f"overall {overall:.3f}")
        ax.legend(fontsize=8, loc="upper right")
    ax.set_xticks(list(x), [domain_label(n) for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path)
    plt.close(fig)
    return path
