"""A project's model taken away: one TorchScript file that carries its class names and input
shape, loadable with plain ``torch.jit.load`` and no aeep-tui installed.

The exported network returns class probabilities for uint8 images ``[N, C, S, S]`` (it
scales them itself, as in training); :func:`aeep_core.data.images.decode_image` turns a
file into exactly that input. A sequence model takes patient matrices ``float32 [N, T, D]``
instead, and its description carries the event vocabulary and vectors that build them
(:func:`sequence_description`, :func:`model_events`). The description travels inside
the file (``_extra_files["aeep.json"]``) and beside it (``<out>.json``) for tools that
cannot read TorchScript extras.
"""

from __future__ import annotations

import json
import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aeep_core.data.backbones import Backbone
from aeep_core.learning.class_outputs import head_size
from aeep_core.learning.model import build_model
from aeep_core.pool import DataError, Pool
from aeep_core.sequences.embedding import EventEmbedding

EXTRA = "aeep.json"
FORMAT = "aeep-tui model"
FORMAT_VERSION = 1

SEQUENCE_PREPROCESSING = (
    "read each patient's time-ordered events (aeep_core.sequences.loading.read_records); take the last "
    "'length' events as a float32 [length, channels] matrix, left-padded with zero rows "
    "(aeep_core.sequences.matrix.patient_matrix): per event its vector from 'events' (token type:code; "
    "zeros for a token not in the vocabulary), then 1.0 (an event is here), then "
    "log1p(days before the last event) / log1p(36500)"
)


def choosing_weights(checkpoint: dict[str, Any]) -> dict[str, torch.Tensor] | None:
    """The weights that made a checkpoint's predictions: the pipelined trainer's moving
    average when it kept one (it scores and chooses), else the learner's model."""
    average = checkpoint.get("average")
    if average:
        # AveragedModel's state: the wrapped network under "module.", plus a step counter.
        return {k.removeprefix("module."): v for k, v in average.items() if k.startswith("module.")}
    return checkpoint.get("model")


def model_from_weights(
    shape: tuple[int, ...], modality: str, n_classes: int, weights: dict[str, torch.Tensor]
) -> nn.Module | None:
    """The project's network for inputs of ``shape`` (one item, no batch dimension) with
    ``weights`` loaded, in eval mode; None when the weights do not fit it. Weights saved
    before a class was added have fewer outputs than the ``n_classes`` the project has
    now: the network keeps theirs (the classes it never learnt get no output).

    Built on the meta device and given the weights' tensors (copies): no random
    initialisation, so nothing is drawn from torch's global generator, which a trainer in
    another thread may be using (its dropout draws must not change)."""
    outputs = head_size(weights) or n_classes
    if outputs > n_classes:
        return None
    with torch.device("meta"):
        model = build_model(torch.empty((0, *shape)), modality, outputs)
    try:
        model.load_state_dict({k: v.detach().clone() for k, v in weights.items()}, assign=True)
    except (RuntimeError, KeyError, ValueError):
        return None
    return model.eval()


