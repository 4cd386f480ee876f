"""Corpus ingestion: numerals, structure parsing (real shared corpus + crafted edge cases), encodings, chunking."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from helpers.demo_corpus import demo_law_text, write_demo_corpus
from retrievers.chunking import ChunkConfig, chunk_corpus, chunk_document, split_paragraphs
from retrievers.corpus import CorpusError, corpus_hash, decode_bytes, read_corpus
from retrievers.structure import INFO_END, article_label, cn_to_int, int_to_cn, parse_law

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
SHARED_FILES = sorted(SHARED.glob("*/*.md")) if SHARED.is_dir() else []


@pytest.mark.parametrize("text,n", [("一", 1), ("十", 10), ("十二", 12), ("二十", 20), ("一百零二", 102),
                                    ("一百一十", 110), ("两千零一", 2001), ("一千零一十", 1010), ("12", 12)])
def test_cn_to_int(text, n):
    assert cn_to_int(text) == n


def test_numeral_round_trip_and_labels():
    for n in range(1, 2500):
        assert cn_to_int(int_to_cn(n)) == n
    assert article_label(102) == "第一百零二条"
    assert article_label(10) == "第十条"
    assert article_label(10, "之一") == "第十条之一"
    with pytest.raises(ValueError):
        cn_to_int("第三")


@pytest.mark.skipif(not SHARED_FILES, reason="../shared/corpora not present")
@pytest.mark.parametrize("path", SHARED_FILES, ids=lambda p: p.name)
def test_every_shared_file_parses(path):
    text = path.read_text(encoding="utf-8")
    law = parse_law(text)
    title_line = text.splitlines()[0]
    assert title_line.startswith("# ") and law.title.startswith(title_line[2:].strip())
    assert law.articles, f"{path}: no articles"
    keys = [a.sort_key for a in law.articles]
    assert keys == sorted(set(keys)), f"{path}: {law.article_order_problems()[:3]}"
    assert not law.loose, f"{path}: text outside articles: {[p.text[:30] for p in law.loose[:3]]}"
    # the article count equals the number of paragraphs that start with 第X条 after the preface
    body = text.split(INFO_END, 1)[1]
    starts = sum(1 for ln in body.splitlines() if ln.strip().startswith("第") and "条 " in ln[:14]
                 and not ln.strip().startswith("#"))
    assert len(law.articles) == starts
    assert all(a.paragraphs for a in law.articles)
    lines = text.splitlines()
    first_heading = next((i + 1 for i, ln in enumerate(lines) if ln.startswith("## ")), None)
    if first_heading:  # (some files lack the first 章 heading: only articles after a heading have one)
        assert all(a.chapter for a in law.articles if a.line > first_heading)


@pytest.mark.skipif(not SHARED_FILES, reason="../shared/corpora not present")
def test_shared_corpus_nested_headings_and_items():
    law = parse_law((SHARED / "civil_engineering" / "民法典合同编.md").read_text(encoding="utf-8"))
    assert law.title == "中华人民共和国民法典（合同编）"
    assert law.articles[0].label == "第四百六十三条"
    assert law.articles[0].chapter == "第一分编 通则 / 第一章 一般规定"
    a470 = next(a for a in law.articles if a.num == 470)
    assert len(a470.clauses[0].items) == 8 and a470.clauses[0].items[0].startswith("（一）")
    assert len(a470.clauses) == 2  # the closing 款 after the items


CRAFTED = """# 某某条例

2020年1月1日 通过

{marker}

## 第一编 总则

### 第一章 一般规定

第一条 为了测试，制定本条例。

第二条 本条例适用于测试。

第二条之一 新增加的条文。

第一款之后的第二款。

### 第二章 管理

#### 第一节 审批

第十条 申请应当提交下列材料：

（一）申请书；

（二）证明文件。

第十条之一 补充规定。

## 第二编 附则

