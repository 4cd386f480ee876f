"""The model contract (qualbench.models.base.Model): every backend subclasses it; the runner uses only its hooks."""

from __future__ import annotations

import importlib
import json

import pytest

from qualbench.errors import ConfigError
from qualbench.models.base import Model
from qualbench.models.random_baseline import RandomModel
from qualbench.prompts.render import PromptConfig
from qualbench.records import MULTI, SINGLE, Question, Request, Response
from qualbench.evaluation import evaluate

BACKENDS = [
    ("qualbench.models.random_baseline", "RandomModel"),
    ("qualbench.models.hf", "HFModel"),
    ("qualbench.models.openai_compat", "OpenAIChatModel"),
    ("qualbench.models.retrieval", "RetrievalAnswerer"),
    ("qualbench.models.replay", "ReplayModel"),
]


def items(n: int = 6) -> list[Question]:
    return [Question(str(i), MULTI if i % 2 else SINGLE, "消防", f"题干{i}", dict(zip("ABCD", "甲乙丙丁")),
                     "AC" if i % 2 else "B") for i in range(n)]


@pytest.mark.parametrize("module,cls", BACKENDS)
def test_every_backend_subclasses_model(module, cls) -> None:
    c = getattr(importlib.import_module(module), cls)
    assert issubclass(c, Model)
    assert isinstance(c.needs_retriever, bool)
    assert c.streams.fget is Model.streams.fget  # the flag is derived, never set by hand


def test_streams_flag_follows_the_override() -> None:
    from qualbench.models.openai_compat import OpenAIChatModel

    assert OpenAIChatModel(name="m").streams is True
    assert RandomModel(0).streams is False


def test_defaults_are_documented_values() -> None:
    class Echo(Model):
        def generate(self, requests):
            return [Response(text="答案：B") for _ in requests]

    m = Echo()
    assert m.name == "Echo" and not m.needs_retriever and not m.uses_eval_labels and m.max_empty_share is None
    assert m.run_report() == {} and m.prepare([]) is None and m.close() is None
    m.attach_retriever("r")
    assert m.retriever == "r"
    with pytest.raises(NotImplementedError):
        m.generate_stream([], lambda req, resp: None)
    with pytest.raises(TypeError):
        Model()  # generate is required


def test_runner_refuses_an_object_outside_the_contract(tmp_path) -> None:
    class Duck:
        name = "duck"

        def generate(self, requests):
            return [Response(text="答案：B") for _ in requests]

    with pytest.raises(ConfigError, match="does not subclass qualbench.models.base.Model"):
        evaluate(items(), Duck(), PromptConfig(), tmp_path)


def test_runner_calls_hooks_in_order_and_scores_response_answer(tmp_path) -> None:
    calls: list[str] = []

    class Hooked(Model):
        needs_retriever = True

        def attach_retriever(self, retriever):
            calls.append(f"attach:{retriever}")

        def prepare(self, its):
            calls.append(f"prepare:{len(its)}")

        def generate(self, requests: list[Request]):
            calls.append(f"generate:{len(requests)}")
            # a canonical answer set by the backend wins over its text; unreadable answers are unparsed
            return [Response(text="答案：D", answer=("ca" if r.item.question_type == MULTI else "b"),
                             meta={"k": 1}) for r in requests]

    preds = evaluate(items(), Hooked(), PromptConfig(), tmp_path, batch_size=4, retriever="R")
    assert calls == ["attach:R", "prepare:6", "generate:4", "generate:2"]
    assert all(p["correct"] for p in preds) and all(p["meta"] == {"k": 1} for p in preds)
    line = json.loads((tmp_path / "predictions.jsonl").read_text(encoding="utf-8").splitlines()[1])
    assert line["prediction"] == "AC" and "answer" not in line["meta"]


def test_a_streaming_backend_gets_the_whole_run(tmp_path) -> None:
    class Streamer(Model):
        def generate(self, requests):
            raise AssertionError("a streaming backend is not called batch by batch")

        def generate_stream(self, requests, on_result):
            n = 0
            for r in requests:
                on_result(r, Response(text="", answer=r.item.answer))
                n += 1
            return n

    preds = evaluate(items(5), Streamer(), PromptConfig(), tmp_path, batch_size=2)
    assert len(preds) == 5 and all(p["correct"] for p in preds)
