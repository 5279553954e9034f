"""EfficientNet-Lite in ONNX Runtime: the torch network exported once, run on the CPU.

The export is made on this machine from the shipped weights (nothing is downloaded) and
cached under :func:`aeep_core.locations.exported_backbone`. The graph takes the uint8
photos themselves and normalises inside, so a call is one runtime invocation.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aeep_core import locations
from aeep_core.data.backbone_types import Preprocessing
from aeep_core.data.backbones import load_backbone
from aeep_core.extras import require

#: backbone -> the ONNX bytes this process exported (an export takes seconds; tests and
#: benchmarks that change the cache folder need it only once)
_EXPORTED: dict[str, bytes] = {}


class _Uint8Features(torch.nn.Module):
    """uint8 photos -> features, the normalisation inside the graph."""

    scale: torch.Tensor
    shift: torch.Tensor

    def __init__(self, backbone: Any):
        super().__init__()
        self.backbone = backbone
        prep: Preprocessing = backbone.preprocessing
        self.register_buffer("scale", 1.0 / (255.0 * torch.tensor(prep.std).view(1, 3, 1, 1)))
        self.register_buffer("shift", (torch.tensor(prep.mean) / torch.tensor(prep.std)).view(1, 3, 1, 1))

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.backbone.features(images.float() * self.scale - self.shift)


def export_onnx(backbone: str, path: Path | None = None) -> Path:
    """Export ``backbone`` (a shipped name) to ONNX at ``path`` (default: the cache),
    unless it is already there; returns the path."""
    path = locations.exported_backbone(backbone, "onnx") if path is None else path
    if path.is_file():
        return path
    if backbone in _EXPORTED:  # exported earlier in this process, to another cache folder
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(_EXPORTED[backbone])
        os.replace(tmp, path)
        return path
    model = load_backbone(backbone)
    size = model.preprocessing.size
    wrapper = _Uint8Features(model).eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    example = torch.zeros(2, 3, size, size, dtype=torch.uint8)
    with torch.no_grad(), warnings.catch_warnings():
        # the tracer warns about SamePadConv's Python arithmetic on shapes: the input size
        # is fixed per variant, so the traced padding is the right one
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # dynamo=False: the TorchScript exporter (deprecated, still in torch 2.14) needs only
        # the onnx package; the torch.export one would add onnxscript for the same graph
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            wrapper,
            (example,),
            str(tmp),
            input_names=["images"],
            output_names=["features"],
            dynamic_axes={"images": {0: "batch"}, "features": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    _EXPORTED[backbone] = tmp.read_bytes()
    os.replace(tmp, path)
    return path


class OnnxEmbedder:
    """A backbone exported to ONNX, run by ONNX Runtime on the CPU's cores."""

    backend = "onnx"

    def __init__(self, model: Path, feature_dim: int, preprocessing: Preprocessing, threads: int | None = None):
        ort = require("onnxruntime", "onnx", "the onnx embedding backend")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.intra_op_num_threads = threads or torch.get_num_threads()
        self.session = ort.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])
        self.feature_dim = feature_dim
        self.preprocessing = preprocessing
        self.batch = 32

    @classmethod
    def for_backbone(cls, backbone: str, threads: int | None = None) -> OnnxEmbedder:
        """The shipped ``backbone``, exported on first use."""
        model = load_backbone(backbone)
        return cls(export_onnx(backbone), model.feature_dim, model.preprocessing, threads)

    def __call__(self, images: np.ndarray) -> np.ndarray:
        (out,) = self.session.run(None, {"images": np.ascontiguousarray(images, dtype=np.uint8)})
        return np.asarray(out, dtype=np.float32)
