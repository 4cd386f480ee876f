"""Time answer extraction and compute_metrics on 20,000 synthetic predictions.

    python -m benchmarks.bench_scoring [--n 20000] [--seed 0] [--n-boot 1000]

Replies are generated from templates in the styles models actually use (bare letters, 答案：X, chain of
thought with option-by-option discussion, Markdown, <think> blocks, English, JSON, standard codes in the
text, refusals), over all three question types. It also reports how often extraction recovers the answer
the template stated (the replies that state none should give "").
"""

from __future__ import annotations

import argparse
import random
import time

from tqdm import tqdm

from qualbench.domains import DOMAIN_NAMES
from qualbench.records import FALSE, JUDGE, MULTI, SINGLE, TRUE
from qualbench.scoring import compute_metrics, extract_answer, is_correct

LETTERS = "ABCD"
MULTI_LETTERS = "ABCDE"
FILLER = [
    "根据《中华人民共和国安全生产法》第二十一条，生产经营单位的主要负责人对本单位安全生产工作全面负责。",
    "依据GB 50016-2014《建筑设计防火规范》第5.1.2条的规定，耐火等级应符合要求。",
    "参照JGJ 59-2011和AQ 3013的要求，施工现场应配备CO2灭火器以扑救B类火灾。",
    "《消防法》规定，任何单位和个人都有维护消防安全、保护消防设施、预防火灾、报告火警的义务。",
    "商业银行应当遵守审慎经营规则，防范和化解金融风险，PPE与ISO 45001的要求不在本题范围内。",
]

CHOICE_STYLES = [
    "{a}",
    "答案：{a}",
    "**答案：{a}**",
    "正确答案是{a}。",
    "{f}\n\n因此，本题选{a}。",
    "{f}\n{disc}\n故答案为{a}",
    "<think>{f}{disc}</think>\n答案：{a}",
    "The answer is {a}.",
    '{{"answer": "{a}"}}',
    "\\boxed{{{a}}}",
    "【答案】{a}\n【解析】{f}",
    "{alist}",
]
JUDGE_STYLES = [
    "{j}",
    "答案：{j}",
    "{f}因此该说法{j}。",
    "**{j}**\n\n理由：{f}",
    "<think>{f}</think>\n{j}",
    "判断：{sym}",
    "The statement is {en}.",
    '{{"answer": "{j}"}}',
]
NO_ANSWER = ["我不确定。", "题目信息不足，无法作答。", "", "{f}"]


def _discussion(letters: str, answer: str) -> str:
    return "".join(f"{c}项{'正确' if c in answer else '错误'}；" for c in letters)


def make_predictions(n: int, seed: int) -> list[dict]:
    """n prediction dicts with raw replies; 'intended' is the answer the reply states ("" for none)."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        qtype = rng.choices([SINGLE, MULTI, JUDGE], weights=[5, 2, 3])[0]
        if qtype == JUDGE:
            gold = rng.choice([TRUE, FALSE])
            stated = gold if rng.random() < 0.65 else ({TRUE: FALSE, FALSE: TRUE}[gold])
        elif qtype == SINGLE:
            gold = rng.choice(LETTERS)
            stated = gold if rng.random() < 0.6 else rng.choice(LETTERS)
        else:
            gold = "".join(sorted(rng.sample(MULTI_LETTERS, rng.randint(2, 5))))
            stated = gold if rng.random() < 0.4 else "".join(sorted(rng.sample(MULTI_LETTERS, rng.randint(1, 4))))
        f = rng.choice(FILLER)
        if rng.random() < 0.05:
            raw, stated = rng.choice(NO_ANSWER).format(f=f), ""
        elif qtype == JUDGE:
            raw = rng.choice(JUDGE_STYLES).format(
                j=stated, f=f, sym="√" if stated == TRUE else "×", en="true" if stated == TRUE else "false"
            )
        else:
            letters = LETTERS if qtype == SINGLE else MULTI_LETTERS
            raw = rng.choice(CHOICE_STYLES).format(
                a=stated, f=f, disc=_discussion(letters, stated), alist="、".join(stated)
            )
        out.append({"idx": str(i), "domain": rng.choice(DOMAIN_NAMES), "question_type": qtype, "answer": gold,
                    "raw": raw, "intended": stated, "qualification": rng.choice([None, "注册安全工程师", "银行从业"])})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--n-boot", type=int, default=1000)
    args = ap.parse_args()

    preds = make_predictions(args.n, args.seed)
    t0 = time.perf_counter()
    for p in tqdm(preds, desc="extract", mininterval=1.0):
        p["prediction"] = extract_answer(p["raw"], p["question_type"])
        p["correct"] = is_correct(p["answer"], p["prediction"], p["question_type"])
    t_extract = time.perf_counter() - t0
    t1 = time.perf_counter()
    m = compute_metrics(preds, n_boot=args.n_boot, seed=args.seed)
    t_metrics = time.perf_counter() - t1

    agree = sum(p["prediction"] == p["intended"] for p in preds)
    print(f"items: {len(preds)}  (n_boot={args.n_boot})")
    print(f"extraction:      {t_extract:7.3f} s  {len(preds) / t_extract:10,.0f} items/s")
    print(f"compute_metrics: {t_metrics:7.3f} s  {len(preds) / t_metrics:10,.0f} items/s")
    total = t_extract + t_metrics
    print(f"total:           {total:7.3f} s  {len(preds) / total:10,.0f} items/s")
    print(f"extraction recovers the stated answer for {agree}/{len(preds)} replies ({100 * agree / len(preds):.2f}%)")
    print(f"accuracy {m['accuracy']:.4f} {m['accuracy_ci95']}  exam score {m['exam_score']:.4f}  "
          f"weighted F1 {m['weighted_f1']:.4f}  unparsed {m['n_unparsed']}")
    misses = [p for p in preds if p["prediction"] != p["intended"]][:5]
    for p in misses:
        print(f"  miss: {p['question_type']} stated={p['intended']!r} got={p['prediction']!r} raw={p['raw'][:70]!r}")


if __name__ == "__main__":
    main()
