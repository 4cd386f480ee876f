"""qualbench-report on synthetic run directories: differing-key columns, tables, plots, comparisons, HTML."""

import csv
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from helpers import run_dirs as rf  # noqa: E402

from qualbench.analysis.runs import assign_labels, find_run_dirs, load_runs, varying_keys  # noqa: E402
from qualbench.report.build import build_report  # noqa: E402
from qualbench.report.cli import main  # noqa: E402
from qualbench.report.html import markdown_html  # noqa: E402
from qualbench.results import RoundRecord  # noqa: E402

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    root = tmp_path_factory.mktemp("rep")
    sweep = rf.rag_sweep(root / "multirun" / "rag" / "2026-01-01_00-00-00", n_items=48)
    out = root / "out"
    files = build_report([sweep], out, baseline="retriever.kind=bm25", n_boot=100)
    return sweep, out, files


def test_finds_every_run_in_a_sweep(report):
    sweep, _, files = report
    assert len(find_run_dirs([sweep])) == 9 == len(files["runs"])
    assert [Path(p).name for p in files["runs"]] == [str(i) for i in range(9)]  # numeric job order


def test_leaderboard_columns_are_only_differing_keys(report):
    _, out, _ = report
    with (out / "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.reader(f))
    header = rows[0]
    assert header[:3] == ["retriever.kind", "retriever.top_k", "accuracy"]
    assert not any(h.startswith(("model", "prompt", "data", "seed")) for h in header)  # constant across runs
    assert len(rows) == 10
    accs = [float(r[2]) for r in rows[1:]]
    assert accs == sorted(accs, reverse=True)
    metrics = {(m["config"]["retriever"]["kind"], str(m["config"]["retriever"]["top_k"])): m["accuracy"]
               for m in (json.loads((d / "metrics.json").read_text()) for d in find_run_dirs([out.parent]))}
    for r in rows[1:]:
        assert float(r[2]) == pytest.approx(metrics[(r[0], r[1])])
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    assert md.startswith("| retriever.kind | retriever.top_k | accuracy % |")  # units in the header


def test_tables_plots_and_comparisons_written(report):
    _, out, files = report
    for f in ("leaderboard.md", "by_domain.csv", "by_domain.md", "by_type.csv", "report.md", "comparisons.csv",
              "comparisons.md", "by_domain.png", "heatmap.png", "topk.png", "report.html"):
        assert (out / f).stat().st_size > 200, f
    for png in ("by_domain.png", "heatmap.png", "topk.png"):
        assert (out / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    comps = files["comparisons"]
    assert len(comps) == 6  # dense and hybrid × 3 top-k, each against bm25 at the same top_k
    for c in comps:
        k_run = re.search(r"top_k=(\d+)", c["run"]).group(1)
        assert c["baseline"].endswith(f"top_k={k_run}") and "bm25" in c["baseline"]
        o = c["overall"]
        assert o["ci_low"] <= o["delta"] <= o["ci_high"] and 0 < o["p_mcnemar"] <= 1
        assert all(v["p_holm"] >= v["p_mcnemar"] for v in c["by_domain"].values())
    md = (out / "comparisons.md").read_text(encoding="utf-8")
    assert "delta" in md and "p_mcnemar" in md and "Holm" in md


def test_federated_curves_and_config_fallback(tmp_path):
    items = rf.make_items(30)
    hist = [RoundRecord(round=r, train={"0": {"num_examples": 10, "loss_mean": 2.0 / r}},
                        test={"accuracy": 0.2 + 0.1 * r}, val={"accuracy": 0.25}) for r in range(1, 5)]
    for j, strat in enumerate(("fedavg", "fedprox")):
        cfg = rf.base_config(federation__strategy=strat, federation__rounds=4)
        d = rf.write_run(tmp_path / "runs" / strat, rf.simulate(items, 0.5, seed=j), [], cfg, history=hist)
        (d / ".hydra" / "overrides.yaml").unlink()
    runs = load_runs([tmp_path / "runs"])
    assert varying_keys(runs) == ["federation.strategy"]  # no overrides: from the configs
    assign_labels(runs)
    assert [r.label for r in runs] == ["federation.strategy=fedavg", "federation.strategy=fedprox"]
    files = build_report([tmp_path / "runs"], tmp_path / "out", n_boot=50)
    assert {Path(p).name for p in files["plots"]} >= {"federated_accuracy.png", "federated_loss.png"}
    assert [h["test"]["accuracy"] for h in runs[0].history] == [r.test["accuracy"] for r in hist]
    assert not (tmp_path / "out" / "topk.png").exists()  # top_k does not vary


def test_group_choice_hides_its_subkeys(tmp_path):
    items = rf.make_items(12)
    for p in ("zero_shot", "cot"):
        cfg = rf.base_config(prompt__name=p, prompt__chain_of_thought=p == "cot")
        rf.write_run(tmp_path / p, rf.simulate(items, 0.5, 1), [], cfg, choices={"prompt": p})
    assert varying_keys(load_runs([tmp_path])) == ["prompt"]


def test_cli_main_and_errors(tmp_path, capsys):
    sweep = rf.rag_sweep(tmp_path / "sweep", n_items=24)
    assert main([str(sweep / "0"), str(sweep / "4"), "--out", str(tmp_path / "o"), "--n-boot", "50"]) == 0
    assert (tmp_path / "o" / "report.html").exists()
    (tmp_path / "empty").mkdir()
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "o2")]) == 2
    assert "no run directories" in capsys.readouterr().err
    assert main([str(sweep), "--out", str(tmp_path / "o3"), "--baseline", "retriever.kind=nope"]) == 2
    assert "no run has retriever.kind=nope" in capsys.readouterr().err


