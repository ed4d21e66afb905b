"""FGL settings (Zhang, Qi, Zhao: "Federated Generative Learning with Foundation Models").

A frozen dataclass validated on construction (docs/architecture.md rule 9), kept apart from methods/fgl.py so
`SimulateConfig` can hold it without importing the method (fgl.py imports the simulate stages).
"""

from __future__ import annotations

from dataclasses import dataclass

from gptfl_ray.errors import ConfigError
from gptfl_ray.fields import check_instance

FGL_PROMPT_STYLES = ("class", "instance")


@dataclass(frozen=True)
class FGLConfig:
    prompts: str = "class"  # class-level or instance-level prompts (FGL section 3)
    captioner: str | None = None  # image-to-text model for instance prompts; None = BLIP base
    rounds: int = 0  # FedAvg rounds after the one-shot model (FGL's multi-round variant); 0 = one-shot only
    server_finetune_epochs: int = 0  # server epochs on the synthetic data after each of those rounds
    caption_size: int = 64  # small images are upsampled to this side before captioning
    caption_tokens: int = 20  # longest caption, in tokens
    caption_batch: int = 16  # images per captioner call on a client

    def __post_init__(self):
        check_instance(self, "fgl")
        checks = [
            (
                self.prompts in FGL_PROMPT_STYLES,
                "fgl.prompts",
                f"unknown prompt style {self.prompts!r}; choose from {', '.join(FGL_PROMPT_STYLES)}",
            ),
            (
                self.captioner is None or bool(str(self.captioner).strip()),
                "fgl.captioner",
                "is empty; give a hub id or a local path",
            ),
            (isinstance(self.rounds, int) and self.rounds >= 0, "fgl.rounds", f"must be >= 0, got {self.rounds}"),
            (
                isinstance(self.server_finetune_epochs, int) and self.server_finetune_epochs >= 0,
                "fgl.server_finetune_epochs",
                f"must be >= 0, got {self.server_finetune_epochs}",
            ),
            (self.caption_size >= 1, "[fgl] caption_size", f"must be >= 1, got {self.caption_size}"),
            (self.caption_tokens >= 1, "[fgl] caption_tokens", f"must be >= 1, got {self.caption_tokens}"),
            (self.caption_batch >= 1, "[fgl] caption_batch", f"must be >= 1, got {self.caption_batch}"),
        ]
        for ok, option, problem in checks:
            if not ok:
                raise ConfigError(option, problem)
        if self.server_finetune_epochs and not self.rounds:
            raise ConfigError("fgl.server_finetune_epochs", "fine-tunes after FedAvg rounds; give `fgl.rounds` too")
