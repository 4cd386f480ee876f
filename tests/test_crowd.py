"""Crowd study: vote rules (ties), Dawid–Skene vs majority vote, calibration/scored separation, outputs."""

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from helpers import run_dirs as rf  # noqa: E402

from qualbench.analysis import crowd  # noqa: E402
from qualbench.analysis.runs import load_runs  # noqa: E402
from qualbench.errors import ConfigError, DataError  # noqa: E402
from qualbench.records import SINGLE  # noqa: E402

needs_crowdkit = pytest.mark.skipif(
    importlib.util.find_spec("crowdkit") is None,
    reason="crowd-kit not installed (extra `crowd`; the `test` extra includes it)",
)


def test_majority_vote_counts_and_abstains():
    assert crowd.majority_vote(["A", "B", "", "B"]) == "B"
    assert crowd.majority_vote(["", ""]) == ""
    assert crowd.majority_vote(["正确", "错误", "正确"]) == "正确"


def test_tie_rules():
    # without a ranking: lowest label; with one: the label of the best-ranked model among the tied labels
    assert crowd.majority_vote(["B", "A"]) == "A"
    assert crowd.majority_vote(["B", "A"], rank=[0, 1]) == "B"
    assert crowd.majority_vote(["C", "B", "A", "B", "A"], rank=[2, 1, 0, 3, 4]) == "A"
    assert crowd.majority_vote(["C", "B", "A", "B", "A"], rank=[0, 1, 2, 3, 4]) == "B"  # C not tied


def test_weighted_vote():
    assert crowd.weighted_vote(["A", "B", "B"], [0.9, 0.2, 0.3]) == "A"
    assert crowd.weighted_vote(["A", "B", "B"], [0.4, 0.2, 0.3]) == "B"
    assert crowd.weighted_vote(["A", "B"], [0.5, 0.5], rank=[1, 0]) == "B"


def test_multi_vote_per_option():
    assert crowd.multi_vote(["AB", "ABC", "BC"]) == "ABC"
    assert crowd.multi_vote(["AB", "CD", "AC"]) == "AC"
    # every letter tied 1:1: without ranking none survive -> whole-set vote, lowest set
    assert crowd.multi_vote(["AB", "CD"]) == "AB"
    # with ranking the best model's choice breaks each per-letter tie
    assert crowd.multi_vote(["AB", "CD"], rank=[1, 0]) == "CD"
    assert crowd.multi_vote(["ABD", "AC", ""], weights=[0.1, 0.9, 0.5]) == "AC"
    assert crowd.canon("dbA") == "ABD" and crowd.canon("正确") == "正确"


def synthetic_table(n: int = 240, seed: int = 0, honest: bool = False) -> crowd.CrowdTable:
    """Voters with known confusion: one good, two constant "A" voters, one A-biased, one weak
    (``honest``: five voters of accuracy 0.8 … 0.4 with uniform errors)."""
    rng = np.random.default_rng(seed)
    letters = list("ABCD")
    gold = [letters[i] for i in rng.integers(0, 4, n)]

    def noisy(g: str, acc: float, bias: str | None = None, p_bias: float = 0.0) -> str:
        r = rng.random()
        if r < acc:
            return g
        if bias and r < acc + p_bias:
            return bias
        return str(rng.choice([x for x in letters if x != g]))

    if honest:
        labels = [[noisy(g, a) for a in (0.8, 0.7, 0.6, 0.5, 0.4)] for g in gold]
    else:
        labels = [[noisy(g, 0.8), "A", "A", noisy(g, 0.35, "A", 0.5), noisy(g, 0.45)] for g in gold]
    workers = ["good", "constA1", "constA2", "biasedA", "weak"]
    correct = np.array([[float(x == g) for x in row] for row, g in zip(labels, gold)])
    return crowd.CrowdTable([f"q{i}" for i in range(n)], ["消防"] * n, [SINGLE] * n, gold, workers, labels, correct)


@needs_crowdkit
def test_dawid_skene_beats_majority_vote_with_constant_voters():
    t = synthetic_table()
    gold = np.array(t.gold, dtype=object)
    mv = np.array([crowd.majority_vote(row) for row in t.labels], dtype=object)
    ds = crowd.crowdkit_labels(t, "dawid_skene")
    ds = np.array([ds[i] for i in t.idx], dtype=object)
    acc_mv, acc_ds = (mv == gold).mean(), (ds == gold).mean()
    assert acc_ds > acc_mv + 0.1, (acc_ds, acc_mv)
    assert acc_ds > 0.5  # well above chance (0.25)


@needs_crowdkit
@pytest.mark.parametrize("method", ["dawid_skene", "glad", "mace"])
def test_crowdkit_aggregators_run_on_installed_versions(method):
    """The three crowd-kit aggregators we use work with the installed scikit-learn/pandas."""
    t = synthetic_table(n=50, seed=1, honest=True)
    out = crowd.crowdkit_labels(t, method)
    assert set(out) == set(t.idx)
    acc = np.mean([out[i] == g for i, g in zip(t.idx, t.gold)])
    assert acc > 0.7  # well above chance (0.25) and the average voter (0.6)