class PhotoModel(nn.Module):
    """A frozen backbone and the project's pairwise head as one network on uint8 photos
    ``[N, 3, S, S]`` (centre-cropped, as :func:`aeep_core.data.features.photo_array` gives):
    what a photo project exports, since its pool holds features, not pixels."""

    def __init__(self, backbone: Backbone, head: nn.Module):
        super().__init__()
        self.backbone, self.head = backbone, head
        prep = backbone.preprocessing
        self.mean: torch.Tensor
        self.std: torch.Tensor
        self.register_buffer("mean", torch.tensor(prep.mean).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(prep.std).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (x.float() / 255.0 - self.mean) / self.std
        return self.head(self.backbone.features(x))


class Probabilities(nn.Module):
    """The network's class probabilities alone: what a trainer or a script wants to call.

    ``classes`` (default: every output) are the class indices to give, in that order: the
    project's live classes, so a class merged away is left out and the probabilities are
    shared among the others; a class added after the weights were saved, which the network
    has no output for yet, gets probability 0."""

    def __init__(self, model: nn.Module, classes: Sequence[int] | None = None):
        super().__init__()
        self.model = model
        self.classes: torch.Tensor | None
        self.register_buffer("classes", None if classes is None else torch.tensor(list(classes), dtype=torch.long))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits, _ = self.model(x)
        logits = logits.float()
        if self.classes is not None:
            # one more column, -inf, stands in for every class the network has no output for
            padded = torch.cat([logits, torch.full_like(logits[:, :1], -torch.inf)], 1)
            logits = padded[:, self.classes.clamp(max=logits.shape[1])]
        return torch.softmax(logits, 1)


def save_model(
    model: nn.Module, example: torch.Tensor, meta: dict[str, Any], out: Path, classes: Sequence[int] | None = None
) -> None:
    """Trace ``model`` (whatever its backbone) on ``example`` and write it to ``out`` with
    ``meta`` inside and beside it; through a temp file, so never half a model. Its output
    holds the probabilities of ``classes`` (:class:`Probabilities`)."""
    wrapped = Probabilities(model, classes).eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # TorchScript's deprecation and tracer notes are not the user's business
        traced = torch.jit.trace(wrapped, example, check_trace=False)
    text = json.dumps({"format": FORMAT, "version": FORMAT_VERSION, **meta}, ensure_ascii=False, indent=1)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # TorchScript is deprecated but still the most portable
        torch.jit.save(traced, str(tmp), _extra_files={EXTRA: text})
    os.replace(tmp, out)
    Path(f"{out}.json").write_text(text + "\n", encoding="utf-8")


def load_model(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    """An exported model and its description; :class:`DataError` (one line) otherwise."""
    if not path.is_file():
        raise DataError(f"{path}: no such model file; export one with 'aeep-tui model export DATA --out {path.name}'")
    extra = {EXTRA: ""}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(path), map_location="cpu", _extra_files=extra)
        meta = json.loads(extra[EXTRA] or "{}")
    except (RuntimeError, ValueError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise DataError(f"{path}: not a TorchScript model ({first}); give a file from 'aeep-tui model export'") from exc
    if meta.get("format") != FORMAT:
        raise DataError(f"{path}: a TorchScript model without aeep-tui's description; give a file from 'aeep-tui model export'")
    if int(meta.get("version", 0)) > FORMAT_VERSION:
        raise DataError(f"{path}: made by a newer aeep-tui (model format {meta['version']}); upgrade aeep-tui")
    return module.eval(), meta


def predict_probabilities(
    module: Callable[[torch.Tensor], torch.Tensor], inputs: torch.Tensor, batch_size: int = 256
) -> np.ndarray:
    """Class probabilities ``[N, C]`` of ``inputs``, ``batch_size`` items at a time."""
    out = []
    with torch.no_grad():
        for start in range(0, len(inputs), batch_size):
            out.append(module(inputs[start : start + batch_size]).float())
    return torch.cat(out).numpy() if out else np.zeros((0, 0), np.float32)


def sequence_description(pool: Pool) -> dict[str, Any]:
    """The parts of a sequence model's description that rebuild its inputs: the input
    shape, T, and the event embedding the pool's matrices were built with."""
    embedding: EventEmbedding = pool.meta["embedding"]
    _, length, channels = pool.inputs.shape
    return {
        "input": {"length": int(length), "channels": int(channels), "dtype": "float32", "layout": "NTD"},
        "preprocessing": SEQUENCE_PREPROCESSING,
        "events": {**embedding.as_dict(), "unknown": "zero vector"},
    }


def model_events(meta: dict[str, Any]) -> tuple[EventEmbedding, int]:
    """The event embedding and T of an exported sequence model (``meta``, its description):
    with :func:`aeep_core.sequences.matrix.patient_matrices` they build its inputs."""
    try:
        return EventEmbedding.from_dict(meta["events"]), int(meta["input"]["length"])
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(f"the model's event vocabulary is missing or damaged ({exc}); export the model again") from exc
