"""Gold citations parsed from explanations and resolved against corpus law titles."""

from pathlib import Path

import pytest

from retrievers.citations import (
    TitleResolver,
    corpus_titles,
    normalize_title,
    parse_citations,
    resolver_for_corpus,
)

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "corpora"
SAMPLE_CORPUS = Path(__file__).resolve().parents[1] / "corpora" / "sample"

TITLES = [
    "中华人民共和国安全生产法",
    "中华人民共和国消防法",
    "生产安全事故报告和调查处理条例",
    "广东省实施《中华人民共和国消防法》办法",
    "中华人民共和国矿山安全法",
    "中华人民共和国矿山安全法实施条例",
]


@pytest.fixture
def resolver():
    return TitleResolver(TITLES, {"事故条例": "生产安全事故报告和调查处理条例"})


def pairs(cites):
    return [(c.title, c.article_num) for c in cites]


def test_full_title_and_article(resolver):
    cites = parse_citations("依据《中华人民共和国安全生产法》第二十四条：从业人员超过一百人的……", resolver)
    assert pairs(cites) == [("中华人民共和国安全生产法", 24)]
    assert cites[0].article_id == "中华人民共和国安全生产法#24"


def test_abbreviation_and_article_list(resolver):
    cites = parse_citations("《安全生产法》第十条、第十一条规定", resolver)
    assert pairs(cites) == [("中华人民共和国安全生产法", 10), ("中华人民共和国安全生产法", 11)]
    assert cites[0].cited == "安全生产法"


def test_articles_belong_to_the_nearest_preceding_law(resolver):
    text = "依据《消防法》第十六条第一款第（三）项和《生产安全事故报告和调查处理条例》第3条。另据第九条。"
    assert pairs(parse_citations(text, resolver)) == [
        ("中华人民共和国消防法", 16),
        ("生产安全事故报告和调查处理条例", 3),
        ("生产安全事故报告和调查处理条例", 9),
    ]


def test_article_range_is_expanded(resolver):
    assert [c.article_num for c in parse_citations("《矿山安全法》第十条至第十二条", resolver)] == [10, 11, 12]


def test_implementing_regulation_is_not_the_law(resolver):
    assert pairs(parse_citations("《矿山安全法实施条例》第五条", resolver)) == [("中华人民共和国矿山安全法实施条例", 5)]
    only_law = TitleResolver(["中华人民共和国安全生产法"])
    assert only_law.resolve("安全生产法实施条例") is None


def test_inner_brackets_version_notes_and_manifest_alias(resolver):
    assert resolver.resolve("广东省实施〈消防法〉办法") == "广东省实施《中华人民共和国消防法》办法"
    assert resolver.resolve("中华人民共和国安全生产法（2021年修正）") == "中华人民共和国安全生产法"
    assert resolver.resolve("事故条例") == "生产安全事故报告和调查处理条例"
    assert normalize_title("《中华人民共和国 消防法》") == "消防法"


def test_law_only_outside_corpus_and_empty(resolver):
    cites = parse_citations("见《建筑施工安全检查标准》和《消防法》。", resolver)
    assert pairs(cites) == [(None, None), ("中华人民共和国消防法", None)]
    assert cites[0].law_id is None and cites[1].law_id == "中华人民共和国消防法"
    assert parse_citations("", resolver) == []
    assert parse_citations("第十条规定了……", resolver) == []  # an article without any law is not a citation
    # a law cited with an article makes a bare mention of the same law redundant
    assert pairs(parse_citations("《消防法》规定……见《消防法》第二条", resolver)) == [("中华人民共和国消防法", 2)]


def test_corpus_titles_errors_and_sample_corpus(tmp_path):
    with pytest.raises(FileNotFoundError, match="corpus directory not found"):
        corpus_titles(tmp_path / "missing")
    if not SAMPLE_CORPUS.is_dir():
        pytest.skip("sample corpus not present")
    r = resolver_for_corpus(SAMPLE_CORPUS)
    assert r.resolve("安全生产法") == "中华人民共和国安全生产法"


def test_shared_corpus_resolves_abbreviations():
    if not SHARED.is_dir():
        pytest.skip("../shared/corpora not present")
    r = resolver_for_corpus(SHARED)
    assert len(r.titles) >= 80
    assert r.resolve("安全生产法") == "中华人民共和国安全生产法"
    assert r.resolve("中华人民共和国建设工程安全生产管理条例") == "建设工程安全生产管理条例"
    assert r.resolve("消防法") == "中华人民共和国消防法"
    assert r.resolve("某某不存在条例") is None
