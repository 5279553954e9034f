"""``simulate --hidden-classes`` (issue 26): the simulated project knows only the classes of its
initial labels and adds each other class the first time the oracle answers with it; the
result records when each class became known and the labels until every class was."""

from __future__ import annotations

import json

import numpy as np
import pytest

from aeep_core.bench.imbalance import long_tailed
from aeep_core.bench.metrics import labels_to_all_classes
from aeep_core.bench.simulate import SimulationSettings, simulate
from aeep_core.data import load_dataset
from aeep_core.learning.training import TrainConfig
from aeep_core.pool import DataError
from aeep_tui.cli import main
from tests.conftest import make_image_folder

TINY = TrainConfig(min_steps=5, max_steps=5)


@pytest.fixture(scope="module")
def long_tail(tmp_path_factory):
    data = load_dataset(make_image_folder(tmp_path_factory.mktemp("img"), per_class=12, n_classes=4), test_split=0.25, seed=0)
    return long_tailed(data, 6, "exp", seed=0)


@pytest.mark.parametrize("strategy", ["random", "aeep"])
def test_classes_are_met_one_by_one_and_the_labels_until_all_are_known_are_recorded(long_tail, strategy):
    pool_size = len(long_tail.pool)
    settings = SimulationSettings(
        strategy=strategy, batch_size=4, budget=pool_size, initial=6, seed=1, device="cpu", train=TINY, hidden_classes=True
    )
    result = simulate(long_tail, settings)
    rounds = result["rounds"]
    initial = rounds[0]["per_class"]
    assert result["hidden_classes"] and rounds[0]["classes_known"] == sum(1 for n in initial if n > 0) >= 2
    known = [r["classes_known"] for r in rounds]
    assert known == sorted(known) and known[-1] == 4  # the whole pool is labelled: every class met
    found = result["discovered"]
    assert sorted(f["class"] for f in found) == ["class0", "class1", "class2", "class3"]
    assert [f["labels"] for f in found] == sorted(f["labels"] for f in found)  # in the order met
    every = result["labels_to_all_known"]
    assert every == max(f["labels"] for f in found) == next(r["labelled"] for r in rounds if r["classes_known"] == 4)
    # a class is known exactly when it has its first label: the bench's own figure agrees
    per_class = [r["per_class"] for r in rounds]
    assert labels_to_all_classes([r["labelled"] for r in rounds], per_class, result["pool_counts"]) == every
    # figures are over every class of the test set, known or not
    assert all(len(r["confusion"]) == 4 for r in rounds)
    assert all(sum(map(sum, r["confusion"])) == len(long_tail.test) for r in rounds)


def test_initial_labels_of_one_class_are_refused_in_one_line(long_tail):
    one_class = long_tail.pool.subset(np.flatnonzero(long_tail.pool.labels == 0))
    data = type(long_tail)(one_class, long_tail.test)
    settings = SimulationSettings(strategy="random", initial=3, device="cpu", train=TINY, hidden_classes=True)
    with pytest.raises(DataError, match="hold one class"):
        simulate(data, settings)


def test_the_cli_flag_writes_the_discovery_into_the_json(tmp_path, capsys):
    folder = make_image_folder(tmp_path / "img", per_class=8, n_classes=4)
    out = tmp_path / "run.json"
    argv = ["simulate", "--data", str(folder), "--test-split", "0.25", "--imbalance", "4", "--hidden-classes"]
    argv += [
        "--strategy",
        "random",
        "--initial",
        "6",
        "--batch-size",
        "4",
        "--budget",
        "6",
        "--device",
        "cpu",
    ]  # one round: the plumbing
    assert main([*argv, "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["hidden_classes"] and "labels_to_all_known" in result and result["discovered"]
    assert all("classes_known" in r for r in result["rounds"])
    assert "classes known:" in capsys.readouterr().out
