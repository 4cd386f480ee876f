"""Checks on the ``qualbench`` command line that run before Hydra composes anything.

* an unknown option of a config group (``experiment=rag_ablaton``) fails with one line listing the choices;
* an option that needs an optional plugin that is not installed names the extra to install;
* ``--help`` / ``-h`` prints the groups a user picks and a few example commands, instantly (Hydra's own help
  deep-copies the config store once per group; ``--hydra-help`` still shows Hydra's flags).

Only the yaml files under ``conf/`` are read; nothing is imported from the rest of the app.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

CONF_DIR = Path(__file__).resolve().parents[1] / "conf"

# (group, option) -> (module the option loads, pip extra that installs it)
PLUGIN_OPTIONS: dict[tuple[str, str], tuple[str, str]] = {
    ("hydra/sweeper", "fl_optuna"): ("hydra_plugins.hydra_optuna_sweeper", "sweepers"),
    ("hydra/sweeper", "optuna"): ("hydra_plugins.hydra_optuna_sweeper", "sweepers"),
    ("hydra/launcher", "slurm"): ("hydra_plugins.hydra_submitit_launcher", "sweepers"),
    ("hydra/launcher", "submitit_slurm"): ("hydra_plugins.hydra_submitit_launcher", "sweepers"),
    ("hydra/launcher", "submitit_local"): ("hydra_plugins.hydra_submitit_launcher", "sweepers"),
    ("hydra/launcher", "ray"): ("hydra_plugins.hydra_ray_launcher", "sweepers"),
    ("hydra/launcher", "joblib"): ("hydra_plugins.hydra_joblib_launcher", "core (reinstall the project)"),
    ("data", "hub"): ("datasets", "hub"),
    ("hydra/callbacks", "mlflow"): ("mlflow", "tracking"),
}

EXAMPLES = """\
examples:
  qualbench                                             # default: retrieval answerer on the bundled sample set
  qualbench model=random data=shared_construction       # a baseline on a real exam file (../shared)
  qualbench model=hf model.path=DIR prompt=one_shot     # a local checkpoint
  qualbench model=openai model.base_url=URL model.name=NAME prompt=cot
  qualbench model=replay model.path=responses.jsonl     # score responses generated elsewhere
  qualbench experiment=retrieval_eval corpus=shared     # citation recall of the retriever
  qualbench -m experiment=rag_ablation                  # a sweep (Hydra multirun)
  qualbench-report multirun/<sweep dir>                 # one report over runs and sweeps
more: qualbench --cfg job (the composed config), qualbench --hydra-help (Hydra's flags), README.md"""


class UsageError(ValueError):
    """A command-line mistake; the message is one line."""


@dataclass(frozen=True)
class Override:
    group: str
    values: tuple[str, ...]


def group_options(group: str, conf_dir: Path = CONF_DIR) -> list[str]:
    """The options a user picks in ``group`` (yaml files under ``conf/<group>``; ``base_*`` schemas hidden)."""
    folder = conf_dir / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("base_"))


def user_groups(conf_dir: Path = CONF_DIR) -> list[str]:
    """Config groups of the app (folders under ``conf/``, Hydra's own excluded)."""
    return sorted(p.name for p in conf_dir.iterdir() if p.is_dir() and p.name != "hydra")


def parse_group_override(arg: str) -> Override | None:
    """``experiment=a,b`` / ``+data=x`` / ``embedder@retriever.embedder=lsa`` → the group and its values.

    Dotted keys (``model.path=...``), flags and sweep functions (``choice(...)``, ``range(...)``) give None.
    """
    if arg.startswith("-") or "=" not in arg:
        return None
    key, value = arg.split("=", 1)
    key = key.lstrip("+~")
    group = key.split("@", 1)[0]
    if not group or "." in group or not value or "(" in value or "$" in value:
        return None
    return Override(group, tuple(v.strip() for v in value.split(",") if v.strip()))


def installed(module: str) -> bool:
    """True when ``module`` can be imported (its parent packages included)."""
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def check_overrides(argv: Sequence[str], conf_dir: Path = CONF_DIR) -> None:
    """Raise UsageError for an unknown group option or a missing plugin; do nothing otherwise."""
    groups = set(user_groups(conf_dir))
    for arg in argv:
        ov = parse_group_override(arg)
        if ov is None:
            continue
        for value in ov.values:
            if value == "null":
                continue
            need = PLUGIN_OPTIONS.get((ov.group, value))
            if need and not installed(need[0]):
                module, extra = need
                how = f'pip install -e ".[{extra}]"' if " " not in extra else extra
                raise UsageError(f"{ov.group}={value} needs {module.split('.')[-1]}, which is not installed: {how}")
            if ov.group in groups:
                options = group_options(ov.group, conf_dir)
                if value not in options:
                    raise UsageError(f"unknown {ov.group} '{value}' (choose from: {', '.join(options)})")


def help_text(conf_dir: Path = CONF_DIR) -> str:
    """``qualbench --help``: usage, the groups with their options, examples."""
    lines = [
        "usage: qualbench [-m] [GROUP=OPTION ...] [KEY=VALUE ...]",
        "",
        "Evaluate language models on QualBench; every experiment is a composition of config groups.",
        "",
        "config groups (GROUP=OPTION):",
    ]
    for group in user_groups(conf_dir):
        lines.append(f"  {group:<15} {', '.join(group_options(group, conf_dir))}")
    launchers = ", ".join(["basic", "joblib"] + group_options("hydra/launcher", conf_dir))
    lines.append(f"  {'hydra/launcher':<15} {launchers}   (sweeps: -m)")
    lines.append(f"  {'hydra/sweeper':<15} {', '.join(['basic'] + group_options('hydra/sweeper', conf_dir))}")
    lines += ["", EXAMPLES]
    return "\n".join(lines)