def make_runs(tmp_path: Path, n: int = 90, drop_one: bool = False) -> list[Path]:
    items = rf.make_items(n, seed=4)
    dirs = []
    for j, p in enumerate((0.75, 0.55, 0.5, 0.35)):
        rows = rf.simulate(items, p, seed=10 + j)
        if drop_one and j == 1:
            rows = rows[1:]
        cfg = rf.base_config(model__seed=j)
        dirs.append(rf.write_run(tmp_path / "runs" / f"m{j}", rows, [f"model.seed={j}"], cfg))
    return dirs


def test_calibration_split_is_seeded_stratified_and_disjoint():
    ids = [f"q{i}" for i in range(100)]
    strata = [str(i % 4) for i in range(100)]
    a = crowd.calibration_split(ids, strata, 0.3, seed=7)
    assert a == crowd.calibration_split(ids, strata, 0.3, seed=7)
    assert a != crowd.calibration_split(ids, strata, 0.3, seed=8)
    assert len(a) == 4 * round(0.3 * 25)  # per stratum of 25
    with pytest.raises(ConfigError):
        crowd.calibration_split(ids, strata, 1.0, seed=0)


def test_weights_never_see_scored_items(tmp_path):
    dirs = make_runs(tmp_path)
    res = crowd.crowd_study(load_runs(dirs), calibration_fraction=0.3, seed=0, n_boot=50, methods=())
    runs = load_runs(dirs)
    table = crowd.build_table(runs)
    strata = [f"{d}|{t}" for d, t in zip(table.domain, table.qtype)]
    cal = crowd.calibration_split(table.idx, strata, 0.3, 0)
    assert res["n_calibration"] == len(cal) and res["n_scored"] == len(table.idx) - len(cal)
    # perturb every scored prediction of the strongest model: calibration weights must not move
    rows = [json.loads(x) for x in (dirs[0] / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    for r in rows:
        if r["idx"] not in cal:
            r["prediction"], r["correct"] = "Z", False
    (dirs[0] / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                               encoding="utf-8")
    res2 = crowd.crowd_study(load_runs(dirs), calibration_fraction=0.3, seed=0, n_boot=50, methods=())
    for w in res["workers"]:
        assert res2["workers"][w]["calibration_accuracy"] == res["workers"][w]["calibration_accuracy"]
    assert res2["methods"]["best_single"]["note"] == res["methods"]["best_single"]["note"]
    # ... while the in-sample (leaky) weights do see them
    w0 = next(iter(res["workers"]))
    assert res2["workers"][w0]["scored_accuracy"] == 0.0 < res["workers"][w0]["scored_accuracy"]
    assert crowd.LEAKY in res["methods"] and "in_sample" in crowd.LEAKY


@needs_crowdkit
def test_run_crowd_outputs_and_missing_items(tmp_path):
    make_runs(tmp_path, drop_one=True)
    cfg = OmegaConf.create({"seed": 0, "run": {"n_boot": 50},
                            "study": {"runs": [str(tmp_path / "runs")], "calibration_fraction": 0.3,
                                      "methods": ["dawid_skene"]}})
    out = tmp_path / "crowd"
    ret = crowd.run_crowd(cfg, out)
    for f in ("crowd.json", "crowd.md", "crowd.csv", "crowd.png"):
        assert (out / f).stat().st_size > 100, f
    res = json.loads((out / "crowd.json").read_text(encoding="utf-8"))
    assert res["n_items"] == 89 and list(res["missing"].values()) == [["q0000"]]
    assert {"majority_vote", "weighted_vote", crowd.LEAKY, "dawid_skene", "best_single", "oracle"} <= set(res["methods"])
    m = res["methods"]
    assert m["oracle"]["accuracy"] >= max(m[k]["accuracy"] for k in m if k != "oracle")
    assert set(m["majority_vote"]["by_type"]) == {"单选题", "多选题", "判断题"}
    assert len(m["majority_vote"]["by_domain"]) == 6
    lo, hi = m["majority_vote"]["ci95"]
    assert lo <= m["majority_vote"]["accuracy"] <= hi
    md = (out / "crowd.md").read_text(encoding="utf-8")
    assert "Tie rule" in md and "(leaky)" in md and "p (McNemar)" in md
    assert ret["accuracy"] == m["majority_vote"]["accuracy"]


def test_errors_are_clear(tmp_path):
    dirs = make_runs(tmp_path, n=30)
    with pytest.raises(ConfigError, match="at least 2 runs"):
        crowd.build_table(load_runs(dirs[:1]))
    rows = [json.loads(x) for x in (dirs[1] / "predictions.jsonl").read_text(encoding="utf-8").splitlines()]
    rows[0]["answer"] = "正确" if rows[0]["answer"] != "正确" else "错误"
    (dirs[1] / "predictions.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                                               encoding="utf-8")
    with pytest.raises(DataError, match="not the same dataset"):
        crowd.build_table(load_runs(dirs))
    with pytest.raises(ConfigError, match="study.runs"):
        crowd.run_crowd(OmegaConf.create({"study": {"runs": []}}), tmp_path / "x")
