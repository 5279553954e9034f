"""A project's data: the pool and test set of its folder, speaking the project's classes."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np

from aeep_core.data.loading import load_dataset
from aeep_core.pool import DataError, Dataset, Pool
from aeep_core.sequences import looks_like_sequences
from aeep_core.session.types import ProjectSettings


def _remap(pool: Pool, classes: list[str]) -> np.ndarray | None:
    """``pool.labels`` re-indexed onto ``classes`` by name (by position when no name
    matches but the counts agree, as for IDX digits named by the person); -1 elsewhere."""
    if pool.labels is None:
        return None
    index = {n: i for i, n in enumerate(classes)}
    if not set(pool.class_names) & set(index) and len(pool.class_names) == len(classes):
        index = {n: i for i, n in enumerate(pool.class_names)}
    table = np.array([index.get(n, -1) for n in pool.class_names] + [-1], dtype=np.int64)
    return table[np.where(pool.labels >= 0, pool.labels, len(pool.class_names))]


def load_project_data(
    data: Path,
    settings: ProjectSettings,
    progress: Callable[[str, int, int], None] | None = None,
    classes: list[str] | None = None,
    grow: bool = False,
    embed: bool = True,
) -> Dataset:
    """The pool of ``data`` and the test set (``settings.test_dir``, else IDX t10k files),
    both speaking the project's class indices (``classes``: its names by index now, the
    settings' when it has none yet); ground truth from folder names is kept (for
    simulations and tests) but never shown to the engine."""
    classes = list(settings.classes if classes is None else classes)
    report = (lambda d, t: progress("load", d, t)) if progress else None
    if looks_like_sequences(data):
        # Sequence pool and test share one event embedding, trained (seeded) with the pool.
        ds = load_dataset(data, test=settings.test_dir, seed=settings.seed, progress=report)
    else:
        grow_seed = settings.seed if grow else None
        ds = load_dataset(data, progress=report, backbone=settings.backbone, grow_seed=grow_seed, embed=embed)
        if settings.test_dir:
            ds.test = load_dataset(settings.test_dir, backbone=ds.pool.meta.get("backbone", "cnn")).pool
    for pool in (ds.pool, ds.test):
        if pool is None:
            continue
        labels = _remap(pool, classes)
        pool.labels = labels if labels is not None and (labels >= 0).any() else None
        pool.class_names = list(classes)
    if ds.test is not None:
        if ds.test.labels is None:
            if settings.test_dir:
                raise DataError(f"{settings.test_dir}: no test image is in a folder named after a class {classes}")
            ds.test = None
        elif (ds.test.labels < 0).any():
            ds.test = ds.test.subset(np.flatnonzero(ds.test.labels >= 0))  # folders of other classes
    return ds
