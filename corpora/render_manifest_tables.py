"""Render the per-domain law tables of corpora/README.md from corpora/manifests/*.yaml.

    python corpora/render_manifest_tables.py          # print the tables
    python corpora/render_manifest_tables.py --write  # replace the block between the markers in README.md
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

HERE = Path(__file__).resolve().parent
MANIFESTS = HERE / "manifests"
README = HERE / "README.md"
START, END = "<!-- manifest-tables:start -->", "<!-- manifest-tables:end -->"
LEVELS = ("法律", "行政法规", "部门规章", "地方性法规")
ORDER = ("production_safety", "fire_safety", "oil_gas", "civil_engineering", "economics_finance", "banking_insurance")


def load_manifests(folder: Path = MANIFESTS) -> list[dict]:
    """All manifests, in the canonical domain order (unknown slugs last, alphabetically)."""
    found = {p.stem: p for p in folder.glob("*.yaml")}
    slugs = [s for s in ORDER if s in found] + sorted(set(found) - set(ORDER))
    out = []
    for slug in slugs:
        data = yaml.safe_load(found[slug].read_text(encoding="utf-8"))
        if not isinstance(data, dict) or not isinstance(data.get("laws"), list):
            raise ValueError(f"{found[slug]}: expected a mapping with a 'laws' list")
        out.append(data)
    return out


def _sort_key(law: dict) -> tuple:
    level = LEVELS.index(law["level"]) if law["level"] in LEVELS else len(LEVELS)
    return level, str(law["effective_date"]), law["file"]


def render(manifests: list[dict]) -> str:
    """Markdown: one heading and table per domain."""
    parts = []
    for m in manifests:
        laws = m["laws"]
        n_sample = sum(1 for law in laws if law.get("sample_file"))
        parts.append(f"### {m['domain']} (`{m['slug']}`): {len(laws)} files, {n_sample} with a sample summary\n")
        parts.append("| title | level | effective | file | sample summary |")
        parts.append("|---|---|---|---|---|")
        for law in sorted(laws, key=_sort_key):
            sample = f"`{law['sample_file']}`" if law.get("sample_file") else ""
            parts.append(f"| {law['title']} | {law['level']} | {law['effective_date']} | `{law['file']}` | {sample} |")
        parts.append("")
    return "\n".join(parts).rstrip() + "\n"


def replace_block(readme: str, tables: str) -> str:
    if START not in readme or END not in readme:
        raise ValueError(f"{README}: markers {START} / {END} not found")
    head, rest = readme.split(START, 1)
    _, tail = rest.split(END, 1)
    return f"{head}{START}\n{tables}{END}{tail}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"update {README.name} in place")
    args = ap.parse_args(argv)
    tables = render(load_manifests())
    if args.write:
        README.write_text(replace_block(README.read_text(encoding="utf-8"), tables), encoding="utf-8")
    else:
        sys.stdout.write(tables)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
