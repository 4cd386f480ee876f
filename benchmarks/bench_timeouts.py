"""How long a dripping or silent server costs one request, against the loopback fault server.

    python -m benchmarks.bench_timeouts [--timeouts 0.5 1 2] [--reps 3]

``model.timeout_s`` is a total deadline per attempt: each line should read about timeout_s (plus ~0.1 s).
"""

from __future__ import annotations

import argparse
import time


def one(tag: str, timeout_s: float, rep: int) -> float:
    from qualbench.models.base import ModelError
    from qualbench.models.openai_compat import OpenAIChatModel
    from qualbench.records import SINGLE, Question, Request
    from tests.helpers.chat_server import ChatServer

    item = Question(idx="q", question_type=SINGLE, domain="消防", stem="题干", options={"A": "甲", "B": "乙"}, answer="A")
    with ChatServer() as server:
        m = OpenAIChatModel(name="x", base_url=server.base_url, max_retries=0, timeout_s=timeout_s, show_progress=False)
        t0 = time.perf_counter()
        try:
            m.generate([Request(item, [{"role": "user", "content": f"t{rep} {tag}"}])])
        except ModelError:
            pass
        return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--timeouts", type=float, nargs="+", default=[0.5, 1.0, 2.0])
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    for tag, label in (("#dripall", "drip 1 byte/0.2 s"), ("#silent", "silent socket")):
        for t in args.timeouts:
            xs = [one(tag, t, r) for r in range(args.reps)]
            print(f"{label:18s} timeout_s={t:<4g} " + ", ".join(f"{x:.3f}" for x in xs) + " s")


if __name__ == "__main__":
    main()
