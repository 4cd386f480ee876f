"""Crowd study: calibration/scored separation, the task's settings and outputs (vote rules: test_voting.py)."""

import importlib.util
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from helpers import run_dirs as rf  # noqa: E402

from qualbench.analysis import crowd  # noqa: E402
from qualbench.analysis.runs import load_runs  # noqa: E402
from qualbench.config import register_configs  # noqa: E402
from qualbench.errors import ConfigError, DataError  # noqa: E402
from qualbench.paths import PROJECT_ROOT  # noqa: E402

needs_crowdkit = pytest.mark.skipif(
    importlib.util.find_spec("crowdkit") is None,
    reason="crowd-kit not installed (extra `crowd`; the `test` extra includes it)",
)


def crowd_cfg(*overrides: str):
    """The composed ``experiment=crowd`` config with ``overrides``."""
    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=["experiment=crowd", *overrides])


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
    cfg = crowd_cfg(f"study.runs=[{tmp_path / 'runs'}]", "run.n_boot=50", "study.methods=[dawid_skene]")
    out = tmp_path / "crowd"
    ret = crowd.run_crowd(cfg, out)
    for f in ("crowd.json", "crowd.md", "crowd.csv", "crowd.png"):
        assert (out / f).stat().st_size > 100, f
    res = json.loads((out / "crowd.json").read_text(encoding="utf-8"))
    assert res["task"] == "crowd" and res["schema_version"] >= 1
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
        crowd.run_crowd(crowd_cfg(), tmp_path / "x")
    with pytest.raises(ConfigError, match="study.methods: unknown 'glda'"):
        crowd.run_crowd(crowd_cfg(f"study.runs=[{tmp_path / 'runs'}]", "study.methods=[glda]"), tmp_path / "x")
    assert not (tmp_path / "x").exists()  # refused before anything was read or written
