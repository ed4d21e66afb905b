"""`fedaudio`: the conv-RNN keyword/sound classifier of the FedAudio benchmark.

GPT-FL (paper section 4.1 and Tables 3-4) trains the FedAudio benchmark's model (Zhang et al.,
"FedAudio: A Federated Learning Benchmark for Audio Tasks", ICASSP 2023) on Google Speech
Commands and ESC-50. Input is the front-end of `gptfl_ray.data.audio`: (batch, 128 mel bins,
frames). Two Conv1d blocks over time (mel bins as channels; kernel 3, ReLU, max-pool 2, so the
GRU sees a quarter of the frames), dropout 0.1, a one-layer bidirectional GRU, mean over time
(every clip is padded to the same length, so a plain mean is FedAudio's length-aware mean),
then 256 -> 128 -> classes with a ReLU between.

Widths follow this project's issue: conv 128 -> 64 -> 128 and GRU hidden 128 (FedAudio's public
`audio_conv_rnn` is narrower, 32/64 conv channels and hidden 64, with the same structure).
FedAudio's `init_weight` walks only top-level modules (Sequentials and the GRU), so its Kaiming
init never fires; PyTorch's default init is therefore the faithful choice and is kept. No
normalisation layers: nothing in it has running statistics for non-IID averaging to spoil.
"""

from __future__ import annotations

import torch
from torch import nn


class FedAudioConvRNN(nn.Module):
    def __init__(
        self,
        num_classes: int,
        n_mels: int = 128,
        conv_channels: tuple[int, int] = (64, 128),
        hidden: int = 128,
        dropout: float = 0.1,
    ):
        super().__init__()
        c1, c2 = conv_channels
        self.conv = nn.Sequential(
            nn.Conv1d(n_mels, c1, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Conv1d(c1, c2, kernel_size=3, padding=1),
            nn.ReLU(),
            nn.MaxPool1d(2),
            nn.Dropout(dropout),
        )
        self.rnn = nn.GRU(input_size=c2, hidden_size=hidden, num_layers=1, batch_first=True, bidirectional=True)
        self.head = nn.Sequential(
            nn.Linear(2 * hidden, 128),
            nn.ReLU(),
            nn.Linear(128, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.dim() == 4 and x.shape[1] == 1:  # (N, 1, mels, frames), the image-like layout
            x = x[:, 0]
        z = self.conv(x)  # (N, c2, frames // 4)
        z, _ = self.rnn(z.transpose(1, 2))  # (N, frames // 4, 2 * hidden)
        return self.head(z.mean(dim=1))
