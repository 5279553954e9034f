"""Embedding a folder on a Ray cluster: Ray Data reads the files, actors hold the backbone.

The standard bulk-inference shape (``read_binary_files`` -> ``map_batches`` with a class,
so each actor loads the network once and keeps it across batches). The driver stays the
feature store's one writer: it takes the actors' batches as they finish and appends them,
so the store on disk is the same one ``aeep-tui label`` and the local path fill, and an
interrupted cluster run resumes like a local one.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

import aeep_core
from aeep_core.data.feature_store import FeatureStore
from aeep_core.data.features import CHUNK, EmbedReport, decode_error, file_key, photo_array, still_to_embed
from aeep_core.data.images import DECODE_ERRORS
from aeep_core.extras import require


class RayEmbedder:
    """A Ray Data actor: one backbone loaded once, batches of file bytes in, features out."""

    def __init__(self, backbone: str, backend: str, device: str):
        from aeep_core.data.embedders import load_embedder

        self.embedder = load_embedder(backbone, backend=backend, device=device)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        prep = self.embedder.preprocessing
        images, ok = [], []
        for data in batch["bytes"]:
            try:
                images.append(photo_array(io.BytesIO(data), prep))
                ok.append(True)
            except DECODE_ERRORS:
                ok.append(False)
        feats = np.zeros((len(ok), self.embedder.feature_dim), np.float32)
        if images:
            stacked = np.stack(images)
            out = [self.embedder(stacked[i : i + self.embedder.batch]) for i in range(0, len(stacked), self.embedder.batch)]
            feats[np.asarray(ok)] = np.concatenate(out)
        return {"path": np.asarray(batch["path"]), "ok": np.asarray(ok), "features": feats}


def local_runtime_env() -> dict[str, Any]:
    """For a cluster started here: workers import aeep_core from where this process did."""
    here = str(Path(aeep_core.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {"env_vars": {"PYTHONPATH": here + (os.pathsep + path if path else "")}}


def embed_with_ray(
    paths: Sequence[Path],
    store: FeatureStore,
    backbone: str,
    address: str | None = None,
    task_gpus: float = 0.0,
    actors: int | None = None,
    backend: str = "auto",
    chunk: int = CHUNK,
    progress: Callable[[int, int], None] | None = None,
) -> EmbedReport:
    """Embed the ``paths`` the store lacks on the Ray cluster at ``address`` (None: a
    local cluster of this machine's cores; ``auto``: the cluster this machine belongs to;
    ``ray://head:10001``: a remote one), ``actors`` holding the backbone, each with
    ``task_gpus`` GPUs (0: CPU actors). The files must be readable from the workers at
    the same paths (a shared file system). Already-initialised Ray is used as it is."""
    ray = require("ray", "cluster", "embed --ray")
    keys = [file_key(p) for p in paths]
    todo, report = still_to_embed(paths, keys, store)
    if progress is not None:
        progress(len(paths) - len(todo), len(paths))
    if not len(todo):
        return report
    started = False
    if not ray.is_initialized():
        init: dict[str, Any] = {"runtime_env": local_runtime_env()} if not address else {}
        ray.init(address=address or "local", **init)
        started = True
    try:
        key_of = {os.path.abspath(paths[i]): keys[i] for i in todo}
        if actors is None:
            resource = "GPU" if task_gpus else "CPU"
            actors = max(1, int(ray.cluster_resources().get(resource, 1) / (task_gpus or 1)))
        device = "cuda" if task_gpus else "cpu"
        ds = ray.data.read_binary_files([os.path.abspath(paths[i]) for i in todo], include_paths=True)
        ds = ds.map_batches(
            RayEmbedder,
            fn_constructor_args=(backbone, backend, device),
            batch_size=chunk,
            concurrency=actors,
            num_gpus=task_gpus,
            num_cpus=0 if task_gpus else 1,
        )
        done = len(paths) - len(todo)
        for batch in ds.iter_batches(batch_size=chunk, batch_format="numpy"):
            ok = batch["ok"].astype(bool)
            names = [_local(p) for p in batch["path"]]
            good = [key_of[n] for n, k in zip(names, ok) if k]
            if good:
                store.append(good, batch["features"][ok])
            report.embedded += len(good)
            bad = [decode_error(Path(n), ValueError("not an image PIL can read")) for n, k in zip(names, ok) if not k]
            store.mark_skipped([key_of[n] for n, k in zip(names, ok) if not k], [b.reason for b in bad])
            report.skipped += bad
            done += len(ok)
            if progress is not None:
                progress(done, len(paths))
    finally:
        if started:
            ray.shutdown()
    return report


def _local(path: str) -> str:
    """Ray Data's path of a local file (it may drop the leading slash) as an absolute path."""
    return path if path.startswith("/") else "/" + path
