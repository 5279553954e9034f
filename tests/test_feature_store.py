"""The feature store on disk: append, reopen, torn tails, one writer, readers that refresh."""

from __future__ import annotations

import os

import numpy as np
import pytest

from aeep_core.data.feature_store import StoreError, open_store


def _rows(n: int, dim: int = 6, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, dim)).astype(np.float32)


def test_rows_are_appended_found_by_key_and_read_back_after_reopening(tmp_path):
    stem = tmp_path / "s"
    a, b = _rows(5), _rows(3, seed=1)
    with open_store(stem, dim=6, writable=True, meta={"backbone": "x"}) as store:
        assert len(store) == 0 and store.features.shape == (0, 6)
        store.append([f"k{i}" for i in range(5)], a)
        store.append(["m0", "m1", "m2"], b)
        assert len(store) == 8
    store = open_store(stem)
    assert store.keys == [f"k{i}" for i in range(5)] + ["m0", "m1", "m2"]
    assert store.rows_for(["m1", "nope", "k0"]).tolist() == [6, -1, 0]
    assert store.features.dtype == np.float16 and not store.features.flags.writeable
    np.testing.assert_allclose(store.read([6, 0]), np.stack([b[1], a[0]]), rtol=1e-3, atol=1e-3)
    blocks = list(store.chunks(size=3))
    assert [first for first, _ in blocks] == [0, 3, 6]
    np.testing.assert_array_equal(np.concatenate([x for _, x in blocks]), store.features.astype(np.float32))
    with pytest.raises(StoreError, match="read-only"):
        store.append(["z"], _rows(1))


def test_a_torn_index_record_or_torn_rows_are_dropped_never_trusted(tmp_path):
    stem = tmp_path / "s"
    with open_store(stem, dim=6, writable=True) as store:
        store.append(["a", "b"], _rows(2))
        store.append(["c", "d"], _rows(2, seed=1))
    index, rows = tmp_path / "s.index", tmp_path / "s.rows"
    full_index, full_rows = index.read_bytes(), rows.read_bytes()

    index.write_bytes(full_index[:-3])  # the last record cut mid-way (kill -9 while writing it)
    assert open_store(stem).keys == ["a", "b"]

    index.write_bytes(full_index)
    rows.write_bytes(full_rows[: len(full_rows) - 5])  # rows of the last chunk incomplete
    assert open_store(stem).keys == ["a", "b"]

    torn = bytearray(full_rows)
    torn[-1] ^= 0xFF  # rows of the last chunk present but not what was written
    rows.write_bytes(bytes(torn))
    assert open_store(stem).keys == ["a", "b"]

    # A writer cuts the torn tail off and appends after the last good chunk.
    with open_store(stem, writable=True) as store:
        assert len(store) == 2 and rows.stat().st_size == 2 * 6 * 2
        store.append(["c"], _rows(1, seed=3))
    again = open_store(stem)
    assert again.keys == ["a", "b", "c"]
    np.testing.assert_allclose(again.read([2]), _rows(1, seed=3), atol=1e-3)


def test_one_writer_at_a_time_and_readers_refresh_to_see_new_chunks(tmp_path):
    stem = tmp_path / "s"
    writer = open_store(stem, dim=6, writable=True)
    with pytest.raises(StoreError, match="another process is writing"):
        open_store(stem, writable=True)
    reader = open_store(stem)
    writer.append(["a"], _rows(1))
    assert len(reader) == 0 and reader.refresh() == 1 and reader.keys == ["a"]
    assert reader.features.shape == (1, 6)
    writer.close()
    open_store(stem, writable=True).close()  # the lock went with the writer


def test_a_store_refuses_another_width_or_backbone_and_a_missing_one_says_how(tmp_path):
    stem = tmp_path / "s"
    with pytest.raises(StoreError, match="no feature store here"):
        open_store(stem)
    open_store(stem, dim=6, writable=True, meta={"backbone": "efficientnet-lite0"}).close()
    with pytest.raises(StoreError, match="width 6"):
        open_store(stem, dim=7)
    with pytest.raises(StoreError, match="backbone"):
        open_store(stem, meta={"backbone": "efficientnet-lite1"})
    with pytest.raises(ValueError, match="expected"):
        open_store(stem, writable=True).append(["a", "b"], _rows(1))


def test_a_key_appended_again_points_to_its_newest_row(tmp_path):
    with open_store(tmp_path / "s", dim=6, writable=True) as store:
        store.append(["a", "b"], _rows(2))
        store.append(["a"], _rows(1, seed=5))
        assert store.rows_for(["a", "b"]).tolist() == [2, 1]
    assert open_store(tmp_path / "s").rows_for(["a"]).tolist() == [2]
    assert os.path.getsize(tmp_path / "s.rows") == 3 * 6 * 2


def test_store_rows_serve_a_learner_its_rows_as_float32_on_demand(tmp_path):
    import torch

    from aeep_core.data.feature_store import StoreRows

    with open_store(tmp_path / "s", dim=6, writable=True) as store:
        store.append(["a", "b", "c"], _rows(3))
    store = open_store(tmp_path / "s")
    inputs = StoreRows(store, store.rows_for(["c", "a"]))  # pool order: c, then a
    assert len(inputs) == 2 and tuple(inputs.shape) == (2, 6)
    picked = inputs[torch.tensor([1, 0])]
    assert picked.dtype == torch.float32
    np.testing.assert_allclose(picked.numpy(), _rows(3)[[0, 2]], atol=1e-2)
    with pytest.raises(ValueError, match="embed those first"):
        StoreRows(store, np.array([0, -1]))
