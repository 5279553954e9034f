"""The pairwise 1-D CNN over a patient matrix (convolution over time)."""

from __future__ import annotations

import torch
from torch import nn


class SequenceCNN(nn.Module):
    """3 conv (over time, ReLU) + masked max/mean pooling + 2 FC.

    Input ``float32 [B, T, D]`` (see :mod:`aeep_core.sequences.matrix`); ``forward`` returns
    ``(logits, phi)`` with ``phi`` the penultimate layer *before* activation and ``head`` the
    last ``nn.Linear``, reading phi directly: as for images (see
    :class:`aeep_core.learning.model.PairwiseCNN`), a post-ReLU phi under a cosine pair loss can
    collapse to zero rows that are similar to nothing; a pre-activation phi cannot.
    Rows that are all zero are padding: they are excluded from the pooling, so a patient's
    representation does not depend on how much padding precedes the history.
    """

    def __init__(self, event_dim: int, length: int, n_classes: int, width: int = 64, embed_dim: int = 64):
        super().__init__()
        self.length = length
        # Kernel 3 with dilations 1, 2, 4: a receptive field of 15 events, enough to see a
        # visit's worth of diagnoses/drugs together, at the cost of three small layers.
        self.convs = nn.ModuleList(
            [
                nn.Conv1d(event_dim, width, 3, padding=1),
                nn.Conv1d(width, width, 3, padding=2, dilation=2),
                nn.Conv1d(width, width, 3, padding=4, dilation=4),
            ]
        )
        self.embed = nn.Sequential(nn.Dropout(0.25), nn.Linear(2 * width, embed_dim))
        self.head = nn.Linear(embed_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = x.float()
        mask = (x.abs().sum(dim=2) > 0).unsqueeze(1)  # [B, 1, T]; padding rows are exactly zero
        h = x.transpose(1, 2)  # [B, D, T]
        for conv in self.convs:
            # Zero the padding positions after every layer: a conv bias would otherwise make
            # them non-zero and leak into the first real events through the next kernel.
            h = torch.relu(conv(h)) * mask
        count = mask.sum(dim=2).clamp_min(1)
        mean = (h * mask).sum(dim=2) / count
        # Padding is already 0 and ReLU outputs are >= 0, so padding never wins the max; an
        # empty history pools to zeros instead of -inf.
        mx = h.amax(dim=2)
        phi = self.embed(torch.cat([mx, mean], dim=1))
        return self.head(phi), phi
