"""``aeep-tui embed``: the local path fills the store that loading reads, and ``--ray`` on
a local Ray cluster fills it with the same features."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from aeep_core import locations
from aeep_core.data import load_dataset
from aeep_core.data.feature_store import open_store
from aeep_core.data.features import file_key
from aeep_tui.cli import main

BACKBONE = "efficientnet-lite0"


def _folder(root, n=6):
    rng = np.random.default_rng(1)
    for i in range(n):
        (root / f"c{i % 2}").mkdir(parents=True, exist_ok=True)
        a = np.clip(rng.normal(120, 50, (40, 56, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(a).save(root / f"c{i % 2}" / f"{i}.jpg")
    (root / "c0" / "broken.jpg").write_bytes(b"no")
    return root


def test_embed_fills_the_store_that_loading_then_reads_without_embedding(tmp_path, capsys, monkeypatch):
    folder = _folder(tmp_path / "photos")
    assert main(["embed", str(folder), "--backbone", BACKBONE, "--chunk", "4"]) == 0
    out = capsys.readouterr()
    assert "6 photos embedded, 0 already stored, 1 skipped" in out.out and "embedded 7 of 7" in out.err
    store = open_store(locations.feature_store(folder, BACKBONE))
    assert len(store) == 6

    from aeep_core.data import features

    monkeypatch.setattr(features, "load_embedder", lambda *a, **k: pytest.fail("loading embedded again"))
    pool = load_dataset(folder, backbone=BACKBONE).pool
    assert len(pool) == 6 and pool.modality == "features"
    assert main(["embed", str(folder), "--backbone", BACKBONE]) == 0
    assert "0 photos embedded, 6 already stored" in capsys.readouterr().out


def test_embed_refuses_digits_and_unknown_backbones_in_one_line(tmp_path, capsys):
    from tests.conftest import make_image_folder

    digits = make_image_folder(tmp_path / "digits", per_class=2)
    assert main(["embed", str(digits)]) == 2
    assert "nothing to embed" in capsys.readouterr().err
    assert main(["embed", str(_folder(tmp_path / "p")), "--backbone", "nope"]) == 2
    assert "unknown backbone" in capsys.readouterr().err


@pytest.fixture(scope="module")
def ray_local():
    """A local Ray cluster of 2 CPUs (reused when this process already runs one)."""
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'aeep-tui[cluster]'")
    from aeep_core.data.ray_embed import local_runtime_env

    started = not ray.is_initialized()
    if started:
        ray.init(num_cpus=2, include_dashboard=False, runtime_env=local_runtime_env(), log_to_driver=False)
    yield ray
    if started:
        ray.shutdown()


def test_ray_embedding_gives_the_local_features(ray_local, tmp_path, capsys, monkeypatch):
    folder = _folder(tmp_path / "photos")
    local_home, ray_home = tmp_path / "local", tmp_path / "ray"
    monkeypatch.setenv("AEEP_TUI_HOME", str(local_home))
    assert main(["embed", str(folder), "--backbone", BACKBONE]) == 0
    local = open_store(locations.feature_store(folder, BACKBONE))
    monkeypatch.setenv("AEEP_TUI_HOME", str(ray_home))
    assert main(["embed", str(folder), "--backbone", BACKBONE, "--ray", "--actors", "1", "--chunk", "4"]) == 0
    assert "6 photos embedded, 0 already stored, 1 skipped" in capsys.readouterr().out
    remote = open_store(locations.feature_store(folder, BACKBONE))
    keys = [file_key(p) for p in sorted(folder.rglob("[0-9].jpg"))]
    assert (remote.rows_for(keys) >= 0).all()
    np.testing.assert_allclose(remote.read(remote.rows_for(keys)), local.read(local.rows_for(keys)), rtol=1e-3, atol=1e-3)


def test_a_second_writer_gets_one_line_naming_the_store(tmp_path, capsys):
    from aeep_core.data.embedders import load_embedder
    from aeep_core.data.features import open_feature_store

    folder = _folder(tmp_path / "photos", n=2)
    stem = locations.feature_store(folder, BACKBONE)
    with open_feature_store(stem, BACKBONE, load_embedder(BACKBONE, device="cpu")):  # e.g. the app embedding
        assert main(["embed", str(folder), "--backbone", BACKBONE]) == 2
    err = capsys.readouterr().err
    assert "another process is writing this feature store" in err and str(stem) in err and "\n" not in err.strip()
