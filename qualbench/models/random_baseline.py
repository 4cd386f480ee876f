"""``model=random``: a seeded chance baseline (uniform over options; 多选题 uniform over non-empty subsets)."""

from __future__ import annotations

import hashlib
import itertools
import random

from qualbench.models.base import Model
from qualbench.records import JUDGE, MULTI, Request, Response


class RandomModel(Model):
    """Answers at random, reproducibly: the same (seed, item) always gets the same answer."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = int(seed)
        self.name = f"random(seed={self.seed})"

    def _rng(self, idx: str) -> random.Random:
        h = hashlib.sha256(f"{self.seed}|{idx}".encode()).hexdigest()
        return random.Random(int(h[:16], 16))

    def answer(self, req: Request) -> str:
        item = req.item
        rng = self._rng(item.idx)
        if item.question_type == JUDGE:
            return rng.choice(item.choices)
        letters = list(item.options)
        if item.question_type == MULTI:
            subsets = [
                "".join(c) for r in range(1, len(letters) + 1) for c in itertools.combinations(letters, r)
            ]
            return rng.choice(subsets)
        return rng.choice(letters)

    def generate(self, requests: list[Request]) -> list[Response]:
        out = []
        for req in requests:
            a = self.answer(req)
            out.append(Response(text=f"答案：{a}", latency_s=0.0, answer=a))
        return out
