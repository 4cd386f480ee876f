"""qualbench.results: every results file has a task, a schema version and its stated keys."""

from __future__ import annotations

import json
import math

import pytest

from qualbench.errors import DataError
from qualbench.results import (
    RESULTS,
    SCHEMA_VERSION,
    RoundRecord,
    read_result,
    read_rounds,
    write_result,
    write_rounds,
)


def _eval_body(**kw):
    body = {"n": 2, "accuracy": 0.5, "accuracy_ci95": [0.0, 1.0], "exam_score": 0.5, "by_domain": {},
            "by_type": {}, "model": "m", "data": "d"}
    return {**body, **kw}


def test_written_result_is_stamped_first_and_reads_back(tmp_path):
    written = write_result(tmp_path, "eval", _eval_body(extra=float("nan")))
    raw = json.loads((tmp_path / "metrics.json").read_text(encoding="utf-8"))
    assert list(raw)[:2] == ["task", "schema_version"]
    assert raw["task"] == "eval" and raw["schema_version"] == SCHEMA_VERSION
    assert raw["extra"] is None  # JSON has no NaN
    assert read_result(tmp_path / "metrics.json") == written
    assert not list(tmp_path.glob("*.tmp"))


def test_a_body_without_its_keys_is_refused_before_writing(tmp_path):
    body = _eval_body()
    del body["by_type"]
    with pytest.raises(ValueError, match="by_type"):
        write_result(tmp_path, "eval", body)
    assert not (tmp_path / "metrics.json").exists()
    with pytest.raises(ValueError, match="unknown result task"):
        write_result(tmp_path, "nope", body)


def test_every_task_names_its_file():
    assert {s.file for s in RESULTS.values()} >= {"metrics.json", "crowd.json", "contamination.json", "summary.json"}
    assert all(s.keys for s in RESULTS.values())


@pytest.mark.parametrize("text, match", [
    ("{\n  \"n\": 1,\n  oops\n}", r"metrics.json:3: not valid JSON"),
    ("[1, 2]", "one JSON object"),
    (json.dumps({"task": "eval", "schema_version": SCHEMA_VERSION + 1}), "newer than this qualbench reads"),
    (json.dumps({"task": "eval", "schema_version": SCHEMA_VERSION, "n": 1}), "lacks accuracy"),
])
def test_bad_results_files_are_one_line_errors(tmp_path, text, match):
    p = tmp_path / "metrics.json"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=match) as e:
        read_result(p)
    assert "\n" not in str(e.value) and str(p) in str(e.value)


def test_files_from_before_the_stamp_read_as_version_0(tmp_path):
    (tmp_path / "metrics.json").write_text(json.dumps({"n": 3, "accuracy": 1.0}), encoding="utf-8")
    old = read_result(tmp_path / "metrics.json")
    assert old["task"] == "eval" and old["schema_version"] == 0
    (tmp_path / "metrics.json").write_text(json.dumps({"n": 3, "law_recall": {"5": 1.0}}), encoding="utf-8")
    assert read_result(tmp_path / "metrics.json")["task"] == "retrieval_eval"
    (tmp_path / "crowd.json").write_text(json.dumps({"methods": {}}), encoding="utf-8")
    assert read_result(tmp_path / "crowd.json")["task"] == "crowd"
    with pytest.raises(DataError, match="holds a crowd result, expected eval"):
        read_result(tmp_path / "crowd.json", tasks=("eval",))


def test_round_record_weights_train_loss_by_examples_and_round_trips():
    r = RoundRecord.from_evaluation(
        1, {"val": {"accuracy": 0.5}, "test": {"accuracy": 0.25, "loss": math.inf}, "by_client": {"0": {}}},
        train={"0": {"num_examples": 30, "loss_mean": 1.0}, "1": {"num_examples": 10, "loss_mean": 3.0}},
        bytes_up=7, wall_s=0.5)
    assert r.train_loss == pytest.approx(1.5)
    d = r.to_dict()
    assert d["test"]["loss"] is None and d["by_client"] == {"0": {}}
    assert RoundRecord.from_dict({**d, "unknown_key": 1}) == RoundRecord.from_dict(d)
    assert RoundRecord(round=0).train_loss is None


def test_rounds_file_is_one_curve_row_per_round_in_order(tmp_path):
    hist = {"mode": "federated", "rounds": [
        RoundRecord(round=1, train={"0": {"num_examples": 2, "loss_mean": 0.5}}, test={"accuracy": 0.4}).to_dict(),
        RoundRecord(round=0, test={"accuracy": 0.3}).to_dict()]}
    rows = read_rounds(write_rounds(tmp_path, hist))
    assert [r["round"] for r in rows] == [0, 1]
    assert rows[1] == {"round": 1, "mode": "federated", "train_loss": 0.5, "val": None, "test": {"accuracy": 0.4}}
    (tmp_path / "rounds.jsonl").write_text('{"round": 0}\n{"x": 1}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"rounds.jsonl:2: a round line"):
        read_rounds(tmp_path / "rounds.jsonl")


def test_an_eval_run_writes_a_stamped_result(tmp_path):
    from qualbench.evaluation import evaluate, write_outputs
    from qualbench.data import load_dataset
    from qualbench.models.random_baseline import RandomModel
    from qualbench.prompts.render import PromptConfig

    items = load_dataset({"loader": "sample", "name": "sample"})[:12]
    preds = evaluate(items, RandomModel(0), PromptConfig(), tmp_path, batch_size=5)
    write_outputs(tmp_path, preds, {}, {"model": "random", "data": "sample"}, n_boot=10, seed=0, plots=False)
    m = read_result(tmp_path / "metrics.json", tasks=("eval",))
    assert m["n"] == 12 and m["schema_version"] == SCHEMA_VERSION and m["model"] == "random"
