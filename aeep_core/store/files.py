"""The files around a project's database: its data (loaded with the project's classes)
and its model checkpoints (written atomically)."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from aeep_core import locations
from aeep_core.data.loading import Dataset, load_dataset
from aeep_core.data.pool import DataError, Pool

if TYPE_CHECKING:
    import torch

    from aeep_core.session import ProjectSettings


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


def load_project_data(data: Path, settings: "ProjectSettings", progress: Callable[[str, int, int], None] | None = None) -> Dataset:
    """The pool of ``data`` and the test set (``settings.test_dir``, else IDX t10k files),
    both speaking the project's class indices; ground truth from folder names is kept
    (for simulations and tests) but never shown to the engine."""
    from aeep_core.sequences import looks_like_sequences

    report = (lambda d, t: progress("load", d, t)) if progress else None
    if looks_like_sequences(data):
        # Sequence pool and test share one event embedding, trained (seeded) with the pool.
        ds = load_dataset(data, test=settings.test_dir, seed=settings.seed, progress=report)
    else:
        ds = load_dataset(data, progress=report)
        if settings.test_dir:
            ds.test = load_dataset(settings.test_dir).pool
    for pool in (ds.pool, ds.test):
        if pool is None:
            continue
        labels = _remap(pool, settings.classes)
        pool.labels = labels if labels is not None and (labels >= 0).any() else None
        pool.class_names = list(settings.classes)
    if ds.test is not None:
        if ds.test.labels is None:
            if settings.test_dir:
                raise DataError(f"{settings.test_dir}: no test image is in a folder named after a class {settings.classes}")
            ds.test = None
        elif (ds.test.labels < 0).any():
            ds.test = ds.test.subset(np.flatnonzero(ds.test.labels >= 0))  # folders of other classes
    return ds


def write_checkpoint(
    project: Path, number: int, model: "torch.nn.Module | dict", extra: dict | None = None
) -> tuple[str, str]:
    """Save the model of round ``number`` (and ``extra`` engine state, e.g. the pipelined
    trainer's optimizer and generators): temp file, fsync, rename, fsync the folder.
    Return (path relative to the project, sha256) for the database to point at."""
    import torch

    folder = locations.checkpoints_dir(project)
    folder.mkdir(parents=True, exist_ok=True)
    final = folder / f"round-{number:05d}.pt"
    tmp = folder / f".{final.name}.{os.getpid()}.tmp"
    with open(tmp, "wb") as f:
        weights = model if isinstance(model, dict) else model.state_dict()  # a module or its state dict
        torch.save({**(extra or {}), "round": number, "model": {k: v.cpu() for k, v in weights.items()}}, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, final)
    if hasattr(os, "O_DIRECTORY"):  # the rename itself is durable only once the folder is synced
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return f"{folder.name}/{final.name}", hashlib.sha256(final.read_bytes()).hexdigest()


def load_checkpoint(project: Path, file: str, sha256: str, pool: Pool) -> "torch.nn.Module | None":
    """The model saved in ``file`` if its bytes match ``sha256`` and its shape still fits
    the pool (the input size can change with the data); None otherwise."""
    import torch

    from aeep_core.model import build_model

    path = Path(project) / file
    try:
        blob = path.read_bytes()
        if hashlib.sha256(blob).hexdigest() != sha256:
            return None  # damaged: the next round trains afresh anyway
        model = build_model(pool.inputs, pool.modality, pool.n_classes)
        model.load_state_dict(torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)["model"])
    except (OSError, RuntimeError, KeyError, ValueError):
        return None
    return model.eval()
