"""Pre-training settings. GPT-FL section 3.3: synthetic data is "highly patternized" and easy to
overfit, so the paper uses a larger weight decay and a smaller learning rate than for training
on real data. Here lr, weight decay and epochs were chosen on the digits VALIDATION split by
benchmarks/sweep_validation.py --part pretrain: lr 0.2, weight decay 5e-3 (larger than the FL
clients' 0, as the paper advises), 15 epochs. The validation split preferred a larger lr than
the 0.02 once chosen on test (benchmarks/README.md)."""

from __future__ import annotations

from dataclasses import dataclass

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance


@dataclass(frozen=True)
class PretrainConfig:
    epochs: int = 15
    batch_size: int = 64
    lr: float = 0.2
    momentum: float = 0.9
    weight_decay: float = 5e-3
    augment: bool = True
    train_workers: int = 1  # Ray Train workers; 0 trains in this process without Ray
    train_gpus: float = 0.0  # GPUs per worker
    seed: int = 0

    def __post_init__(self):
        check_instance(self, "pretrain")
        checks = [
            (self.seed >= 0, "pretrain.seed", f"must be >= 0, got {self.seed}"),
            (self.epochs >= 1, "pretrain.epochs", f"must be >= 1, got {self.epochs}"),
            (self.batch_size >= 1, "pretrain.batch_size", f"must be >= 1, got {self.batch_size}"),
            (self.lr > 0, "pretrain.lr", f"must be > 0, got {self.lr}"),
            (0 <= self.momentum < 1, "pretrain.momentum", f"must be in [0, 1), got {self.momentum}"),
            (self.weight_decay >= 0, "pretrain.weight_decay", f"must be >= 0, got {self.weight_decay}"),
            (self.train_workers >= 0, "pretrain.train_workers", f"must be >= 0, got {self.train_workers}"),
            (self.train_gpus >= 0, "pretrain.train_gpus", f"must be >= 0, got {self.train_gpus}"),
        ]
        for ok, option, problem in checks:
            if not ok:
                raise ConfigError(option, problem)
