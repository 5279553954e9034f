"""Recognise what a folder holds and load it as a pool (and a test set when there is one)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from aeep_core import locations
from aeep_core.data.backbones import BackboneUnavailable, is_backbone, unknown_backbone
from aeep_core.data.features import choose_backbone, embed_photos
from aeep_core.data.idx import find_idx_pairs, read_idx
from aeep_core.data.images import IMAGE_SUFFIXES, list_image_names, load_image_files
from aeep_core.data.progressive import load_growing_photos
from aeep_core.pool import UNKNOWN, DataError, Dataset, Pool, split_holdout

_TEST_SPLITS = ("t10k", "test")


def _idx_pool(images: Path, labels: Path | None) -> Pool:
    x = read_idx(images)
    if x.ndim == 3:
        x = x[:, None]
    elif x.ndim != 4:
        raise DataError(f"{images}: IDX images must have 3 or 4 dimensions, found {x.ndim}")
    if x.dtype != np.uint8:
        x = (255 * (x - x.min()) / max(float(x.max() - x.min()), 1e-12)).astype(np.uint8)
    y = None
    if labels is not None:
        y = read_idx(labels).astype(np.int64).reshape(-1)
        if len(y) != len(x):
            raise DataError(f"{labels}: {len(y)} labels for {len(x)} images in {images.name}; use the matching file")
    n_classes = int(y.max()) + 1 if y is not None else 10
    stem = images.name.split("-")[0]
    return Pool(
        inputs=torch.from_numpy(np.ascontiguousarray(x)),
        names=[f"{stem}/{i:05d}" for i in range(len(x))],
        class_names=[str(c) for c in range(n_classes)],
        labels=y,
    )


def _load_idx_folder(folder: Path) -> Dataset:
    pairs = find_idx_pairs(folder)
    test_key = next((k for k in pairs if k in _TEST_SPLITS), None)
    pool_keys = [k for k in pairs if k != test_key]
    if not pool_keys:
        raise DataError(f"{folder}: only a test IDX file found; add the training files (train-images-idx3-ubyte.gz)")
    pool = _idx_pool(*pairs[pool_keys[0]])
    test = _idx_pool(*pairs[test_key]) if test_key else None
    if test is not None:
        n = max(pool.n_classes, test.n_classes)
        pool.class_names = test.class_names = [str(c) for c in range(n)]
    return Dataset(pool, test)


def _load_image_folder(
    folder: Path, backbone: str = "auto", progress=None, grow_seed: int | None = None, embed: bool = True
) -> Dataset:
    """Decoded images at the CNN's size (``cnn``), or a pretrained backbone's features of
    each photo (modality ``features``); ``auto`` chooses from the images. ``grow_seed``:
    a photo pool that grows as it is embedded, in that seed's order (data.progressive)."""
    names = list_image_names(folder)
    if not names:
        raise DataError(
            f"{folder}: no images found (looked for {', '.join(sorted(IMAGE_SUFFIXES))}); "
            "point to a folder of images or MNIST IDX files"
        )
    backbone = choose_backbone(names) if backbone == "auto" else backbone
    if is_backbone(backbone) and grow_seed is not None:
        try:
            pool, pending = load_growing_photos(folder, names, backbone, grow_seed, progress, embed)
        except BackboneUnavailable as exc:
            raise DataError(str(exc)) from exc
        return Dataset(pool, pending=pending)
    paths = [Path(n) for n in names]
    if backbone == "cnn":
        inputs, kept, skipped = load_image_files(paths, cache_prefix=locations.image_cache_prefix(folder), progress=progress)
        modality = "image"
    elif is_backbone(backbone):
        try:
            features, kept, skipped = embed_photos(paths, backbone, locations.feature_cache(folder, backbone), progress)
        except BackboneUnavailable as exc:
            raise DataError(str(exc)) from exc
        inputs, modality = torch.from_numpy(features), "features"
    else:
        raise DataError(unknown_backbone(backbone))
    if not kept:
        raise DataError(f"{folder}: none of the {len(paths)} images could be decoded (first: {skipped[0]})")
    # ImageFolder convention: DIR/cat/x.png is a cat; files directly in DIR are unlabelled.
    folders = [p.relative_to(folder).parts[0] if len(p.relative_to(folder).parts) > 1 else None for p in kept]
    names = sorted({f for f in folders if f is not None})
    index = {n: i for i, n in enumerate(names)}
    labels = np.array([index.get(f, UNKNOWN) if f else UNKNOWN for f in folders], dtype=np.int64)
    pool = Pool(
        inputs=inputs,
        names=[str(p.relative_to(folder)) for p in kept],
        class_names=names,
        labels=labels if (labels >= 0).any() else None,
        skipped=skipped,
        modality=modality,
        meta={"root": str(folder.resolve()), "paths": [str(p.resolve()) for p in kept], "backbone": backbone},
    )
    return Dataset(pool)


def load_pool(folder: Path | str, progress=None, backbone: str = "auto") -> Pool:
    """Load a folder as a pool (IDX training files, a sequence export, or image files)."""
    return load_dataset(folder, progress=progress, backbone=backbone).pool


def load_dataset(
    data: Path | str,
    test: Path | str | None = None,
    test_split: float | None = None,
    seed: int = 0,
    progress=None,
    backbone: str = "auto",
    grow_seed: int | None = None,
    embed: bool = True,
) -> Dataset:
    """Load ``data`` and its test set: ``test`` folder, else IDX t10k files, else a
    stratified ``test_split`` fraction held out of the pool. ``backbone`` applies to image
    folders: ``cnn`` (decoded pixels), a pretrained backbone's name, or ``auto``; the test
    folder goes through the pool's choice. ``grow_seed`` (a labelling project's seed): a
    photo folder's pool holds the photos embedded so far (the first slice embedded now
    when ``embed``), and ``Dataset.pending`` the rest, to embed in the background."""
    folder = Path(data).expanduser()
    if not folder.exists():
        raise DataError(f"{folder}: no such folder; check the path")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file; point to the folder that holds it")
    from aeep_core.sequences import load_sequence_dataset, looks_like_sequences  # lazy: optional modality

    if looks_like_sequences(folder):
        # Sequences build pool and test together: both must use the pool's event embedding.
        return load_sequence_dataset(folder, test=test, test_split=test_split, seed=seed)
    if find_idx_pairs(folder):
        ds = _load_idx_folder(folder)
    else:
        ds = _load_image_folder(folder, backbone, progress=progress, grow_seed=grow_seed, embed=embed)
    if test is not None:
        test_ds = load_dataset(test, backbone=ds.pool.meta.get("backbone", "cnn"))
        t = test_ds.pool
        if t.labels is None:
            raise DataError(f"{test}: test set has no labels; use class-named subfolders")
        ds.test = _align_classes(ds.pool, t, Path(test))
    elif test_split:
        ds.pool, ds.test = split_holdout(ds.pool, test_split, seed)
    return ds


def _align_classes(pool: Pool, test: Pool, where: Path) -> Pool:
    """Re-index the test labels onto the pool's class names."""
    if test.class_names == pool.class_names:
        return test
    index = {n: i for i, n in enumerate(pool.class_names)}
    unknown = sorted(set(test.class_names) - set(index))
    if unknown:
        raise DataError(f"{where}: test classes {unknown} are not in the pool; rename or remove those folders")
    remap = np.array([index[n] for n in test.class_names])
    test.labels = remap[test.labels]
    test.class_names = list(pool.class_names)
    return test
