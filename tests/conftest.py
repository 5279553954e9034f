"""Shared fixtures: small generated data, and the path to the real data when present."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.postgres_fixture import omop_database, postgres_cluster  # noqa: F401 -- the PostgreSQL fixtures

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(autouse=True)
def _one_thread():
    """Tiny test models gain nothing from a second thread, and lose much when the cores
    are shared; tests that train real-size models raise it themselves."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory, monkeypatch):
    """Caches and projects of a test never touch the user's real data directories."""
    monkeypatch.setenv("AEEP_TUI_HOME", str(tmp_path_factory.mktemp("home")))


def shapes_image(cls: int, rng: np.random.Generator, size: int = 28) -> np.ndarray:
    """A grey 28x28 image of class ``cls``: 0 = horizontal bar, 1 = vertical bar, 2 = square
    outline, 3 = diagonal; randomly placed, with noise, so classes are learnable but not trivial."""
    img = np.zeros((size, size), dtype=np.float32)
    o = rng.integers(-4, 5, size=2)
    c = size // 2
    if cls == 0:
        img[c + o[0] - 2 : c + o[0] + 2, 6:22] = 1
    elif cls == 1:
        img[6:22, c + o[1] - 2 : c + o[1] + 2] = 1
    elif cls == 2:
        img[8 + o[0] : 20 + o[0], 8 + o[1] : 20 + o[1]] = 1
        img[11 + o[0] : 17 + o[0], 11 + o[1] : 17 + o[1]] = 0
    else:
        for i in range(16):
            img[6 + i, np.clip(6 + i + o[1], 0, size - 1)] = 1
            img[6 + i, np.clip(7 + i + o[1], 0, size - 1)] = 1
    img += rng.normal(0, 0.08, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def make_image_folder(root: Path, per_class: int = 30, n_classes: int = 3, seed: int = 0) -> Path:
    """Class-named subfolders of generated PNGs."""
    rng = np.random.default_rng(seed)
    for c in range(n_classes):
        d = root / f"class{c}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            Image.fromarray(shapes_image(c, rng)).save(d / f"{i:03d}.png")
    return root


def write_idx(path: Path, array: np.ndarray) -> None:
    """Write an IDX file (uint8), gzipped when the name ends in .gz."""
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    (gzip.open if path.name.endswith(".gz") else open)(path, "wb").write(data)


def make_idx_folder(root: Path, n_train: int = 80, n_test: int = 40) -> Path:
    """An MNIST-style IDX folder of generated shapes (3 classes), with its t10k test set."""
    rng = np.random.default_rng(0)
    root.mkdir()
    for name, n in (("train", n_train), ("t10k", n_test)):
        y = np.arange(n) % 3
        x = np.stack([shapes_image(int(c), rng) for c in y])
        write_idx(root / f"{name}-images-idx3-ubyte.gz", x)
        write_idx(root / f"{name}-labels-idx1-ubyte.gz", y.astype(np.uint8))
    return root


@pytest.fixture
def image_folder(tmp_path) -> Path:
    return make_image_folder(tmp_path / "images")


@pytest.fixture
def shared_mnist() -> Path:
    path = SHARED_DATA / "mnist"
    if not (path / "train-images-idx3-ubyte.gz").exists():
        pytest.skip(f"real MNIST not found at {path} (the ../shared checkout is absent)")
    return path
