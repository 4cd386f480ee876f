"""Learning curves from ``history.json``: train loss per client, test accuracy and answer loss per domain."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def learning_curves(history: dict[str, Any], path: str | Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rounds = sorted(history["rounds"], key=lambda r: r["round"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4))
    names = history.get("clients", {})
    trained = [r for r in rounds if r.get("train")]
    for cid in sorted({c for r in trained for c in r["train"]}, key=lambda c: (len(c), c)):
        pts = [(r["round"], r["train"][cid]["loss_mean"]) for r in trained if cid in r["train"]]
        axes[0].plot(*zip(*pts), marker="o", alpha=0.7, label=names.get(cid, cid))
    if trained:
        axes[0].plot([r["round"] for r in trained], [r["train_loss"] for r in trained], "k--", lw=2, label="mean")
    axes[0].set(title="client train loss (answer tokens)", xlabel="round", ylabel="loss")
    for ax, metric, label in ((axes[1], "accuracy", "test accuracy"), (axes[2], "loss", "test answer loss")):
        seen = {d for r in rounds for d in r["test"]["by_domain"]}
        domains = [d for d in names.values() if d in seen] + sorted(seen - set(names.values()))
        for d in domains:
            pts = [(r["round"], r["test"]["by_domain"][d][metric]) for r in rounds
                   if d in r["test"]["by_domain"] and r["test"]["by_domain"][d][metric] is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", alpha=0.7, label=d)
        pts = [(r["round"], r["test"][metric]) for r in rounds if r["test"][metric] is not None]
        if pts:
            ax.plot(*zip(*pts), "k--", lw=2, label="all clients")
        ax.set(title=label + " per domain", xlabel="round", ylabel=metric)
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
