"""The real ``python -m qualbench`` command in a subprocess, offline, from the repository root."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_app(*overrides: str, cwd: Path | None = None, env_extra: dict[str, str] | None = None
            ) -> subprocess.CompletedProcess:
    """Run the Hydra app with ``overrides``; stdout and stderr are captured as text."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", PYTHONUNBUFFERED="1")
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "qualbench", *overrides],
        cwd=cwd or REPO, env=env, capture_output=True, text=True, timeout=600,
    )
