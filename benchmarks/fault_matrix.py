"""Faults and bad inputs, tried through the real CLI: does each one end as docs/failures.md says?

    python -m benchmarks.fault_matrix [--only NAME] [--keep DIR]

Every case runs ``python -m qualbench`` (or a sweep / two processes) in a fresh temporary folder.
*Faults* (a misbehaving server, a killed or doubled run, a tampered cache, a bad sweep job) count as survived
when no traceback is printed, the exit code is the documented one, and after the documented recovery (usually
re-running into the same directory) every item is in ``predictions.jsonl`` exactly once. *Bad inputs* (files and
options a user gets wrong) count as handled when the run either goes on and reports what it dropped, or stops
with exit code 2 and exactly one ``qualbench: error:`` line that names the file or the cause. Prints one row per
case and the totals; exits 1 when any case fails. Uses ``tests/helpers/chat_server.py`` (loopback only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from tests.helpers.chat_server import ChatServer

REPO = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", FM_KEY="x")
QUIET = ["run.plots=false", "run.n_boot=20"]


@dataclass
class Outcome:
    ok: bool
    detail: str


def qb(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qualbench", *args], cwd=REPO, env=ENV, capture_output=True,
                          text=True, timeout=timeout)


def qb_bg(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "qualbench", *args], cwd=REPO, env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def openai_args(server: ChatServer, run: Path, *extra: str) -> list[str]:
    return ["model=openai", "model.name=loopback", f"model.base_url={server.base_url}", "model.api_key_env=FM_KEY",
            "model.max_retries=3", "model.show_progress=false", f"hydra.run.dir={run}", *QUIET, *extra]


def rows(run: Path) -> list[dict]:
    path = run / "predictions.jsonl"
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            out.append({"idx": None})
    return out


def complete(run: Path, n: int) -> str | None:
    """None when predictions.jsonl holds n items, each once; else what is wrong."""
    idx = [r.get("idx") for r in rows(run)]
    if len(idx) != n or len(set(idx)) != n or None in idx:
        return f"{len(idx)} lines, {len(set(idx))} unique (want {n})"
    return None


def clean_exit(p: subprocess.CompletedProcess, code: int, *needles: str) -> str | None:
    """None when p exited with ``code``, printed no traceback and (for code 2) one error line holding needles."""
    if "Traceback" in p.stderr:
        return "traceback: " + p.stderr.strip().splitlines()[-1][:160]
    if p.returncode != code:
        return f"exit {p.returncode} (want {code}): {p.stderr.strip()[-200:]}"
    if code == 2:
        errors = [x for x in p.stderr.splitlines() if x.startswith("qualbench: error:")]
        if len(errors) != 1:
            return f"{len(errors)} error lines"
        missing = [s for s in needles if s not in errors[0]]
        if missing:
            return f"error line lacks {missing}: {errors[0][:200]}"
    return None


def first_failure(*checks: str | None) -> Outcome:
    for c in checks:
        if c:
            return Outcome(False, c)
    return Outcome(True, "")


# ---------------------------------------------------------------------------------------------- faults

def server_fault(tag: str, n: int = 6, *extra: str, code: int = 0) -> Callable[[Path], Outcome]:
    """The loopback server misbehaves on each item's first call (or always): the run recovers or stops cleanly."""
    def case(tmp: Path) -> Outcome:
        run = tmp / "run"
        with ChatServer(tags=tag, drip_s=0.3) as server:
            p = qb(*openai_args(server, run, f"limit={n}", *extra))
        if code == 0:
            return first_failure(clean_exit(p, 0), complete(run, n))
        # stopped cleanly: resume against a healthy server finishes the rest, nothing lost or doubled
        kept = len(rows(run))
        with ChatServer() as healthy:
            p2 = qb(*openai_args(healthy, run, f"limit={n}", *extra))
        return first_failure(clean_exit(p, code), clean_exit(p2, 0), complete(run, n),
                             None if len(rows(run)) >= kept else "lost predictions")
    return case


def empty_completions(tag: str) -> Callable[[Path], Outcome]:
    def case(tmp: Path) -> Outcome:
        run = tmp / "run"
        with ChatServer(tags=tag) as server:
            p = qb(*openai_args(server, run, "limit=5"))
        m = json.loads((run / "metrics.json").read_text(encoding="utf-8")) if (run / "metrics.json").exists() else {}
        flagged = None if m.get("n_empty_completions") == 5 and "came back empty" in p.stderr + p.stdout else \
            f"n_empty_completions={m.get('n_empty_completions')}, warned={'came back empty' in p.stderr + p.stdout}"
        return first_failure(clean_exit(p, 0), complete(run, 5), flagged)
    return case


