"""How numbers are shown in every Markdown/HTML table: shares as percentages, differences as signed points."""

from __future__ import annotations

import math
from typing import Any

MISSING_MARK = "—"


def _missing(x: Any) -> bool:
    return x is None or (isinstance(x, float) and math.isnan(x))


def pct(x: Any) -> str:
    """A share (0.4567) as a percentage with one decimal ("45.7"); "—" for None or NaN."""
    return MISSING_MARK if _missing(x) else f"{100 * x:.1f}"


def signed_points(x: Any) -> str:
    """A difference of shares as signed percentage points ("+1.2"); "—" for None or NaN."""
    return MISSING_MARK if _missing(x) else f"{100 * x:+.1f}"
