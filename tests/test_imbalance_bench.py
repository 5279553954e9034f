"""Long-tailed benchmarks (issue 25): the cut, the figures for skewed classes, the wiring."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from aeep_core.bench.imbalance import class_quotas, long_tailed
from aeep_core.bench.run import Job
from aeep_core.bench.settings import BenchSettings, parse_variant, run_key
from aeep_core.learning.training import TrainConfig
from aeep_core.pool import DataError, Dataset, Pool

FAST = TrainConfig(min_steps=10, max_steps=10)
CLASSES = ["across", "down", "checks", "square"]


def pattern(cls: int, rng: np.random.Generator) -> np.ndarray:
    """An 8x8 grey image of one of four patterns no model can confuse: a row, a column,
    a checkerboard, a centred square; rows and columns placed at random, with noise."""
    img = np.zeros((8, 8), dtype=np.float32)
    where = rng.integers(0, 8)
    if cls == 0:
        img[where, :] = 1
    elif cls == 1:
        img[:, where] = 1
    elif cls == 2:
        img[::2, ::2] = img[1::2, 1::2] = 1
    else:
        img[2:6, 2:6] = 1
    img += rng.normal(0, 0.1, img.shape)
    return (np.clip(img, 0, 1) * 255).astype(np.uint8)


def patterns(per_class: int, seed: int, n_classes: int = 4) -> Pool:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(n_classes), per_class)
    inputs = torch.from_numpy(np.stack([pattern(int(c), rng) for c in labels])[:, None])
    return Pool(inputs, [f"p{seed}-{i}" for i in range(len(labels))], CLASSES[:n_classes], labels=labels)


# --- the cut ---------------------------------------------------------------------------------
def test_exp_quotas_fall_from_head_to_head_over_rho():
    quotas = class_quotas(5421, 10, 100, "exp")  # MNIST's smallest class, CIFAR-LT's rho
    assert quotas[0] == 5421 and quotas[-1] == 54
    assert np.all(np.diff(quotas) < 0)
    assert class_quotas(100, 4, 1, "exp").tolist() == [100] * 4
    assert class_quotas(3, 10, 100, "exp").min() == 1  # every class keeps an item


def test_step_quotas_keep_half_the_classes_at_head_over_rho():
    assert class_quotas(5421, 10, 100, "step").tolist() == [5421] * 5 + [54] * 5
    with pytest.raises(ValueError, match="at least 1"):
        class_quotas(100, 10, 0.5)
    with pytest.raises(ValueError, match="profile"):
        class_quotas(100, 10, 10, "linear")


def test_long_tail_cuts_the_pool_only_with_ranks_drawn_from_the_seed():
    data = Dataset(patterns(50, 0, n_classes=4), patterns(5, 1))
    cut = long_tailed(data, 10, "exp", seed=3)
    assert cut.test is data.test  # the test set is untouched
    counts = np.bincount(cut.pool.labels, minlength=4)
    assert sorted(counts.tolist(), reverse=True) == class_quotas(50, 4, 10).tolist()
    again = long_tailed(data, 10, "exp", seed=3)
    assert again.pool.names == cut.pool.names  # one seed, one cut
    rarest = {int(np.argmin(np.bincount(long_tailed(data, 10, "exp", s).pool.labels, minlength=4))) for s in range(8)}
    assert len(rarest) > 1  # seeds draw different rare classes
    assert long_tailed(data, 1, "exp", 0) is data


def test_long_tail_needs_ground_truth():
    pool = patterns(10, 0)
    pool.labels = np.full(len(pool), -1)
    with pytest.raises(DataError, match="ground truth"):
        long_tailed(Dataset(pool), 10, "exp", 0)


# --- the wiring ----------------------------------------------------------------------------
def test_imbalance_is_part_of_the_run_and_data_keys_only_when_cut():
    variant = parse_variant("random")
    plain, cut = BenchSettings(), BenchSettings(imbalance=10.0)
    assert "imbalance" not in json.loads(run_key(plain, variant, 0, 20))  # old .partial keys stay valid
    assert json.loads(run_key(cut, variant, 0, 20))["imbalance"] == 10.0
    assert run_key(cut, variant, 0, 20) != run_key(BenchSettings(imbalance=10.0, imbalance_profile="step"), variant, 0, 20)
    jobs = {
        s: [Job(settings, variant, seed, 20, "", Path("x")) for seed in (0, 1)]
        for s, settings in (("plain", plain), ("cut", cut))
    }
    assert jobs["plain"][0].data_key() == jobs["plain"][1].data_key()  # MNIST: one copy for every seed
    assert jobs["cut"][0].data_key() != jobs["cut"][1].data_key()  # each seed has its own tail
