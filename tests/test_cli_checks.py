"""Command-line mistakes fail with one line; ``qualbench --help`` lists the groups a user picks."""

from __future__ import annotations

import subprocess
import sys

import pytest

from qualbench import cli_checks as C


def _qualbench(*args: str, cwd) -> subprocess.CompletedProcess:
    code = "import sys; from qualbench.app import main; sys.argv = ['qualbench'] + sys.argv[1:]; main()"
    return subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=300, cwd=cwd)


@pytest.mark.parametrize("group", ["experiment", "data", "model", "prompt", "retriever", "federation", "corpus"])
def test_unknown_option_of_every_group_names_the_choices(group):
    with pytest.raises(C.UsageError) as err:
        C.check_overrides([f"{group}=no_such_option"])
    msg = str(err.value)
    assert "\n" not in msg and "no_such_option" in msg
    assert all(opt in msg for opt in C.group_options(group))
    assert "base_" not in msg


def test_valid_overrides_pass_and_sweeps_are_checked_value_by_value():
    C.check_overrides(["experiment=rag_ablation", "model.path=x", "embedder@retriever.embedder=lsa", "-m",
                       "model=random,retrieval", "+data=sample", "seed=range(3)", "experiment=null"])
    with pytest.raises(C.UsageError, match="unknown model 'randm'"):
        C.check_overrides(["-m", "model=random,randm"])


def test_missing_plugin_names_the_extra(monkeypatch):
    monkeypatch.setitem(C.PLUGIN_OPTIONS, ("hydra/sweeper", "fl_optuna"), ("hydra_plugins.no_such_sweeper", "sweepers"))
    with pytest.raises(C.UsageError, match=r'pip install -e "\.\[sweepers\]"'):
        C.check_overrides(["hydra/sweeper=fl_optuna"])
    monkeypatch.setitem(C.PLUGIN_OPTIONS, ("data", "hub"), ("no_such_datasets_pkg", "hub"))
    with pytest.raises(C.UsageError, match=r"\[hub\]"):
        C.check_overrides(["data=hub"])


def test_typo_in_experiment_exits_non_zero_with_one_line(tmp_path):
    proc = _qualbench("experiment=rag_ablaton", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 2
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert lines == [lines[0]] and "unknown experiment 'rag_ablaton'" in lines[0] and "rag_ablation" in lines[0]
    assert not (tmp_path / "run").exists()  # nothing ran


def test_help_lists_groups_without_schemas(tmp_path):
    proc = _qualbench("--help", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "experiment" in proc.stdout and "rag_ablation" in proc.stdout and "examples:" in proc.stdout
    assert "base_random" not in proc.stdout and "base_hf" not in proc.stdout


@pytest.mark.parametrize("args, needle", [
    (["model.temprature=0.1"], "temprature"),                  # a key that does not exist
    (["limit=abc"], "limit=abc"),                              # a value of the wrong type
    (["seed=[1"], "[1"),                                       # an override that does not parse
    (["model=openai", "model.base_url=http://127.0.0.1:9/v1"], "model.name"),  # a mandatory value left out
    (["experiment=crowd", "study.n_boott=5"], "n_boott"),      # a key the study's schema does not have
    (["experiment=retrieval_eval", "study.min_cited=many"], "study.min_cited=many"),  # a study value of the wrong type
    (["task=crowd"], "experiment=crowd"),                      # a study task without its study settings
])
def test_config_mistakes_are_one_line_without_traceback(tmp_path, args, needle):
    proc = _qualbench(*args, f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    errors = [ln for ln in proc.stderr.splitlines() if ln.startswith("qualbench: error:")]
    assert len(errors) == 1 and needle in errors[0], proc.stderr[-2000:]
    assert "Traceback" not in proc.stderr and "HYDRA_FULL_ERROR" not in proc.stderr


def test_a_file_with_no_usable_record_is_named_with_the_reason(tmp_path):
    bank = tmp_path / "bank.json"
    bank.write_text('[{"idx": 1, "question_type": "问答题", "domain": "消防", "question": "q\\nA．a\\nB．b", '
                    '"answer": "A"}]', encoding="utf-8")
    proc = _qualbench("model=random", "data=qualbench_json", f"data.path={bank}", f"hydra.run.dir={tmp_path}/run",
                      "run.plots=false", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("qualbench: error:")]
    assert str(bank) in line and "问答题" in line and "dropped.csv" in line