def test_study_outputs_are_included(tmp_path):
    study = tmp_path / "crowd_run"
    study.mkdir()
    (study / "crowd.md").write_text("# Crowd\n\n- tie rule\n\n| method | acc |\n|---|---|\n| majority_vote | 41.0 |\n",
                                    encoding="utf-8")
    files = build_report([study], tmp_path / "out")
    assert files["runs"] == [] and len(files["studies"]) == 1
    page = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert "<td>majority_vote</td>" in page
    assert "<table>" in markdown_html("| a | b |\n|---|---|\n| 1 | 2 |") and "<li>x</li>" in markdown_html("- x")


def test_html_is_self_contained(report):
    _, out, _ = report
    page = (out / "report.html").read_text(encoding="utf-8")
    assert not re.search(r'(src|href)="(https?:)?//', page)
    assert page.count('src="data:image/png;base64,') == 3


def test_report_md_and_html_hold_the_same_sections(report):
    _, out, _ = report
    md = (out / "report.md").read_text(encoding="utf-8")
    page = (out / "report.html").read_text(encoding="utf-8")
    md_heads = re.findall(r"^(##+) (.+)$", md, flags=re.M)
    html_heads = re.findall(r"<h([23])>(.+?)</h[23]>", page)
    assert [(len(h), t) for h, t in md_heads] == [(int(n), t.replace("&amp;", "&")) for n, t in html_heads]
    assert [t for h, t in md_heads if h == "##"][:2] == ["Leaderboard (9 runs; accuracy and exam score in %)",
                                                         "Accuracy per domain (%)"]
    links = re.findall(r"!\[[^]]*\]\(([^)]+)\)", md)
    assert links == ["by_domain.png", "heatmap.png", "topk.png"] and all((out / p).is_file() for p in links)
    assert page.count('src="data:image/png;base64,') == len(links)


def test_html_renders_in_headless_chromium(report, tmp_path):
    if not CHROMIUM:
        pytest.skip("chromium not installed (apt-get install chromium) — headless rendering check skipped")
    _, out, _ = report
    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
           "--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
           f"--user-data-dir={tmp_path / 'profile'}", "--dump-dom", (out / "report.html").resolve().as_uri()]
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120).stdout
    assert "<table" in dom and "leaderboard" in dom, dom[:500]
    imgs = re.findall(r'<img[^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', dom)
    assert len(imgs) == 3
    assert dom.count("<tr>") >= 9 + 6


