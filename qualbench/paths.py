"""Where the project's own files are (core: importable by every library without the app's config)."""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
SAMPLE_DIR = Path(__file__).resolve().parent / "resources" / "sample"


def project_root() -> str:
    """The checkout's root (the ``${qb_root:}`` resolver's value)."""
    return str(PROJECT_ROOT)
