import json

import numpy as np
import torch

from aeep_core.bench.simulate import SimulationSettings, simulate
from aeep_core.data import load_dataset
from aeep_core.learning.learner import SKIPPED, ActiveLearner
from aeep_core.learning.training import TrainConfig
from aeep_core.strategies import make_strategy
from aeep_tui.cli import main

FAST = TrainConfig(min_steps=30, max_steps=30)


def test_rounds_grow_the_labelled_set_and_never_repeat_an_item(image_folder):
    ds = load_dataset(image_folder, test_split=0.2, seed=0)
    learner = ActiveLearner(ds.pool, make_strategy("aeep"), config=FAST, device="cpu", seed=0, test=ds.test)
    first = learner.initial_ids(6)
    learner.add_labels(first, ds.pool.labels[first])
    seen = set(first.tolist())
    for _ in range(3):
        learner.train()
        prop = learner.propose(5)
        assert len(prop.ids) == 5 and not (set(prop.ids.tolist()) & seen)
        assert prop.exploration.sum() == prop.m >= 1
        seen |= set(prop.ids.tolist())
        labels = ds.pool.labels[prop.ids].copy()
        labels[-1] = SKIPPED
        mp, acc = learner.teach(prop, labels)
        assert mp is None or 0.0 <= mp <= 1.0
    assert len(learner.labels) == 6 + 3 * 4 and len(learner.skipped) == 3
    assert not set(learner.unlabelled_ids()) & (set(learner.labels) | learner.skipped)
    assert 0.0 <= learner.evaluate() <= 1.0


def test_simulation_is_deterministic_under_a_seed(image_folder):
    ds = load_dataset(image_folder, test_split=0.2, seed=0)
    settings = SimulationSettings(strategy="aeep", batch_size=5, budget=20, initial=5, seed=1, device="cpu", train=FAST)
    a, b = simulate(ds, settings), simulate(ds, settings)
    strip = lambda r: [{k: v for k, v in x.items() if not k.endswith("_s")} for x in r["rounds"]]  # noqa: E731
    assert strip(a) == strip(b)
    assert [r["labelled"] for r in a["rounds"]] == [5, 10, 15, 20]


def test_late_answers_train_a_round_late_and_are_counted_as_spent(image_folder, monkeypatch):
    """SimulationSettings.late: the model that chooses has not seen the last answers of
    the batch before (as when the app trains ahead of Enter); the next round's has."""
    ds = load_dataset(image_folder, test_split=0.2, seed=0)
    trained_on: list[int] = []
    real_train = ActiveLearner.train
    monkeypatch.setattr(
        ActiveLearner, "train", lambda self, *a, **kw: trained_on.append(len(self.labels)) or real_train(self, *a, **kw)
    )
    settings = SimulationSettings(strategy="aeep", batch_size=5, budget=20, initial=5, seed=1, device="cpu", train=FAST, late=2)
    result = simulate(ds, settings)
    assert trained_on == [5, 8, 13, 18]  # every batch's last two answers wait a round
    assert [r["labelled"] for r in result["rounds"]] == [5, 10, 15, 20]  # spent, all of them


def test_restored_learner_proposes_the_same_batch(image_folder):
    ds = load_dataset(image_folder)

    def fresh():
        return ActiveLearner(ds.pool, make_strategy("aeep"), config=FAST, device="cpu", seed=2)

    a = fresh()
    first = a.initial_ids(6)
    a.add_labels(first, ds.pool.labels[first])
    a.train()
    p = a.propose(5)
    a.teach(p, ds.pool.labels[p.ids])
    a.train()
    b = fresh()
    b.load_state_dict(json.loads(json.dumps({**a.state_dict(), "model": None})) | {"model": a.state_dict()["model"]})
    np.testing.assert_array_equal(a.propose(5).ids, b.propose(5).ids)


