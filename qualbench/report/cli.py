"""``qualbench-report DIR... [--out DIR] [--baseline KEY=VALUE]``: the command line of :mod:`qualbench.report.build`
(arguments in, one-line errors and exit code 2 on bad input)."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Sequence

from qualbench.errors import QualBenchError
from qualbench.report.build import build_report
from qualbench.report.jobs import summary_lines


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="qualbench-report",
        description="One report (leaderboard, per-domain/type tables, plots, paired comparisons, HTML) for run dirs.",
    )
    ap.add_argument("dirs", nargs="+", help="run directories, multirun sweep roots or study outputs")
    ap.add_argument("--out", default=None, help="output folder (default: ./qualbench_report)")
    ap.add_argument("--baseline", default=None, help="KEY=VALUE selecting the baseline runs, e.g. prompt=zero_shot")
    ap.add_argument("--n-boot", type=int, default=1000, help="bootstrap resamples (default 1000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--title", default="QualBench report")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    out = Path(args.out or "qualbench_report")
    try:
        files = build_report(args.dirs, out, baseline=args.baseline, n_boot=args.n_boot, seed=args.seed,
                             title=args.title)
    except QualBenchError as e:
        print(f"qualbench-report: error: {e}", file=sys.stderr)
        return 2
    print(f"{len(files['runs'])} run(s) → {out}/report.html, leaderboard.md/.csv, by_domain/by_type tables, plots")
    for line in summary_lines(files.get("jobs") or []):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
