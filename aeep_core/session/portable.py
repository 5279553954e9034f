"""The project's current model outside the labelling loop: exported to one file, or asked
for its guesses on every item nobody has labelled yet.

"Current model" is the one that chose the newest batch (the newest checkpoint; for the
pipelined trainer, its moving average): its guesses are the ones the app stored with
that batch, so an exported model reproduces what the app showed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aeep_core.data.backbones import load_backbone
from aeep_core.data.features import photo_array
from aeep_core.learning.portable import (
    PhotoModel,
    Probabilities,
    choosing_weights,
    model_from_weights,
    predict_probabilities,
    save_model,
    sequence_description,
)
from aeep_core.pool import DataError, Pool
from aeep_core.session.project_data import load_project_data
from aeep_core.session.session import LabellingSession
from aeep_core.session.types import ProjectSettings
from aeep_core.store import Store
from aeep_core.store.catalog import resolve_project
from aeep_core.store.checkpoints import read_checkpoint
from aeep_core.store.classes import read_classes

PREPROCESSING = (
    "decode with Pillow, apply EXIF orientation, convert to grey (1 channel) or RGB (3) with "
    "transparent pixels black, pad (not crop) to size x size keeping the aspect ratio, "
    "uint8 NCHW; the model scales to [0, 1] itself (aeep_core.data.images.decode_image)"
)


PHOTO_PREPROCESSING = (
    "decode with Pillow, apply EXIF orientation, convert to RGB, resize the shorter side to size "
    "and crop the centre to size x size, uint8 NCHW; the model normalises and runs the backbone "
    "itself (aeep_core.data.features.photo_array)"
)


def _current_weights(project: Path) -> tuple[dict[str, Any], int, str | None]:
    """(weights, round, data path) of the project's newest model; one-line DataError when
    it has none yet or its file is damaged."""
    store = Store.open(project, read_only=True)
    try:
        row, data_path = store.last_checkpoint(), store.setting("data_path")
    finally:
        store.close()
    if row is None:
        raise DataError(f"{project}: no trained model yet; label and confirm a first batch, then open the next one")
    state = read_checkpoint(project, row["file"], row["sha256"])
    weights = None if state is None else choosing_weights(state)
    if weights is None:
        raise DataError(f"{project / row['file']}: the model file is missing or damaged; label one more batch to save a new one")
    return weights, int(row["round"]), data_path


def _network(pool: Pool, weights: dict[str, Any], where: Path) -> nn.Module:
    model = model_from_weights(tuple(pool.inputs.shape[1:]), pool.modality, pool.n_classes, weights)
    if model is None:
        raise DataError(f"{where}: the saved model does not fit the data any more (its input size changed); label one more batch")
    return model


def export_project_model(target: str | Path, out: Path) -> dict[str, Any]:
    """Write the current model of ``target`` (data folder, project folder or name) to
    ``out`` as TorchScript with its classes and preprocessing; return the description."""
    project = resolve_project(target)
    weights, number, data_path = _current_weights(project)
    store = Store.open(project, read_only=True)
    try:
        settings = ProjectSettings.from_dict(store.setting("project"))
        name, labelled = store.setting("name", project.name), store.counts()["labelled"]
        classes = read_classes(store)
    finally:
        store.close()
    pool = load_project_data(Path(data_path or ""), settings, classes=classes.names).pool
    model = _network(pool, weights, project)
    example = pool.inputs[: min(2, len(pool))].clone()  # what the network takes, for all but photos
    if pool.modality == "sequence":  # the description carries the vectors and T that build its inputs
        described = sequence_description(pool)
    elif pool.modality == "features":  # the head alone would need features: export backbone + head
        backbone = load_backbone(pool.meta["backbone"])
        model = PhotoModel(backbone, model).eval()
        paths = pool.meta["paths"][:2]
        example = torch.from_numpy(np.stack([photo_array(Path(p), backbone.preprocessing) for p in paths]))
        inputs = {"channels": 3, "size": backbone.preprocessing.size, "dtype": "uint8", "layout": "NCHW", "fit": "centre-crop"}
        described = {"input": inputs, "preprocessing": PHOTO_PREPROCESSING}
    else:
        _, channels, height, _ = pool.inputs.shape
        inputs = {"channels": int(channels), "size": int(height), "dtype": "uint8", "layout": "NCHW"}
        described = {"input": inputs, "preprocessing": PREPROCESSING}
    meta = {
        "classes": [c.name for c in classes.live],
        "modality": pool.modality,
        "backbone": pool.meta.get("backbone", "cnn"),
        "output": "class probabilities [N, classes], in the order of 'classes'",
        "project": name,
        "round": number,
        "labelled": labelled,
        "exported_at": time.time(),
        **described,  # last: a sequence model's vocabulary is long
    }
    save_model(model, example, meta, Path(out), classes=[c.index for c in classes.live])
    return meta


def unlabelled_predictions(target: str | Path) -> list[dict[str, Any]]:
    """The current model's class and confidence for every item of the pool that holds no
    label (skipped ones included), as export rows marked ``kind = "prediction"``."""
    project = resolve_project(target)
    weights, number, data_path = _current_weights(project)
    if not data_path:
        raise DataError(f"{project}: the project does not record its data folder; open it once with 'aeep-tui label'")
    with LabellingSession.open(Path(data_path), project_dir=project, read_only=True) as session:
        pool = session.pool
        taken = set(session.learner.labels)
        if session.batch is not None:  # the open batch's answers are labels too
            taken |= {it.item_id for it in session.batch.items if it.answer is not None and it.answer >= 0}
        ids = np.array([i for i in range(len(pool)) if i not in taken], dtype=np.int64)
        model = _network(pool, weights, project)
        live = session.classes.current.live
        probs = (
            predict_probabilities(Probabilities(model, [c.index for c in live]).eval(), pool.inputs[ids]) if len(ids) else None
        )
        paths = pool.meta.get("paths")
    rows = []
    for n, i in enumerate(ids.tolist()):
        assert probs is not None
        rows.append(
            {
                "path": paths[i] if paths is not None else pool.names[i],
                "label": None,
                "kind": "prediction",
                "predicted": live[int(probs[n].argmax())].name,
                "confidence": round(float(probs[n].max()), 6),
                "round": number,
            }
        )
    return rows
