"""k-shot prompts: seeded, type- and domain-stratified demonstrations from a dev pool, never the evaluated items."""

from __future__ import annotations

import json

import pytest

from helpers.cli import run_app
from helpers.records import make_record
from qualbench.data import load_dataset
from qualbench.errors import ConfigError
from qualbench.prompts.fewshot import FewShotSampler, content_key
from qualbench.prompts.render import PromptConfig, render_messages


def _items(path):
    return load_dataset({"loader": "qualbench_json", "path": str(path)})


def test_demos_are_seeded_same_type_same_domain_first_and_never_the_item():
    pool = load_dataset({"loader": "sample"})
    sampler = FewShotSampler(pool, k=3, seed=0)
    for q in pool[:40]:
        demos = sampler.demos(q)
        assert len(demos) == 3 and all(d.question_type == q.question_type for d in demos)
        assert all(content_key(d) != content_key(q) for d in demos)
        assert demos[0].domain == q.domain
        assert [d.idx for d in FewShotSampler(pool, k=3, seed=0).demos(q)] == [d.idx for d in demos]
    differ = sum(FewShotSampler(pool, 3, 1).demos(q) != sampler.demos(q) for q in pool[:40])
    assert differ > 20


def test_evaluated_items_are_removed_from_the_pool_and_a_small_pool_is_refused():
    pool = load_dataset({"loader": "sample"})
    evaluated = pool[:50]
    sampler = FewShotSampler(pool, k=2, seed=0, exclude=evaluated)
    keys = {content_key(q) for q in evaluated}
    assert sampler.n_excluded == 50
    assert all(content_key(d) not in keys for q in evaluated for d in sampler.demos(q))
    with pytest.raises(ConfigError, match="few-shot pool has only"):
        FewShotSampler(pool, k=2, seed=0, exclude=pool).check(pool)


def test_rendered_k_shot_prompt_has_k_worked_exchanges():
    pool = load_dataset({"loader": "sample"})
    q = pool[0]
    demos = FewShotSampler(pool, k=2, seed=0).demos(q)
    msgs = render_messages(q, PromptConfig(num_fewshot=2), demos=demos)
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[2]["content"] == f"答案：{demos[0].answer}" and demos[0].stem in msgs[1]["content"]
    cot = render_messages(q, PromptConfig(num_fewshot=2, chain_of_thought=True), demos=demos)
    assert cot[2]["content"].endswith(f"答案：{demos[0].answer}") and len(cot[2]["content"]) > len(msgs[2]["content"])


def test_app_k_shot_from_a_named_dev_file(small_json, tmp_path):
    dev = tmp_path / "dev.json"
    dev.write_text(json.dumps([make_record(100 + i, qtype, d, ans, stem=f"开发集题目{i}（ ）。")
                               for i, (qtype, ans, d) in enumerate(
                                   [("单选题", "A", "消防"), ("单选题", "D", "消防"), ("多选题", "BC", "消防"),
                                    ("多选题", "ACD", "消防"), ("判断题", "正确", "消防"), ("判断题", "错误", "消防")])],
                              ensure_ascii=False), encoding="utf-8")
    out = tmp_path / "o"
    r = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", "prompt.num_fewshot=2",
                 f"prompt.fewshot_data={{loader: qualbench_json, path: '{dev}'}}", f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    r = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", "prompt.num_fewshot=3",
                 f"prompt.fewshot_data={{loader: qualbench_json, path: '{dev}'}}", f"hydra.run.dir={tmp_path / 'o2'}")
    assert r.returncode == 2 and "few-shot pool has only 2" in r.stderr
