"""What every query strategy sees and returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, ClassVar

import numpy as np


def entropy(probs: np.ndarray) -> np.ndarray:
    """H(x) = -sum_c h_c log h_c, in nats, per row."""
    p = np.clip(probs, 1e-12, 1.0)
    return -(p * np.log(p)).sum(axis=1)


def softmax(z: np.ndarray) -> np.ndarray:
    """Class probabilities from logits, per row (shifted by the row's max, so no overflow)."""
    z = z - z.max(axis=-1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=-1, keepdims=True)


def unit_rows(x: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (zero rows stay zero)."""
    norm = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norm, 1e-12)


def degenerate_rows(x: np.ndarray) -> np.ndarray:
    """Rows (nearly) zero relative to the median row: no direction, so no cosine."""
    norm = np.linalg.norm(x, axis=1)
    scale = float(np.median(norm)) if len(norm) else 0.0
    return norm <= 1e-6 * max(scale, 1e-12)


@dataclass
class QueryContext:
    """A scored view of the candidates of one round.

    ``probs`` and ``embeddings`` are the current model's outputs on the candidates;
    ``labelled_embeddings`` its embeddings of L and ``labelled_labels`` the classes given
    to L, in the same order. Input-space rows (for kff and the raw-pixel ablation) are
    computed only when a strategy asks for them.
    """

    candidates: np.ndarray  # global item ids, [n]
    probs: np.ndarray  # [n, C]
    embeddings: np.ndarray  # phi, [n, d]
    labelled_embeddings: np.ndarray  # phi of L, [|L|, d]
    head_weight: np.ndarray  # last layer W, [C, d]
    head_bias: np.ndarray  # last layer b, [C]
    rng: np.random.Generator
    labelled_labels: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # class of each item of L, [|L|]
    _inputs: Callable[[], tuple[np.ndarray, np.ndarray]] | None = field(default=None, repr=False)

    @cached_property
    def entropy(self) -> np.ndarray:
        return entropy(self.probs)

    @cached_property
    def normalised_entropy(self) -> np.ndarray:
        """H / log C, in [0, 1]: the scale of the similarity, so beta has a fixed meaning."""
        return self.entropy / np.log(max(self.probs.shape[1], 2))

    @cached_property
    def class_counts(self) -> np.ndarray:
        """Labels per class in L, one count for each of the model's C classes. A label
        the model has no output for (C smaller than the classes of L) counts nowhere."""
        n_classes = self.probs.shape[1]
        known = self.labelled_labels[(self.labelled_labels >= 0) & (self.labelled_labels < n_classes)]
        return np.bincount(known.astype(np.int64), minlength=n_classes)

    @cached_property
    def degenerate(self) -> np.ndarray:
        """Candidates whose phi is (nearly) zero: their cosine is undefined, so no
        similarity-based rule can place them; they should come last, not first."""
        return degenerate_rows(self.embeddings)

    @cached_property
    def unit(self) -> np.ndarray:
        return unit_rows(self.embeddings)

    @cached_property
    def labelled_unit(self) -> np.ndarray:
        return unit_rows(self.labelled_embeddings)

    @cached_property
    def input_rows(self) -> tuple[np.ndarray, np.ndarray]:
        """(candidate rows, labelled rows) in input space, as float32."""
        if self._inputs is None:
            raise RuntimeError("this context carries no input-space rows")
        return self._inputs()


@dataclass
class Selection:
    """Positions into ``QueryContext.candidates``, and which of them are exploration picks."""

    positions: np.ndarray
    exploration: np.ndarray

    @classmethod
    def of(cls, positions: list[int] | np.ndarray, n_explore: int = 0) -> Selection:
        pos = np.asarray(positions, dtype=np.int64)
        flags = np.zeros(len(pos), dtype=bool)
        flags[:n_explore] = True
        return cls(pos, flags)


class QueryStrategy:
    """One way of choosing a batch. Subclasses implement :meth:`query`."""

    name: ClassVar[str] = "base"
    #: whether the strategy reads the embeddings of L (lets the learner skip scoring L)
    needs_labelled: ClassVar[bool] = False

    def query(self, ctx: QueryContext, k: int) -> Selection:
        """Choose ``min(k, n)`` distinct candidates."""
        raise NotImplementedError

    def matching(self, predicted: np.ndarray, labels: np.ndarray, class_counts: np.ndarray | None = None) -> float | None:
        """mp from the exploration picks: the share whose prediction (made before
        labelling) equals the label given; None without picks. ``class_counts`` (labels
        per class in L) lets a strategy weigh rare classes; the plain share ignores it."""
        return float((np.asarray(predicted) == np.asarray(labels)).mean()) if len(labels) else None

    def observe(self, mp: float | None) -> None:
        """Hear how well the model predicted this batch's exploration picks (mp)."""

    @property
    def m(self) -> int | None:
        """How many exploration picks the next batch will hold (None: not applicable)."""
        return None

    def state_dict(self) -> dict[str, Any]:
        """What must be saved to continue exactly after a restart."""
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned."""
