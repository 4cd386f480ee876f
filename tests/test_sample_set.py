"""Checks on the bundled sample questions, the corpus manifests and the sample (summary) corpus.

Everything here reads plain files: ``qualbench/resources/sample/*.json`` (official-format records),
``corpora/manifests/*.yaml`` and ``corpora/sample/<slug>/*.md``. Checks against the real law texts and the
real exam banks under ``../shared`` skip when that folder is absent.
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import re
from pathlib import Path

import pytest
import yaml

from qualbench.domains import DOMAINS

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared"
SHARED_CORPORA = SHARED / "corpora"
SHARED_EXAMS = SHARED / "exams"
SAMPLE_QUESTIONS = ROOT / "qualbench" / "resources" / "sample"
MANIFESTS = ROOT / "corpora" / "manifests"
SAMPLE_CORPUS = ROOT / "corpora" / "sample"

SLUG_TO_NAME = {d.slug: d.name for d in DOMAINS}
IDX_BLOCK = {d.slug: 1000 * (i + 1) for i, d in enumerate(DOMAINS)}  # production_safety 1001.., fire 2001.., ...
TYPES = ("单选题", "多选题", "判断题")
LEVELS = {"法律", "行政法规", "部门规章", "地方性法规"}
DISCLAIMER = "> QualBench Lab 编写的条文要点摘要（非法规原文），仅供离线示例检索使用。"
INFO_END = "<!-- INFO" + " END -->"
MIN_PER_DOMAIN, MIN_PER_TYPE, MAX_LETTER_SHARE = 30, 8, 0.40
OVERLAP_CHARS = 20  # a sample stem may not share this many consecutive characters with an exam question
COPY_CHARS = 40  # a sample-corpus summary may not share this many consecutive characters with the law text

NUM = "〇零一二三四五六七八九十百千"
ARTICLE_LINE = re.compile(rf"^第([{NUM}]+)条[ \u3000]", re.M)
# 《title》第X条[第Y款][（Z）项][、第X条...]; the title may contain one nested 《》 (广东省实施《…》办法).
CITATION = re.compile(
    rf"《((?:[^《》]|《[^《》]*》)+)》"
    rf"((?:第[{NUM}]+条(?:第[{NUM}]+款)?(?:第?[（(][{NUM}]+[）)]项)?[、和及与]?)+)"
)


# ---------------------------------------------------------------- loading helpers

def _parse_options(question: str) -> tuple[str, dict[str, str]]:
    try:
        from qualbench.data.options import parse_options
    except ImportError:  # the project loader is optional for these checks
        lines = question.split("\n")
        opts = {m.group(1): m.group(2) for ln in lines if (m := re.match(r"^([A-J])．(.*)$", ln))}
        first = next((i for i, ln in enumerate(lines) if re.match(r"^[A-J]．", ln)), len(lines))
        return "\n".join(lines[:first]).strip(), opts
    return parse_options(question)


def _sample_files() -> dict[str, Path]:
    return {p.stem: p for p in sorted(SAMPLE_QUESTIONS.glob("*.json"))}


def _load(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as fh:
        data = json.load(fh)
    assert isinstance(data, list), f"{path}: expected a JSON list of records"
    return data


def _manifest(slug: str) -> dict:
    path = MANIFESTS / f"{slug}.yaml"
    assert path.exists(), f"missing manifest {path}"
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _articles(text: str) -> dict[str, str]:
    """{article number: paragraph} of a law/summary text (only the part after the header marker, if any)."""
    body = text.split(INFO_END)[-1]
    out: dict[str, str] = {}
    for line in body.splitlines():
        m = ARTICLE_LINE.match(line)
        if m:
            out.setdefault(m.group(1), line)
    return out


def _citations(explanation: str) -> list[tuple[str, str]]:
    return [(title, num) for title, run in CITATION.findall(explanation) for num in re.findall(rf"第([{NUM}]+)条", run)]


SAMPLES = _sample_files()
present = pytest.mark.parametrize("slug", sorted(SAMPLES), ids=sorted(SAMPLES))
needs_shared_corpora = pytest.mark.skipif(not SHARED_CORPORA.is_dir(), reason="../shared/corpora not available")


# ---------------------------------------------------------------- question files

def test_all_six_domains_have_a_sample_file():
    assert set(SAMPLES) <= set(SLUG_TO_NAME), f"unexpected sample files: {set(SAMPLES) - set(SLUG_TO_NAME)}"
    missing = sorted(set(SLUG_TO_NAME) - set(SAMPLES))
    assert not missing, f"no sample questions for: {missing} (expected {SAMPLE_QUESTIONS}/<slug>.json)"


@present
def test_records_are_well_formed(slug):
    path = SAMPLES[slug]
    for pos, r in enumerate(_load(path)):
        where = f"{path.name} record {pos} (idx {r.get('idx')})"
        assert set(r) == {"idx", "question_type", "domain", "question", "answer", "explanation", "qualification"}, where
        assert isinstance(r["idx"], int), where
        assert IDX_BLOCK[slug] < r["idx"] < IDX_BLOCK[slug] + 1000, f"{where}: idx outside {IDX_BLOCK[slug] + 1}.."
        assert r["domain"] == SLUG_TO_NAME[slug], f"{where}: domain {r['domain']!r} is not canonical"
        assert r["question_type"] in TYPES, where
        assert r["explanation"].strip() and r["qualification"].strip(), where
        stem, opts = _parse_options(r["question"])
        assert stem, where
        qtype, ans = r["question_type"], r["answer"]
        if qtype == "判断题":
            assert not opts, f"{where}: 判断题 must not carry options"
            assert ans in ("正确", "错误"), where
            continue
        letters = "".join(opts)
        assert letters == "ABCDE"[: len(opts)], f"{where}: options must run A, B, C, ... (got {letters})"
        assert all(f"{k}．" in r["question"] for k in opts), f"{where}: option markers must use the full-width dot"
        assert ans == "".join(sorted(set(ans))), f"{where}: answer letters must be sorted and unique"
        assert set(ans) <= set(opts), f"{where}: answer {ans} not among options {letters}"
        if qtype == "单选题":
            assert len(opts) == 4 and len(ans) == 1, where
        else:
            assert len(opts) in (4, 5) and 2 <= len(ans) <= 4, where


@present
def test_distribution_per_domain(slug):
    records = _load(SAMPLES[slug])
    by_type = collections.Counter(r["question_type"] for r in records)
    assert len(records) >= MIN_PER_DOMAIN, f"{slug}: {len(records)} questions"
    for t in TYPES:
        assert by_type[t] >= MIN_PER_TYPE, f"{slug}: only {by_type[t]} {t}"
    singles = collections.Counter(r["answer"] for r in records if r["question_type"] == "单选题")
    letter, top = singles.most_common(1)[0]
    assert top / sum(singles.values()) <= MAX_LETTER_SHARE, f"{slug}: {letter} answers {top} of {sum(singles.values())} 单选题"
    judges = collections.Counter(r["answer"] for r in records if r["question_type"] == "判断题")
    assert judges["正确"] and judges["错误"], f"{slug}: 判断题 must mix true and false statements ({dict(judges)})"
    assert max(judges.values()) / sum(judges.values()) <= 0.75, f"{slug}: 判断题 answers too one-sided {dict(judges)}"


def test_idx_and_questions_unique_across_files():
    seen_idx: dict[int, str] = {}
    seen_stem: dict[str, str] = {}
    for slug, path in SAMPLES.items():
        for r in _load(path):
            where = f"{path.name} idx {r['idx']}"
            assert r["idx"] not in seen_idx, f"{where}: idx also used in {seen_idx[r['idx']]}"
            seen_idx[r["idx"]] = where
            stem = re.sub(r"\s", "", _parse_options(r["question"])[0])
            assert stem not in seen_stem, f"{where}: same stem as {seen_stem[stem]}"
            seen_stem[stem] = where


# ---------------------------------------------------------------- citations

@needs_shared_corpora
@present
def test_every_explanation_cites_a_real_article(slug):
    laws = _manifest(slug)["laws"]
    by_name = {}
    for law in laws:
        by_name[law["title"]] = law
        by_name[law["short_title"]] = law
    law_articles: dict[str, dict[str, str]] = {}
    sample_articles: dict[str, dict[str, str]] = {}
    for r in _load(SAMPLES[slug]):
        where = f"{slug}.json idx {r['idx']}"
        cites = _citations(r["explanation"])
        assert cites, f"{where}: explanation cites no 《法规名称》第X条"
        for title, num in cites:
            law = by_name.get(title)
            assert law, f"{where}: 《{title}》 is not a title or short_title in corpora/manifests/{slug}.yaml"
            f = law["file"]
            if f not in law_articles:
                law_articles[f] = _articles((SHARED_CORPORA / slug / f).read_text(encoding="utf-8"))
            assert num in law_articles[f], f"{where}: 《{title}》 has no 第{num}条 in {f}"
            assert law.get("sample_file"), f"{where}: 《{title}》 has no sample_file in the manifest"
            s = law["sample_file"]
            if s not in sample_articles:
                sample_articles[s] = _articles((SAMPLE_CORPUS / slug / s).read_text(encoding="utf-8"))
            assert num in sample_articles[s], f"{where}: sample corpus {slug}/{s} lacks 第{num}条"


# ---------------------------------------------------------------- manifests

@pytest.mark.parametrize("slug", sorted(SLUG_TO_NAME))
def test_manifest_is_consistent(slug):
    m = _manifest(slug)
    assert m["domain"] == SLUG_TO_NAME[slug] and m["slug"] == slug
    files = [law["file"] for law in m["laws"]]
    assert len(files) == len(set(files)), f"{slug}: a file is listed twice"
    for law in m["laws"]:
        where = f"{slug}.yaml {law.get('file')}"
        assert {"title", "short_title", "level", "effective_date", "file"} <= set(law), where
        assert law["level"] in LEVELS, f"{where}: level {law['level']!r}"
        dt.date.fromisoformat(str(law["effective_date"]))
        if "sample_file" in law:
            sample = SAMPLE_CORPUS / slug / law["sample_file"]
            assert sample.is_file(), f"{where}: sample_file {sample} missing"
            first = sample.read_text(encoding="utf-8").splitlines()[0]
            assert first == f"# {law['title']}", f"{sample}: title line {first!r} != manifest title"
    listed_samples = {law.get("sample_file") for law in m["laws"]}
    for p in sorted((SAMPLE_CORPUS / slug).glob("*.md")):
        assert p.name in listed_samples, f"{p} is not referenced by any sample_file in {slug}.yaml"


@needs_shared_corpora
@pytest.mark.parametrize("slug", sorted(SLUG_TO_NAME))
def test_manifest_lists_every_shared_file_once(slug):
    m = _manifest(slug)
    listed = collections.Counter(law["file"] for law in m["laws"])
    on_disk = {p.name for p in (SHARED_CORPORA / slug).glob("*.md")}
    assert set(listed) == on_disk, f"{slug}: missing {sorted(on_disk - set(listed))}, extra {sorted(set(listed) - on_disk)}"
    for law in m["laws"]:
        first = (SHARED_CORPORA / slug / law["file"]).read_text(encoding="utf-8").splitlines()[0]
        assert first == f"# {law['title']}", f"{slug}/{law['file']}: title line {first!r} != {law['title']!r}"


# ---------------------------------------------------------------- sample corpus

SAMPLE_MD = sorted(SAMPLE_CORPUS.glob("*/*.md"))


@pytest.mark.parametrize("path", SAMPLE_MD, ids=[f"{p.parent.name}/{p.name}" for p in SAMPLE_MD])
def test_sample_corpus_layout(path):
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines()
    assert lines[0].startswith("# ") and lines[1] == DISCLAIMER, f"{path}: lines 1-2 must be '# <title>' and the disclaimer"
    assert INFO_END not in text, f"{path}: must not contain the upstream header marker"
    numbers = ARTICLE_LINE.findall(text)
    assert numbers, f"{path}: no '第X条 ' paragraphs"
    dupes = [n for n, c in collections.Counter(numbers).items() if c > 1]
    assert not dupes, f"{path}: articles repeated: {dupes}"


@needs_shared_corpora
@pytest.mark.parametrize("slug", sorted(SLUG_TO_NAME))
def test_sample_corpus_summarises_real_articles(slug):
    """Every summarised article exists in the real law, and no summary copies a long run of the law text."""
    for law in _manifest(slug)["laws"]:
        if "sample_file" not in law:
            continue
        real = (SHARED_CORPORA / slug / law["file"]).read_text(encoding="utf-8")
        real_articles = _articles(real)
        flat = re.sub(r"\s", "", real.split(INFO_END)[-1])
        grams = {flat[i : i + COPY_CHARS] for i in range(len(flat) - COPY_CHARS + 1)}
        summary = _articles((SAMPLE_CORPUS / slug / law["sample_file"]).read_text(encoding="utf-8"))
        for num, para in summary.items():
            where = f"{slug}/{law['sample_file']} 第{num}条"
            assert num in real_articles, f"{where}: no such article in {law['file']}"
            s = re.sub(r"\s", "", para)
            copied = next((s[i : i + COPY_CHARS] for i in range(len(s) - COPY_CHARS + 1) if s[i : i + COPY_CHARS] in grams), None)
            assert copied is None, f"{where}: copies the law text verbatim ({copied!r})"


# ---------------------------------------------------------------- exam-bank overlap

@pytest.mark.skipif(not SHARED_EXAMS.is_dir(), reason="../shared/exams not available")
def test_no_stem_overlaps_the_exam_banks():
    grams: dict[str, str] = {}
    for bank in sorted(SHARED_EXAMS.glob("*.json")):
        for q in _load(bank):
            t = re.sub(r"\s", "", q["question"])
            for i in range(len(t) - OVERLAP_CHARS + 1):
                grams.setdefault(t[i : i + OVERLAP_CHARS], f"{bank.name} idx {q['idx']}")
    assert grams, "exam banks are empty"
    for slug, path in SAMPLES.items():
        for r in _load(path):
            stem = re.sub(r"\s", "", _parse_options(r["question"])[0])
            hit = next((stem[i : i + OVERLAP_CHARS] for i in range(len(stem) - OVERLAP_CHARS + 1)
                        if stem[i : i + OVERLAP_CHARS] in grams), None)
            assert hit is None, f"{slug}.json idx {r['idx']}: stem shares {hit!r} with {grams.get(hit)}"


def test_corpora_readme_tables_are_current():
    import importlib.util

    spec = importlib.util.spec_from_file_location("render_manifest_tables", ROOT / "corpora" / "render_manifest_tables.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    readme = mod.README.read_text(encoding="utf-8")
    expected = mod.replace_block(readme, mod.render(mod.load_manifests()))
    assert readme == expected, "corpora/README.md is stale: run python corpora/render_manifest_tables.py --write"
    assert all(f"({slug}" in readme or f"`{slug}`" in readme for slug in SLUG_TO_NAME)
