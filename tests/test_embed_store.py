"""Embedding into the feature store: resumable chunk by chunk, and kill -9 mid-embedding."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from aeep_core.data.embedders import load_embedder
from aeep_core.data.feature_store import open_store
from aeep_core.data.features import (
    decode_photos,
    embed_arrays,
    embed_into_store,
    embed_photos,
    file_key,
    open_feature_store,
)

BACKBONE = "efficientnet-lite0"  # the faster shipped variant: these tests are about the store


def _photos(root: Path, n: int) -> list[Path]:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        a = np.clip(rng.normal(128, 60, (48, 64, 3)), 0, 255).astype(np.uint8)
        paths.append(root / f"{i:03d}.jpg")
        Image.fromarray(a).save(paths[-1])
    return paths


def test_embedding_stops_between_chunks_and_resumes_where_it_stopped(tmp_path):
    paths = _photos(tmp_path / "p", 10)
    (tmp_path / "p" / "bad.jpg").write_bytes(b"not a jpeg")
    paths.insert(3, tmp_path / "p" / "bad.jpg")
    embedder = load_embedder(BACKBONE, device="cpu")
    calls: list[tuple[int, int]] = []
    with open_feature_store(tmp_path / "s", BACKBONE, embedder) as store:
        first = embed_into_store(paths, store, embedder, chunk=4, should_stop=lambda: len(store) >= 4)
        assert first.stopped and first.embedded == 3 + 4 and len(store) == 7  # the bad file counts in chunk 1
        second = embed_into_store(paths, store, embedder, chunk=4, progress=lambda d, t: calls.append((d, t)))
    assert not second.stopped and second.present == 7 and second.embedded == 3
    assert [s.path.endswith("bad.jpg") for s in second.skipped] == [True]
    assert calls[0] == (8, 11) and calls[-1] == (11, 11)  # the bad file is not retried
    # Chunked and resumed, the rows are the photos' own features (float16 in the store).
    store = open_store(tmp_path / "s")
    good = [p for p in paths if p.name != "bad.jpg"]
    images, _, _ = decode_photos(good, embedder.preprocessing)
    direct = embed_arrays(embedder, images)
    stored = store.read(store.rows_for([file_key(p) for p in good]))
    cos = (stored * direct).sum(1) / np.linalg.norm(stored, axis=1) / np.linalg.norm(direct, axis=1)
    assert cos.min() > 0.9999


def test_embed_photos_keeps_its_results_and_reuses_the_store(tmp_path):
    paths = _photos(tmp_path / "p", 5)
    feats, kept, skipped = embed_photos(paths, BACKBONE, tmp_path / "cache")
    assert feats.dtype == np.float32 and feats.shape == (5, 1600) and kept == paths and skipped == []
    os.utime(paths[0], ns=(0, 0))  # a changed file gets a new key and is embedded again
    again, _, _ = embed_photos(paths, BACKBONE, tmp_path / "cache")
    np.testing.assert_allclose(again, feats, atol=2e-3)
    assert len(open_store(tmp_path / "cache")) == 6
    unstored, _, _ = embed_photos(paths, BACKBONE)
    np.testing.assert_allclose(unstored, feats, rtol=2e-3, atol=2e-2)


def test_a_complete_store_is_read_while_another_process_writes_it(tmp_path):
    """A second reader of a folder already embedded (a second bench job) reads without
    the writer's lock; one with files still to embed waits for the writer, then embeds
    only what it left."""
    import threading

    paths = _photos(tmp_path / "p", 6)
    first, _, _ = embed_photos(paths[:4], BACKBONE, tmp_path / "cache")
    writer = open_feature_store(tmp_path / "cache", BACKBONE)  # holds the writer's lock
    try:
        again, kept, _ = embed_photos(paths[:4], BACKBONE, tmp_path / "cache")  # would raise if it asked for the lock
        np.testing.assert_array_equal(again, first)
        assert kept == paths[:4]
        result: list = []
        waiting = threading.Thread(target=lambda: result.append(embed_photos(paths, BACKBONE, tmp_path / "cache")))
        waiting.start()
        waiting.join(1.0)
        assert waiting.is_alive() and not result  # two files are missing: it waits for the writer
    finally:
        writer.close()
    waiting.join(60)
    feats, kept, _ = result[0]
    assert feats.shape == (6, 1600) and kept == paths
    np.testing.assert_array_equal(feats[:4], first)
    assert len(open_store(tmp_path / "cache")) == 6


_WORKER = """
import sys, time
from pathlib import Path
from aeep_core.data.embedders import load_embedder
from aeep_core.data.features import embed_into_store, open_feature_store
paths = [Path(p) for p in sys.argv[2:]]
embedder = load_embedder("efficientnet-lite0", device="cpu")
with open_feature_store(Path(sys.argv[1]), "efficientnet-lite0", embedder) as store:
    # the pause between chunks stands for a slow machine: the kill lands mid-embedding
    embed_into_store(paths, store, embedder, chunk=4, progress=lambda d, t: time.sleep(0.3))
