"""Start-up: ``qualbench --help`` against importing the app, and Hydra's own help, in fresh processes.

    python -m benchmarks.bench_startup [--reps 5]

Prints min/median seconds of each and the ratio to the import (goal for ``--help``: ≤ 2×). "Hydra's app
--help (before)" is what ``qualbench --help`` ran before it printed its own help.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time

IMPORT = "import qualbench.app"
RUN = "import sys; from qualbench.app import main; sys.argv = ['qualbench'] + sys.argv[1:]; main()"
HYDRA = "import sys; from qualbench.app import _main; sys.argv = ['qualbench'] + sys.argv[1:]; _main()"  # before


def timed(code: str, *args: str) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    cases = {"import qualbench.app": (IMPORT,), "qualbench --help": (RUN, "--help"),
             "Hydra's app --help (before)": (HYDRA, "--help"), "qualbench --hydra-help": (RUN, "--hydra-help")}
    res: dict[str, list[float]] = {k: [] for k in cases}
    for _ in range(args.reps):  # interleaved, so machine load hits every case alike
        for name, argv in cases.items():
            res[name].append(timed(*argv))
    base = min(res["import qualbench.app"])
    for name, ts in res.items():
        print(f"{name:<28} min {min(ts):.2f} s  median {statistics.median(ts):.2f} s  ratio(min) {min(ts) / base:.2f}×")


if __name__ == "__main__":
    main()
