"""The six QualBench domains: canonical Chinese names, English slugs and accepted aliases."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Domain:
    name: str  # canonical Chinese name as in the official file
    slug: str  # English slug, also the corpus sub-folder name
    english: str


DOMAINS: tuple[Domain, ...] = (
    Domain("安全生产", "production_safety", "production safety"),
    Domain("消防", "fire_safety", "fire safety"),
    Domain("石油天然气", "oil_gas", "oil & gas"),
    Domain("建筑工程", "civil_engineering", "civil engineering"),
    Domain("经济金融", "economics_finance", "economics & finance"),
    Domain("银行保险", "banking_insurance", "banking & insurance"),
)

_EXTRA_ALIASES = {
    "消防安全": "消防",
    "油气": "石油天然气",
    "石油与天然气": "石油天然气",
    "oil and gas": "石油天然气",
    "oil&gas": "石油天然气",
    "建筑": "建筑工程",
    "土木工程": "建筑工程",
    "civil": "建筑工程",
    "经济与金融": "经济金融",
    "finance": "经济金融",
    "economics": "经济金融",
    "银行与保险": "银行保险",
    "banking": "银行保险",
    "insurance": "银行保险",
    "safety": "安全生产",
    "fire": "消防",
}

_BY_NAME = {d.name: d for d in DOMAINS}


def _norm(key: str) -> str:
    return " ".join(key.strip().lower().replace("_", " ").replace("-", " ").split())


_ALIASES: dict[str, Domain] = {}
for _d in DOMAINS:
    for _k in (_d.name, _d.slug, _d.english, _d.english.replace("&", "and")):
        _ALIASES[_norm(_k)] = _d
for _k, _v in _EXTRA_ALIASES.items():
    _ALIASES[_norm(_k)] = _BY_NAME[_v]


class UnknownDomainError(ValueError):
    pass


def get_domain(key: str) -> Domain:
    """Resolve a Chinese name, English slug/name or alias (e.g. 消防安全) to its Domain."""
    d = _ALIASES.get(_norm(str(key)))
    if d is None:
        known = ", ".join(f"{x.name}/{x.slug}" for x in DOMAINS)
        raise UnknownDomainError(f"unknown domain {key!r}; known domains: {known}")
    return d


def canonical_domain(key: str) -> str:
    """Canonical Chinese domain name for any accepted spelling."""
    return get_domain(key).name


def domain_slug(key: str) -> str:
    return get_domain(key).slug


DOMAIN_NAMES: tuple[str, ...] = tuple(d.name for d in DOMAINS)
DOMAIN_SLUGS: tuple[str, ...] = tuple(d.slug for d in DOMAINS)
