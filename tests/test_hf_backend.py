"""model=hf on a tiny random Llama built locally: generate and loglik modes, batching, templates, overflow, LoRA."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
from qualbench.models.base import ModelError  # noqa: E402
from qualbench.models.hf import HFModel  # noqa: E402
from qualbench.models.hf_loglik import common_prefix_len, decide, left_pad, length_sorted_batches  # noqa: E402
from qualbench.models.tiny import save_tiny  # noqa: E402
from qualbench.prompts.render import PromptConfig, messages_to_text, render_messages  # noqa: E402
from qualbench.records import JUDGE, MULTI, SINGLE, Question, Request  # noqa: E402

QUESTIONS = [
    Question("s1", SINGLE, "消防", "灭火器压力表指针在红区时应当（ ）。", {"A": "继续使用", "B": "报告检修", "C": "拆下", "D": "倒置"}, "B"),
    Question("m1", MULTI, "消防", "下列做法正确的有（ ）。", {"A": "关闭电源", "B": "串接插线板", "C": "检查电线", "D": "合格产品", "E": "铜丝"}, "ACD"),
    Question("j1", JUDGE, "安全生产", "企业可以免除工伤保险待遇。", {}, "错误"),
    Question("s2", SINGLE, "建筑工程", "施工现场的安全第一责任人是（ ）。", {"A": "项目经理", "B": "监理"}, "A"),
    Question("j2", JUDGE, "银行保险", "保险公司可以拒绝依法应当赔付的理赔。这一说法是否正确？请结合法规判断。", {}, "错误"),
]
LONG = Question("long", SINGLE, "消防", "关于消防的说法" * 80 + "（ ）。", {"A": "甲", "B": "乙"}, "A")


def requests(items=QUESTIONS, cfg=PromptConfig()) -> list[Request]:
    return [Request(q, render_messages(q, cfg)) for q in items]


# what the tiny tokenizer spells: the zero- and one-shot prompts of every question here, and the judge words
VOCAB_TEXTS = ["正确错误对错"] + [m["content"] for cfg in (PromptConfig(), PromptConfig(one_shot=True))
                                 for r in requests([*QUESTIONS, LONG], cfg) for m in r.messages]


def tiny_lm(path: Path, extra_texts=(), arch: str = "llama", **kw) -> Path:
    """The tiny LM of these tests: 512 positions; a Llama with grouped-query attention or a GPT-2."""
    if arch == "llama":
        kw["num_kv_heads"] = 2
    return save_tiny(path, [*VOCAB_TEXTS, *extra_texts], max_positions=512, arch=arch, **kw)


@pytest.fixture(scope="module", autouse=True)
def offline():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


@pytest.fixture(scope="module")
def lm_dir(tmp_path_factory) -> Path:
    return tiny_lm(tmp_path_factory.mktemp("tiny_chat"))


@pytest.fixture(scope="module")
def plain_dir(tmp_path_factory) -> Path:
    return tiny_lm(tmp_path_factory.mktemp("tiny_plain"), chat_template=False)


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory) -> Path:
    return tiny_lm(tmp_path_factory.mktemp("tiny_gpt2"), arch="gpt2")


def hf(path, **kw) -> HFModel:
    return HFModel(str(path), device="cpu", show_progress=False, **kw)


def test_pure_helpers():
    assert length_sorted_batches([3, 9, 1, 9, 5], 2) == [[1, 3], [4, 0], [2]]
    assert common_prefix_len([[1, 2, 3], [1, 2, 4, 5], [1, 2]]) == 2 and common_prefix_len([[1], [2]]) == 0
    ids, mask = left_pad([[5, 6, 7], [8]], pad_id=0)
    assert ids == [[5, 6, 7], [0, 0, 8]] and mask == [[1, 1, 1], [0, 0, 1]]
    assert decide(SINGLE, {"A": -2.0, "B": -0.5, "C": -3.0}) == "B"
    assert decide(JUDGE, {"正确": -1.0, "错误": -0.2}) == "错误"
    # p ∝ e^s: A=0.47, B=0.47, C=0.06 -> tau=0.5 keeps A,B; D is far below
    assert decide(MULTI, {"A": 0.0, "B": 0.0, "C": -2.0, "D": -9.0}, tau=0.5) == "AB"
    assert decide(MULTI, {"A": 0.0, "B": -0.1, "C": -0.2, "D": -9.0}, tau=0.5) == "ABC"
    assert decide(MULTI, {"A": 0.0, "B": -5.0, "C": -6.0}, tau=0.5, min_multi=2) == "AB"  # at least two


@pytest.mark.parametrize("arch", ["llama", "gpt2"])
def test_generate_end_to_end_and_order(arch, request):
    lm_dir = request.getfixturevalue("lm_dir" if arch == "llama" else "gpt2_dir")
    m = hf(lm_dir, max_new_tokens=6, batch_size=2)
    assert m.tokenizer.padding_side == "left" and m.name == lm_dir.name
    reqs = requests()
    out = m.generate(reqs)
    assert len(out) == len(reqs)
    for r, q in zip(out, reqs):
        assert r.skipped is None and isinstance(r.text, str)
        assert r.prompt_tokens == len(m.encode(m.prompt_text(q.messages)))
        assert 0 <= r.completion_tokens <= 6 and r.latency_s > 0
    # batched + length-sorted gives each item the same greedy output as one at a time, in request order
    m.batch_size = 1
    one = [m.generate([q])[0].text for q in reqs]
    assert [r.text for r in out] == one
    assert len({r.prompt_tokens for r in out}) > 2  # lengths differ, so the sort really reorders


def test_chat_template_when_present_and_not_when_absent(lm_dir, plain_dir):
    msgs = requests()[0].messages
    chat = hf(lm_dir)
    assert chat.use_chat_template
    text = chat.prompt_text(msgs)
    assert text.startswith("<s>系统：" + PromptConfig().system) and text.endswith("助手：") and QUESTIONS[0].stem in text
    plain = hf(plain_dir)
    assert not plain.use_chat_template and plain.prompt_text(msgs) == messages_to_text(msgs)
    assert not hf(lm_dir, chat_template="none").use_chat_template


def test_template_without_system_role_and_template_kwargs(lm_dir):
    m = hf(lm_dir, chat_template_kwargs={"tag": "【思考关闭】"})
    m.tokenizer.chat_template = (
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}<|end|>{% endfor %}<|assistant|>{{ tag }}"
    )
    text = m.prompt_text(requests()[0].messages)
    assert text.startswith("<|user|>" + PromptConfig().system + "\n\n") and text.endswith("<|assistant|>【思考关闭】")


def test_long_prompt_is_skipped_not_truncated(lm_dir):
    m = hf(lm_dir, max_new_tokens=4)
    out = m.generate(requests([QUESTIONS[0], LONG, QUESTIONS[2]]))
    assert out[1].skipped and "prompt_too_long" in out[1].skipped and out[1].text == ""
    assert out[1].prompt_tokens > m.context == 512  # counted in full: nothing was cut
    assert out[0].skipped is None and out[2].skipped is None
    loglik = hf(lm_dir, mode="loglik").generate(requests([LONG, QUESTIONS[0]]))
    assert loglik[0].skipped and loglik[1].answer in "ABCD"
    with pytest.raises(ModelError, match="item long: prompt_too_long"):
        hf(lm_dir, on_overflow="error").generate(requests([QUESTIONS[0], LONG]))


def test_prompt_plus_answer_budget_counts(lm_dir):
    m = hf(lm_dir, max_new_tokens=8)
    n = len(m.encode(m.prompt_text(requests()[0].messages)))
    tight = hf(lm_dir, max_new_tokens=8, max_context=n + 7)
    assert tight.generate(requests(QUESTIONS[:1]))[0].skipped
    assert hf(lm_dir, max_new_tokens=8, max_context=n + 8).generate(requests(QUESTIONS[:1]))[0].skipped is None


@pytest.mark.parametrize("arch", ["llama", "gpt2"])  # rotary and absolute positions: padding must be inert
@pytest.mark.parametrize("prompt", ["zero_shot", "one_shot"])
def test_loglik_end_to_end_batch_invariant(arch, prompt, request):
    """Batched + shared-prefix KV cache gives the scores of one plain forward pass per question."""
    path = request.getfixturevalue("lm_dir" if arch == "llama" else "gpt2_dir")
    reqs = requests(QUESTIONS + [QUESTIONS[0], QUESTIONS[3]], PromptConfig(one_shot=prompt == "one_shot"))
    fast = hf(path, mode="loglik", batch_size=4)
    a = fast.generate(reqs)
    assert fast.prefix_cache and fast._prefix_memo is not None and len(fast._prefix_memo[0]) >= 16  # cache was used
    b = hf(path, mode="loglik", batch_size=1, prefix_cache=False).generate(reqs)
    for r, s, q in zip(a, b, QUESTIONS + [QUESTIONS[0], QUESTIONS[3]]):
        assert set(r.meta["scores"]) == set(q.choices)
        assert r.answer == s.answer and r.text.endswith(r.answer)
        for k in r.meta["scores"]:
            assert r.meta["scores"][k] == pytest.approx(s.meta["scores"][k], abs=1e-4)  # left padding is inert
        if q.question_type == MULTI:
            assert len(r.answer) >= 2 and r.answer == "".join(sorted(r.answer))
        else:
            assert r.answer == max(r.meta["scores"], key=r.meta["scores"].get)


def test_loglik_multi_by_generation(lm_dir):
    reqs = requests()
    out = hf(lm_dir, mode="loglik", multi_method="generate", max_new_tokens=5).generate(reqs)
    for r, q in zip(out, QUESTIONS):
        if q.question_type == MULTI:
            assert "answer" not in r.meta and r.completion_tokens is not None and r.completion_tokens > 0
        else:
            assert r.meta["method"] == "loglik" and r.answer in q.choices


def _manual_logprob(m: HFModel, req: Request, word: str) -> float:
    ctx = m.encode(m.prompt_text(req.messages) + m.answer_prefix)
    cont = m.tokenizer(word, add_special_tokens=False)["input_ids"]
    ids = torch.tensor([ctx + cont])
    with torch.no_grad():
        lp = torch.log_softmax(m.model(input_ids=ids).logits[0].float(), -1)
    return float(sum(lp[len(ctx) - 1 + k, t] for k, t in enumerate(cont)))


def test_loglik_multi_token_judge_words_sum_the_continuation(lm_dir):
    m = hf(lm_dir, mode="loglik", batch_size=2)
    assert len(m.tokenizer("正确", add_special_tokens=False)["input_ids"]) == 2  # char-level: two tokens
    reqs = requests([QUESTIONS[2], QUESTIONS[0], QUESTIONS[4]])
    out = m.generate(reqs)
    for r, q in ((out[0], reqs[0]), (out[2], reqs[2])):
        assert r.meta["scores"]["正确"] == pytest.approx(_manual_logprob(m, q, "正确"), abs=1e-4)
        assert r.meta["scores"]["错误"] == pytest.approx(_manual_logprob(m, q, "错误"), abs=1e-4)
    single = hf(lm_dir, mode="loglik", judge_words=["对", "错"]).generate(reqs[:1])[0]
    assert single.meta["scores"]["正确"] == pytest.approx(_manual_logprob(m, reqs[0], "对"), abs=1e-4)


def test_lora_adapter_loads_and_changes_scores(lm_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = AutoModelForCausalLM.from_pretrained(lm_dir)
    cfg = LoraConfig(r=4, lora_alpha=16, target_modules=["q_proj", "v_proj"], init_lora_weights=False)
    get_peft_model(base, cfg).save_pretrained(tmp_path / "adapter")
    reqs = requests(QUESTIONS[:2])
    plain = hf(lm_dir, mode="loglik").generate(reqs)
    tuned_model = hf(lm_dir, mode="loglik", adapter=str(tmp_path / "adapter"))
    assert type(tuned_model.model).__name__.startswith("Peft")
    tuned = tuned_model.generate(reqs)
    assert any(abs(tuned[0].meta["scores"][k] - plain[0].meta["scores"][k]) > 1e-4 for k in "ABCD")
    gen = hf(lm_dir, adapter=str(tmp_path / "adapter"), max_new_tokens=3).generate(requests(QUESTIONS[:2]))
    assert len(gen) == 2 and all(r.completion_tokens is not None and r.skipped is None for r in gen)
    with pytest.raises(ModelError, match="LoRA adapter"):
        hf(lm_dir, adapter=str(tmp_path / "missing"))


def test_instantiate_from_hydra_config(lm_dir):
    from hydra import compose, initialize_config_dir
    from hydra.utils import instantiate

    from qualbench.config import PROJECT_ROOT, register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=["model=hf", f"model.path={lm_dir}", "model.device=cpu", "prompt=cot"])
    m = instantiate(cfg.model)
    assert isinstance(m, HFModel) and m.max_new_tokens == 1024 and m.mode == "generate"


def test_num_threads_sets_torch_threads(lm_dir):
    import torch

    from qualbench.errors import ConfigError

    before = torch.get_num_threads()
    try:
        HFModel(lm_dir, device="cpu", num_threads=1)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(ConfigError, match="num_threads"):
        HFModel(lm_dir, device="cpu", num_threads=0)


def test_bad_config_and_missing_model_are_clear(tmp_path):
    from qualbench.errors import ConfigError

    with pytest.raises(ConfigError, match="mode"):
        HFModel(str(tmp_path), mode="sample")
    with pytest.raises(ModelError, match="cannot load model"):
        HFModel(str(tmp_path / "nope"), device="cpu")


def test_runner_end_to_end_loglik_and_overflow(small_json, tmp_path):
    """Through qualbench.runner.run_eval: loglik answers become predictions; too-long items are skipped."""
    import json

    from hydra import compose, initialize_config_dir

    from qualbench.config import PROJECT_ROOT, register_configs
    from qualbench.runner import run_eval

    from qualbench.data import load_dataset

    lm = tiny_lm(tmp_path / "lm", extra_texts=[small_json.read_text(encoding="utf-8")])
    probe = hf(lm, mode="loglik")
    items = load_dataset({"loader": "qualbench_json", "path": str(small_json)})
    n_tok = {q.idx: len(probe.encode(probe.prompt_text(render_messages(q, PromptConfig())) + "答案：")) for q in items}
    judge_max = max(n for q in items for i, n in n_tok.items() if q.idx == i and q.question_type == JUDGE)
    assert judge_max + 2 < min(n for q in items for i, n in n_tok.items() if q.idx == i and q.question_type != JUDGE)
    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base=None):
        cfg = compose("config", overrides=[
            "model=hf", f"model.path={lm}", "model.mode=loglik", "model.device=cpu", "model.show_progress=false",
            f"model.max_context={judge_max + 2}", "data=qualbench_json", f"data.path={small_json}", "run.plots=false",
            "run.n_boot=20",
        ])
    run_eval(cfg, tmp_path / "run")
    rows = [json.loads(x) for x in (tmp_path / "run" / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(rows) == 24
    ran = [r for r in rows if not r["skipped"]]
    skipped = [r for r in rows if r["skipped"]]
    assert len(ran) == 12 and len(skipped) == 12  # judgement prompts (+2 answer tokens) fit, choice prompts do not
    assert all("prompt_too_long" in r["skipped"] and r["prompt_tokens"] == n_tok[r["idx"]] for r in skipped)
    assert all(r["prediction"] in ("正确", "错误") and r["meta"]["method"] == "loglik" for r in ran)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text(encoding="utf-8"))
    assert metrics.get("n_skipped") == len(skipped)
