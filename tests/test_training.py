import time

import numpy as np
import torch

from aeep_core.data import load_pool
from aeep_core.learning.model import PairwiseCNN, cosine_similarity_matrix
from aeep_core.learning.training import TrainConfig, pair_loss, score, train


def _mean_sims(emb: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    s = cosine_similarity_matrix(torch.from_numpy(emb), torch.from_numpy(emb)).numpy()
    same = y[:, None] == y[None, :]
    off = ~np.eye(len(y), dtype=bool)
    return float(s[same & off].mean()), float(s[~same].mean())


def test_pair_loss_is_low_when_same_class_pairs_are_similar():
    y = torch.tensor([0, 0, 1, 1])
    aligned = torch.tensor([[1.0, 0], [1.0, 0], [0, 1.0], [0, 1.0]])
    crossed = torch.tensor([[1.0, 0], [0, 1.0], [1.0, 0], [0, 1.0]])
    assert pair_loss(aligned, y, 5.0) < pair_loss(crossed, y, 5.0)


def test_training_with_pair_loss_separates_classes_in_the_embedding(image_folder):
    pool = load_pool(image_folder)
    torch.manual_seed(0)
    model = PairwiseCNN(1, 28, pool.n_classes)
    _, before = score(model, pool.inputs, torch.device("cpu"))
    train(model, pool.inputs, pool.labels, TrainConfig(min_steps=120, max_steps=120), torch.device("cpu"), seed=0)
    probs, after = score(model, pool.inputs, torch.device("cpu"))
    same, diff = _mean_sims(after, pool.labels)
    assert same > diff + 0.3, (same, diff)
    assert (probs.argmax(1) == pool.labels).mean() > 0.9
    b_same, b_diff = _mean_sims(before, pool.labels)
    assert same - diff > b_same - b_diff  # training, not the architecture, made the gap


def test_training_is_deterministic_under_a_seed(image_folder):
    pool = load_pool(image_folder)
    outs = []
    for _ in range(2):
        torch.manual_seed(3)
        model = PairwiseCNN(1, 28, pool.n_classes)
        train(model, pool.inputs[:30], pool.labels[:30], TrainConfig(min_steps=20, max_steps=20), torch.device("cpu"), seed=3)
        outs.append(score(model, pool.inputs, torch.device("cpu"))[0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_step_count_grows_with_the_labelled_set_within_bounds():
    c = TrainConfig()
    assert c.steps_for(10) == c.min_steps
    assert c.steps_for(10_000) == c.max_steps
    assert c.min_steps <= c.steps_for(700) <= c.max_steps


def test_training_steps_wait_while_the_foreground_holds_the_gate(image_folder):
    """A keystroke holds the gate: no step starts until it is released (or the hold
    times out), and the steps then run to the same weights."""
    import threading

    from aeep_core.learning.training import foreground

    pool = load_pool(image_folder)
    torch.manual_seed(5)
    model = PairwiseCNN(1, 28, pool.n_classes)
    steps: list[float] = []
    foreground.hold(30.0)
    worker = threading.Thread(
        target=train,
        args=(model, pool.inputs[:30], pool.labels[:30], TrainConfig(min_steps=3, max_steps=3), torch.device("cpu"), 5),
        kwargs={"progress": lambda done, total: steps.append(time.perf_counter())},
    )
    worker.start()
    time.sleep(0.5)
    held = len(steps)
    released = time.perf_counter()
    foreground.release()
    worker.join(timeout=60)
    assert held == 0 and len(steps) == 3 and steps[0] >= released
    foreground.hold(0.3)  # a hold nobody releases ends by itself
    start = time.perf_counter()
    foreground.wait()
    assert 0.25 <= time.perf_counter() - start < 5
