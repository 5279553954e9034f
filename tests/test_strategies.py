"""Each strategy's defining property, on small hand-made scores and embeddings."""

import numpy as np
import pytest

from aeep_core.strategies import STRATEGIES, QueryContext, make_strategy
from aeep_core.strategies.greedy import farthest_first, informative_diverse


def context(n=60, d=8, c=3, n_labelled=5, seed=0, probs=None, emb=None, lab=None, inputs=None):
    rng = np.random.default_rng(seed)
    emb = np.abs(rng.normal(size=(n, d))) if emb is None else emb
    lab = np.abs(rng.normal(size=(n_labelled, d))) if lab is None else lab
    probs = rng.dirichlet(np.ones(c), size=len(emb)) if probs is None else probs
    inputs = inputs if inputs is not None else (rng.normal(size=(len(emb), 5)), rng.normal(size=(len(lab), 5)))
    return QueryContext(
        candidates=np.arange(100, 100 + len(emb)),
        probs=probs,
        embeddings=emb,
        labelled_embeddings=lab,
        head_weight=rng.normal(size=(probs.shape[1], emb.shape[1])),
        head_bias=np.zeros(probs.shape[1]),
        rng=np.random.default_rng(seed),
        _inputs=lambda: inputs,
    )


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_returns_k_distinct_positions_deterministically(name):
    a = make_strategy(name).query(context(seed=4), 10)
    b = make_strategy(name).query(context(seed=4), 10)
    assert len(a.positions) == 10 and len(set(a.positions.tolist())) == 10
    assert a.positions.min() >= 0 and a.positions.max() < 60
    np.testing.assert_array_equal(a.positions, b.positions)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_asking_for_more_than_the_pool_returns_the_pool(name):
    sel = make_strategy(name).query(context(n=4), 10)
    assert sorted(sel.positions.tolist()) == [0, 1, 2, 3]


def test_exploration_picks_the_point_farthest_from_the_labelled_set():
    known = np.array([[1.0, 0.0, 0.0]])
    unit = np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.7, 0.7, 0.0]])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    picks = farthest_first(unit, known, 2)
    assert picks[0] == 2  # orthogonal to everything known
    assert picks[1] == 3  # then the one far from both the known point and the first pick


def test_exploitation_prefers_entropy_and_penalises_near_duplicates():
    # items 0 and 1 are identical and the most uncertain; 2 is a bit less uncertain but different
    unit = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.7, 0.7]])
    h = np.array([1.0, 1.0, 0.8, 0.1])
    picks = informative_diverse(unit, h, 2, beta=1.0)
    assert picks == [0, 2]
    assert informative_diverse(unit, h, 2, beta=0.0) == [0, 1]  # without the penalty, the duplicate


def test_random_is_uniform_over_candidates():
    counts = np.zeros(60)
    for seed in range(300):
        counts[make_strategy("random").query(context(seed=seed), 5).positions] += 1
    assert counts.min() > 5 and counts.max() < 50


def test_em_picks_the_most_uncertain_first_and_spreads_the_batch():
    rng = np.random.default_rng(0)
    emb = np.abs(rng.normal(size=(40, 6)))
    emb[:10] = emb[0] + rng.normal(0, 1e-3, (10, 6))  # ten near-copies of the most uncertain item
    probs = np.full((40, 3), 1 / 3)
    probs[10:] = rng.dirichlet(np.ones(3) * 2, size=30)
    probs[:10] = [0.34, 0.33, 0.33]
    ctx = context(probs=probs, emb=emb)
    ctx.head_weight, ctx.head_bias = np.zeros((3, 6)), np.zeros(3)  # predicts uniform: matches probs[:10]
    picks = make_strategy("em").query(ctx, 5).positions.tolist()
    assert picks[0] < 10
    assert sum(p < 10 for p in picks) < 5  # re-scoring stops it from taking only the copies


def test_kff_goes_far_in_input_space():
    cand = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 5.0], [0.1, 0.1]])
    known = np.array([[0.0, 0.0]])
    sel = make_strategy("kff").query(context(n=4, inputs=(cand, known)), 2)
    assert sel.positions.tolist() == [1, 2]


def test_coreset_covers_far_regions_of_the_embedding():
    emb = np.array([[0.0, 0.0], [0.1, 0.0], [5.0, 5.0], [5.1, 5.0], [0.0, 9.0]])
    sel = make_strategy("coreset").query(context(emb=emb, lab=np.array([[0.0, 0.0]])), 2)
    assert set(sel.positions.tolist()) == {4, 2} or set(sel.positions.tolist()) == {4, 3}


def test_bmal_prefers_uncertain_and_avoids_redundant():
    emb = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])
    probs = np.array([[0.5, 0.5], [0.5, 0.5], [0.55, 0.45], [0.99, 0.01]])
    picks = make_strategy("bmal").query(context(probs=probs, emb=emb), 2).positions.tolist()
    assert picks[0] in (0, 1) and picks[1] == 2


def test_badge_spreads_over_gradient_clusters():
    rng = np.random.default_rng(1)
    centres = np.eye(4) * 5
    emb = np.abs(np.repeat(centres, 10, axis=0) + rng.normal(0, 0.01, (40, 4)))
    probs = np.full((40, 2), 0.5)
    probs[:, 0] += 0.01
    picks = make_strategy("badge").query(context(probs=probs, emb=emb), 4).positions
    assert len(set((picks // 10).tolist())) >= 3  # the four clusters, at most one repeat


def test_aeep_m_moves_down_after_mp_one_and_up_after_mp_zero():
    s = make_strategy("aeep")
    sel = s.query(context(), 10)
    m0 = s.m
    assert sel.exploration.sum() == m0 and sel.exploration[:m0].all()  # exploration picks first
    s.observe(1.0)
    assert s.m < m0
    low = s.m
    s.observe(0.0)
    assert s.m > low
    for _ in range(20):
        s.observe(1.0)
    assert s.m == 1  # never below one: the test that drives m must exist


def test_a_smaller_last_batch_keeps_the_exploration_share_aeep_learned():
    """The paper preset's k = 50 runs end with a batch of 30 (470 -> 500 labels): m, at 1
    after rounds of mp = 1, went back to its start (22 of 30 picks exploring)."""
    s = make_strategy("aeep")
    s.query(context(), 10)
    for _ in range(20):
        s.observe(1.0)
    assert s.m == 1
    sel = s.query(context(), 6)
    assert s.m == 1 and sel.exploration.sum() == 1
    ee = make_strategy("ee")  # a fixed share stays that share
    ee.query(context(), 10)
    ee.query(context(), 6)
    assert ee.m == 3


def test_ee_keeps_m_fixed():
    s = make_strategy("ee")
    s.query(context(), 10)
    m0 = s.m
    s.observe(1.0)
    s.observe(0.0)
    assert s.m == m0 == 5


def test_aeep_state_round_trips():
    s = make_strategy("aeep")
    s.query(context(), 10)
    s.observe(0.9)
    t = make_strategy("aeep")
    t.load_state_dict(s.state_dict())
    assert t.m == s.m
    np.testing.assert_array_equal(t.query(context(seed=2), 10).positions, s.query(context(seed=2), 10).positions)


def test_unknown_strategy_names_the_choices():
    with pytest.raises(ValueError, match="aeep"):
        make_strategy("nope")