"""


def test_kill_9_mid_embedding_loses_at_most_the_chunk_in_flight(tmp_path):
    paths = _photos(tmp_path / "p", 24)
    stem = tmp_path / "store"
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    worker = subprocess.Popen([sys.executable, "-c", _WORKER, str(stem), *map(str, paths)], env=env)
    deadline = time.monotonic() + 60
    committed = 0
    while time.monotonic() < deadline and committed < 8:
        time.sleep(0.05)
        if (tmp_path / "store.meta.json").exists():
            committed = len(open_store(stem))
    os.kill(worker.pid, signal.SIGKILL)
    assert worker.wait() == -signal.SIGKILL, "the worker finished before the kill; the test proves nothing"
    before = open_store(stem)
    assert 8 <= len(before) < 24 and len(before) % 4 == 0  # whole chunks only
    with open_feature_store(stem, BACKBONE, load_embedder(BACKBONE, device="cpu")) as store:
        report = embed_into_store(paths, store, BACKBONE, chunk=4)
        assert report.present == len(before) and report.embedded == 24 - len(before)
        assert len(store) == 24 and sorted(store.keys) == sorted(file_key(p) for p in paths)  # none twice


def test_the_onnx_backend_gives_torchs_features_and_caches_its_export(tmp_path):
    import pytest

    pytest.importorskip("onnxruntime", reason="onnxruntime is not installed: pip install 'aeep-tui[onnx]'")
    from aeep_core import locations

    paths = _photos(tmp_path / "p", 8)
    torch_embedder = load_embedder(BACKBONE, backend="torch", device="cpu")
    onnx_embedder = load_embedder(BACKBONE, backend="onnx", device="cpu")
    assert locations.exported_backbone(BACKBONE, "onnx").is_file()
    images, _, _ = decode_photos(paths, torch_embedder.preprocessing)
    a, b = embed_arrays(torch_embedder, images), embed_arrays(onnx_embedder, images)
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    assert onnx_embedder.feature_dim == a.shape[1] and cos.min() >= 0.999
    np.testing.assert_allclose(b, a, atol=1e-3)


def test_an_old_one_file_cache_is_taken_in_without_embedding_again(tmp_path, monkeypatch):
    import json
    import os

    from aeep_core.data import features

    paths = _photos(tmp_path / "p", 4)
    old = np.random.default_rng(3).random((4, 1600)).astype(np.float32)
    stem = tmp_path / "cache"
    stamps = [[os.fsencode(p).hex(), p.stat().st_size, p.stat().st_mtime_ns] for p in paths]
    np.save(stem.with_suffix(".npy"), old[[0, 1, 3]])
    stem.with_suffix(".json").write_text(json.dumps([stamps[0], stamps[1], stamps[3]]))  # one file new since
    decoded: list[Path] = []
    real = features.photo_array
    monkeypatch.setattr(features, "photo_array", lambda p, prep: decoded.append(p) or real(p, prep))
    feats, kept, _ = embed_photos(paths, BACKBONE, stem)
    assert decoded == [paths[2]] and kept == paths  # only the new file was embedded
    np.testing.assert_allclose(feats[[0, 1, 3]], old[[0, 1, 3]], atol=1e-3)
    assert not stem.with_suffix(".npy").exists() and not stem.with_suffix(".json").exists()