def test_prompt_sweep_compares_against_study_baseline_prompt(tmp_path):
    """A prompt_ablation sweep (study.baseline_prompt in the config) gets paired comparisons without --baseline."""
    items = rf.make_items(36)
    for j, (p, acc) in enumerate((("zero_shot", 0.4), ("cot", 0.7), ("expert", 0.45))):
        cfg = rf.base_config(prompt__name=p, study__baseline_prompt="zero_shot")
        rf.write_run(tmp_path / "sweep" / str(j), rf.simulate(items, acc, seed=j), [f"prompt={p}"], cfg,
                     choices={"prompt": p})
    files = build_report([tmp_path / "sweep"], tmp_path / "out", n_boot=100)
    comps = files["comparisons"]
    assert [c["run"] for c in comps] == ["prompt=cot", "prompt=expert"]
    assert all(c["baseline"] == "prompt=zero_shot" and c["n_common"] == 36 for c in comps)
    assert (tmp_path / "out" / "comparisons.csv").exists()


def test_noise_keys_ignored_and_only_colliding_labels_suffixed(tmp_path):
    items = rf.make_items(12)
    specs = [("a", ["retriever.top_k=1", "run.n_boot=100"]), ("b", ["retriever.top_k=5", "run.n_boot=200"]),
             ("c", ["retriever.top_k=5", "run.n_boot=300"])]
    for name, ov in specs:
        rf.write_run(tmp_path / name, rf.simulate(items, 0.5, 0), ov, rf.base_config())
    runs = load_runs([tmp_path])
    assert varying_keys(runs) == ["retriever.top_k"]
    assert assign_labels(runs) == ["retriever.top_k=1", "retriever.top_k=5 [b]", "retriever.top_k=5 [c]"]
    # a group choice missing from .hydra falls back to the option's own name/kind in the config
    assert runs[0].value("retriever") == "bm25" and runs[0].value("prompt") == "zero_shot"


def _with_refs(run_dir: Path, items, uses_eval_labels: bool | None, data: str = "sample") -> Path:
    """Add what qualbench now writes into metrics.json: the label mark, the exam-score rule and the reference rows."""
    from qualbench.scoring.references import reference_rows

    m = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    m["references"] = reference_rows([dict(it, n_options=4) for it in items])
    m["exam_score_rule"] = {"multi_partial": "none", "points": {"单选题": 1.0, "多选题": 2.0, "判断题": 1.0}}
    m["data"] = data
    if uses_eval_labels is not None:
        m["uses_eval_labels"] = uses_eval_labels
    (run_dir / "metrics.json").write_text(json.dumps(m, ensure_ascii=False), encoding="utf-8")
    return run_dir


def test_leaderboard_marks_label_reading_runs_and_shows_reference_rows(tmp_path):
    from qualbench.report.leaderboard import LABELS_MARK

    items = rf.make_items(60)
    # accuracies: crossfit 0.9 (reads labels), bm25 0.6, weak 0.05 (below chance on every type)
    for name, p, labels in (("crossfit", 0.9, True), ("bm25", 0.6, False), ("weak", 0.0, False)):
        d = rf.write_run(tmp_path / "runs" / name, rf.simulate(items, p, seed=3), [f"model.calibration={name}"],
                         rf.base_config(model__calibration=name))
        _with_refs(d, items, labels)
    out = tmp_path / "out"
    build_report([tmp_path / "runs"], out, n_boot=50)
    with (out / "leaderboard.csv").open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    by_run = {r["run"]: r for r in rows}
    assert by_run["crossfit"]["uses_eval_labels"] == "True" and by_run["bm25"]["uses_eval_labels"] == "False"
    refs = [r for r in rows if r["row_kind"] == "reference"]
    assert [r["run"] for r in sorted(refs, key=lambda r: r["run"])] == [
        "reference: chance (uniform random answer; reads no labels)",
        "reference: majority answer per type (reads the evaluated labels)"]
    majority = next(r for r in refs if "majority" in r["run"])
    assert majority["uses_eval_labels"] == "True"  # the majority row reads the labels
    m = json.loads((tmp_path / "runs" / "bm25" / "metrics.json").read_text(encoding="utf-8"))
    assert float(majority["accuracy"]) == pytest.approx(m["references"]["majority"]["accuracy"])
    chance = next(r for r in refs if "chance" in r["run"])
    # 60 items, 20 per type, 4 options: (20 × 1/4 + 20 × 1/15 + 20 × 1/2) / 60
    assert float(chance["accuracy"]) == pytest.approx((0.25 + 1 / 15 + 0.5) / 3)
    # reference rows are ranked among the runs: weak (0) < chance < majority-or-bm25 ...
    accs = [float(r["accuracy"]) for r in rows]
    assert accs == sorted(accs, reverse=True) and rows[-1]["run"] == "weak"
    assert by_run["weak"]["below_reference"].startswith("below chance; below majority; 单选题: below chance and majority")
    assert by_run["crossfit"]["below_reference"] == ""
    md = (out / "leaderboard.md").read_text(encoding="utf-8")
    crossfit_line = next(x for x in md.splitlines() if x.endswith("| crossfit |"))
    assert LABELS_MARK in crossfit_line
    bm25_line = next(x for x in md.splitlines() if x.endswith("| bm25 |"))
    assert LABELS_MARK not in bm25_line and "| no |" in bm25_line
    assert "| reference: chance (uniform random answer; reads no labels) |" in md
    report_md = (out / "report.md").read_text(encoding="utf-8")
    assert "Exam score rule: multi_partial=none; points 单选题 1, 多选题 2, 判断题 1" in report_md
    by_type = (out / "by_type.md").read_text(encoding="utf-8")
    assert "(below chance and majority)" in by_type and "reference: majority answer per type" in by_type
    assert re.search(r"\| reference: majority[^\n]*\(answer [A-D]+\)", by_type)
    page = (out / "report.html").read_text(encoding="utf-8")
    assert page.count('<tr class="labels"') == 3  # leaderboard, by domain, by type: the crossfit run
    assert page.count('<tr class="reference"') == 6  # chance and majority in each of the three tables
    assert LABELS_MARK in page and "reads the evaluated labels" in page


