"""A class added while labelling: the last layer grows by one row, every other weight kept,
in the learner and in the pipelined trainer; every strategy copes with a class count that
changes between rounds, and a merged class is never predicted nor counted as rare."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
import torch

from aeep_core.data import load_dataset
from aeep_core.learning.class_outputs import grow_head, grow_optimizer_state
from aeep_core.learning.learner import ActiveLearner
from aeep_core.learning.model import build_model
from aeep_core.learning.pipelined import PipelinedLearner
from aeep_core.learning.training import TrainConfig, adamw, training_step
from aeep_core.pool import Pool
from aeep_core.strategies import STRATEGIES, make_strategy
from tests.conftest import make_image_folder

TINY = TrainConfig(min_steps=5, max_steps=5)


@pytest.fixture(scope="module")
def four_shapes(tmp_path_factory) -> Pool:
    """Four classes of shapes, of which a project starts knowing three."""
    return load_dataset(make_image_folder(tmp_path_factory.mktemp("shapes"), per_class=12, n_classes=4)).pool


def known_three(pool: Pool) -> Pool:
    return replace(pool, class_names=pool.class_names[:3])  # a fresh list: the fixture's pool keeps four


@pytest.mark.parametrize("modality", ["image", "features", "sequence"])
def test_growing_the_head_keeps_every_weight_and_draws_the_new_rows_from_the_seed_alone(modality):
    inputs = {"image": torch.zeros(1, 1, 28, 28), "features": torch.zeros(1, 32), "sequence": torch.zeros(1, 16, 10)}[modality]
    torch.manual_seed(0)
    model = build_model(inputs, modality, 3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    head = model.head
    weight = head.weight
    assert grow_head(model, 3, seed=7) == []  # nothing to grow
    grown = grow_head(model, 5, seed=7)
    assert grown == [head.weight, head.bias] and head.weight is weight  # the same parameters, grown
    after = model.state_dict()
    assert head.out_features == 5 and after["head.weight"].shape == (5, head.in_features)
    for name, value in before.items():
        if name.startswith("head."):
            assert torch.equal(after[name][:3], value)  # the old rows, untouched
        else:
            assert torch.equal(after[name], value)  # every other layer, untouched
    bound = 1 / math.sqrt(head.in_features)
    assert after["head.weight"][3:].abs().max() <= bound and after["head.bias"][3:].abs().max() <= bound
    assert not torch.equal(after["head.weight"][3], after["head.weight"][4])
    # one class at a time or both at once: the same rows
    torch.manual_seed(0)
    stepwise = build_model(inputs, modality, 3)
    grow_head(stepwise, 4, seed=7)
    grow_head(stepwise, 5, seed=7)
    assert all(torch.equal(stepwise.state_dict()[k], v) for k, v in after.items())
    logits, _ = model(inputs)
    assert logits.shape == (1, 5)


def test_an_optimizer_keeps_its_moments_for_the_old_rows_and_starts_the_new_one_at_zero():
    torch.manual_seed(0)
    model = build_model(torch.zeros(1, 1, 28, 28), "image", 2)
    optimizer = adamw(model.parameters(), lr=1e-3)
    x, y, gen = torch.rand(8, 1, 28, 28), torch.tensor([0, 1] * 4), torch.Generator().manual_seed(0)
    training_step(model, optimizer, x, y, TrainConfig(), gen)
    moment = optimizer.state[model.head.weight]["exp_avg"].clone()
    grow_optimizer_state(optimizer, grow_head(model, 3, seed=0))
    state = optimizer.state[model.head.weight]
    assert torch.equal(state["exp_avg"][:2], moment) and not state["exp_avg"][2].any()
    training_step(model, optimizer, x, torch.tensor([0, 1, 2, 2] * 2), TrainConfig(), gen)  # trains with the new class
    assert state["exp_avg"][2].any()


def test_the_learner_grows_its_model_for_a_new_class_learns_it_and_loads_older_weights(four_shapes):
    pool = known_three(four_shapes)
    truth = four_shapes.labels
    learner = ActiveLearner(pool, make_strategy("aeep"), config=TrainConfig(min_steps=60, max_steps=60), device="cpu", seed=1)
    first = np.flatnonzero(truth < 3)[::3]
    learner.add_labels(first, truth[first])
    learner.train()
    saved = learner.state_dict()
    assert learner.model.head.out_features == 3

    assert pool.add_class("diagonal") == 3
    fourth = np.flatnonzero(truth == 3)
    learner.add_labels(fourth[:4], [3] * 4)
    learner.train()
    assert learner.model.head.out_features == 4
    probs = learner.propose(4)  # scores with four outputs
    assert probs.predicted.max() <= 3
    rest = fourth[4:]
    predicted = learner._score(learner.model, rest)[0].argmax(1)
    assert (predicted == 3).mean() >= 0.5  # the new class is learnt, not only an extra output

    # weights saved with three outputs load into the four-class project and grow at training
    restored = ActiveLearner(pool, make_strategy("aeep"), config=TINY, device="cpu", seed=1)
    restored.load_state_dict(saved)
    assert restored.model is not None and restored.model.head.out_features == 3
    restored.grow_model(4)
    for name, value in saved["model"].items():
        assert torch.equal(restored.model.state_dict()[name][: len(value)], value)


def test_a_merged_class_is_never_predicted_and_is_not_a_rare_class_for_mp(four_shapes):
    pool = replace(four_shapes, class_names=list(four_shapes.class_names))
    truth = four_shapes.labels
    learner = ActiveLearner(pool, make_strategy("aeep"), config=TINY, device="cpu", seed=2)
    first = np.flatnonzero(truth != 2)  # 36 labels and none of class 2: beyond chance
    learner.add_labels(first, truth[first])
    answers = np.array([0, 1, 3, 0, 1, 3])
    # AEEP caps mp by its estimate on the rarest class: class 2, with no labels, is rare
    assert learner.outcome(answers, np.ones(6, bool), answers) == (0.5, 1.0)
    learner.merged_classes = frozenset({2})  # merged away: no longer a class to find
    assert learner.outcome(answers, np.ones(6, bool), answers) == (1.0, 1.0)
    learner.train()
    proposal = learner.propose(8)
    assert 2 not in proposal.predicted.tolist()
    probs, _ = learner._score(learner.model, np.arange(len(pool)))
    assert probs.shape[1] == 4 and not probs[:, 2].any() and np.allclose(probs.sum(1), 1, atol=1e-5)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_every_strategy_takes_a_class_count_that_changes_between_rounds(four_shapes, strategy):
    pool = known_three(four_shapes)
    truth = four_shapes.labels
    learner = ActiveLearner(pool, make_strategy(strategy), config=TINY, device="cpu", seed=3, candidates=30)
    first = np.flatnonzero(truth < 3)[::4]
    learner.add_labels(first, truth[first])
    asked: set[int] = set(first.tolist())

    def round_(k: int = 5) -> None:
        learner.train()
        proposal = learner.propose(k)
        ids = proposal.ids.tolist()
        assert len(ids) == len(set(ids)) == k and not asked & set(ids)
        assert set(proposal.predicted.tolist()) <= set(range(pool.n_classes)) - learner.merged_classes
        asked.update(ids)
        answers = np.array([int(truth[i]) if truth[i] < pool.n_classes else 0 for i in ids])
        if 2 in learner.merged_classes:
            answers[answers == 2] = 1  # as the person now answers
        mp, accuracy = learner.teach(proposal, answers)
        assert mp is None or 0 <= mp <= 1

    round_()
    pool.add_class("diagonal")  # found between rounds: two of its items answered
    fourth = [i for i in np.flatnonzero(truth == 3).tolist() if i not in asked][:2]
    learner.add_labels(fourth, [3, 3])
    asked.update(fourth)
    round_()
    assert learner.model.head.out_features == 4
    # class 2 merged into 1: its answers re-pointed, its output switched off
    for item in [i for i, y in learner.labels.items() if y == 2]:
        learner.correct(item, 1)
    learner.merged_classes = frozenset({2})
    round_()


def test_the_pipelined_trainer_grows_for_a_new_class_without_a_restart(four_shapes):
    pool = known_three(four_shapes)
    truth = four_shapes.labels
    learner = ActiveLearner(pool, make_strategy("aeep"), config=TINY, device="cpu", seed=4, candidates=40)
    pipe = PipelinedLearner(learner, batch_size=6, lookahead=1, steps_per_label=2)
    batch = pipe.start()
    try:
        known = [p for p, i in enumerate(batch.ids) if truth[i] < 3]
        for position in known[:2]:
            pipe.answer(position, int(truth[batch.ids[position]]))
        assert pipe.wait_idle(60) and learner.model.head.out_features == 3
        pool.add_class("diagonal")
        assert learner.model.head.out_features == 3  # nothing grows before the class is used
        for position, item in enumerate(batch.ids.tolist()):
            if position not in known[:2]:
                pipe.answer(position, int(truth[item]) if truth[item] < 3 else 3)
        pipe.answer(known[0], 3)  # a class of the batch relabelled to the new one: it is used now
        next_batch = pipe.next_batch(timeout=60)
        assert pipe.wait_idle(60)
        assert learner.model.head.out_features == 4 and learner.labels[int(batch.ids[known[0]])] == 3
        assert pipe._averaged is not None and pipe._averaged.module.head.out_features == 4
        assert pipe._optimizer.state[learner.model.head.weight]["exp_avg"].shape[0] == 4
        assert next_batch is not None and len(next_batch.ids) == 6
        snapshot = pipe.snapshot()
    finally:
        pipe.close()
    # the snapshot resumes with four outputs, optimizer and average included
    resumed = PipelinedLearner(
        ActiveLearner(pool, make_strategy("aeep"), config=TINY, device="cpu", seed=4, candidates=40),
        batch_size=6,
        resume=snapshot,
    )
    assert resumed.learner.model.head.out_features == 4 and resumed._averaged.module.head.out_features == 4
