"""Learning curves from ``history.json``: train loss per client, test accuracy and answer loss per domain
(the per-round ``compute_metrics`` dicts; domains by their canonical names, shown as slugs without a CJK font)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def learning_curves(history: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from qualbench.report.plots import label, setup_fonts

    setup_fonts()
    rounds = sorted((r for r in history["rounds"] if r.get("test")), key=lambda r: r["round"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = history.get("clients", {})
    trained = [r for r in rounds if r.get("train")]
    for cid in sorted({c for r in trained for c in r["train"]}, key=lambda c: (len(c), c)):
        pts = [(r["round"], r["train"][cid]["loss_mean"]) for r in trained if cid in r["train"]]
        axes[0].plot(*zip(*pts), marker="o", alpha=0.7, label=label(names.get(cid, cid)))
    if trained:
        axes[0].plot([r["round"] for r in trained], [r["train_loss"] for r in trained], "k--", lw=2, label="mean")
    axes[0].set(title="client train loss (answer tokens)", xlabel="round", ylabel="loss")
    for ax, metric, heading in ((axes[1], "accuracy", "test accuracy"), (axes[2], "loss", "test answer loss")):
        domains = list(dict.fromkeys(d for r in rounds for d in r["test"]["by_domain"]))  # compute_metrics order
        for d in domains:
            pts = [(r["round"], r["test"]["by_domain"][d].get(metric)) for r in rounds if d in r["test"]["by_domain"]]
            pts = [(x, y) for x, y in pts if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", alpha=0.7, label=label(d))
        pts = [(r["round"], r["test"].get(metric)) for r in rounds if r["test"].get(metric) is not None]
        if pts:
            ax.plot(*zip(*pts), "k--", lw=2, label="all clients")
        ax.set(title=heading + " per domain", xlabel="round", ylabel=metric)
    from matplotlib.ticker import MaxNLocator

    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{history.get('mode', 'federated')} ({history.get('strategy', '')})")
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out
