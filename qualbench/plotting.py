"""Every figure QualBench draws (matplotlib, Agg): a run's per-domain bars, the report's grouped bars, heatmap and
line plots, and federated learning curves.

Label policy, the same in every figure: domain, question-type and config names are drawn as given when a font
covering Chinese is installed (``fc-list :lang=zh``, registered with matplotlib); without one, Chinese domain and
type names become their English slugs (``fire_safety``, ``single``, see :func:`qualbench.formatting.ascii_name`)
and any other non-ASCII text is escaped, so no figure shows missing-glyph boxes.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from qualbench.formatting import ascii_name  # noqa: E402


@functools.lru_cache(maxsize=1)
def cjk_font() -> str | None:
    """The family name of an installed font covering Chinese (``fc-list :lang=zh``), registered with matplotlib."""
    if not shutil.which("fc-list"):
        return None
    try:
        out = subprocess.run(
            ["fc-list", ":lang=zh", "file", "family"], capture_output=True, text=True, timeout=20
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if ":" not in line:
            continue
        file = line.split(":", 1)[0].strip()
        if not Path(file).exists():
            continue
        try:
            font_manager.fontManager.addfont(file)
            return font_manager.FontProperties(fname=file).get_name()
        except Exception:  # noqa: BLE001 - unreadable font: try the next one
            continue
    return None


def _use_cjk_font() -> None:
    fam = cjk_font()
    if fam:
        plt.rcParams["font.sans-serif"] = [fam, "DejaVu Sans"]
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["axes.unicode_minus"] = False


def label(text: Any) -> str:
    """A name as drawn in a figure (the module's label policy): as is with a CJK font, else ASCII."""
    text = str(text)
    if cjk_font() or text.isascii():
        return text
    return ascii_name(text) or text.encode("ascii", "backslashreplace").decode()


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def domain_bar_chart(
    by_domain: Mapping[str, Mapping[str, float]],
    path: str | Path,
    title: str = "Accuracy by domain",
    overall: float | None = None,
) -> Path:
    """One run's accuracy per domain (``metrics["by_domain"]``) with 95% CI whiskers when ``ci95`` is present."""
    _use_cjk_font()
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
    ax.set_xticks(list(x), [label(n) for n in names], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=10)
    return _save(fig, path)


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path: str | Path,
    title: str = "",
    ylabel: str = "accuracy",
) -> Path:
    """Bars per group, one colour per series; each value is (acc, ci_low, ci_high)."""
    _use_cjk_font()
    names = list(series)
    k = max(1, len(names))
    fig, ax = plt.subplots(figsize=(min(13.0, max(6.5, 0.25 * k * len(groups) + 3)), 4.4), dpi=110)
    width = 0.8 / k
    x = np.arange(len(groups))
    for j, n in enumerate(names):
        vals = np.array(series[n], dtype=float)
        acc = vals[:, 0]
        err = np.vstack([np.clip(acc - vals[:, 1], 0, None), np.clip(vals[:, 2] - acc, 0, None)])
        err = np.nan_to_num(err)
        yerr = err if err.any() else None
        ax.bar(x + (j - (k - 1) / 2) * width, np.nan_to_num(acc), width, yerr=yerr, capsize=2, label=label(n))
    ax.set_xticks(x, [label(g) for g in groups], rotation=20, ha="right", fontsize=8)
    ax.set_ylim(0, 1.05)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, ncol=2 if k > 6 else 1, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    return _save(fig, path)


def heatmap(
    rows: Sequence[str], cols: Sequence[str], values: np.ndarray, path: str | Path, title: str = ""
) -> Path:
    """A rows × cols accuracy heatmap with the values printed in the cells."""
    _use_cjk_font()
    v = np.asarray(values, dtype=float)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(cols) + 3), max(2.5, 0.4 * len(rows) + 1.5)), dpi=110)
    im = ax.imshow(np.ma.masked_invalid(v), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    for i in range(v.shape[0]):
        for j in range(v.shape[1]):
            if v[i, j] == v[i, j]:
                ax.text(j, i, f"{v[i, j]:.2f}", ha="center", va="center", fontsize=7,
                        color="white" if v[i, j] < 0.6 else "black")
    ax.set_xticks(range(len(cols)), [label(c) for c in cols], rotation=25, ha="right", fontsize=8)
    ax.set_yticks(range(len(rows)), [label(r) for r in rows], fontsize=7)
    ax.set_title(title, fontsize=10)
    fig.colorbar(im, ax=ax, label="accuracy")
    return _save(fig, path)


def lines(
    xs_by_series: Mapping[str, tuple[Sequence[float], Sequence[float]]],
    path: str | Path,
    xlabel: str,
    ylabel: str = "accuracy",
    title: str = "",
    bands: Mapping[str, tuple[Sequence[float], Sequence[float]]] | None = None,
) -> Path:
    """One line per series: ``{name: (x, y)}``; optional CI bands ``{name: (lo, hi)}``."""
    _use_cjk_font()
    fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=110)
    for name, (x, y) in xs_by_series.items():
        ax.plot(x, y, marker="o", label=label(name))
        if bands and name in bands:
            ax.fill_between(x, bands[name][0], bands[name][1], alpha=0.15)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    if xs_by_series:
        ax.legend(fontsize=7)
    return _save(fig, path)


def learning_curves(history: Mapping[str, Any], path: str | Path, title: str | None = None) -> Path:
    """Federated ``history.json`` as three panels: train loss per client, test accuracy and answer loss per domain
    (the per-round ``compute_metrics`` dicts, domains in their order there)."""
    _use_cjk_font()
    rounds = sorted((r for r in history["rounds"] if r.get("test")), key=lambda r: r["round"])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4), dpi=110)
    names = history.get("clients", {})
    trained = [r for r in rounds if r.get("train")]
    for cid in sorted({c for r in trained for c in r["train"]}, key=lambda c: (len(c), c)):
        pts = [(r["round"], r["train"][cid]["loss_mean"]) for r in trained if cid in r["train"]]
        axes[0].plot(*zip(*pts), marker="o", alpha=0.7, label=label(names.get(cid, cid)))
    if trained:
        axes[0].plot([r["round"] for r in trained], [r["train_loss"] for r in trained], "k--", lw=2, label="mean")
    axes[0].set(title="client train loss (answer tokens)", xlabel="round", ylabel="loss")
    for ax, metric, heading in ((axes[1], "accuracy", "test accuracy"), (axes[2], "loss", "test answer loss")):
        domains = list(dict.fromkeys(d for r in rounds for d in r["test"]["by_domain"]))
        for d in domains:
            pts = [(r["round"], r["test"]["by_domain"][d].get(metric)) for r in rounds if d in r["test"]["by_domain"]]
            pts = [(x, y) for x, y in pts if y is not None]
            if pts:
                ax.plot(*zip(*pts), marker="o", alpha=0.7, label=label(d))
        pts = [(r["round"], r["test"].get(metric)) for r in rounds if r["test"].get(metric) is not None]
        if pts:
            ax.plot(*zip(*pts), "k--", lw=2, label="all clients")
        ax.set(title=heading + " per domain", xlabel="round", ylabel=metric)
    for ax in axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.legend(fontsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title or f"{history.get('mode', 'federated')} ({history.get('strategy', '')})")
    return _save(fig, path)
