"""What every pretrained backbone is: the interface the feature extractor needs, how a photo
becomes its input, and the error for one that cannot be used here."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import torch


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the backbone's input: RGB, shorter side resized to ``size`` and
    centre-cropped, then ``(x / 255 - mean) / std`` per channel."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class Backbone(Protocol):
    """What the feature extractor needs of a backbone."""

    feature_dim: int
    preprocessing: Preprocessing

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str) -> Backbone: ...


class BackboneUnavailable(ValueError):
    """A backbone that is unknown, or whose weights are not on this machine."""
