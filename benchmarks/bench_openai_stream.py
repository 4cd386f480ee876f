"""Throughput of model=openai through the runner against a bare asyncio httpx client, same server, same prompts.

    python -m benchmarks.bench_openai_stream [--n 300] [--concurrency 64] [--delay 0.2] [--batch-size 32] [--reps 3]

A loopback OpenAI-compatible server answers every request after ``--delay`` seconds. Measured, interleaved:
``bare``: asyncio + httpx with a semaphore of ``--concurrency`` (the reference); ``runner``: qualbench's
``evaluate`` with the streaming pool (what a run does now); ``runner, batch-at-a-time``: the same backend made
to go batch by batch (``run.batch_size`` requests in flight at most; how runs went before the pool);
``lm-eval``: lm-evaluation-harness's ``local-chat-completions`` when installed. Prints items/s (min/median over
reps), each ratio to ``bare``, and the most requests the server saw in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

from qualbench.models.base import Model
from qualbench.models.openai_compat import OpenAIChatModel
from qualbench.prompts.render import PromptConfig, render_messages
from qualbench.records import SINGLE, Question
from qualbench.evaluation import evaluate
from tests.helpers.chat_server import ChatServer


def items(n: int, rep: int) -> list[Question]:
    return [Question(idx=f"r{rep}q{i}", question_type=SINGLE, domain="消防", stem=f"#sleep 题干 {rep}-{i}",
                     options={"A": "甲", "B": "乙", "C": "丙", "D": "丁"}, answer="A") for i in range(n)]


class BatchOnly(Model):
    """The backend without its streaming hook: the runner falls back to one batch at a time."""

    def __init__(self, inner: OpenAIChatModel) -> None:
        self.inner, self.name = inner, inner.name

    def generate(self, requests):
        return self.inner.generate(requests)


def run_bare(server: ChatServer, qs: list[Question], conc: int) -> float:
    import httpx

    bodies = [{"model": "m", "messages": render_messages(q, PromptConfig()), "max_tokens": 16} for q in qs]

    async def go() -> None:
        sem = asyncio.Semaphore(conc)
        limits = httpx.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx.AsyncClient(timeout=60, limits=limits) as client:
            async def one(b):
                async with sem:
                    r = await client.post(server.base_url + "/chat/completions", json=b)
                    r.json()
            await asyncio.gather(*(one(b) for b in bodies))

    t0 = time.perf_counter()
    asyncio.run(go())
    return len(qs) / (time.perf_counter() - t0)


def run_ours(server: ChatServer, qs: list[Question], conc: int, batch: int, streaming: bool) -> float:
    m = OpenAIChatModel(name="m", base_url=server.base_url, max_concurrency=conc, timeout_s=60, max_tokens=16,
                        show_progress=False)
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        evaluate(qs, m if streaming else BatchOnly(m), PromptConfig(), Path(d), batch_size=batch)
        return len(qs) / (time.perf_counter() - t0)


def run_lm_eval(server: ChatServer, qs: list[Question], conc: int) -> float | None:
    try:
        from lm_eval.models.openai_completions import LocalChatCompletion
    except ImportError:
        return None
    lm = LocalChatCompletion(base_url=server.base_url + "/chat/completions", model="m", num_concurrent=conc,
                             tokenizer_backend=None, max_gen_toks=16)
    from lm_eval.api.instance import Instance

    reqs = [Instance("generate_until", None, (render_messages(q, PromptConfig()), {"until": [], "max_gen_toks": 16}),
                     i) for i, q in enumerate(qs)]
    t0 = time.perf_counter()
    lm.generate_until(reqs, disable_tqdm=True)
    return len(qs) / (time.perf_counter() - t0)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=300)
    ap.add_argument("--concurrency", type=int, default=64)
    ap.add_argument("--delay", type=float, default=0.2)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args()
    res: dict[str, list[float]] = {"bare": [], "runner": [], "runner, batch-at-a-time": [], "lm-eval": []}
    in_flight: dict[str, int] = {}
    for rep in range(args.reps):
        for name in res:
            with ChatServer(sleep_s=args.delay) as server:
                qs = items(args.n, rep)
                if name == "bare":
                    v = run_bare(server, qs, args.concurrency)
                elif name == "lm-eval":
                    v = run_lm_eval(server, qs, args.concurrency)
                else:
                    v = run_ours(server, qs, args.concurrency, args.batch_size, streaming=(name == "runner"))
                if v is not None:
                    res[name].append(v)
                    in_flight[name] = max(in_flight.get(name, 0), server.max_in_flight)
    ref = max(res["bare"])
    print(f"{args.n} items, concurrency {args.concurrency}, server delay {args.delay} s, batch_size {args.batch_size}, "
          f"{args.reps} reps (items/s: best / median; ratio of best to bare's best)")
    for name, vals in res.items():
        if not vals:
            print(f"{name:<24} not installed")
            continue
        print(f"{name:<24} {max(vals):7.1f} / {statistics.median(vals):7.1f} items/s   ratio {max(vals) / ref:.2f}×   "
              f"max in flight {in_flight[name]}")


if __name__ == "__main__":
    main()
