"""Event embedding, patient matrix (truncation/padding) and the 1-D SequenceCNN in the learner."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aeep_core.data import load_dataset
from aeep_core.learning.learner import ActiveLearner
from aeep_core.learning.model import build_model
from aeep_core.learning.training import TrainConfig
from aeep_core.sequences.embedding import EventEmbedding, event_token, train_event_embedding
from aeep_core.sequences.matrix import EXTRA_CHANNELS, choose_length, patient_matrix
from aeep_core.sequences.model import SequenceCNN
from aeep_core.strategies import STRATEGIES, make_strategy
from tests.sequences_fixtures import write_jsonl_folder


def _corpus(seed: int = 0, n: int = 400) -> list[list[str]]:
    """Histories in which A1..A3 always occur together, B1..B3 together, plus shared noise."""
    rng = np.random.default_rng(seed)
    noise = [f"N{i}" for i in range(30)]
    out = []
    for _ in range(n):
        group = ["A1", "A2", "A3"] if rng.random() < 0.5 else ["B1", "B2", "B3"]
        seq = list(rng.choice(noise, size=8))
        at = int(rng.integers(0, 6))
        seq[at:at] = list(rng.permutation(group))
        out.append(seq)
    return out


def test_cooccurring_events_end_closer_than_unrelated():
    emb = train_event_embedding(_corpus(), dim=16, seed=0)
    same = [emb.similarity("A1", "A2"), emb.similarity("A2", "A3"), emb.similarity("B1", "B3")]
    cross = [emb.similarity("A1", "B1"), emb.similarity("A2", "B3"), emb.similarity("A3", "B2")]
    assert min(same) > max(cross) + 0.2, (same, cross)
    assert np.allclose(np.linalg.norm(emb.vectors, axis=1), 1.0, atol=1e-5)


def test_embedding_is_reproducible_under_a_seed():
    a = train_event_embedding(_corpus(), dim=8, seed=3)
    b = train_event_embedding(_corpus(), dim=8, seed=3)
    assert a.tokens == b.tokens and np.array_equal(a.vectors, b.vectors)


def test_event_token_keeps_vocabularies_apart():
    assert event_token({"type": "immunization", "code": "140"}) != event_token({"type": "condition", "code": "140"})


def _emb() -> EventEmbedding:
    vecs = np.eye(4, dtype=np.float32)
    return EventEmbedding([f"event:{c}" for c in "ABCD"], vecs)


def _events(codes: str, start_day: int = 1) -> list[dict]:
    return [
        {"time": f"2020-01-{start_day + i:02d}T00:00:00", "code": c, "text": "", "type": "event"} for i, c in enumerate(codes)
    ]


def test_matrix_truncates_to_the_last_t_events():
    m = patient_matrix(_events("ABCDAB"), _emb(), length=4)
    assert m.shape == (4, 4 + EXTRA_CHANNELS)
    assert [int(np.argmax(row[:4])) for row in m] == [2, 3, 0, 1]  # C D A B: the most recent four
    assert np.all(m[:, 4] == 1.0)
    assert m[-1, 5] == 0.0 and np.all(np.diff(m[:, 5]) < 0)  # recency: 0 at the newest, larger before


def test_matrix_left_pads_with_zero_rows():
    m = patient_matrix(_events("AB"), _emb(), length=5)
    assert np.all(m[:3] == 0.0)
    assert m[3, 0] == 1.0 and m[4, 1] == 1.0 and np.all(m[3:, 4] == 1.0)


def test_matrix_unknown_code_is_an_event_without_embedding():
    m = patient_matrix(_events("AZ"), _emb(), length=3)
    assert np.all(m[2, :4] == 0.0) and m[2, 4] == 1.0  # Z unknown: present, no vector
    assert np.all(patient_matrix([], _emb(), length=3) == 0.0)


def test_choose_length_from_data():
    assert choose_length([5] * 10) == 16  # floor
    assert choose_length(list(range(1, 101))) == 80  # p75 = 75.25 -> next multiple of 8
    assert choose_length([10_000] * 5) == 256  # cap


def test_padding_carries_no_meaning_in_the_model():
    torch.manual_seed(0)
    emb = _emb()
    events = _events("ABCA")
    short, long = (torch.from_numpy(patient_matrix(events, emb, t))[None] for t in (6, 20))
    model = SequenceCNN(4 + EXTRA_CHANNELS, 6, 2).eval()
    with torch.no_grad():
        (l1, p1), (l2, p2) = model(short), model(long)
    assert torch.allclose(l1, l2, atol=1e-5) and torch.allclose(p1, p2, atol=1e-5)
    assert model(torch.zeros(1, 6, 4 + EXTRA_CHANNELS))[0].isfinite().all()  # empty history


def test_build_model_dispatches_to_sequence_cnn():
    model = build_model(torch.zeros(3, 16, 10), "sequence", 3)
    logits, phi = model(torch.randn(3, 16, 10))
    assert isinstance(model, SequenceCNN) and isinstance(model.head, torch.nn.Linear)
    assert logits.shape == (3, 3) and phi.shape[1] == model.head.in_features


@pytest.fixture(scope="module")
def seq_data(tmp_path_factory):
    return load_dataset(write_jsonl_folder(tmp_path_factory.mktemp("seq"), per_class=30, test_per_class=15, seed=5))


@pytest.fixture(scope="module")
def trained(seq_data):
    """One learner trained on every pool label (the strategies below reuse its model)."""
    learner = ActiveLearner(
        seq_data.pool,
        make_strategy("random"),
        config=TrainConfig(min_steps=40, max_steps=40),
        device="cpu",
        seed=0,
        test=seq_data.test,
    )
    learner.add_labels(np.arange(len(seq_data.pool)), seq_data.pool.labels)
    learner.train()
    return learner


def test_sequence_cnn_learns_the_generated_task(trained):
    assert trained.evaluate() >= 0.85


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_runs_on_sequences(seq_data, trained, name):
    learner = ActiveLearner(seq_data.pool, make_strategy(name), device="cpu", seed=0)
    first = learner.initial_ids(8)
    learner.add_labels(first, seq_data.pool.labels[first])
    learner.model = trained.model  # selection is what is under test; training is tested above
    prop = learner.propose(5)
    assert len(set(prop.ids.tolist())) == 5 and not set(prop.ids.tolist()) & set(first.tolist())
    learner.teach(prop, seq_data.pool.labels[prop.ids])
