"""Long-tailed benchmarks (issue 25): the cut, the figures for skewed classes, the wiring."""

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aeep_core.bench import settings as bench
from aeep_core.bench.imbalance import class_quotas, long_tailed
from aeep_core.bench.metrics import (
    balanced_accuracy,
    labels_to_all_classes,
    macro_f1,
    min_recall,
    rarest_classes,
)
from aeep_core.bench.report import format_table
from aeep_core.bench.run import Job, run_bench
from aeep_core.bench.settings import BenchSettings, parse_variant, preset, run_key
from aeep_core.bench.simulate import SimulationSettings, simulate
from aeep_core.learning.training import TrainConfig
from aeep_core.pool import DataError, Dataset, Pool
from aeep_tui.cli import build_parser, main
from tests.conftest import make_idx_folder
from tests.test_bench import _settings as bench_settings

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


def pattern_folder(root: Path, per_class: int) -> Path:
    """Class-named subfolders of 8x8 pattern PNGs: an image folder that trains in a blink."""
    rng = np.random.default_rng(0)
    for c, name in enumerate(CLASSES):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            Image.fromarray(pattern(c, rng)).save(root / name / f"{i}.png")
    return root


def balanced_data(per_class: int = 60, test_per_class: int = 5) -> Dataset:
    return Dataset(patterns(per_class, 0), patterns(test_per_class, 1))


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


# --- figures of a confusion matrix -------------------------------------------------------------
def test_figures_of_a_confusion_matrix_skip_classes_absent_from_the_test_set():
    # rows: true class, columns: predicted; class 2 is not in the test set
    confusion = np.array([[8, 2, 0], [1, 3, 0], [0, 0, 0]])
    assert balanced_accuracy(confusion) == pytest.approx((0.8 + 0.75) / 2)
    assert min_recall(confusion) == pytest.approx(0.75)
    assert macro_f1(confusion) == pytest.approx((16 / 19 + 6 / 9) / 2)
    # guesses of an absent class are still false positives of the class it took them from
    guessing_absent = np.array([[5, 0, 5], [0, 4, 0], [0, 0, 0]])
    assert macro_f1(guessing_absent) == pytest.approx((10 / 15 + 1.0) / 2)
    assert min_recall(guessing_absent) == pytest.approx(0.5)
    assert balanced_accuracy(np.zeros((3, 3))) is None and macro_f1(np.zeros((2, 2))) is None


def test_figures_of_a_binary_model_that_never_finds_the_rare_class():
    always_negative = np.array([[90, 0], [10, 0]])
    assert balanced_accuracy(always_negative) == pytest.approx(0.5)  # accuracy would say 0.9
    assert min_recall(always_negative) == 0.0
    assert macro_f1(always_negative) == pytest.approx((180 / 190 + 0.0) / 2)


def test_rarest_classes_and_labels_to_every_class():
    assert rarest_classes([100, 5, 50, 1, 0, 20]) == [3, 1, 5]  # class 4 is not in the pool
    assert rarest_classes([90, 10]) == [1]  # two classes: the rarer one, never both
    labelled = [4, 8, 12]
    per_class = [[3, 1, 0, 0], [5, 2, 1, 0], [6, 3, 2, 1]]
    assert labels_to_all_classes(labelled, per_class, [50, 20, 10, 5]) == 12
    assert labels_to_all_classes(labelled, per_class, [50, 20, 10, 0]) == 8  # class 3 is not in the pool
    assert labels_to_all_classes(labelled[:2], per_class[:2], [50, 20, 10, 5]) is None


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


def test_long_tail_presets_and_seeds_from_the_command_line():
    for name, rho in (("mnist-lt10", 10), ("mnist-lt100", 100)):
        s = preset(name)
        assert (s.task, s.imbalance, s.imbalance_profile, s.seeds) == ("mnist", rho, "exp", [10, 11, 12, 13, 14])
        assert (s.batch_sizes, s.initial, s.budget, s.candidates, s.test_subset) == ([20], 20, 300, 2000, 5000)
        assert s.strategies == bench.BASELINES + bench.IMBALANCE_BASELINES
    flowers = preset("flowers-lt10")
    assert (flowers.task, flowers.imbalance, flowers.batch_sizes, flowers.initial, flowers.budget) == (
        "photos",
        10,
        [10],
        10,
        100,
    )
    assert preset("quick").task == "mnist" and preset("quick").imbalance == 1
    assert preset("flowers-lt10", task="mnist").task == "mnist"  # --task still wins
    parse = lambda *argv: build_parser().parse_args(["bench", *argv])  # noqa: E731
    assert parse("--seeds", "5").seeds == [0, 1, 2, 3, 4]  # a count, as always
    assert parse("--seeds", "10-14").seeds == [10, 11, 12, 13, 14]
    assert parse("--seeds", "10,12,0-1").seeds == [10, 12, 0, 1]
    assert parse().task is None  # so a preset's task stands
    args = parse("--preset", "flowers-lt10", "--imbalance", "20", "--imbalance-profile", "step")
    assert (args.imbalance, args.imbalance_profile) == (20.0, "step")
    assert parse("--seeds", "0-0").seeds == [0]
    for bad in (["--seeds", "1-x"], ["--seeds", "3,3"], ["--seeds", "0"], ["--imbalance", "0.5"]):
        with pytest.raises(SystemExit):
            parse(*bad)
    from aeep_tui.cli.bench import PRESET_NAMES

    assert PRESET_NAMES == list(bench.PRESETS)