def server_down(tmp: Path) -> Outcome:
    run = tmp / "run"
    with ChatServer() as server:
        url = server.base_url  # a port that was just free, now closed again
    p = qb("model=openai", "model.name=x", f"model.base_url={url}", "model.api_key_env=FM_KEY", "model.max_retries=1",
           "limit=3", f"hydra.run.dir={run}", *QUIET)
    return first_failure(clean_exit(p, 2))


def start_slow_run(server: ChatServer, run: Path, n: int, after_rows: int) -> tuple[list[str], subprocess.Popen]:
    """A run of n items, one request at a time (#sleep), in the background; returns once it has written rows."""
    args = openai_args(server, run, f"limit={n}", "model.max_concurrency=1")
    proc = qb_bg(*args)
    t0 = time.time()
    while len(rows(run)) < after_rows and proc.poll() is None and time.time() - t0 < 120:
        time.sleep(0.05)
    return args, proc


def killed(sig: int) -> Callable[[Path], Outcome]:
    def case(tmp: Path) -> Outcome:
        run, n = tmp / "run", 30
        with ChatServer(tags="#sleep") as server:
            args, proc = start_slow_run(server, run, n, after_rows=3)
            proc.send_signal(sig)
            proc.wait(timeout=120)
            if len(rows(run)) >= n:
                return Outcome(False, "the run finished before the signal: proves nothing")
            p = qb(*args)
        return first_failure(clean_exit(p, 0), complete(run, n))
    return case


def torn_line(tmp: Path) -> Outcome:
    run = tmp / "run"
    with ChatServer() as server:
        qb(*openai_args(server, run, "limit=4"))
        with open(run / "predictions.jsonl", "a", encoding="utf-8") as f:
            f.write('{"idx": "half-writ')  # what a crash mid-write leaves
        p = qb(*openai_args(server, run, "limit=4"))
    return first_failure(clean_exit(p, 0), complete(run, 4))


def concurrent_runs(tmp: Path) -> Outcome:
    run, n = tmp / "run", 30
    with ChatServer(tags="#sleep") as server:
        args, first = start_slow_run(server, run, n, after_rows=1)
        second = qb(*args)
        first.wait(timeout=300)
    return first_failure(clean_exit(second, 2, "in use by another qualbench run"),
                         None if first.returncode == 0 else f"first run exit {first.returncode}", complete(run, n))


def changed_seed(tmp: Path) -> Outcome:
    run = tmp / "run"
    with ChatServer() as server:
        qb(*openai_args(server, run, "limit=5", "seed=0"))
        before = {f.name: f.read_bytes() for f in run.iterdir() if f.is_file() and not f.name.endswith(".log")}
        p = qb(*openai_args(server, run, "limit=5", "seed=1"))
        after = {f: (run / f).read_bytes() for f in before}
    return first_failure(clean_exit(p, 2, "changed: seed"), None if before == after else "files rewritten")


def tampered_cache(what: str) -> Callable[[Path], Outcome]:
    """Edit one file of a built index: the next run rebuilds with a warning (never a traceback, never silently)."""
    def case(tmp: Path) -> Outcome:
        cache = tmp / "cache"
        args = ["retriever=dense", f"retriever.cache_dir={cache}", "limit=5", *QUIET]
        p1 = qb(*args, f"hydra.run.dir={tmp / 'a'}")
        files = [f for f in cache.rglob("*") if f.is_file() and f.name == what]
        if p1.returncode != 0 or not files:
            return Outcome(False, f"no {what} in the cache (exit {p1.returncode})")
        with open(files[0], "ab") as f:
            f.write(b"\ncos = __import__('os').system('echo pwned')\n")
        p2 = qb(*args, f"hydra.run.dir={tmp / 'b'}")
        said = "rebuild" in (p2.stderr + p2.stdout).lower()
        return first_failure(clean_exit(p2, 0), None if said else "no rebuild warning", complete(tmp / "b", 5))
    return case


def sweep_with_bad_job(tmp: Path) -> Outcome:
    good = REPO / "qualbench/resources/sample/fire_safety.json"
    bad = tmp / "bad.json"
    bad.write_text("[{\"idx\": 1,", encoding="utf-8")
    p = qb("-m", "model=random", "data=qualbench_json", f"data.path={good},{bad},{good}", "limit=5",
           f"hydra.sweep.dir={tmp / 'sweep'}", "run.plots=false", "run.n_boot=20")
    done = sorted(d.name for d in (tmp / "sweep").iterdir() if (d / "metrics.json").exists()) \
        if (tmp / "sweep").exists() else []
    return first_failure(None if p.returncode == 1 else f"exit {p.returncode} (want 1)",
                         None if done == ["0", "2"] else f"jobs with metrics: {done}",
                         None if (tmp / "sweep/1/failure.json").exists() else "no failure.json for job 1")