第一百零二条 本条例自公布之日起施行。
""".replace("{marker}", INFO_END)


def test_crafted_nesting_suffix_items():
    law = parse_law(CRAFTED)
    assert law.title == "某某条例" and law.preface == ["2020年1月1日 通过"]
    labels = [a.label for a in law.articles]
    assert labels == ["第一条", "第二条", "第二条之一", "第十条", "第十条之一", "第一百零二条"]
    by = {a.label: a for a in law.articles}
    assert by["第一条"].chapter == "第一编 总则 / 第一章 一般规定"
    assert by["第十条"].chapter == "第一编 总则 / 第二章 管理 / 第一节 审批"
    assert by["第一百零二条"].chapter == "第二编 附则"  # a new 编 closes the open 章/节
    assert by["第二条之一"].suffix == "之一" and len(by["第二条之一"].paragraphs) == 2
    assert by["第十条"].clauses[0].items == ["（一）申请书；", "（二）证明文件。"]
    assert not law.article_order_problems()


def test_sample_format_without_marker():
    law = parse_law(demo_law_text("fire_safety"))
    assert law.title == "示例消防管理办法"
    assert law.preface and law.preface[0].startswith("为测试编写")
    assert [a.num for a in law.articles] == list(range(1, len(law.articles) + 1))
    assert law.articles[2].chapter == "第二章 消防设施"


def test_decode_gbk_and_reject_garbage():
    text = "# 测试条例\n\n第一条 消防设施应当定期检查。\n"
    decoded, warning = decode_bytes(text.encode("gbk"), "x.md")
    assert decoded == text and "GB18030" in warning
    assert decode_bytes(text.encode("utf-8"), "x.md") == (text, None)
    with pytest.raises(CorpusError, match="bad.md"):
        decode_bytes(bytes(range(128, 256)) * 4, "bad.md")
    with pytest.raises(CorpusError, match="x.md.*GB18030 fallback disabled"):
        decode_bytes(text.encode("gbk"), "x.md", allow_gb18030=False)


def test_read_corpus_reports_problem_files(tmp_path):
    root = write_demo_corpus(tmp_path / "c", ("fire_safety",))
    (root / "fire_safety" / "empty.md").write_text("", encoding="utf-8")
    (root / "fire_safety" / "gbk.md").write_bytes("# 国标编码条例\n\n第一条 报警电话为一一九。\n".encode("gbk"))
    (root / "fire_safety" / "plain.txt").write_text("# 说明\n\n第一段没有条文。\n\n第二段也没有。\n", encoding="utf-8")
    (root / "fire_safety" / "garbage.md").write_bytes(bytes(range(128, 256)) * 4)
    (root / "unknown_domain").mkdir()
    (root / "unknown_domain" / "x.md").write_text("# x\n\n第一条 x。\n", encoding="utf-8")
    corpus = read_corpus(root)
    issues = {(i.file, i.level): i.message for i in corpus.report.issues}
    assert "empty" in issues[("fire_safety/empty.md", "error")]
    assert "GB18030" in issues[("fire_safety/gbk.md", "warning")]
    assert "no 第X条" in issues[("fire_safety/plain.txt", "warning")]
    assert "UTF-8" in issues[("fire_safety/garbage.md", "error")]
    assert "unknown domain" in issues[("unknown_domain/x.md", "error")]
    assert corpus.report.n_files == 6 and corpus.report.n_used == 3
    chunks = chunk_corpus(corpus)
    plain = [c for c in chunks if c.metadata["source_file"] == "fire_safety/plain.txt"]
    assert plain and all(c.metadata["article"] == "" and c.metadata["article_num"] == 0 for c in plain)
    assert "第二段也没有" in plain[0].text
    gbk = [c for c in chunks if c.metadata["source_file"] == "fire_safety/gbk.md"]
    assert gbk[0].metadata["article"] == "第一条" and "一一九" in gbk[0].text
    with pytest.raises(CorpusError, match="empty.md"):
        read_corpus(root, strict=True)


def test_corpus_hash_changes_with_content(tmp_path):
    root = write_demo_corpus(tmp_path / "c")
    h = corpus_hash(root)
    assert h == corpus_hash(root)
    f = root / "fire_safety" / "示例消防管理办法.md"
    f.write_text(f.read_text(encoding="utf-8") + "\n第九十条 新增。\n", encoding="utf-8")
    assert corpus_hash(root) != h


def test_symlink_outside_the_corpus_is_refused(tmp_path):
    root = write_demo_corpus(tmp_path / "c", ("fire_safety",))
    secret = tmp_path / "outside" / "secret.md"
    secret.parent.mkdir()
    secret.write_text("# 机密\n\n第一条 OUTSIDE-SECRET-TEXT。\n", encoding="utf-8")
    (root / "fire_safety" / "passwd.md").symlink_to(secret)
    (root / "fire_safety" / "up.md").symlink_to(Path("..") / ".." / "outside" / "secret.md")  # relative escape
    (root / "fire_safety" / "dangling.md").symlink_to(tmp_path / "nowhere.md")
    corpus = read_corpus(root)
    issues = {(i.file, i.level): i.message for i in corpus.report.issues}
    for name in ("passwd.md", "up.md"):
        assert "outside the corpus folder" in issues[(f"fire_safety/{name}", "error")]
        assert str(secret.resolve()) in issues[(f"fire_safety/{name}", "error")]
    assert "cannot be resolved" in issues[("fire_safety/dangling.md", "error")]
    assert corpus.report.n_used == 1 and corpus.report.n_files == 4
    assert not any("OUTSIDE-SECRET-TEXT" in c.text for c in chunk_corpus(corpus))
    assert all(d.source_file == "fire_safety/示例消防管理办法.md" for d in corpus.documents)
    h = corpus_hash(root)
    secret.write_text("# 机密\n\n第一条 changed。\n", encoding="utf-8")  # outside bytes are never read
    assert corpus_hash(root) == h
    (root / "fire_safety" / "dangling.md").unlink()
    with pytest.raises(CorpusError, match="passwd.md.*outside the corpus folder"):
        read_corpus(root, strict=True)


def test_symlink_inside_the_corpus_is_used(tmp_path):
    root = write_demo_corpus(tmp_path / "c", ("fire_safety", "banking_insurance"))
    target = root / "banking_insurance" / "示例银行保险监督条例.md"
    (root / "fire_safety" / "linked.md").symlink_to(Path("..") / "banking_insurance" / target.name)
    corpus = read_corpus(root)
    assert not corpus.report.issues and corpus.report.n_used == 3
    linked = [d for d in corpus.documents if d.source_file == "fire_safety/linked.md"]
    assert linked and linked[0].domain == "fire_safety" and linked[0].law.title == "示例银行保险监督条例"
    # a corpus root reached through a symlink is resolved the same way
    alias = tmp_path / "alias"
    alias.symlink_to(root)
    assert read_corpus(alias).report.n_used == 3


def test_split_paragraphs_respects_boundaries_and_overlap():
    paras = ["甲" * 50, "乙" * 50, "丙" * 50]
    assert split_paragraphs(paras, 200, 10) == ["\n".join(paras)]
    parts = split_paragraphs(paras, 110, 10)
    assert parts[0] == "甲" * 50 + "\n" + "乙" * 50  # split at the 款 boundary, not inside
    assert parts[1] == "乙" * 10 + "丙" * 50  # overlap: the previous part's tail
    long = split_paragraphs(["句子。" * 100], 60, 0)
    assert all(len(p) <= 60 for p in long) and "".join(long) == "句子。" * 100


def test_chunk_metadata_ids_merge_and_split(tmp_path):
    root = write_demo_corpus(tmp_path / "c")
    corpus = read_corpus(root)
    doc = corpus.documents[0]
    chunks = chunk_document(doc, ChunkConfig(max_chars=600, overlap=80, min_chars=40))
    assert chunks == chunk_document(doc, ChunkConfig(max_chars=600, overlap=80, min_chars=40))  # stable ids
    meta = chunks[0].metadata
    assert set(meta) >= {"law_title", "domain", "article", "article_num", "article_suffix", "chapter",
                         "source_file", "chunk_id"}
    assert chunks[0].text.startswith(f"《{meta['law_title']}》{meta['article']}")
    assert len({c.id for c in chunks}) == len(chunks)
    # min_chars large: tiny articles merge, but never across chapters
    merged = chunk_document(doc, ChunkConfig(max_chars=600, overlap=0, min_chars=200))
    assert len(merged) < len(chunks)
    law_chapters = {a.label: a.chapter for a in doc.law.articles}
    for c in merged:
        assert len({law_chapters[x] for x in c.metadata["articles"]}) == 1
    # max_chars small: articles split into parts with continuation labels
    split = chunk_document(doc, ChunkConfig(max_chars=30, overlap=5, min_chars=0))
    parts = [c for c in split if c.metadata["n_parts"] > 1]
    assert parts and any("（续）" in c.text for c in parts)
    assert len({c.id for c in split}) == len(split)


@pytest.mark.skipif(not SHARED_FILES, reason="../shared/corpora not present")
def test_shared_corpus_reads_clean_and_chunks():
    corpus = read_corpus(SHARED)
    assert corpus.report.n_used == len(SHARED_FILES) and not corpus.report.errors
    assert sorted(corpus.domains) == sorted({p.parent.name for p in SHARED_FILES})
    chunks = chunk_corpus(corpus, ChunkConfig())
    assert all(len(c.text) <= 600 + 80 + 60 for c in chunks)  # body + overlap + 《title》 prefix
    assert all(c.metadata["article"].startswith("第") for c in chunks)


# --- issue 11 item 8: corpus file names that are not UTF-8, and corpus-path errors as one line -------------


def _bytes_named(root: Path, rel: bytes, text: str) -> Path:
    """A file whose name holds bytes that are not UTF-8; skips where the filesystem refuses such names."""
    path = os.fsencode(root) + b"/" + rel
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as fh:
            fh.write(text.encode("utf-8"))
    except (OSError, UnicodeError) as e:
        pytest.skip(f"this filesystem refuses non-UTF-8 file names ({e})")
    return Path(os.fsdecode(path))


def test_non_utf8_file_name_is_reported_and_skipped(tmp_path):
    root = write_demo_corpus(tmp_path / "c")
    good = read_corpus(root).report.n_used
    _bytes_named(root, b"fire_safety/bad\xff\xfe.md", demo_law_text("fire_safety"))
    _bytes_named(root, b"oil_gas\xe9/x.md", demo_law_text("fire_safety"))  # a folder name that is not UTF-8
    corpus = read_corpus(root)
    assert corpus.report.n_used == good == 3 and corpus.report.n_files == 5
    issues = {i.file: i.message for i in corpus.report.errors}
    assert set(issues) == {"fire_safety/bad\\xff\\xfe.md", "oil_gas\\xe9/x.md"}
    assert all("file name is not valid UTF-8" in m and m.endswith("skipped") for m in issues.values())
    corpus.report.save(tmp_path / "report.json")  # before: UnicodeEncodeError on the surrogate escapes
    assert "bad\\\\xff\\\\xfe.md" in (tmp_path / "report.json").read_text(encoding="utf-8")
    h = corpus_hash(root)  # before: UnicodeEncodeError ('surrogates not allowed'), which ended the run
    assert len(h) == 64 and h != corpus_hash(write_demo_corpus(tmp_path / "d"))
    with pytest.raises(CorpusError, match=r"bad\\xff\\xfe\.md: file name is not valid UTF-8") as e:
        read_corpus(root, strict=True)
    str(e.value).encode("utf-8")  # printable as it is


def test_non_utf8_file_name_end_to_end(tmp_path):
    from retrievers.build import build_retriever

    root = write_demo_corpus(tmp_path / "c")
    _bytes_named(root, b"fire_safety/\xb7\xa8.md", demo_law_text("fire_safety"))  # GBK bytes of 法
    r = build_retriever({"kind": "bm25", "routing": "oracle", "top_k": 3}, root, tmp_path / "idx")
    hits = r.search_batch(["消防安全责任"], ["fire_safety"], k=3)[0]
    assert hits and all("\\x" not in d.metadata["source_file"] for d in hits)
    report = next((tmp_path / "idx").rglob("corpus_report.json")).read_text(encoding="utf-8")
    assert "fire_safety/\\\\xb7\\\\xa8.md" in report and "not valid UTF-8" in report


REPO = Path(__file__).resolve().parents[1]


def _app_error(tmp_path: Path, corpus: Path) -> str:
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1", OMP_NUM_THREADS="2")
    r = subprocess.run([sys.executable, "-m", "qualbench", f"corpus.path={corpus}", "limit=3", "run.plots=false",
                        f"retriever.cache_dir={tmp_path / 'idx'}", f"hydra.run.dir={tmp_path / 'run'}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 2, r.stderr[-3000:]
    assert "Traceback" not in r.stderr and "HYDRA_FULL_ERROR" not in r.stderr, r.stderr[-3000:]
    errors = [x for x in r.stderr.splitlines() if x.startswith("qualbench: error:")]
    assert len(errors) == 1, r.stderr[-3000:]
    return errors[0]


def test_corpus_path_errors_are_one_line(tmp_path):
    # before: each of these ended in a traceback (retrievers.corpus.CorpusError was not a QualBenchError)
    assert "corpus directory not found: " in _app_error(tmp_path, tmp_path / "nope")
    assert not (tmp_path / "run" / "config.yaml").exists()  # refused before anything was written
    f = tmp_path / "law.md"
    f.write_text(demo_law_text("fire_safety"), encoding="utf-8")
    assert "corpus.path is a file, not a folder" in _app_error(tmp_path, f)
    (tmp_path / "empty" / "fire_safety").mkdir(parents=True)
    assert "holds no .md/.txt law files" in _app_error(tmp_path, tmp_path / "empty")
    unknown = tmp_path / "unknown"
    for name in ("misc", "银行"):
        (unknown / name).mkdir(parents=True)
        (unknown / name / "a.md").write_text(demo_law_text("fire_safety"), encoding="utf-8")
    line = _app_error(tmp_path, unknown)
    assert "all skipped; unknown domain folder(s) 'misc', '银行'" in line and "fire_safety" in line


def test_corpus_error_is_a_qualbench_error():
    from qualbench.errors import QualBenchError

    assert issubclass(CorpusError, QualBenchError) and issubclass(CorpusError, ValueError)
