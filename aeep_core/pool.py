"""The in-memory pool every strategy and model works on."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import torch

UNKNOWN = -1


class DataError(Exception):
    """Input data that cannot be used; the message names the file and the fix."""


@dataclass(frozen=True)
class SkippedFile:
    """A file that was left out of the pool, and why."""

    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


@dataclass
class Pool:
    """Items ready for the model.

    ``inputs`` is one tensor for the whole pool: ``uint8 [N, C, H, W]`` for images
    (the model scales to [0, 1] itself, which keeps a 60,000-image pool at 47 MB), or
    ``float32 [N, T, D]`` for event sequences. ``labels`` holds ground truth where it is
    known (``-1`` elsewhere) and is used only by simulations and test sets, never by
    the strategies.
    """

    inputs: torch.Tensor
    names: list[str]
    class_names: list[str]
    labels: np.ndarray | None = None
    modality: str = "image"
    skipped: list[SkippedFile] = field(default_factory=list)
    #: where the items came from (``root``: the data folder) and per-modality extras
    #: (``events``: one event list per sequence item), for display; never used by the model.
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if len(self.names) != len(self.inputs):
            raise ValueError("names and inputs differ in length")
        if self.labels is not None and len(self.labels) != len(self.inputs):
            raise ValueError("labels and inputs differ in length")

    def __len__(self) -> int:
        return len(self.inputs)

    @property
    def n_classes(self) -> int:
        return len(self.class_names)

    def add_class(self, name: str) -> int:
        """Append a class met while labelling; return its index. Ground truth and every
        answer keep their indices: a class is only ever added at the end."""
        self.class_names.append(name)
        return len(self.class_names) - 1

    @property
    def has_labels(self) -> bool:
        return self.labels is not None and bool(np.all(self.labels >= 0))

    def subset(self, index: np.ndarray) -> Pool:
        """A new pool holding only the items at ``index`` (in that order)."""
        index = np.asarray(index, dtype=np.int64)
        return replace(
            self,
            inputs=self.inputs[torch.from_numpy(index)],
            names=[self.names[i] for i in index],
            labels=None if self.labels is None else self.labels[index],
            skipped=list(self.skipped),
            meta={k: ([v[i] for i in index] if isinstance(v, list) and len(v) == len(self) else v) for k, v in self.meta.items()},
        )

    def extend(self, more: Pool) -> None:
        """Append ``more``'s items (a photo pool grows as its photos are embedded): every
        position already handed out keeps its item. ``more`` has the same classes and
        inputs of the same kind (a tensor, or rows of the same feature store)."""
        if len(more) == 0:
            self.skipped.extend(more.skipped)
            return
        n = len(self)
        extended = getattr(self.inputs, "extended", None)  # feature-store rows read from disk
        self.inputs = extended(more.inputs) if extended is not None else torch.cat([self.inputs, more.inputs])
        if self.labels is not None or more.labels is not None:
            mine = self.labels if self.labels is not None else np.full(n, UNKNOWN, np.int64)
            theirs = more.labels if more.labels is not None else np.full(len(more), UNKNOWN, np.int64)
            self.labels = np.concatenate([mine, theirs])
        self.names.extend(more.names)
        self.skipped.extend(more.skipped)
        for key, value in self.meta.items():
            if isinstance(value, list) and len(value) == n:
                value.extend(more.meta.get(key, []))

    def flat_inputs(self, index: np.ndarray) -> np.ndarray:
        """Raw inputs of ``index`` as float32 rows, for input-space distances."""
        x = self.inputs[torch.from_numpy(np.asarray(index, dtype=np.int64))]
        x = x.reshape(len(x), -1).float()
        if self.inputs.dtype == torch.uint8:
            x = x / 255.0
        return x.numpy()


def split_holdout(pool: Pool, fraction: float, seed: int) -> tuple[Pool, Pool]:
    """Split ``pool`` into (pool, test), stratified by label, reproducible under ``seed``."""
    if not 0.0 < fraction < 1.0:
        raise DataError(f"--test-split must be between 0 and 1, got {fraction}")
    if pool.labels is None or not pool.has_labels:
        raise DataError("--test-split needs ground-truth labels (class-named subfolders)")
    rng = np.random.default_rng(seed)
    test_idx: list[int] = []
    for c in np.unique(pool.labels):
        members = np.flatnonzero(pool.labels == c)
        rng.shuffle(members)
        test_idx.extend(members[: max(1, int(round(fraction * len(members))))].tolist())
    is_test = np.zeros(len(pool), dtype=bool)
    is_test[test_idx] = True
    return pool.subset(np.flatnonzero(~is_test)), pool.subset(np.flatnonzero(is_test))


@dataclass
class Dataset:
    """A pool to select from and, when the data provides one, a held-out test set."""

    pool: Pool
    test: Pool | None = None
    #: what of the data is still to come: photos of the folder not yet embedded
    #: (``data.progressive.Unembedded``), joining the pool while the person labels
    pending: Any = None
