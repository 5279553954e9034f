"""The model's outputs when a project's classes change: growing the last layer for a new
class, and the view of the outputs that leaves merged classes out.

A class added while labelling gets one more output: the classifier's last layer (``head``,
every network has one) grows by one row, each existing weight kept, the new row drawn as
a fresh ``nn.Linear`` draws its rows. The row of class ``j`` is drawn from a generator
seeded by (seed, j) alone, so growing C -> C + 2 at once or one class at a time gives the
same weights, and a resumed trainer grows exactly as the uninterrupted one did.

A class merged into another keeps its output (indices never change meaning, and
checkpoints keep their shape) but is never predicted: scoring masks it out
(``training.score``'s ``without``), and strategies and mp see only the live outputs
(:class:`LiveOutputs`). It gets no labels after the merge, so training drives it down too.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Mapping

import numpy as np
import torch
from torch import nn


def head_size(weights: Mapping[str, torch.Tensor]) -> int | None:
    """How many classes a saved network's last layer has (None: no ``head`` in it)."""
    head = weights.get("head.weight")
    return None if head is None else int(head.shape[0])


def _row_generator(seed: int, row: int) -> torch.Generator:
    state = np.random.SeedSequence([seed, 0x26, row]).generate_state(1, dtype=np.uint64)[0]
    return torch.Generator().manual_seed(int(state))


def grow_head(model: nn.Module, n_classes: int, seed: int) -> list[torch.Tensor]:
    """Give ``model.head`` (an ``nn.Linear``) ``n_classes`` outputs, keeping every existing
    weight; each new row (weights and bias) is uniform in ±1/sqrt(fan_in), as
    ``nn.Linear.reset_parameters`` draws it, from a generator seeded by (``seed``, row).
    The parameters stay the same objects (their data grows), so an optimizer holding them
    keeps working once its state grows too (:func:`grow_optimizer_state`). Returns the
    parameters that grew (none when the head has ``n_classes`` outputs already)."""
    head = model.head
    assert isinstance(head, nn.Linear), "every network exposes its last layer as a Linear `head`"
    old, fan_in = head.out_features, head.in_features
    if n_classes <= old:
        return []
    bound = 1.0 / math.sqrt(fan_in) if fan_in > 0 else 0.0
    rows, biases = [], []
    for row in range(old, n_classes):
        gen = _row_generator(seed, row)
        rows.append((torch.rand(fan_in, generator=gen) * 2 - 1) * bound)
        biases.append((torch.rand(1, generator=gen) * 2 - 1) * bound)
    weight, bias = head.weight, head.bias
    with torch.no_grad():
        new_rows = torch.stack(rows).to(weight.device, weight.dtype)
        weight.data = torch.cat([weight.data, new_rows])
        grown = [weight]
        if bias is not None:
            bias.data = torch.cat([bias.data, torch.cat(biases).to(bias.device, bias.dtype)])
            grown.append(bias)
    head.out_features = n_classes
    return grown


def grow_optimizer_state(optimizer: torch.optim.Optimizer, params: Iterable[torch.Tensor]) -> None:
    """Pad the per-parameter state (Adam's moments) of ``params`` with zeros for their new
    rows: a new row starts with no history, the old rows keep theirs."""
    for p in params:
        state = optimizer.state.get(p)
        if not state:
            continue
        for name, value in state.items():
            if isinstance(value, torch.Tensor) and value.dim() == p.dim() and value.shape[0] < p.shape[0]:
                pad = torch.zeros((p.shape[0] - value.shape[0], *value.shape[1:]), dtype=value.dtype, device=value.device)
                state[name] = torch.cat([value, pad])


class LiveOutputs:
    """The model's outputs for classes not merged away, and the translation of class
    indices into positions among them: what strategies and mp are computed on, so that a
    merged class's empty output is neither a class to serve nor a rare class to find."""

    def __init__(self, n_outputs: int, merged: Collection[int]):
        self.kept = np.array([c for c in range(n_outputs) if c not in merged], dtype=np.int64)
        self._position = np.full(n_outputs, -1, dtype=np.int64)
        self._position[self.kept] = np.arange(len(self.kept))

    @property
    def everything(self) -> bool:
        """Whether no output is left out (the view is the identity)."""
        return len(self.kept) == len(self._position)

    def columns(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``[n, C]`` (or ``[C]``) keeping the live classes' columns (entries)."""
        return values if self.everything else values[..., self.kept]

    def rows(self, values: np.ndarray) -> np.ndarray:
        """``values`` ``[C, ...]`` keeping the live classes' rows (the head's weights)."""
        return values if self.everything else values[self.kept]

    def positions(self, classes: np.ndarray) -> np.ndarray:
        """Each class index's position among the live outputs, -1 for a merged class or
        one the model has no output for (and for a skip); with nothing merged, the
        indices as they are."""
        classes = np.asarray(classes, dtype=np.int64)
        if self.everything:
            return classes
        inside = (classes >= 0) & (classes < len(self._position))
        out = np.full(classes.shape, -1, dtype=np.int64)
        out[inside] = self._position[classes[inside]]
        return out
