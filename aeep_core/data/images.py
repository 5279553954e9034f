"""Folders of image files → a uint8 tensor at one model size, with a tensor cache."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from aeep_core.pool import SkippedFile

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff"}
# PIL raises a zoo of exception types on broken files; all of them mean "skip it".
DECODE_ERRORS = (OSError, SyntaxError, ValueError, Image.DecompressionBombError, EOFError)


@dataclass(frozen=True)
class ModelShape:
    """Channels and side length that every image of a pool is converted to."""

    channels: int
    size: int


def list_image_files(root: Path) -> list[Path]:
    """Image files below ``root`` (recursive, sorted, hidden folders and files skipped)."""
    return [Path(p) for p in list_image_names(root)]


def list_image_names(root: Path) -> list[str]:
    """:func:`list_image_files` as path strings: no ``Path`` object per file, which made
    listing 10^6 photos take most of a minute."""
    found = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_SUFFIXES:
                found.append(os.path.join(dirpath, name))
    return found


def to_array(img: Image.Image, channels: int) -> np.ndarray:
    """Convert any PIL mode (grey, RGB, RGBA, palette, 16-bit) to uint8 ``[H, W, channels]``."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        a = np.asarray(img, dtype=np.float64)
        lo, hi = float(a.min()), float(a.max())
        a = (a - lo) / (hi - lo) * 255.0 if hi > lo else np.zeros_like(a)
        img = Image.fromarray(a.astype(np.uint8), mode="L")
    if img.mode == "P" or img.mode == "PA" or img.mode == "LA":
        img = img.convert("RGBA")
    if img.mode == "RGBA":
        # Transparent pixels become black: the background of MNIST-like data.
        background = Image.new("RGBA", img.size, (0, 0, 0, 255))
        img = Image.alpha_composite(background, img)
    img = img.convert("L" if channels == 1 else "RGB")
    a = np.asarray(img, dtype=np.uint8)
    return a[:, :, None] if a.ndim == 2 else a


def is_grey(img: Image.Image) -> bool:
    if img.mode in ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"):
        return True
    if img.mode == "P":
        img = img.convert("RGB")
    if img.mode in ("RGB", "RGBA"):
        small = np.asarray(img.convert("RGB").resize((16, 16)), dtype=np.int16)
        return bool(np.abs(small[..., 0] - small[..., 1]).max() <= 8 and np.abs(small[..., 1] - small[..., 2]).max() <= 8)
    return False


def choose_shape(sizes: list[tuple[int, int]], greys: list[bool]) -> ModelShape:
    """Pick the model input from the data: grey if every image is grey, side = median
    short side clamped to [16, 64] and rounded to a multiple of 4 (two 2×2 pools)."""
    short = sorted(min(w, h) for w, h in sizes)
    side = short[len(short) // 2]
    side = int(min(64, max(16, round(side / 4) * 4)))
    return ModelShape(1 if all(greys) else 3, side)


def _probe(path: Path) -> tuple[tuple[int, int], bool] | str:
    try:
        with Image.open(path) as img:
            img.load()
            return img.size, is_grey(img)
    except DECODE_ERRORS as exc:
        return f"cannot decode image ({type(exc).__name__}: {exc}); replace or remove the file"


def _load(path: Path, shape: ModelShape) -> np.ndarray:
    with Image.open(path) as img:
        img.load()
        # convert first: resizing works on every mode once it is 8-bit L or RGB
        a = to_array(ImageOps.exif_transpose(img), shape.channels)
    if a.shape[:2] != (shape.size, shape.size):
        # pad (not crop): the whole object stays visible to the model
        small = ImageOps.pad(Image.fromarray(a[:, :, 0] if shape.channels == 1 else a), (shape.size, shape.size))
        a = np.asarray(small, dtype=np.uint8)
        a = a[:, :, None] if a.ndim == 2 else a
    return a


def decode_image(path: Path, shape: ModelShape) -> np.ndarray:
    """One image file as uint8 ``[C, S, S]``, decoded exactly as a pool's images are (the
    same conversion, orientation and padding), so a model exported from a project sees
    new files the way it saw its training data. Raises OSError/ValueError on a broken file."""
    try:
        return _load(Path(path), shape).transpose(2, 0, 1).copy()
    except DECODE_ERRORS as exc:
        raise ValueError(f"cannot decode image ({type(exc).__name__})") from exc  # PIL's text repeats the path


def load_image_files(
    paths: list[Path], cache_prefix: Path | None = None, progress: Callable[[int, int], None] | None = None
) -> tuple[torch.Tensor, list[Path], list[SkippedFile]]:
    """Decode ``paths`` into one uint8 tensor ``[N, C, S, S]``; broken files are skipped.

    The result is cached in ``<cache_prefix>-<key>.pt``, the key made of the paths, sizes
    and mtimes, so reopening a folder does not decode it again; the folder's older caches
    (other keys, same prefix) are superseded and deleted. Caches are read with
    ``weights_only=True``: tensors and plain values, never code.
    """
    key = hashlib.sha256()
    for p in paths:
        st = p.stat()
        # fsencode: any name the file system allows, undecodable bytes included
        key.update(os.fsencode(p) + f"\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    cache = cache_prefix.with_name(f"{cache_prefix.name}-{key.hexdigest()[:24]}.pt") if cache_prefix else None
    if cache is not None and cache.exists():
        try:
            saved = torch.load(cache, weights_only=True)
            return saved["inputs"], [Path(p) for p in saved["paths"]], [SkippedFile(*s) for s in saved["skipped"]]
        except Exception:  # a broken cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)

    skipped: list[SkippedFile] = []
    good: list[Path] = []
    sizes, greys = [], []
    for i, p in enumerate(paths):
        probed = _probe(p)
        if isinstance(probed, str):
            skipped.append(SkippedFile(str(p), probed))
        else:
            good.append(p)
            sizes.append(probed[0])
            greys.append(probed[1])
        if progress:
            progress(i + 1, 2 * len(paths))
    if not good:
        return torch.empty(0, 1, 28, 28, dtype=torch.uint8), [], skipped
    shape = choose_shape(sizes, greys)
    out = np.empty((len(good), shape.size, shape.size, shape.channels), dtype=np.uint8)
    kept: list[Path] = []
    for i, p in enumerate(good):
        try:
            out[len(kept)] = _load(p, shape)
            kept.append(p)
        except DECODE_ERRORS as exc:
            skipped.append(SkippedFile(str(p), f"cannot decode image ({exc}); replace or remove the file"))
        if progress:
            progress(len(paths) + i + 1, 2 * len(paths))
    inputs = torch.from_numpy(out[: len(kept)]).permute(0, 3, 1, 2).contiguous()
    if cache is not None and cache_prefix is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        # one temporary file per process: two processes decoding the same folder at once
        # (bench --jobs 2) both wrote ".tmp", and the second rename found it gone
        tmp = cache.with_name(f".{cache.name}.{os.getpid()}.tmp")
        torch.save({"inputs": inputs, "paths": [str(p) for p in kept], "skipped": [(s.path, s.reason) for s in skipped]}, tmp)
        os.replace(tmp, cache)
        for old in cache.parent.glob(f"{cache_prefix.name}-*.pt"):
            if old != cache:
                old.unlink(missing_ok=True)
    return inputs, kept, skipped
