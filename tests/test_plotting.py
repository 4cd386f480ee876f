"""qualbench.plotting: one label policy for every figure, and each figure written as a PNG."""

import pytest

from qualbench import plotting

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("font", [None, "Noto Sans CJK SC"])
def test_one_label_policy_with_and_without_a_cjk_font(monkeypatch, font):
    monkeypatch.setattr(plotting, "cjk_font", lambda: font)
    assert plotting.label("top_k=5") == "top_k=5"  # ASCII is always drawn as is
    if font:
        assert [plotting.label(x) for x in ("消防", "多选题", "prompt=专家")] == ["消防", "多选题", "prompt=专家"]
    else:
        assert [plotting.label(x) for x in ("消防", "多选题", "银行保险")] == ["fire_safety", "multi", "banking_insurance"]
        assert plotting.label("prompt=专家").isascii() and plotting.label("prompt=专家").startswith("prompt=")


def test_every_figure_is_a_png(tmp_path):
    by_domain = {"消防": {"accuracy": 0.5, "ci95": [0.3, 0.7], "n": 10}, "银行保险": {"accuracy": 0.8, "n": 5}}
    made = [
        plotting.domain_bar_chart(by_domain, tmp_path / "by_domain.png", title="run", overall=0.6),
        plotting.grouped_bars(["消防", "all"], {"a": [(0.5, 0.4, 0.6), (0.7, 0.7, 0.7)]}, tmp_path / "g" / "bars.png"),
        plotting.heatmap(["a", "b"], ["消防", "银行保险"], [[0.1, float("nan")], [0.5, 0.9]], tmp_path / "heat.png"),
        plotting.lines({"bm25": ([1, 5], [0.5, 0.6])}, tmp_path / "topk.png", xlabel="retriever.top_k"),
    ]
    history = {"mode": "federated", "strategy": "fedavg", "clients": {"0": "消防", "1": "银行保险"}, "rounds": [
        {"round": r, "train": {c: {"loss_mean": 2.0 / r + int(c)} for c in ("0", "1")}, "train_loss": 2.0 / r,
         "test": {"accuracy": 0.3 + 0.1 * r, "loss": 1.0 / r,
                  "by_domain": {"消防": {"accuracy": 0.2 * r, "loss": 1.5 / r}, "银行保险": {"accuracy": 0.4}}}}
        for r in (1, 2, 3)]}
    made.append(plotting.learning_curves(history, tmp_path / "learning_curve.png"))
    for p in made:
        assert p.read_bytes()[:8] == PNG and p.stat().st_size > 5_000, p