FAULTS: dict[str, Callable[[Path], Outcome]] = {
    "429 + Retry-After": server_fault("#429"),
    "5xx once per item": server_fault("#500"),
    "connection reset": server_fault("#reset"),
    "slow first reply (retried after the deadline)": server_fault("#slow", 6, "model.timeout_s=0.3"),
    "dripping reply (total deadline)": server_fault("#drip", 4, "model.timeout_s=0.5"),
    "silent socket": server_fault("#silent", 4, "model.timeout_s=0.5"),
    "context length exceeded (400)": server_fault("#long"),
    "server error echoing the request": server_fault("#echo"),
    "server always 500 (stop, resume later)": server_fault("#fail", 4, "model.max_retries=1", code=2),
    "HTML body (stop, resume later)": server_fault("#garbage", 4, code=2),
    "choices: [] (stop, resume later)": server_fault("#nochoices", 4, code=2),
    "content null": empty_completions("#null"),
    "content empty string": empty_completions("#empty"),
    "server not running": server_down,
    "kill -9 mid-run, resume": killed(signal.SIGKILL),
    "SIGTERM mid-run, resume": killed(signal.SIGTERM),
    "SIGINT mid-run, resume": killed(signal.SIGINT),
    "torn last line, resume": torn_line,
    "second run into the same dir": concurrent_runs,
    "resume with a changed seed": changed_seed,
    "edited chunks.jsonl in the index cache": tampered_cache("chunks.jsonl"),
    "edited manifest.json in the index cache": tampered_cache("manifest.json"),
    "a sweep job with a bad file": sweep_with_bad_job,
}


# ---------------------------------------------------------------------------------------------- bad inputs

RECORD = {"idx": "b1", "question_type": "单选题", "domain": "消防",
          "question": "下列哪项正确？\nA．甲\nB．乙\nC．丙\nD．丁", "answer": "B", "explanation": ""}


def data_case(content: bytes | None, *needles: str, code: int = 2, name: str = "bank.json",
              extra: tuple[str, ...] = ()) -> Callable[[Path], Outcome]:
    """Write a data file (None: do not) and run model=random on it; expect a clean stop or a clean run."""
    def case(tmp: Path) -> Outcome:
        path = tmp / name
        if content is not None:
            path.write_bytes(content)
        kind = "jsonl" if name.endswith(".jsonl") else "qualbench_json"
        p = qb("model=random", f"data={kind}", f"data.path={path}", f"hydra.run.dir={tmp / 'run'}", *QUIET, *extra)
        return first_failure(clean_exit(p, code, *[n.replace("{path}", str(path)) for n in needles]))
    return case


def records(*recs: object, enc: str = "utf-8") -> bytes:
    return json.dumps(list(recs), ensure_ascii=False).encode(enc)


def jsonl(*lines: str) -> bytes:
    return "\n".join(lines).encode("utf-8")


def corpus_case(make: Callable[[Path], Path], *needles: str, code: int = 2) -> Callable[[Path], Outcome]:
    def case(tmp: Path) -> Outcome:
        corpus = make(tmp)
        p = qb(f"corpus.path={corpus}", f"retriever.cache_dir={tmp / 'cache'}", "limit=3",
               f"hydra.run.dir={tmp / 'run'}", *QUIET)
        return first_failure(clean_exit(p, code, *needles))
    return case


def _law(root: Path, rel: str, text: str = "第一条 为了加强消防工作，制定本法。\n第二条 消防工作贯彻预防为主的方针。") -> Path:
    path = root / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# 某消防条例\n\n{text}\n", encoding="utf-8")
    return root


def symlink_corpus(tmp: Path) -> Path:
    root = _law(tmp / "corpus", "fire_safety/law.md")
    (root / "fire_safety/passwd.md").symlink_to("/etc/passwd")
    return root


def cli_case(*args: str, needles: tuple[str, ...] = (), code: int = 2) -> Callable[[Path], Outcome]:
    def case(tmp: Path) -> Outcome:
        p = qb(*args, f"hydra.run.dir={tmp / 'run'}", *QUIET)
        return first_failure(clean_exit(p, code, *needles))
    return case


