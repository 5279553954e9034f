"""Photos through a frozen pretrained backbone: decoded once, embedded once, stored per item.

The pool of a photo folder is then the backbone's feature vectors (modality
``"features"``), and each round trains only the pairwise head on them. Features live in a
:mod:`feature store <aeep_core.data.feature_store>` keyed by each file's identity (path,
size, mtime: :func:`file_key`), appended chunk by chunk: reopening a folder, or resuming
after a crash, embeds only the files the store lacks.

Why identity and not a content hash: a key must be known for every file before anything
is read from the store, and hashing reads every byte of every file (BENCHMARKS.md,
"Scale": 64 us for a 54-KiB flower from the page cache against 6 us for its identity; at
10^5 camera-size photos on a cold disk, the whole collection's bytes). A changed file
changes its size or mtime, so it is embedded again.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import numpy as np
import torch
from PIL import Image, ImageOps

from aeep_core.data.backbone_types import Preprocessing
from aeep_core.data.backbones import PHOTO_BACKBONE
from aeep_core.data.efficientnet_lite import VARIANTS
from aeep_core.data.embedders import Embedder, load_embedder
from aeep_core.data.feature_store import FeatureStore, open_store
from aeep_core.data.images import DECODE_ERRORS, is_grey
from aeep_core.pool import SkippedFile

Progress = Callable[[int, int], None]
#: photos per stored chunk: a kill -9 loses at most this much work (about 5-10 s on 2 cores)
CHUNK = 256


def store_dtype(backbone: str) -> str:
    """How the store keeps ``backbone``'s features: float16 for the shipped Lite networks
    (half the disk and page cache, 3.2 GB at 10^6 photos instead of 6.4; AEEP's flowers
    accuracy unchanged, BENCHMARKS.md "Scale"), float32 for any other, never measured."""
    return "float16" if backbone in VARIANTS else "float32"


def choose_backbone(paths: Sequence[str | Path], sample: int = 64) -> str:
    """``auto``: the from-scratch CNN for small grey images (digits, the paper's setting),
    the pretrained backbone for anything else (photographs)."""
    step = max(1, len(paths) // sample)
    sizes, greys = [], []
    for p in paths[::step][:sample]:
        try:
            with Image.open(p) as img:
                sizes.append(min(img.size))
                greys.append(is_grey(img))
        except DECODE_ERRORS:
            continue
    small = bool(sizes) and sorted(sizes)[len(sizes) // 2] <= 64
    return "cnn" if small and all(greys) else PHOTO_BACKBONE


def photo_array(path: str | Path | IO[bytes], prep: Preprocessing) -> np.ndarray:
    """One photo as the backbone sees it: uint8 [3, S, S], EXIF orientation applied, any
    colour mode as RGB, the shorter side resized to S and the centre cropped."""
    with Image.open(path) as img:
        # JPEG: decode at a reduced scale when the file is much larger than needed, so a
        # 12-megapixel photo costs what a small one does.
        img.draft("RGB", (2 * prep.size, 2 * prep.size))
        img = ImageOps.exif_transpose(img)
        img = img.convert("RGBA").convert("RGB") if img.mode in ("P", "LA", "PA") else img.convert("RGB")
        img = ImageOps.fit(img, (prep.size, prep.size), Image.Resampling.BILINEAR)
        return np.asarray(img, dtype=np.uint8).transpose(2, 0, 1)


def file_key(path: str | Path, st: os.stat_result | None = None) -> str:
    """A file's key in the feature store: a digest of its path, size and mtime (the
    identity the old cache used; a changed file gets a new key)."""
    st = os.stat(path) if st is None else st
    return _identity_key(os.fsencode(path), st.st_size, st.st_mtime_ns)


def _identity_key(path: bytes, size: int, mtime_ns: int) -> str:
    ident = path + b"\0" + str(size).encode() + b"\0" + str(mtime_ns).encode()
    return hashlib.blake2b(ident, digest_size=16).hexdigest()


def decode_error(path: str | Path, exc: BaseException) -> SkippedFile:
    """The one line for a photo that cannot be decoded."""
    return SkippedFile(str(path), f"cannot decode image ({type(exc).__name__}: {exc}); replace or remove the file")


def decode_photos(paths: Sequence[str | Path], prep: Preprocessing) -> tuple[np.ndarray, list[int], list[SkippedFile]]:
    """uint8 ``[n, 3, S, S]`` of the decodable ``paths``, their positions, and the rest."""
    arrays, kept, skipped = [], [], []
    for i, p in enumerate(paths):
        try:
            arrays.append(photo_array(p, prep))
            kept.append(i)
        except DECODE_ERRORS as exc:
            skipped.append(decode_error(p, exc))
    shape = (0, 3, prep.size, prep.size)
    return (np.stack(arrays) if arrays else np.zeros(shape, np.uint8)), kept, skipped


def embed_arrays(embedder: Embedder, images: np.ndarray) -> np.ndarray:
    """float32 features of uint8 images, in the embedder's batches."""
    out = [embedder(images[i : i + embedder.batch]) for i in range(0, len(images), embedder.batch)]
    return np.concatenate(out) if out else np.zeros((0, embedder.feature_dim), np.float32)


