"""Report plots (matplotlib, Agg). Chinese labels only when a CJK font is installed; English slugs otherwise."""

from __future__ import annotations

import functools
import logging
import shutil
import subprocess
from pathlib import Path
from typing import Any, Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib import font_manager  # noqa: E402

from qualbench.domains import get_domain  # noqa: E402
from qualbench.records import TYPE_SLUGS  # noqa: E402

log = logging.getLogger(__name__)


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
        file, fam = line.split(":", 1)
        file = file.strip()
        if not Path(file).exists():
            continue
        try:
            font_manager.fontManager.addfont(file)
            return font_manager.FontProperties(fname=file).get_name()
        except Exception:  # noqa: BLE001 - unreadable font: try the next one
            continue
    return None


def _setup() -> None:
    fam = cjk_font()
    if fam:
        plt.rcParams["font.sans-serif"] = [fam, "DejaVu Sans"]
        plt.rcParams["font.family"] = "sans-serif"
        plt.rcParams["axes.unicode_minus"] = False


def setup_fonts() -> None:
    """Use the CJK font (when one is installed) in figures drawn outside this module (federation/plots.py)."""
    _setup()


def label(text: str) -> str:
    """Axis label for a domain/type/config value: kept as is with a CJK font, else an ASCII spelling."""
    text = str(text)
    if cjk_font() or text.isascii():
        return text
    if text in TYPE_SLUGS:
        return TYPE_SLUGS[text]
    try:
        return get_domain(text).slug
    except ValueError:
        pass
    return text.encode("ascii", "backslashreplace").decode() if not text.isascii() else text


def _save(fig: Any, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def grouped_bars(
    groups: Sequence[str],
    series: Mapping[str, Sequence[tuple[float, float, float]]],
    path: str | Path,
    title: str = "",
    ylabel: str = "accuracy",
) -> Path:
    """Bars per group, one colour per series; each value is (acc, ci_low, ci_high)."""
    _setup()
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
    _setup()
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
    _setup()
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
