"""A project's data (the pool and test set of its folder, speaking the project's classes)
and its store, opened or created."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np

from aeep_core.data.loading import load_dataset
from aeep_core.pool import DataError, Dataset, Pool
from aeep_core.sequences import looks_like_sequences
from aeep_core.session.types import ProjectSettings
from aeep_core.store import Store, StoreError
from aeep_core.store.classes import read_classes


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


def open_project(
    data: Path,
    project: Path,
    exists: bool,
    settings: ProjectSettings | None,
    read_only: bool,
    progress: Callable[[str, int, int], None] | None,
) -> tuple[Store, ProjectSettings, Dataset]:
    """The store of ``project`` (opened when it ``exists``, else created with ``settings``
    once ``data`` has loaded: bad data leaves no project behind), the project's settings
    ("auto" ones resolved) and its data."""
    if exists:
        store = Store.open(project, read_only=read_only)
        try:
            stored = ProjectSettings.from_dict(store.setting("project"))
            grow = stored.pipelined is not True
            loaded = load_project_data(data, stored, progress, read_classes(store).names, grow, embed=not read_only)
            if not read_only:
                store.set_settings(data_path=str(data), last_opened=time.time(), items_are_files="paths" in loaded.pool.meta)
        except BaseException:
            store.close()
            raise
        return store, stored, loaded
    if read_only:
        raise StoreError(f"{data}: no project yet for this folder; open it once for labelling first")
    if settings is None:
        raise ValueError(f"{data}: a new project needs settings (classes and keys)")
    settings.validate()
    loaded = load_project_data(data, settings, progress, grow=settings.pipelined is not True)
    settings = replace(
        settings,
        backbone=loaded.pool.meta.get("backbone", "cnn"),
        pipelined=loaded.pool.modality != "features" if settings.pipelined is None else settings.pipelined,
    )
    now = time.time()
    store = Store.create(
        project,
        {
            "project": asdict(settings),
            "data_path": str(data),
            "name": data.name,
            "created_at": now,
            "last_opened": now,
            "items_are_files": "paths" in loaded.pool.meta,
        },
    )
    return store, settings, loaded