BAD = dict(RECORD, idx="b2", question_type="问答题")
INPUTS: dict[str, Callable[[Path], Outcome]] = {
    "data file missing": data_case(None, "{path}"),
    "empty data file": data_case(b"", "{path}"),
    "truncated JSON": data_case(b'[{"idx": 1, "question', "{path}"),
    "JSON that is a number": data_case(b"42", "{path}"),
    "JSON list of strings only": data_case(b'["a", "b"]', "{path}"),
    "{'data': [...]} wrapper": data_case(json.dumps({"data": [RECORD]}, ensure_ascii=False).encode(), code=0),
    "GBK-encoded bank": data_case(records(RECORD, enc="gbk"), code=0),
    "GB18030-encoded bank": data_case(records(RECORD, enc="gb18030"), code=0),
    "UTF-16 bank": data_case(records(RECORD, enc="utf-16"), code=0),
    "UTF-8 with BOM": data_case(b"\xef\xbb\xbf" + records(RECORD), code=0),
    "wrong data.encoding": data_case(records(RECORD, enc="gbk"), "{path}", extra=("data.encoding=utf-8",)),
    "unknown data.encoding": data_case(records(RECORD), "no-such-codec", extra=("data.encoding=no-such-codec",)),
    "JSONL with a torn line": data_case(jsonl(json.dumps(RECORD, ensure_ascii=False), '{"idx": "x"'), code=0,
                                        name="bank.jsonl"),
    "JSONL with a non-object line": data_case(jsonl(json.dumps(RECORD, ensure_ascii=False), "[1, 2]"), code=0,
                                              name="bank.jsonl"),
    "strict mode, torn JSONL line": data_case(jsonl(json.dumps(RECORD, ensure_ascii=False), '{"idx": "x"'),
                                              "{path}:2", name="bank.jsonl", extra=("data.strict=true",)),
    "record missing its answer": data_case(records(RECORD, {k: v for k, v in RECORD.items() if k != "answer"}),
                                           code=0),
    "unknown question type": data_case(records(RECORD, BAD), code=0),
    "answer letter not among the options": data_case(records(RECORD, dict(RECORD, idx="b3", answer="F")), code=0),
    "every record bad": data_case(records(BAD), "{path}"),
    "corpus folder missing": corpus_case(lambda t: t / "nope", "corpus directory not found"),
    "corpus path is a file": corpus_case(lambda t: _law(t / "c", "fire_safety/a.md") / "fire_safety/a.md",
                                         "is a file"),
    "empty corpus folder": corpus_case(lambda t: (t / "c").mkdir() or t / "c", "holds no"),
    "only unknown domain folders": corpus_case(lambda t: _law(t / "c", "misc/a.md"), "unknown domain folder"),
    "symlink out of the corpus": corpus_case(symlink_corpus, code=0),
    "experiment name typo": cli_case("experiment=rag_ablaton", needles=("rag_ablation",)),
    "unknown model name": cli_case("model=gpt5", needles=("model",)),
    "unknown data name": cli_case("data=qualbnch", needles=("data",)),
    "unknown config key": cli_case("model.temprature=0.1", needles=("temprature",)),
    "limit not a number": cli_case("limit=abc", needles=("limit",)),
    "replay file missing": cli_case("model=replay", "model.path=/nonexistent/preds.jsonl",
                                    needles=("/nonexistent/preds.jsonl",)),
    "openai without a model name": cli_case("model=openai", needles=("model.name",)),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--only", help="run only the cases whose name contains this text")
    ap.add_argument("--keep", type=Path, help="keep each case's folder under DIR")
    args = ap.parse_args()
    totals = {}
    for group, cases in (("fault", FAULTS), ("bad input", INPUTS)):
        ok = n = 0
        for name, case in cases.items():
            if args.only and args.only not in name:
                continue
            tmp = Path(tempfile.mkdtemp(prefix="qb-fault-"))
            t0 = time.time()
            try:
                out = case(tmp)
            except Exception as e:  # the harness itself must not hide a case
                out = Outcome(False, f"harness: {type(e).__name__}: {e}")
            finally:
                if args.keep:
                    shutil.copytree(tmp, args.keep / name.replace(" ", "_").replace("/", "_"), dirs_exist_ok=True)
                shutil.rmtree(tmp, ignore_errors=True)
            n += 1
            ok += out.ok
            print(f"{group:9s} | {'ok  ' if out.ok else 'FAIL'} | {time.time() - t0:5.1f} s | {name}"
                  + (f" — {out.detail}" if out.detail else ""), flush=True)
        totals[group] = (ok, n)
    (fok, fn), (iok, inn) = totals["fault"], totals["bad input"]
    print(f"faults survived {fok}/{fn}; bad inputs handled with a clear message {iok}/{inn}")
    return 0 if fok == fn and iok == inn else 1


if __name__ == "__main__":
    sys.exit(main())
