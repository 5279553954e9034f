"""The pairwise CNN: a classifier whose penultimate layer is the learned similarity space."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class HalvingMaxPool(nn.MaxPool2d):
    """``nn.MaxPool2d(2)`` whose inference is four strided maxima: the same values, exactly
    (a maximum rounds nothing), in a quarter of the time on the CPU. Scoring 10,000 MNIST
    candidates spent as long pooling as convolving (0.58 s each, one thread on the fast
    machine); the first pool of a 1,024-image batch went from 60 to 16 ms. While
    gradients are recorded it is ``MaxPool2d`` itself: its backward sends a tie's whole
    gradient to one input, the maxima's would split it, and a blank background's cells
    tie (same input, same value), so training steps would no longer be the same."""

    def __init__(self) -> None:
        super().__init__(2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            return super().forward(x)
        even = x[..., : x.shape[-2] // 2 * 2, : x.shape[-1] // 2 * 2]  # MaxPool2d drops an odd last row or column
        top = torch.maximum(even[..., 0::2, 0::2], even[..., 0::2, 1::2])
        return torch.maximum(top, torch.maximum(even[..., 1::2, 0::2], even[..., 1::2, 1::2]))


class PairwiseCNN(nn.Module):
    """3 conv + 2 pool + 2 FC (the spec's reference shape), ReLU after every conv.

    ``forward`` returns ``(logits, phi)``; ``phi`` is the penultimate layer taken
    *before* any activation, and ``head`` (the last ``nn.Linear``) reads it directly.
    Why no ReLU on phi: the similarity is the cosine of phi, and a post-ReLU phi
    trained with a pair loss went sparse (after 20 MNIST labels the median image
    activated 6 of 128 units and ~0.6% of images had phi = 0 exactly, similar to
    nothing, so farthest-first and max-entropy picked them first). A pre-activation
    phi = W h + b is a generic affine image of the conv features, never zero in
    practice, and signed, so different classes can be pushed to opposite directions.
    Its inner product is h_a^T (W^T W) h_b + ...: the learned matrix M of ICDM 2017
    lives in W. The conv features are post-ReLU, so the network is still non-linear;
    keeping ``head`` a Linear over phi keeps what EM and BADGE assume (logits = W phi + b).
    Accepts uint8 images and scales them to [0, 1] itself.
    """

    def __init__(self, in_channels: int, size: int, n_classes: int, width: int = 16, embed_dim: int = 128):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(in_channels, width, 3, padding=1),
            nn.ReLU(inplace=True),
            HalvingMaxPool(),
            nn.Conv2d(width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
            HalvingMaxPool(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(inplace=True),
        )
        flat = 2 * width * (size // 4) ** 2
        self.embed = nn.Sequential(nn.Flatten(), nn.Dropout(0.25), nn.Linear(flat, embed_dim))
        self.head = nn.Linear(embed_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if x.dtype == torch.uint8:
            x = x.float().div_(255.0)
        phi = self.embed(self.features(x))
        return self.head(phi), phi


class PairwiseHead(nn.Module):
    """The paper's two fully connected layers on a frozen backbone's features: FC to the
    embedding ``phi`` (pre-activation, as in :class:`PairwiseCNN`, and for the same
    reason), then FC to the classes. ``forward`` returns ``(logits, phi)``."""

    def __init__(self, in_features: int, n_classes: int, embed_dim: int = 128):
        super().__init__()
        self.embed = nn.Sequential(nn.Dropout(0.25), nn.Linear(in_features, embed_dim))
        self.head = nn.Linear(embed_dim, n_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        phi = self.embed(x.float())
        return self.head(phi), phi


def build_model(inputs: torch.Tensor, modality: str, n_classes: int) -> nn.Module:
    """The network for a pool's inputs: image CNN, a pairwise head on backbone features,
    or (for sequences) a 1-D CNN over time."""
    if modality == "features":
        return PairwiseHead(inputs.shape[1], n_classes)
    if modality == "image":
        _, c, h, w = inputs.shape
        return PairwiseCNN(c, min(h, w), n_classes)
    if modality == "sequence":
        from aeep_core.sequences.model import SequenceCNN  # imported lazily: optional modality

        _, t, d = inputs.shape
        return SequenceCNN(d, t, n_classes)
    raise ValueError(f"unknown modality {modality!r}")


def cosine_similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """cos(a, b) = <phi(a), phi(b)> / (|phi(a)| |phi(b)|), in [-1, 1] (phi is signed)."""
    return F.normalize(a, dim=1) @ F.normalize(b, dim=1).T


def similarity_matrix(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The similarity AEEP learns and selects with: sim = (1 + cos) / 2, bounded to [0, 1]
    (1: same direction, 1/2: orthogonal, 0: opposite), the scale of normalised entropy."""
    return (1.0 + cosine_similarity_matrix(a, b)) / 2.0


def select_device(name: str = "auto") -> torch.device:
    """``auto`` picks cuda, then mps, then cpu; any other name is taken as given."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError as exc:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from exc
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA GPU; use --device auto")
    if device.type == "mps" and not torch.backends.mps.is_available():
        raise ValueError("--device mps asked for, but this machine has no MPS; use --device auto")
    return device
