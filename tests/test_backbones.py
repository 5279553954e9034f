"""Photos through the pretrained backbone: real weights, the feature pool, its cache, auto."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aeep_core import locations
from aeep_core.data import features as features_module
from aeep_core.data import load_dataset
from aeep_core.data.backbones import BACKBONES, PHOTO_BACKBONE, Preprocessing, load_backbone
from aeep_core.data.efficientnet_lite import VARIANTS, EfficientNetLite, SamePadConv, shipped_state_dict
from aeep_core.data.features import choose_backbone, photo_array
from aeep_core.learning.model import build_model
from aeep_core.session import ProjectSettings
from tests.conftest import SHARED_DATA, make_image_folder

DAISY = 985  # ImageNet's "daisy"


def _photo_folder(root: Path, per_class: int = 4) -> Path:
    """Colour 'photos' of two kinds, larger than the CNN would use."""
    rng = np.random.default_rng(0)
    for c, colour in enumerate([(200, 40, 40), (40, 40, 200)]):
        (root / f"kind{c}").mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            a = np.clip(np.array(colour) + rng.normal(0, 25, (120, 160, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(a).save(root / f"kind{c}" / f"{i}.jpg")
    return root


@pytest.mark.parametrize("name", BACKBONES)
def test_the_shipped_imagenet_weights_are_loaded_and_see_daisies(name):
    folder = SHARED_DATA / "photos" / "flowers" / "daisy"
    if not folder.is_dir():
        pytest.skip(f"real flower photos not found at {folder} (the ../shared checkout is absent)")
    model = load_backbone(name)
    prep = model.preprocessing
    x = torch.from_numpy(np.stack([photo_array(p, prep) for p in sorted(folder.glob("*.jpg"))[:6]])).float() / 255
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    with torch.no_grad():
        top = model(x).argmax(1)
    assert (top == DAISY).sum() >= 4  # random weights would name a daisy 1 time in 1,000


@pytest.mark.parametrize("name", BACKBONES)
def test_extraction_folds_batch_norm_without_changing_the_features(name):
    """The prepared network (batch norm folded, channels-last) computes what the network
    as trained computes, and its layout is read correctly off the shipped weights."""
    trained = load_backbone(name)
    assert isinstance(trained, EfficientNetLite)
    size = VARIANTS[name][2]
    reference = EfficientNetLite.from_state_dict(shipped_state_dict(name), size)  # not folded
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in trained.modules())
    assert trained.preprocessing.size == size
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(trained.features(x), reference.features(x), atol=1e-4, rtol=1e-4)


def test_same_padding_matches_tensorflow_at_every_stride():
    """TensorFlow's "same": output ceil(in / stride), the extra pixel of an even input on the
    bottom and right; the stride-1 shortcut (symmetric padding, no copy) must agree."""
    torch.manual_seed(0)
    for stride, kernel, side in [(1, 3, 9), (1, 5, 8), (2, 3, 8), (2, 5, 9)]:
        conv = SamePadConv(2, 2, kernel, stride=stride, bias=False)
        x = torch.randn(1, 2, side, side)
        total = max((-(-side // stride) - 1) * stride + kernel - side, 0)
        padded = torch.nn.functional.pad(x, [total // 2, total - total // 2] * 2)
        expected = torch.nn.functional.conv2d(padded, conv.weight, stride=stride)
        with torch.no_grad():
            got = conv(x)
        assert got.shape[-1] == -(-side // stride)
        torch.testing.assert_close(got, expected)


def test_a_photo_is_oriented_cropped_and_decoded_cheaply(tmp_path):
    big = np.zeros((1944, 2592, 3), np.uint8)
    big[:, :1296] = 255  # left half white
    exif = Image.Exif()
    exif[0x0112] = 6  # "rotate 90° clockwise to view": the left half becomes the top
    Image.fromarray(big).save(tmp_path / "big.jpg", exif=exif, quality=90)
    a = photo_array(tmp_path / "big.jpg", Preprocessing(224, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5)))
    assert a.shape == (3, 224, 224) and a.dtype == np.uint8
    assert a[:, :100].mean() > 200 and a[:, -100:].mean() < 50  # white on top after EXIF rotation


def test_photo_folders_become_feature_pools_cached_per_file(tmp_path, monkeypatch):
    folder = _photo_folder(tmp_path / "photos")
    pool = load_dataset(folder, backbone="auto").pool
    assert pool.modality == "features" and tuple(pool.inputs.shape) == (8, EfficientNetLite.head_channels + 320)
    assert pool.meta["backbone"] == PHOTO_BACKBONE and pool.class_names == ["kind0", "kind1"]
    model = build_model(pool.inputs, pool.modality, 2)  # the pairwise head: (logits, phi)
    logits, phi = model(pool.inputs)
    assert logits.shape == (8, 2) and phi.shape[0] == 8

    # Reopening embeds only what changed: one new file, one broken file.
    Image.fromarray(np.full((90, 90, 3), 128, np.uint8)).save(folder / "kind0" / "new.jpg")
    (folder / "kind1" / "broken.jpg").write_bytes(b"not a jpeg")
    seen: list[int] = []
    real = features_module.photo_array
    monkeypatch.setattr(features_module, "photo_array", lambda p, prep: seen.append(1) or real(p, prep))
    again = load_dataset(folder, backbone="auto").pool
    assert len(seen) == 2 and len(again) == 9  # the new file and the broken one; 8 rows reused
    assert [s.path.endswith("broken.jpg") for s in again.skipped] == [True]
    index = {n: i for i, n in enumerate(again.names)}
    assert torch.equal(again.inputs[index["kind0/0.jpg"]], pool.inputs[pool.names.index("kind0/0.jpg")])
    assert any(p.suffix == ".rows" for p in locations.image_caches(folder))


def test_auto_keeps_the_cnn_for_small_grey_images(tmp_path):
    digits = make_image_folder(tmp_path / "digits", per_class=3)  # 28x28 grey
    assert choose_backbone(sorted(digits.rglob("*.png"))) == "cnn"
    assert load_dataset(digits).pool.modality == "image"
    assert choose_backbone(sorted(_photo_folder(tmp_path / "p").rglob("*.jpg"))) == PHOTO_BACKBONE


def test_projects_store_the_resolved_backbone_and_old_projects_keep_the_cnn():
    old = ProjectSettings.from_dict({"classes": ["a", "b"], "keys": ["1", "2"]})
    assert old.backbone == "cnn"
    with pytest.raises(ValueError, match="unknown backbone"):
        ProjectSettings(["a", "b"], ["1", "2"], backbone="vgg").validate()


def test_a_photo_project_trains_the_head_and_keeps_its_backbone(tmp_path):
    from aeep_core.session import LabellingSession

    folder = _photo_folder(tmp_path / "photos", per_class=6)
    settings = ProjectSettings(
        ["kind0", "kind1"], ["1", "2"], batch_size=4, device="cpu", train={"min_steps": 20, "max_steps": 20}
    )
    with LabellingSession.open(folder, settings, project_dir=tmp_path / "p") as s:
        assert s.settings.backbone == PHOTO_BACKBONE  # "auto", resolved and stored
        for _ in range(2):
            batch = s.prepare_next_batch()
            for pos, it in enumerate(batch.items):
                s.label(pos, int(s.pool.labels[it.item_id]))
            s.confirm_batch()
        batch = s.prepare_next_batch()
        assert all(it.predicted is not None for it in batch.items)
        assert s.stats.model == f"head on {PHOTO_BACKBONE}"
    with LabellingSession.open(folder, project_dir=tmp_path / "p") as s:
        assert s.settings.backbone == PHOTO_BACKBONE and s.pool.modality == "features"
        assert s.learner.model is not None  # the head's checkpoint fits the feature pool


def test_a_photo_projects_model_exports_with_its_backbone_and_predicts_like_the_app(tmp_path, capsys):
    import json

    from aeep_core.session import LabellingSession
    from aeep_tui.cli import main

    folder = _photo_folder(tmp_path / "photos", per_class=6)
    settings = ProjectSettings(
        ["kind0", "kind1"], ["1", "2"], batch_size=4, device="cpu", train={"min_steps": 20, "max_steps": 20}
    )
    with LabellingSession.open(folder, settings) as s:
        for _ in range(2):
            batch = s.prepare_next_batch()
            for pos, it in enumerate(batch.items):
                s.label(pos, int(s.pool.labels[it.item_id]))
            s.confirm_batch()
        shown = {str(folder.resolve() / it.name): (it.predicted, it.confidence) for it in s.prepare_next_batch().items}
    model = tmp_path / "model.pt"
    assert main(["model", "export", str(folder), "--out", str(model)]) == 0
    assert json.loads(Path(f"{model}.json").read_text())["input"]["fit"] == "centre-crop"
    capsys.readouterr()
    assert main(["predict", str(model), *shown, "--format", "jsonl"]) == 0
    got = {r["item"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    for item, (predicted, confidence) in shown.items():
        assert got[item]["class"] == ["kind0", "kind1"][predicted]
        assert got[item]["confidence"] == pytest.approx(confidence, abs=1e-4)


def test_a_torchvision_model_in_the_hub_cache_is_a_backbone_and_nothing_is_downloaded(tmp_path, monkeypatch):
    """``--backbone resnet18`` reads the weights torchvision left in the torch hub cache;
    without them, one line says where they would be and how to get them."""
    pytest.importorskip("torchvision")
    from torchvision.models import resnet18

    from aeep_core.data.backbones import torchvision_weights_file
    from aeep_core.pool import DataError

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    folder = _photo_folder(tmp_path / "photos")
    weights = torchvision_weights_file("resnet18")
    assert weights.parent == tmp_path / "torch" / "hub" / "checkpoints" and weights.name.startswith("resnet18-")
    with pytest.raises(DataError, match="not in the torch hub cache") as missing:
        load_dataset(folder, backbone="resnet18")
    assert str(weights) in str(missing.value) and "\n" not in str(missing.value)

    torch.manual_seed(7)  # stand-in weights: what matters is that these, not a fresh init, are used
    saved = resnet18()
    weights.parent.mkdir(parents=True)
    torch.save(saved.state_dict(), weights)
    pool = load_dataset(folder, backbone="resnet18").pool
    assert pool.modality == "features" and tuple(pool.inputs.shape) == (8, 512) and pool.meta["backbone"] == "resnet18"

    saved.fc = torch.nn.Identity()
    prep = load_backbone("resnet18").preprocessing
    assert prep.size == 224 and prep.mean == pytest.approx((0.485, 0.456, 0.406))
    first = folder / pool.names[0]
    x = torch.from_numpy(photo_array(first, prep)[None].copy()).float() / 255
    x = (x - torch.tensor(prep.mean).view(1, 3, 1, 1)) / torch.tensor(prep.std).view(1, 3, 1, 1)
    with torch.no_grad():
        expected = saved.eval()(x)[0]
    torch.testing.assert_close(pool.inputs[0], expected, atol=1e-4, rtol=1e-4)


def test_an_unknown_backbone_is_refused_in_one_line(capsys):
    from aeep_tui.cli import main

    with pytest.raises(SystemExit) as ended:
        main(["simulate", "--backbone", "nosuchnet"])
    assert ended.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert "unknown backbone 'nosuchnet'" in err and "resnet18" in err


def test_auto_pipeline_retrains_a_photo_head_between_batches_and_pipelines_the_cnn(tmp_path):
    """A head on features takes the plain loop (a round is under a second and refits on its
    guesses); a network trained end to end trains while the person labels."""
    from aeep_core.session import LabellingSession
    from aeep_core.session.pipelined import PipelinedEngine
    from aeep_core.session.plain import PlainEngine

    photos = _photo_folder(tmp_path / "photos")
    digits = make_image_folder(tmp_path / "digits")
    for folder, backbone, engine in ((photos, "auto", PlainEngine), (digits, "auto", PipelinedEngine)):
        settings = ProjectSettings(["kind0", "kind1"], ["1", "2"], device="cpu", backbone=backbone, pipelined=None)
        if folder is digits:
            settings = replace(settings, classes=["class0", "class1", "class2"], keys=["1", "2", "3"])
        project = tmp_path / f"project-{folder.name}"
        with LabellingSession.open(folder, settings, project_dir=project) as s:
            assert isinstance(s.engine, engine) and s.settings.pipelined is (engine is PipelinedEngine)
        with LabellingSession.open(folder, project_dir=project) as s:  # stored resolved
            assert isinstance(s.engine, engine)
    forced = ProjectSettings(["kind0", "kind1"], ["1", "2"], device="cpu", pipelined=True)
    with LabellingSession.open(photos, forced, project_dir=tmp_path / "forced") as s:
        assert isinstance(s.engine, PipelinedEngine)
