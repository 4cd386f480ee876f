"""Partitioning questions over federated clients: determinism, Dirichlet skew, per-client splits, summary."""

from __future__ import annotations

import csv
import json
from collections import Counter

import pytest

from federation.partition import load_client, partition, save_clients, save_summary, summary
from qualbench.domains import DOMAINS
from qualbench.errors import ConfigError
from qualbench.records import JUDGE, MULTI, SINGLE, Question


def make_questions(per_cell: int = 10) -> list[Question]:
    """per_cell questions for every domain × type, with two qualifications."""
    out = []
    for d in DOMAINS:
        for t in (SINGLE, MULTI, JUDGE):
            for i in range(per_cell):
                opts = {} if t == JUDGE else {"A": "甲", "B": "乙", "C": "丙", "D": "丁"}
                ans = "正确" if t == JUDGE else ("AB" if t == MULTI else "C")
                out.append(Question(idx=f"{d.slug}-{t}-{i}", question_type=t, domain=d.name, stem=f"{d.name}题{i}",
                                    options=opts, answer=ans, qualification=f"资格{i % 2}"))
    return out


def ids(clients):
    return [[[q.idx for q in c.split(s)] for s in ("train", "val", "test")] for c in clients]


def test_by_domain_gives_one_client_per_domain_with_stratified_splits():
    qs = make_questions()
    clients = partition(qs, "domain", fractions=(0.6, 0.2, 0.2), seed=3)
    assert [c.name for c in clients] == [d.slug for d in DOMAINS]
    for c in clients:
        assert {q.domain_slug for q in c.all} == {c.name}
        for split, n in (("train", 6), ("val", 2), ("test", 2)):  # 10 per type × fractions, per type
            assert Counter(q.question_type for q in c.split(split)) == {SINGLE: n, MULTI: n, JUDGE: n}
        assert len({q.idx for q in c.all}) == len(c.all) == 30
    assert sorted(q.idx for c in clients for q in c.all) == sorted(q.idx for q in qs)


def test_partition_is_deterministic_for_a_seed_and_changes_with_it():
    qs = make_questions()
    for mode in ("domain", "qualification", "dirichlet"):
        a = ids(partition(qs, mode, num_clients=4 if mode == "dirichlet" else None, seed=1))
        b = ids(partition(qs, mode, num_clients=4 if mode == "dirichlet" else None, seed=1))
        c = ids(partition(qs, mode, num_clients=4 if mode == "dirichlet" else None, seed=2))
        assert a == b and a != c


def test_dirichlet_skew_grows_as_alpha_shrinks():
    qs = make_questions(per_cell=20)

    def dominant_share(alpha: float) -> float:
        clients = partition(qs, "dirichlet", num_clients=6, alpha=alpha, seed=0)
        assert sum(len(c.all) for c in clients) == len(qs)
        shares = [Counter(q.domain for q in c.all).most_common(1)[0][1] / len(c.all) for c in clients]
        return sum(shares) / len(shares)

    skewed, even = dominant_share(0.1), dominant_share(100.0)
    assert skewed > 0.6 > 0.3 > even  # near-IID: each domain ~1/6 of a client's data


def test_by_qualification_and_bad_input():
    qs = make_questions()
    clients = partition(qs, "qualification")
    assert [c.name for c in clients] == ["资格0", "资格1"]
    with pytest.raises(ConfigError, match="unknown partition mode"):
        partition(qs, "by_moon")
    with pytest.raises(ConfigError, match="num_clients=3"):
        partition(qs, "domain", num_clients=3)
    with pytest.raises(ConfigError, match="cannot give"):
        partition(qs[:5], "dirichlet", num_clients=6)


def test_summary_json_csv_and_client_files_round_trip(tmp_path):
    clients = partition(make_questions(), "dirichlet", num_clients=3, alpha=0.5, seed=0)
    jpath, cpath = save_summary(clients, tmp_path)
    data = json.loads(jpath.read_text(encoding="utf-8"))
    assert data == summary(clients)
    assert [c["n_train"] + c["n_val"] + c["n_test"] for c in data["clients"]] == [len(c.all) for c in clients]
    with cpath.open(encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert sum(int(r["n"]) for r in rows) == sum(len(c.all) for c in clients)
    assert {r["split"] for r in rows} == {"train", "val", "test"} and {r["type"] for r in rows} == {"single", "multi", "judge"}
    save_clients(clients, tmp_path / "clients")
    back = load_client(tmp_path / "clients", 1)
    assert ids([back]) == ids([clients[1]]) and back.train[0] == clients[1].train[0]
    with pytest.raises(ConfigError, match="client_7.json"):
        load_client(tmp_path / "clients", 7)
