"""``model=replay``: responses generated elsewhere, scored by our extraction and scorer, end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from helpers.cli import run_app
from qualbench.errors import DataError
from qualbench.models.replay import parse_line, read_responses


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text(encoding="utf-8").splitlines() if x.strip()]


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    "rec,expected",
    [
        ({"idx": 3, "response": "答案：B"}, ("3", "答案：B")),
        ({"idx": "q1", "raw": "选C", "prediction": "C", "correct": True}, ("q1", "选C")),
        ({"doc_id": 0, "doc": {"idx": "q7", "question": "…"}, "resps": [["答案：D"]], "filtered_resps": ["答案：D"]},
         ("q7", "答案：D")),
        ({"doc_id": 4, "doc": {"question": "…"}, "resps": [["正确"]]}, ("4", "正确")),
        ({"id": "batch_req_1", "custom_id": "q9", "error": None,
          "response": {"status_code": 200, "body": {"choices": [{"message": {"content": "答案：AB"}}]}}},
         ("q9", "答案：AB")),
        ({"id": "batch_req_2", "custom_id": "q10", "response": None, "error": {"code": "server_error"}}, ("q10", None)),
        ({"question": "no idx at all"}, None),
    ],
)
def test_every_supported_shape(rec, expected):
    assert parse_line(rec) == expected


def test_conflicting_duplicate_and_unknown_shape_name_the_line(tmp_path):
    p = _write_jsonl(tmp_path / "r.jsonl", [{"idx": 1, "response": "A"}, {"idx": 1, "response": "A"},
                                            {"idx": 1, "response": "B"}])
    with pytest.raises(DataError, match=r"r\.jsonl:3: idx '1' already has a different response at line 1"):
        read_responses(p)
    p.write_text('{"idx": 1, "response": "A"}\n{"foo": 2}\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"r\.jsonl:2: unknown response shape"):
        read_responses(p)


def test_replay_of_our_own_run_and_of_other_formats_scores_identically(small_json, tmp_path):
    first = tmp_path / "random"
    r = run_app("model=random", "data=qualbench_json", f"data.path={small_json}", f"hydra.run.dir={first}", "seed=3")
    assert r.returncode == 0, r.stderr[-3000:]
    original = {p["idx"]: p for p in _lines(first / "predictions.jsonl")}
    acc = json.loads((first / "metrics.json").read_text(encoding="utf-8"))["accuracy"]
    plain = _write_jsonl(tmp_path / "plain.jsonl", [{"idx": i, "response": p["raw"]} for i, p in original.items()])
    lm_eval = _write_jsonl(tmp_path / "samples.jsonl", [
        {"doc_id": n, "doc": {"idx": i}, "resps": [[p["raw"]]], "filtered_resps": [p["raw"]]}
        for n, (i, p) in enumerate(original.items())])
    batch = _write_jsonl(tmp_path / "batch_output.jsonl", [
        {"id": f"r{n}", "custom_id": i, "response": {"status_code": 200, "body": {"choices": [
            {"message": {"role": "assistant", "content": p["raw"]}}]}}, "error": None}
        for n, (i, p) in enumerate(original.items())])
    for k, path in enumerate([first / "predictions.jsonl", plain, lm_eval, batch]):
        out = tmp_path / f"replay{k}"
        r = run_app("model=replay", f"model.path={path}", "data=qualbench_json", f"data.path={small_json}",
                     f"hydra.run.dir={out}")
        assert r.returncode == 0, r.stderr[-3000:]
        replayed = {p["idx"]: p for p in _lines(out / "predictions.jsonl")}
        assert {i: p["prediction"] for i, p in replayed.items()} == {i: p["prediction"] for i, p in original.items()}
        m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
        assert m["accuracy"] == pytest.approx(acc) and m["n_skipped"] == 0


def test_missing_and_unknown_idx_are_reported_not_guessed(small_json, tmp_path):
    idx = [str(r["idx"]) for r in json.loads(small_json.read_text(encoding="utf-8"))]
    rows = [{"idx": i, "response": "答案：C"} for i in idx[:20]] + [{"idx": "not-in-file", "response": "答案：A"}]
    path = _write_jsonl(tmp_path / "partial.jsonl", rows)
    out = tmp_path / "o"
    r = run_app("model=replay", f"model.path={path}", "data=qualbench_json", f"data.path={small_json}",
                 f"hydra.run.dir={out}")
    assert r.returncode == 0, r.stderr[-3000:]
    log = r.stdout + r.stderr
    assert "4 of 24 items have no response" in log and "1 responses" in log and "not-in-file" in log
    preds = {p["idx"]: p for p in _lines(out / "predictions.jsonl")}
    assert all(preds[i]["skipped"] == "no replayed response" and preds[i]["prediction"] == "" for i in idx[20:])
    m = json.loads((out / "metrics.json").read_text(encoding="utf-8"))
    assert m["n_skipped"] == 4
    assert m["replay"] == {"path": str(path), "n_responses": 21, "n_missing": 4, "n_unknown": 1,
                           "unknown_idx": ["not-in-file"]}
    # a resume with nothing left to do rewrites metrics.json with the same replay report (it was all zeros)
    again = run_app("model=replay", f"model.path={path}", "data=qualbench_json", f"data.path={small_json}",
                     f"hydra.run.dir={out}")
    assert again.returncode == 0, again.stderr[-3000:]
    assert json.loads((out / "metrics.json").read_text(encoding="utf-8"))["replay"] == m["replay"]