def test_reference_rows_per_data_set_when_runs_differ(tmp_path):
    for name, n, seed in (("a", 30, 0), ("b", 45, 1)):
        items = rf.make_items(n, seed=seed)
        d = rf.write_run(tmp_path / name, rf.simulate(items, 0.5, seed=seed), [f"data.name={name}"],
                         rf.base_config(data__name=name))
        _with_refs(d, items, None, data=name)
    from qualbench.analysis.runs import load_runs
    from qualbench.report.leaderboard import leaderboard

    lb = leaderboard(load_runs([tmp_path]))
    refs = [r[-1] for r, k in zip(lb.rows, lb.row_kinds) if k == "reference"]
    assert len(refs) == 4 and sum(x.endswith(" [a]") for x in refs) == 2 and sum(x.endswith(" [b]") for x in refs) == 2
    labels = [r[lb.header.index("uses_eval_labels")] for r, k in zip(lb.rows, lb.row_kinds) if k == "model"]
    assert labels == [None, None]  # metrics.json without the field: unknown, shown as —
    assert "—" in lb.formatted()[lb.row_kinds.index("model")][lb.header.index("uses_eval_labels")]


def test_seeds_are_aggregated_to_mean_and_sd_with_per_seed_rows(tmp_path):
    import statistics

    items = rf.make_items(40)
    accs: dict[int, list[float]] = {3: [], 5: []}
    for k, p in ((3, 0.4), (5, 0.7)):
        for seed in (0, 1, 2):
            cfg = rf.base_config(seed=seed, retriever__top_k=k)
            d = rf.write_run(tmp_path / "runs" / f"k{k}_s{seed}", rf.simulate(items, p, seed=10 * k + seed),
                             [f"retriever.top_k={k}", f"seed={seed}"], cfg)
            accs[k].append(json.loads((d / "metrics.json").read_text(encoding="utf-8"))["accuracy"])
    build_report([tmp_path / "runs"], tmp_path / "out", n_boot=20)
    with open(tmp_path / "out" / "leaderboard_seeds.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    groups = [r for r in rows if r["row_kind"] == "group"]
    assert len(groups) == 2 and len([r for r in rows if r["row_kind"] == "seed"]) == 6
    got = sorted((float(g["accuracy_mean"]), float(g["accuracy_sd"]), int(g["n_seeds"])) for g in groups)
    want = sorted((statistics.mean(a), statistics.stdev(a), 3) for a in accs.values())
    for (m, sd, n), (wm, wsd, wn) in zip(got, want):
        assert m == pytest.approx(wm, abs=1e-4) and sd == pytest.approx(wsd, abs=1e-4) and n == wn
    md = (tmp_path / "out" / "report.md").read_text(encoding="utf-8")
    assert "Leaderboard over seeds" in md and "±" in md