def store_meta(backbone: str) -> dict[str, object]:
    """What a store of ``backbone``'s features records, so no store mixes two definitions."""
    from aeep_core.locations import FEATURES_VERSION

    return {"backbone": backbone, "features_version": FEATURES_VERSION}


def open_feature_store(
    stem: Path, backbone: str, embedder: Embedder | None = None, writable: bool = True, wait_for_writer: bool = False
) -> FeatureStore:
    """The feature store of ``backbone`` at ``stem``, created (with ``embedder``'s width)
    when missing."""
    dim = None if embedder is None else embedder.feature_dim
    meta = store_meta(backbone)
    return open_store(stem, dim=dim, dtype=store_dtype(backbone), meta=meta, writable=writable, wait_for_writer=wait_for_writer)


@dataclass
class EmbedReport:
    """What :func:`embed_into_store` did."""

    embedded: int = 0  # photos embedded and stored by this call
    present: int = 0  # photos the store already had
    skipped: list[SkippedFile] = field(default_factory=list)
    stopped: bool = False  # should_stop asked to stop before the end


def still_to_embed(paths: Sequence[str | Path], keys: Sequence[str], store: FeatureStore) -> tuple[np.ndarray, EmbedReport]:
    """Positions of the ``paths`` the store lacks, and a report of what it has: rows, and
    files found undecodable before and unchanged since (reported again, not retried)."""
    missing = store.rows_for(keys) < 0
    report = EmbedReport(present=int((~missing).sum()))
    known_bad = store.skipped()
    if known_bad:
        for i in np.flatnonzero(missing).tolist():
            if keys[i] in known_bad:
                report.skipped.append(SkippedFile(str(paths[i]), known_bad[keys[i]]))
                missing[i] = False
    return np.flatnonzero(missing), report


def embed_into_store(
    paths: Sequence[str | Path],
    store: FeatureStore,
    backbone: str | Embedder,
    chunk: int = CHUNK,
    progress: Progress | None = None,
    should_stop: Callable[[], bool] | None = None,
    keys: Sequence[str] | None = None,
) -> EmbedReport:
    """Embed the ``paths`` the store lacks, in their order, one durable chunk at a time.

    Resumable: what an interrupted call stored is found by key and not embedded again
    (``kill -9`` loses at most the chunk in flight). ``should_stop`` is asked between
    chunks; ``progress(done, total)`` counts stored photos and undecodable ones.
    ``backbone``: a name (loaded on the first chunk that needs it) or an :class:`Embedder`.
    ``keys``: the paths' :func:`file_key` when the caller has them already.
    """
    keys = [file_key(p) for p in paths] if keys is None else keys
    todo, report = still_to_embed(paths, keys, store)
    embedder = backbone if not isinstance(backbone, str) else None
    done = len(paths) - len(todo)
    if progress is not None:
        progress(done, len(paths))
    for start in range(0, len(todo), chunk):
        if should_stop is not None and should_stop():
            report.stopped = True
            break
        if embedder is None:
            embedder = load_embedder(str(backbone))
        part = todo[start : start + chunk]
        images, kept, skipped = decode_photos([paths[i] for i in part], embedder.preprocessing)
        report.skipped += skipped
        store.mark_skipped([keys[part[j]] for j in sorted(set(range(len(part))) - set(kept))], [s.reason for s in skipped])
        if kept:
            store.append([keys[part[j]] for j in kept], embed_arrays(embedder, images))
        report.embedded += len(kept)
        done += len(part)
        if progress is not None:
            progress(done, len(paths))
    return report


