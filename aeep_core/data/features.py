"""Photos through a frozen pretrained backbone: decoded once, embedded once, cached per item.

The pool of a photo folder is then the backbone's feature vectors (modality
``"features"``), and each round trains only the pairwise head on them. The cache keeps one
row per file (path, size, mtime): reopening a folder embeds only the files that are new or
changed, and the cache is plain numpy (memory-mapped on load, no pickle).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from aeep_core.data.backbones import PHOTO_BACKBONE, Backbone, Preprocessing, load_backbone
from aeep_core.data.images import DECODE_ERRORS, is_grey
from aeep_core.pool import SkippedFile

Progress = Callable[[int, int], None]
_BATCH = 32  # images per forward pass: big enough for the CPU's vector units, small in memory


def choose_backbone(paths: list[Path], sample: int = 64) -> str:
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


def photo_array(path: Path, prep: Preprocessing) -> np.ndarray:
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


def _normalise(batch: np.ndarray, prep: Preprocessing) -> torch.Tensor:
    x = torch.from_numpy(batch).float().div_(255.0)
    mean = torch.tensor(prep.mean).view(1, 3, 1, 1)
    std = torch.tensor(prep.std).view(1, 3, 1, 1)
    return (x - mean) / std


def _stamp(path: Path) -> list[object]:
    st = path.stat()
    return [os.fsencode(path).hex(), st.st_size, st.st_mtime_ns]


def embed_photos(
    paths: list[Path],
    backbone: str,
    cache: Path | None = None,
    progress: Progress | None = None,
    device: str | torch.device = "cpu",
) -> tuple[np.ndarray, list[Path], list[SkippedFile]]:
    """Features [N, D] (float32) of the decodable ``paths`` (in order), those paths, and
    the files skipped with their reason. ``cache``: a path stem; ``<stem>.npy`` and
    ``<stem>.json`` hold the rows of earlier runs, reused for unchanged files."""
    known: dict[tuple[object, ...], int] = {}
    old: np.ndarray | None = None
    if cache is not None and cache.with_suffix(".json").is_file() and cache.with_suffix(".npy").is_file():
        try:
            rows = json.loads(cache.with_suffix(".json").read_text())
            old = np.load(cache.with_suffix(".npy"), mmap_mode="r", allow_pickle=False)
            known = {tuple(r): i for i, r in enumerate(rows)} if len(rows) == len(old) else {}
        except (OSError, ValueError):
            known, old = {}, None  # a broken cache is rebuilt, never trusted
    model: Backbone | None = None
    prep = None
    stamps = [_stamp(p) for p in paths]
    out: list[np.ndarray | None] = [None] * len(paths)
    todo = []
    for i, s in enumerate(stamps):
        row = known.get(tuple(s))
        if row is not None and old is not None:
            out[i] = np.asarray(old[row])
        else:
            todo.append(i)
    skipped: list[SkippedFile] = []
    done = len(paths) - len(todo)
    for start in range(0, len(todo), _BATCH):
        if model is None:
            model = load_backbone(backbone).to(device)
            prep = model.preprocessing
        assert prep is not None
        chunk, arrays = [], []
        for i in todo[start : start + _BATCH]:
            try:
                arrays.append(photo_array(paths[i], prep))
                chunk.append(i)
            except DECODE_ERRORS as exc:
                skipped.append(
                    SkippedFile(str(paths[i]), f"cannot decode image ({type(exc).__name__}: {exc}); replace or remove the file")
                )
        if arrays:
            with torch.no_grad():
                feats = model.features(_normalise(np.stack(arrays), prep).to(device)).float().cpu().numpy()
            for i, f in zip(chunk, feats):
                out[i] = f
        done += len(todo[start : start + _BATCH])
        if progress is not None:
            progress(done, len(paths))
    kept = [i for i, f in enumerate(out) if f is not None]
    found = [f for f in out if f is not None]
    features = (
        np.stack(found).astype(np.float32) if found else np.zeros((0, 0 if model is None else model.feature_dim), np.float32)
    )
    if cache is not None and todo:
        _write_cache(cache, features, [stamps[i] for i in kept])
    return features, [paths[i] for i in kept], skipped


def _write_cache(cache: Path, features: np.ndarray, stamps: list[list[object]]) -> None:
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp_npy, tmp_json = cache.with_suffix(f".{os.getpid()}.tmp.npy"), cache.with_suffix(f".{os.getpid()}.tmp.json")
    np.save(tmp_npy, features, allow_pickle=False)
    tmp_json.write_text(json.dumps(stamps))
    os.replace(tmp_npy, cache.with_suffix(".npy"))
    os.replace(tmp_json, cache.with_suffix(".json"))