def test_bench_on_a_long_tail_reports_the_skewed_class_figures():
    calls = []

    def load(path, seed):
        calls.append(seed)
        return balanced_data()

    settings = bench_settings(budget=15, candidates=100, imbalance=10.0)
    report = run_bench(settings, loader=load)
    assert sorted(calls) == [0, 1]  # a tail per seed
    assert report["settings"]["imbalance"] == 10.0
    for entry in report["strategies"].values():
        for run in entry["runs"]:
            assert sorted(run["pool_counts"], reverse=True) == class_quotas(60, 4, 10).tolist()
            for r in run["rounds"]:
                assert np.sum(r["confusion"]) == 20  # the whole balanced test set, never cut
                assert 0 <= r["min_recall"] <= r["balanced_accuracy"] <= 1 and 0 <= r["macro_f1"] <= 1
        summary = entry["summary"]["5"]
        assert summary["balanced_aulc"]["n"] == 2
        assert set(summary) >= {"balanced_at", "macro_f1_at", "min_recall_at", "macro_f1_final", "min_recall_final"}
        assert summary["rare3_labels"]["n"] == 2 and summary["rare3_labels"]["max"] <= 15
        spread = summary["labels_to_all_classes"]
        assert spread["n"] + spread["missing"] == 2
        assert len(summary["m"]) == len(summary["mp"]) == 3 and summary["labelled"] == [5, 10, 15]
    paired = {name: e["summary"]["5"]["paired"] for name, e in report["strategies"].items()}
    best = paired["aeep"]["against"]
    assert paired[best]["mean"] == 0.0 and paired[best]["n"] == 2
    other = next(name for name in paired if name != best)
    assert paired[other]["mean"] <= 0 and paired[other]["se"] is not None
    table = format_table(report)
    assert all(column in table for column in ("bal. AULC", "macro-F1@15", "min recall@15", "rare-3 labels", "L→all classes"))
    assert "best" in table
    json.dumps(report)


def test_a_seeded_aeep_run_finds_the_rarest_class_random_misses():
    """rho 20 over four patterns keeps 10 of the rarest among 310 items. Seed 5's initial
    four miss it; AEEP reaches it within 24 labels. Random, which ignores the model (so its
    picks are the same on any machine), never does in the same budget."""
    data = long_tailed(Dataset(patterns(200, 0), patterns(10, 1)), 20, "exp", seed=5)
    rarest = int(np.argmin(np.bincount(data.pool.labels, minlength=4)))
    found = {}
    for strategy in ("aeep", "random"):
        sim = SimulationSettings(
            strategy=strategy,
            batch_size=4,
            budget=24,
            initial=4,
            seed=5,
            device="cpu",
            candidates=400,
            train=TrainConfig(min_steps=20, max_steps=20),
        )
        result = simulate(data, sim)
        rounds = result["rounds"]
        assert rounds[0]["per_class"][rarest] == 0  # not in the initial set: it must be found
        found[strategy] = labels_to_all_classes(
            [r["labelled"] for r in rounds], [r["per_class"] for r in rounds], result["pool_counts"]
        )
    assert found["aeep"] is not None
    assert found["random"] is None or found["random"] >= found["aeep"]


def test_cli_simulate_and_bench_cut_the_pool_and_say_so(tmp_path, monkeypatch, capsys):
    folder = pattern_folder(tmp_path / "images", per_class=12)
    assert (
        main(
            [
                "simulate",
                "--data",
                str(folder),
                "--test-split",
                "0.3",
                "--imbalance",
                "4",
                "--budget",
                "4",
                "--initial",
                "4",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    assert "long tail rho 4 (exp), seed 0: pool per class" in out and "balanced" in out

    monkeypatch.setitem(bench.PRESETS, "quick", {**bench.PRESETS["quick"], "train": FAST})
    report = tmp_path / "b.json"
    argv = ["bench", "--data", str(make_idx_folder(tmp_path / "idx")), "--strategies", "random", "--batch-sizes", "3"]
    argv += ["--budget", "6", "--initial", "3", "--candidates", "30", "--device", "cpu", "--json", str(report)]
    assert main([*argv, "--seeds", "3-4", "--imbalance", "3", "--imbalance-profile", "step"]) == 0
    printed = capsys.readouterr()
    assert printed.err.count("long tail rho 3 (step)") == 2  # the start line, then the counts once
    assert "rare-3 labels" in printed.out
    runs = json.loads(report.read_text())["strategies"]["random"]["runs"]
    assert [r["seed"] for r in runs] == [3, 4]
    # 27, 27 and 26 shapes; step: the two head ranks keep 26, the tail 26 / 3
    assert all(sorted(r["pool_counts"]) == [8, 26, 26] for r in runs)
