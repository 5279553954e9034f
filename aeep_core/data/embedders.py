"""Embedders: a backbone behind one call, uint8 photos in, float32 features out.

The feature extractor (:mod:`aeep_core.data.features`) and the cluster path only need
``embedder(batch)``, so the network can run in torch (any device) or in ONNX Runtime
(:mod:`aeep_core.data.onnx_backend`) without either knowing which.
"""

from __future__ import annotations

import importlib.util
from typing import Protocol

import numpy as np
import torch

from aeep_core.data.backbone_types import Backbone, Preprocessing
from aeep_core.data.backbones import load_backbone
from aeep_core.data.efficientnet_lite import VARIANTS

BACKENDS = ("auto", "torch", "onnx")


def cpu_backend(backbone: str) -> str:
    """What ``backend="auto"`` runs on a CPU: ONNX Runtime for the shipped Lite networks
    when it is installed (the ``onnx`` extra: 2-5x torch's images/s on 2 cores with the
    same features, cosine >= 0.99999; BENCHMARKS.md, "Scale"), else torch."""
    if backbone not in VARIANTS or importlib.util.find_spec("onnxruntime") is None:
        return "torch"
    return "onnx"


class Embedder(Protocol):
    """A frozen backbone as a function of uint8 ``[B, 3, S, S]`` batches."""

    backend: str
    feature_dim: int
    preprocessing: Preprocessing
    batch: int  # images per call that suit the device

    def __call__(self, images: np.ndarray) -> np.ndarray: ...


def normalise(images: np.ndarray, prep: Preprocessing) -> np.ndarray:
    """uint8 ``[B, 3, S, S]`` -> float32 ``(x / 255 - mean) / std`` per channel."""
    scale = (1.0 / (255.0 * np.asarray(prep.std, np.float32))).reshape(1, 3, 1, 1)
    shift = (np.asarray(prep.mean, np.float32) / np.asarray(prep.std, np.float32)).reshape(1, 3, 1, 1)
    return images.astype(np.float32) * scale - shift


class TorchEmbedder:
    """The torch backbone on ``device``; batches of 32 on a CPU (enough for its vector
    units), 256 on a GPU (where a large batch keeps the device busy)."""

    backend = "torch"

    def __init__(self, backbone: Backbone, device: str | torch.device = "cpu"):
        self.device = torch.device(device)
        self.model = backbone.to(self.device)
        self.feature_dim = backbone.feature_dim
        self.preprocessing = backbone.preprocessing
        self.batch = 32 if self.device.type == "cpu" else 256

    @torch.no_grad()
    def __call__(self, images: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(normalise(images, self.preprocessing)).to(self.device)
        return self.model.features(x).float().cpu().numpy()


def default_device() -> str:
    """CUDA, else MPS, else the CPU: where embedding in large batches pays."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def load_embedder(backbone: str, backend: str = "auto", device: str | torch.device | None = None) -> Embedder:
    """The embedder of ``backbone`` (a name ``load_backbone`` knows). ``auto``: torch on
    CUDA/MPS, :func:`cpu_backend` on a CPU; ``onnx`` runs the network exported once from
    the shipped weights (CPU only)."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown embedding backend {backend!r}; choose {', '.join(BACKENDS)}")
    device = torch.device(device or default_device())
    if backend == "auto":
        backend = cpu_backend(backbone) if device.type == "cpu" else "torch"
    if backend == "onnx":
        from aeep_core.data.onnx_backend import OnnxEmbedder  # lazy: optional dependency

        return OnnxEmbedder.for_backbone(backbone)
    return TorchEmbedder(load_backbone(backbone), device)