def test_simulate_cli_writes_the_documented_json(image_folder, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(
        [
            "simulate",
            "--data",
            str(image_folder),
            "--test-split",
            "0.2",
            "--strategy",
            "random",
            "--batch-size",
            "6",
            "--budget",
            "18",
            "--initial",
            "6",
            "--seed",
            "0",
            "--device",
            "cpu",
            "--json",
            str(out),
        ]
    )
    assert code == 0
    result = json.loads(out.read_text())
    assert result["strategy"] == "random" and result["batch_size"] == 6 and result["seed"] == 0
    keys = {"labelled", "accuracy", "m", "mp", "entropy_batch", "entropy_pool", "train_s", "select_s"}
    assert all(keys <= set(r) for r in result["rounds"])
    assert [r["labelled"] for r in result["rounds"]] == [6, 12, 18]
    assert result["rounds"][0]["m"] is None  # random has no exploration share
    assert "labelled" in capsys.readouterr().out


def test_simulate_cli_reports_bad_data_in_one_line(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["simulate", "--data", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "empty" in err and "no images found" in err


def test_simulate_needs_ground_truth(tmp_path, capsys):
    from PIL import Image

    for i in range(3):
        Image.new("L", (28, 28), i * 40).save(tmp_path / f"{i}.png")
    assert main(["simulate", "--data", str(tmp_path)]) == 2
    assert "ground truth" in capsys.readouterr().err


def test_m_holds_while_the_labelled_set_has_one_class(image_folder):
    """On imbalanced data a one-class model 'matches' every exploration pick; that must
    not talk AEEP out of exploring before a second class is found."""
    ds = load_dataset(image_folder)
    # pooled mp: the papers' rule, which this guard exists for (the rare-class mp also holds m)
    learner = ActiveLearner(ds.pool, make_strategy("aeep", mp_average="pooled"), config=FAST, device="cpu", seed=0)
    only_zeros = np.flatnonzero(ds.pool.labels == 0)[:4]
    learner.add_labels(only_zeros, [0] * 4)
    learner.train()
    prop = learner.propose(6)
    m_before = learner.strategy.m
    fake = np.zeros(len(prop.ids), dtype=np.int64)  # the oracle agrees with a model that says 0 everywhere
    prop.predicted[:] = 0
    mp, _ = learner.teach(prop, fake)
    assert mp == 1.0 and learner.strategy.m == m_before
    learner.train()
    prop = learner.propose(6)
    prop.predicted[:] = ds.pool.labels[prop.ids]
    learner.teach(prop, ds.pool.labels[prop.ids])  # two classes known now: a perfect mp lowers m
    assert learner.strategy.m < m_before


def test_teach_measures_mp_with_the_strategys_matching(image_folder):
    from aeep_core.learning.learner import Proposal

    pool = load_dataset(image_folder).pool
    learner = ActiveLearner(pool, make_strategy("aeep", mp_average="macro"), device="cpu")
    ids = np.arange(4)
    proposal = Proposal(ids, np.ones(4, bool), np.array([0, 0, 0, 1]), np.ones(4), 0.0, 0.0, 4, 0.0)
    mp, accuracy = learner.teach(proposal, [0, 0, 0, 2])
    assert mp == 0.5 and accuracy == 0.75  # per class: 3/3 and 0/1; pooled it would be 0.75


def test_a_head_on_features_is_refitted_each_round_while_the_cnn_continues(image_folder):
    """Warm start is for networks that learn their own features (measured for both)."""
    from aeep_core.pool import Pool

    gen = torch.Generator().manual_seed(0)
    features = Pool(torch.randn(40, 16, generator=gen), [f"f{i}" for i in range(40)], ["a", "b"], modality="features")
    images = load_dataset(image_folder).pool
    for pool, continues in ((features, False), (images, True)):
        learner = ActiveLearner(pool, make_strategy("random"), config=TrainConfig(min_steps=3, max_steps=3), device="cpu")
        learner.add_labels([0, 1, 2, 3], [0, 1, 0, 1])
        learner.train()
        first = learner.model
        learner.train()
        assert (learner.model is first) is continues, pool.modality


def _two_blobs(n: int = 60, seed: int = 0):
    """A features pool of two well-separated classes (truth in ``labels``)."""
    from aeep_core.pool import Pool

    gen = torch.Generator().manual_seed(seed)
    truth = torch.arange(n) % 2
    centres = torch.tensor([[3.0] * 8, [-3.0] * 8])
    inputs = centres[truth] + torch.randn(n, 8, generator=gen)
    return Pool(inputs, [f"f{i}" for i in range(n)], ["a", "b"], labels=truth.numpy(), modality="features")


def test_a_head_refits_on_its_most_confident_guesses_from_the_unlabelled_candidates():
    pool = _two_blobs()
    config = TrainConfig(guess_steps=20, pseudo_label_steps=20, pseudo_label_share=0.5)
    learner = ActiveLearner(pool, make_strategy("random"), config=config, device="cpu", candidates=30)
    learner.add_labels([0, 1, 2, 3], [0, 1, 0, 1])
    learner.add_labels([4], [SKIPPED])  # "unsure" is never guessed for
    seen: list[tuple[int, int]] = []
    learner.train(progress=lambda done, total: seen.append((done, total)))
    # one progress bar over both fits, ending full
    assert seen[-1] == (40, 40) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    guessed, guesses = learner._confident_guesses(learner.model)
    assert len(guessed) == 15  # half of the 30 candidates, not of the whole of U
    assert not set(guessed.tolist()) & {0, 1, 2, 3, 4}
    assert (guesses == pool.labels[guessed]).all()  # the blobs are easy: the guesses are right
    learner.candidates = 1000  # all of U: the guessed are the most confident of it
    guessed, _ = learner._confident_guesses(learner.model)
    unlabelled = learner.unlabelled_ids()
    with torch.no_grad():
        confidence = torch.softmax(learner.model(pool.inputs)[0], 1).max(1).values.numpy()
    rest = np.setdiff1d(unlabelled, guessed)
    assert len(guessed) == len(unlabelled) // 2 and confidence[guessed].min() >= confidence[rest].max()


def test_pseudo_labels_change_the_head_and_zero_turns_them_off():
    """Share 0 is the paper's head on L alone, the same weights as one plain fit."""
    pool = _two_blobs(seed=1)

    def head(**options):
        config = TrainConfig(min_steps=20, max_steps=20, guess_steps=20, pseudo_label_steps=20, **options)
        learner = ActiveLearner(pool, make_strategy("random"), config=config, device="cpu", seed=3)
        learner.add_labels([0, 1], [0, 1])
        learner.train()
        return torch.cat([p.detach().flatten() for p in learner.model.parameters()])

    plain = head(pseudo_label_share=0.0)
    assert torch.equal(plain, head(pseudo_label_share=0.0))
    assert not torch.equal(plain, head(pseudo_label_share=0.5))


def test_a_batch_is_shown_with_its_most_confident_item_last():
    from aeep_core.learning.learner import confident_last

    assert confident_last(np.array([0.4, 0.9, 0.5, 0.6])).tolist() == [0, 2, 3, 1]
    assert confident_last(np.array([0.3, 0.2, 0.99])).tolist() == [0, 1, 2]
    assert confident_last(np.array([0.7])).tolist() == [0] and confident_last(np.array([])).tolist() == []
