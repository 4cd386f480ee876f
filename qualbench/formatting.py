"""How numbers and names are shown in every table and figure: shares as percentages, differences as signed points,
Chinese domain/type names as English slugs where CJK text cannot be drawn."""

from __future__ import annotations

import math
from typing import Any

from qualbench.domains import get_domain
from qualbench.records import TYPE_SLUGS

MISSING_MARK = "—"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: Any) -> str:
    """A share (0.4567) as a percentage with one decimal ("45.7"); "—" for None or NaN."""
    return MISSING_MARK if _missing(x) else f"{100 * x:.1f}"


def signed_points(x: Any) -> str:
    """A difference of shares as signed percentage points ("+1.2"); "—" for None or NaN."""
    return MISSING_MARK if _missing(x) else f"{100 * x:+.1f}"


def p_value(p: Any) -> str:
    """A p value with three significant digits ("0.0312"), "<1e-4" below that; "—" for None or NaN."""
    return MISSING_MARK if _missing(p) else (f"{p:.3g}" if p >= 1e-4 else "<1e-4")


def ascii_name(name: str) -> str | None:
    """The English slug of a Chinese question type (``single``) or domain name (``fire_safety``); None otherwise."""
    if name in TYPE_SLUGS:
        return TYPE_SLUGS[name]
    try:
        return get_domain(name).slug
    except ValueError:
        return None
