import os

import numpy as np
import pytest
import torch
from PIL import Image

from aeep_core import locations
from aeep_core.data import DataError, load_dataset, load_pool
from aeep_core.data.idx import read_idx
from tests.conftest import make_image_folder, shapes_image, write_idx


def test_idx_round_trip_plain_and_gzip(tmp_path):
    x = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        write_idx(tmp_path / name, x)
        np.testing.assert_array_equal(read_idx(tmp_path / name), x)


def test_idx_truncated_file_is_a_clear_error(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28), np.uint8))
    p = tmp_path / "train-images-idx3-ubyte"
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(DataError, match="train-images-idx3-ubyte.*truncated"):
        read_idx(p)


def test_idx_folder_gives_pool_and_test(tmp_path):
    rng = np.random.default_rng(0)
    write_idx(tmp_path / "train-images-idx3-ubyte.gz", rng.integers(0, 255, (50, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte.gz", np.arange(50) % 10)
    write_idx(tmp_path / "t10k-images-idx3-ubyte.gz", rng.integers(0, 255, (20, 28, 28)))
    write_idx(tmp_path / "t10k-labels-idx1-ubyte.gz", np.arange(20) % 10)
    ds = load_dataset(tmp_path)
    assert len(ds.pool) == 50 and len(ds.test) == 20
    assert ds.pool.inputs.shape == (50, 1, 28, 28)
    assert ds.pool.labels.tolist() == (np.arange(50) % 10).tolist()
    assert ds.pool.n_classes == 10


def test_idx_label_count_mismatch_names_the_file(tmp_path):
    write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((5, 28, 28)))
    write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(4))
    with pytest.raises(DataError, match="train-labels-idx1-ubyte"):
        load_dataset(tmp_path)


def test_folder_labels_from_subfolders_and_corrupt_file_skipped(tmp_path):
    root = make_image_folder(tmp_path / "d", per_class=4, n_classes=2)
    (root / "class1" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (root / "notes.txt").write_text("ignored")
    pool = load_pool(root)
    assert len(pool) == 8
    assert pool.class_names == ["class0", "class1"]
    assert sorted(np.bincount(pool.labels).tolist()) == [4, 4]
    assert len(pool.skipped) == 1 and "broken.png" in pool.skipped[0].path
    assert "cannot decode" in pool.skipped[0].reason


def test_every_image_mode_is_converted(tmp_path):
    rng = np.random.default_rng(1)
    grey = shapes_image(0, rng)
    root = tmp_path / "modes"
    root.mkdir()
    Image.fromarray(grey).save(root / "grey.png")
    Image.fromarray(grey).convert("RGB").save(root / "rgb.jpg")
    Image.fromarray(grey).convert("RGBA").save(root / "rgba.png")
    Image.fromarray(grey).convert("P").save(root / "palette.gif")
    Image.fromarray(grey.astype(np.uint16) * 257).save(root / "deep.tif")
    Image.fromarray(grey).save(root / "w.webp")
    Image.fromarray(grey).convert("RGB").save(root / "b.bmp")
    pool = load_pool(root)
    assert len(pool) == 7 and not pool.skipped
    assert pool.inputs.shape == (7, 1, 28, 28)  # all grey -> one channel at 28
    # every conversion keeps the drawing: bright bar where the original is bright
    for i in range(7):
        assert np.corrcoef(pool.inputs[i, 0].numpy().ravel().astype(float), grey.ravel().astype(float))[0, 1] > 0.9


def test_large_16_bit_images_are_resized(tmp_path):
    root = tmp_path / "deep"
    root.mkdir()
    for i in range(2):
        a = np.zeros((120, 90), np.uint16)
        a[40:80, 30:60] = 60000
        Image.fromarray(a).save(root / f"{i}.png")
    pool = load_pool(root, backbone="cnn")  # the CNN's decoding (auto would embed photos)
    assert pool.inputs.shape == (2, 1, 64, 64)  # short side 90 is clamped to 64
    assert pool.inputs.max() == 255 and pool.inputs.min() == 0


def test_colour_and_large_images_pick_rgb_and_a_bounded_side(tmp_path):
    root = tmp_path / "colour"
    root.mkdir()
    for i in range(3):
        a = np.zeros((200, 300, 3), np.uint8)
        a[..., i] = 200
        Image.fromarray(a).save(root / f"{i}.png")
    pool = load_pool(root, backbone="cnn")
    assert pool.inputs.shape == (3, 3, 64, 64)
    assert pool.labels is None  # no class subfolders: nothing is known


def test_empty_folder_and_missing_folder_are_clear_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images found"):
        load_pool(tmp_path / "empty")
    with pytest.raises(DataError, match="no such folder"):
        load_pool(tmp_path / "nope")


def test_only_corrupt_files_is_a_clear_error(tmp_path):
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "x.jpg").write_bytes(b"garbage")
    with pytest.raises(DataError, match="could be decoded"):
        load_pool(tmp_path / "bad")


def test_test_split_is_stratified_and_disjoint(image_folder):
    ds = load_dataset(image_folder, test_split=0.2, seed=3)
    assert len(ds.test) == 18 and len(ds.pool) == 72
    assert np.bincount(ds.test.labels).tolist() == [6, 6, 6]
    assert not set(ds.test.names) & set(ds.pool.names)


def test_second_load_uses_the_tensor_cache(image_folder, monkeypatch):
    first = load_pool(image_folder)
    import aeep_core.data.images as images

    monkeypatch.setattr(images, "_load", lambda *a: (_ for _ in ()).throw(AssertionError("decoded again")))
    again = load_pool(image_folder)
    assert (again.inputs == first.inputs).all()


def _load_after(barrier, folder) -> int:
    barrier.wait()
    return len(load_pool(folder))


def test_processes_decoding_one_folder_at_once_each_get_it(tmp_path):
    """bench --jobs 2 on a photo folder: both workers decoded a cold cache and wrote the same
    temporary file; the second rename failed (FileNotFoundError) and the bench stopped."""
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    folder = make_image_folder(tmp_path / "images", per_class=40, n_classes=3)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Manager() as manager, ProcessPoolExecutor(4, mp_context=ctx) as pool:
        for _ in range(6):  # a race: each cold start collided about one time in three before the fix
            for cached in locations.image_caches(folder):
                cached.unlink()
            barrier = manager.Barrier(4)
            loads = [pool.submit(_load_after, barrier, folder) for _ in range(4)]
            assert [f.result(timeout=120) for f in loads] == [120] * 4
    assert len([p for p in locations.image_caches(folder) if p.suffix == ".pt"]) == 1


def test_the_cache_holds_no_code_and_a_changed_folder_supersedes_it(image_folder):
    load_pool(image_folder)
    (cache,) = locations.image_caches(image_folder)
    torch.load(cache, weights_only=True)  # tensors and plain values only: loads without unpickling code
    Image.new("L", (28, 28), 7).save(image_folder / "class0" / "new.png")
    assert len(load_pool(image_folder)) == 91
    (newer,) = locations.image_caches(image_folder)  # one cache per folder: the old one is gone
    assert newer != cache and not cache.exists()


def test_a_file_name_that_is_not_utf8_loads(tmp_path):
    folder = make_image_folder(tmp_path / "odd", per_class=3)
    odd = os.fsdecode(b"class0/caf\xe9.png")  # Latin-1 bytes: not valid UTF-8
    Image.new("L", (28, 28), 200).save(folder / odd)
    pool = load_pool(folder)
    assert len(pool) == 10 and any(name.endswith(odd.split("/")[1]) for name in pool.names)


def test_a_missing_extra_is_one_line_naming_it(monkeypatch):
    import sys

    from aeep_core.extras import MissingExtra, require

    for name in ("gensim", "gensim.models"):  # as if the extra were not installed
        monkeypatch.setitem(sys.modules, name, None)
    with pytest.raises(MissingExtra, match=r"pip install 'aeep-tui\[sequences\]'"):
        require("gensim.models", "sequences", "reading medical event sequences")
