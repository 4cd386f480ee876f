"""Official-format exam records (the JSON the loaders read) written for tests."""

from __future__ import annotations

from typing import Any


def make_record(idx: int, qtype: str = "单选题", domain: str = "消防", answer: str = "B",
                options: tuple[str, ...] = ("甲", "乙", "丙", "丁"), stem: str | None = None, **kw: Any) -> dict[str, Any]:
    """One record; options are lettered A, B, ... and numbered with ``idx`` so records differ."""
    stem = stem or f"测试题目{idx}：下列哪一项符合规定（ ）。"
    if qtype == "判断题":
        q = stem
    else:
        q = stem + "\n" + "\n".join(f"{'ABCDEFG'[i]}．{t}{idx}" for i, t in enumerate(options))
    rec = {"idx": idx, "question_type": qtype, "domain": domain, "question": q, "answer": answer, "explanation": ""}
    rec.update(kw)
    return rec
