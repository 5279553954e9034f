"""AEEP on the real MNIST files (skipped where ../shared/data/mnist is absent)."""

import pytest
import torch

from aeep_core.bench.simulate import SimulationSettings, simulate
from aeep_core.data import load_dataset

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_aeep_reaches_90_percent_by_200_labels(shared_mnist):
    torch.set_num_threads(2)  # a real-size run; the fixture restores the count afterwards
    ds = load_dataset(shared_mnist)
    result = simulate(ds, SimulationSettings(strategy="aeep", batch_size=20, budget=200, initial=20, seed=0, device="cpu"))
    last = result["rounds"][-1]
    assert last["labelled"] == 200
    assert last["accuracy"] >= 0.90, [r["accuracy"] for r in result["rounds"]]
