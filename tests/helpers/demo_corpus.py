"""A tiny synthetic three-domain corpus (written for this project) and labelled queries for the retrieval tests."""

from __future__ import annotations

from pathlib import Path

from retrievers.structure import int_to_cn

_LAWS = {
    "fire_safety": ("示例消防管理办法", [
        ("总则", [
            "为了预防火灾和减少火灾危害，加强消防救援工作，制定本办法。",
            "消防工作贯彻预防为主、防消结合的方针，实行消防安全责任制。",
        ]),
        ("消防设施", [
            "机关、团体、企业应当按照国家标准配置消防设施、器材，设置消防安全标志，并定期组织检验、维修。",
            "任何单位不得损坏、挪用或者擅自拆除、停用消防设施、器材，不得埋压、圈占、遮挡消火栓。",
            "人员密集场所的疏散通道、安全出口应当保持畅通，禁止在门窗上设置影响逃生和灭火救援的障碍物。",
            "建设工程的消防设计、施工必须符合国家工程建设消防技术标准。",
        ]),
        ("灭火救援", [
            "任何人发现火灾都应当立即报警。任何单位、个人都应当无偿为报警提供便利，不得阻拦报警。",
            "消防救援机构统一组织和指挥火灾现场扑救，应当优先保障遇险人员的生命安全。",
        ]),
    ]),
    "banking_insurance": ("示例银行保险监督条例", [
        ("总则", [
            "为了规范商业银行和保险公司的经营行为，保护存款人和投保人的合法权益，制定本条例。",
            "商业银行以安全性、流动性、效益性为经营原则，实行自主经营，自担风险，自负盈亏。",
        ]),
        ("存款与贷款", [
            "商业银行办理个人储蓄存款业务，应当遵循存款自愿、取款自由、存款有息、为存款人保密的原则。",
            "商业银行贷款，应当实行审贷分离、分级审批的制度，对借款人的借款用途、偿还能力进行严格审查。",
            "商业银行应当按照中国人民银行的规定，向中国人民银行交存存款准备金，留足备付金。",
        ]),
        ("保险合同", [
            "投保人对保险标的应当具有保险利益。订立保险合同，保险人应当向投保人说明合同条款内容。",
            "保险事故发生后，被保险人或者受益人提出赔偿或者给付保险金请求的，保险人应当及时作出核定。",
            "保险公司应当按照其注册资本总额的百分之二十提取保证金，存入国务院保险监督管理机构指定的银行。",
        ]),
    ]),
    "production_safety": ("示例安全生产条例", [
        ("总则", [
            "为了加强安全生产工作，防止和减少生产安全事故，保障人民群众生命和财产安全，制定本条例。",
            "生产经营单位的主要负责人是本单位安全生产第一责任人，对本单位的安全生产工作全面负责。",
        ]),
        ("生产经营单位的安全生产保障", [
            "矿山、金属冶炼、建筑施工、运输单位和危险物品的生产、经营、储存单位，应当设置安全生产管理机构。",
            "生产经营单位应当对从业人员进行安全生产教育和培训，未经安全生产教育和培训合格的从业人员，不得上岗作业。",
            "特种作业人员必须按照国家有关规定经专门的安全作业培训，取得相应资格，方可上岗作业。",
            "生产经营单位应当建立安全风险分级管控制度，按照安全风险分级采取相应的管控措施。",
        ]),
        ("生产安全事故的应急救援与调查处理", [
            "生产经营单位发生生产安全事故后，事故现场有关人员应当立即报告本单位负责人。",
            "单位负责人接到事故报告后，应当迅速采取有效措施，组织抢救，防止事故扩大，减少人员伤亡和财产损失。",
        ]),
    ]),
}

# (query, gold domain slug) pairs answerable from the demo corpus
DEMO_QUERIES: list[tuple[str, str]] = [
    ("单位可以擅自拆除消火栓和消防器材吗", "fire_safety"),
    ("发现火灾后应当如何报警", "fire_safety"),
    ("疏散通道和安全出口有什么要求", "fire_safety"),
    ("商业银行贷款审批实行什么制度", "banking_insurance"),
    ("投保人对保险标的应当具有什么", "banking_insurance"),
    ("储蓄存款业务遵循什么原则", "banking_insurance"),
    ("特种作业人员上岗前需要取得什么", "production_safety"),
    ("从业人员未经安全生产教育和培训能否上岗", "production_safety"),
    ("发生生产安全事故后现场人员应当向谁报告", "production_safety"),
]

_CN = "一二三四五六七八九十"


def demo_law_text(slug: str) -> str:
    """The demo law of one domain in the sample-corpus format (title, note, ## 第X章, 第X条 paragraphs)."""
    title, chapters = _LAWS[slug]
    lines = [f"# {title}", "", "> 为测试编写的示例文本，不是真实法规。", ""]
    n = 0
    for ci, (name, articles) in enumerate(chapters):
        lines += [f"## 第{_CN[ci]}章 {name}", ""]
        for text in articles:
            n += 1
            lines += [f"第{int_to_cn(n)}条 {text}", ""]
    return "\n".join(lines)


def write_demo_corpus(root: str | Path, domains: tuple[str, ...] = tuple(_LAWS)) -> Path:
    """Write the demo corpus under ``root/<slug>/示例.md`` and return ``root``."""
    root = Path(root)
    for slug in domains:
        (root / slug).mkdir(parents=True, exist_ok=True)
        (root / slug / f"{_LAWS[slug][0]}.md").write_text(demo_law_text(slug), encoding="utf-8")
    return root
