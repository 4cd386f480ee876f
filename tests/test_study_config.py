"""The ``study`` group: each experiment composes its own typed schema; typos and wrong types are refused."""

from __future__ import annotations

import dataclasses

import pytest
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException
from omegaconf import OmegaConf

from qualbench.config import register_configs
from qualbench.errors import ConfigError
from qualbench.paths import PROJECT_ROOT
from qualbench.study_config import STUDIES, CrowdStudy, RetrievalEvalStudy, study_settings


def compose_cfg(overrides):
    register_configs()
    with initialize_config_dir(config_dir=str(PROJECT_ROOT / "conf"), version_base="1.3"):
        return compose("config", overrides=overrides)


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_each_study_experiment_composes_its_schema_with_the_schema_defaults(name):
    schema = STUDIES[name]
    cfg = compose_cfg([f"experiment={name}", "seed=7"])
    assert OmegaConf.get_type(cfg.study) is schema
    settings = study_settings(cfg, schema)
    assert isinstance(settings, schema)
    for f in dataclasses.fields(schema):
        got = getattr(settings, f.name)
        if f.name in ("seed", "shuffle_seed"):
            assert got == 7  # ${seed}: the run's seed
        else:
            default = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
            assert got == default, f.name


def test_experiments_without_a_study_have_none():
    for name in ("rag_ablation", "federated"):
        assert compose_cfg([f"experiment={name}"]).study is None


def test_overrides_are_typed_and_checked():
    cfg = compose_cfg(["experiment=retrieval_eval", "study.gold_from=stem", "study.ks=[1,5]", "study.min_cited=2"])
    assert study_settings(cfg, RetrievalEvalStudy) == RetrievalEvalStudy(ks=[1, 5], gold_from="stem", min_cited=2)
    with pytest.raises(ConfigCompositionException) as err:
        compose_cfg(["experiment=crowd", "study.n_boott=5"])
    assert "n_boott" in str(err.value.__cause__) and "CrowdStudy" in str(err.value.__cause__)
    with pytest.raises(ConfigCompositionException, match="calibration_fraction"):
        compose_cfg(["experiment=crowd", "study.calibration_fraction=most"])
    with pytest.raises(ConfigCompositionException, match="study.runs"):
        compose_cfg(["study.runs=[a]"])  # no experiment: no study settings to override


def test_study_settings_refuses_a_missing_or_foreign_study_and_added_keys():
    with pytest.raises(ConfigError, match="experiment=crowd"):
        study_settings(compose_cfg(["task=crowd"]), CrowdStudy)
    with pytest.raises(ConfigError, match="experiment=retrieval_eval"):
        study_settings(compose_cfg(["experiment=crowd"]), RetrievalEvalStudy)
    with pytest.raises(ConfigError, match="study.n_boott is not a CrowdStudy setting"):
        study_settings(compose_cfg(["experiment=crowd", "+study.n_boott=5"]), CrowdStudy)
