"""The ``qualbench`` Hydra app: compose a config, run its task in Hydra's run directory."""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from qualbench.config import PROJECT_ROOT, register_configs

log = logging.getLogger("qualbench")

register_configs()


@hydra.main(version_base="1.3", config_path=str(PROJECT_ROOT / "conf"), config_name="config")
def _main(cfg: DictConfig) -> float | None:
    from qualbench.errors import QualBenchError
    from qualbench.tasks import get_task

    run_dir = Path(HydraConfig.get().runtime.output_dir)
    try:
        metrics = get_task(cfg.task)(cfg, run_dir)
    except QualBenchError as e:  # a clear message, no traceback, for bad input / broken servers
        log.error("%s", e)
        print(f"qualbench: error: {e}", file=sys.stderr)
        sys.exit(2)
    value = metrics.get("objective", metrics.get("accuracy")) if isinstance(metrics, dict) else None
    return float(value) if value is not None else None


def main() -> None:
    _main()


if __name__ == "__main__":
    main()
