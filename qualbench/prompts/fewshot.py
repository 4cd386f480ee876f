"""k-shot demonstrations drawn from a labelled dev pool, never from the evaluated items.

For each evaluated item, ``FewShotSampler.demos(item)`` returns ``k`` pool items of the same question type,
chosen by a seeded draw keyed on (seed, item idx) so the same item always gets the same demonstrations (stable
across batches and resumes). Same-domain demonstrations come first; the rest are filled from other domains.
Pool items whose content equals an evaluated item are removed before sampling.
"""

from __future__ import annotations

import hashlib
import random
from typing import Sequence

from qualbench.errors import ConfigError
from qualbench.records import Question


def content_key(q: Question) -> tuple[str, str, tuple[str, ...]]:
    """An item's identity by content (idx values of different files collide)."""
    return (q.question_type, "".join(q.stem.split()), tuple("".join(v.split()) for v in q.options.values()))


class FewShotSampler:
    """Seeded per-item demonstrations from ``pool`` (see the module docstring)."""

    def __init__(self, pool: Sequence[Question], k: int, seed: int = 0, exclude: Sequence[Question] = ()) -> None:
        if k < 0:
            raise ConfigError(f"prompt.num_fewshot={k}; must be >= 0")
        banned = {content_key(q) for q in exclude}
        self.pool = [q for q in pool if content_key(q) not in banned]
        self.n_excluded = len(pool) - len(self.pool)
        self.k = k
        self.seed = seed
        by_type: dict[str, list[Question]] = {}
        for q in self.pool:
            by_type.setdefault(q.question_type, []).append(q)
        self.by_type = by_type

    def check(self, items: Sequence[Question]) -> None:
        """Refuse up front when some evaluated type has fewer than k pool items."""
        for qtype in sorted({q.question_type for q in items}):
            have = len(self.by_type.get(qtype, []))
            if have < self.k:
                raise ConfigError(
                    f"prompt.num_fewshot={self.k} but the few-shot pool has only {have} {qtype} items "
                    f"(after removing {self.n_excluded} that equal evaluated items); use a larger prompt.fewshot_data"
                )

    def demos(self, item: Question) -> list[Question]:
        if self.k == 0:
            return []
        h = hashlib.sha256(f"{self.seed}|{item.idx}".encode()).hexdigest()
        rng = random.Random(int(h[:16], 16))
        cands = [q for q in self.by_type.get(item.question_type, []) if content_key(q) != content_key(item)]
        same = [q for q in cands if q.domain == item.domain]
        other = [q for q in cands if q.domain != item.domain]
        rng.shuffle(same)
        rng.shuffle(other)
        return (same + other)[: self.k]
