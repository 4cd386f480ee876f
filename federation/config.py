"""The ``federation`` config group's schema (registered in Hydra's ConfigStore as ``base_federation``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from hydra.core.config_store import ConfigStore

MODES = ("federated", "local_only", "centralized")
ENGINES = ("simulation", "prepare")
STRATEGIES = ("fedavg", "fedprox", "fedadam", "fedyogi")


@dataclass
class LoraSettings:
    r: int = 8
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )


@dataclass
class TinyModelSettings:
    """The locally built model used when ``model_path`` is null (qualbench.models.tiny)."""

    hidden_size: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_positions: int = 1024


@dataclass
class DPSettings:
    """Server-side fixed-clipping differential privacy (Flower's DifferentialPrivacyServerSideFixedClipping)."""

    enabled: bool = False
    noise_multiplier: float = 0.1
    clipping_norm: float = 1.0


@dataclass
class FederationConfig:
    """Federated LoRA fine-tuning: who holds which data, how clients train, how the server aggregates."""

    name: str = "fedavg"
    mode: str = "federated"  # federated | local_only | centralized
    strategy: str = "fedavg"  # fedavg | fedprox | fedadam | fedyogi
    num_rounds: int = 5
    fraction_train: float = 1.0  # fraction of clients sampled for training each round
    mu: float = 0.0  # FedProx proximal weight (also applied with strategy=fedavg when > 0)
    eta: float = 0.01  # FedAdam/FedYogi server learning rate
    eta_l: float = 0.0316
    beta_1: float = 0.9
    beta_2: float = 0.99
    tau: float = 0.001
    # partitioning
    partition: str = "domain"  # domain | qualification | dirichlet
    num_clients: Optional[int] = None  # dirichlet: number of clients (default 6); others: a check
    alpha: float = 0.5  # dirichlet concentration
    split_fractions: list[float] = field(default_factory=lambda: [0.7, 0.15, 0.15])  # client train/val/test
    # local training
    local_steps: int = 10
    local_epochs: Optional[float] = None  # overrides local_steps when set
    lr: float = 0.005
    batch_size: int = 4
    grad_accum: int = 1
    max_length: int = 1024
    eval_max_new_tokens: int = 8
    eval_batch_size: int = 16
    # model
    model_path: Optional[str] = None  # HF model dir; null = build the tiny model from the data
    tiny: TinyModelSettings = field(default_factory=TinyModelSettings)
    lora: LoraSettings = field(default_factory=LoraSettings)
    # engine and robustness
    engine: str = "simulation"  # simulation | prepare (write spec/partition/model for `flwr run`, no training)
    num_cpus_per_client: Optional[float] = None  # null = CPUs / min(clients, CPUs) (federation.resources)
    num_gpus_per_client: float = 0.0
    ray_num_cpus: Optional[int] = None  # CPUs the simulation may use (null = all this process may run on)
    round_timeout_s: float = 900.0  # replies later than this count as failed
    max_failure_fraction: float = 0.5  # stop when more of a round's clients fail
    fail_clients: list[int] = field(default_factory=list)  # testing: these client ids raise in training
    dp: DPSettings = field(default_factory=DPSettings)
    baselines: list[str] = field(default_factory=list)  # also run local_only / centralized into <run>/baselines/
    resume: bool = True
    plots: bool = True
    seed: int = 0


def register_schemas(cs: ConfigStore) -> None:
    cs.store(group="federation", name="base_federation", node=FederationConfig)