def embed_photos(
    paths: list[Path],
    backbone: str,
    cache: Path | None = None,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, list[Path], list[SkippedFile]]:
    """Features [N, D] (float32) of the decodable ``paths`` (in order), those paths, and
    the files skipped with their reason. ``cache``: the stem of a feature store
    (:func:`open_feature_store`) whose rows are reused for unchanged files and which
    gains the new ones; None embeds without storing."""
    embedder = load_embedder(backbone, device=device) if cache is None else None
    if cache is None:
        assert embedder is not None
        out: list[np.ndarray] = []
        kept_paths: list[Path] = []
        skipped: list[SkippedFile] = []
        for start in range(0, len(paths), CHUNK):
            part = paths[start : start + CHUNK]
            images, kept, bad = decode_photos(part, embedder.preprocessing)
            out.append(embed_arrays(embedder, images))
            kept_paths += [part[j] for j in kept]
            skipped += bad
            if progress is not None:
                progress(min(start + CHUNK, len(paths)), len(paths))
        return np.concatenate(out) if out else np.zeros((0, embedder.feature_dim), np.float32), kept_paths, skipped
    keys = [file_key(p) for p in paths]
    whole = _read_if_complete(cache, backbone, paths, keys)
    if whole is not None:
        return whole
    # Another process embedding the same folder (a second bench job, a second project on
    # it) holds the writer's lock: wait for it, then embed only what it did not.
    store, embedder = open_or_create_store(cache, backbone, keys, device, wait_for_writer=True)
    try:
        report = embed_into_store(paths, store, embedder or backbone, progress=progress, keys=keys)
        return _stored_features(store, paths, keys, report.skipped)
    finally:
        store.close()


def _read_if_complete(
    stem: Path, backbone: str, paths: list[Path], keys: list[str]
) -> tuple[np.ndarray, list[Path], list[SkippedFile]] | None:
    """:func:`embed_photos`'s answer read from the store at ``stem`` without the writer's
    lock, when it already holds every file (a row, or a note that the file is broken);
    None when it does not or does not exist yet."""
    if not Path(f"{stem}.meta.json").is_file():
        return None
    store = open_feature_store(stem, backbone, writable=False)
    try:
        missing, report = still_to_embed(paths, keys, store)
        return None if len(missing) else _stored_features(store, paths, keys, report.skipped)
    finally:
        store.close()


def _stored_features(
    store: FeatureStore, paths: list[Path], keys: list[str], skipped: list[SkippedFile]
) -> tuple[np.ndarray, list[Path], list[SkippedFile]]:
    """The store's rows of the ``paths`` it has (float32, in order), those paths, ``skipped``."""
    rows = store.rows_for(keys)
    kept_at = np.flatnonzero(rows >= 0)
    return store.read(rows[kept_at]), [paths[i] for i in kept_at], skipped


def open_or_create_store(
    stem: Path, backbone: str, keys: Sequence[str], device: str | torch.device, wait_for_writer: bool = False
) -> tuple[FeatureStore, Embedder | None]:
    """The store at ``stem``, and the embedder when it had to be loaded: a new store needs
    the width. A new store takes in the rows of an old-format cache (``<stem>.npy`` +
    ``<stem>.json``) when there is one. ``wait_for_writer``: wait while another process
    writes the store (else :class:`StoreError`)."""
    if Path(f"{stem}.meta.json").is_file():
        return open_feature_store(stem, backbone, wait_for_writer=wait_for_writer), None
    embedder = load_embedder(backbone, device=device)
    store = open_feature_store(stem, backbone, embedder, wait_for_writer=wait_for_writer)
    _migrate_old_cache(stem, store, set(keys))
    return store, embedder


def _migrate_old_cache(stem: Path, store: FeatureStore, wanted: set[str]) -> None:
    """Copy the rows of the old one-file cache for files still unchanged, then drop it."""
    npy, index = stem.with_suffix(".npy"), stem.with_suffix(".json")
    if not (npy.is_file() and index.is_file()):
        return
    try:
        stamps = json.loads(index.read_text())
        old = np.load(npy, mmap_mode="r", allow_pickle=False)
        if len(stamps) == len(old) and old.ndim == 2 and old.shape[1] == store.dim:
            keys, rows = [], []
            for i, (hex_path, size, mtime_ns) in enumerate(stamps):
                key = _identity_key(bytes.fromhex(hex_path), size, mtime_ns)
                if key in wanted and key not in store:
                    keys.append(key)
                    rows.append(i)
            for start in range(0, len(rows), CHUNK):
                store.append(keys[start : start + CHUNK], np.asarray(old[rows[start : start + CHUNK]]))
    except (OSError, ValueError):
        pass  # a broken old cache is rebuilt, never trusted
    for p in (npy, index):
        p.unlink(missing_ok=True)
