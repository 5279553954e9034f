"""BASE, GALAXY and class-balanced entropy: each on a small case its paper describes, and
all three on the awkward shapes of an imbalanced pool."""

import numpy as np
import pytest

from aeep_core.strategies import QueryContext, make_strategy
from aeep_core.strategies.base import softmax
from aeep_core.strategies.imbalance import bisection_node, rebalancing_quota

IMBALANCE = ["base", "galaxy", "balanced-em"]


def context(emb, weight, bias, labelled=None, labels=(), seed=0):
    """A context whose probabilities are the head's softmax, as the learner's are."""
    labelled = np.zeros((0, emb.shape[1])) if labelled is None else labelled
    return QueryContext(
        candidates=np.arange(1000, 1000 + len(emb)),
        probs=softmax(emb @ weight.T + bias),
        embeddings=emb,
        labelled_embeddings=labelled,
        head_weight=weight,
        head_bias=bias,
        rng=np.random.default_rng(seed),
        labelled_labels=np.asarray(labels, dtype=np.int64),
    )


def random_context(n=40, c=3, labels=(0, 0, 1, 0, 0), seed=0, skew=0.0):
    """Random phi and head; ``skew`` adds to class 0's bias so it wins most predictions."""
    rng = np.random.default_rng(seed)
    weight = rng.normal(size=(c, 6))
    bias = np.zeros(c)
    bias[0] = skew
    return context(rng.normal(size=(n, 6)), weight, bias, rng.normal(size=(len(labels), 6)), labels, seed)


def test_class_counts_count_labels_per_model_class():
    ctx = random_context(labels=[0, 2, 2, 5, 1, 2], c=3)  # class 5 is not among the model's outputs
    assert ctx.class_counts.tolist() == [1, 1, 3]
    assert random_context(labels=[], c=4).class_counts.tolist() == [0, 0, 0, 0]


# --- BASE -------------------------------------------------------------------------------


def base_case():
    """Every candidate is predicted class 0 (its bias wins); z1 = x and z2 = y, so the
    distance to the 0|1 boundary is 5 - x and to the 0|2 boundary 5 - y. Five items
    crowd the 0|1 boundary, two sit nearer the 0|2 one, twenty lie deep in class 0."""
    near_1 = [[4.9, 0], [4.8, 0], [4.7, 0], [4.6, 0], [4.5, 0]]
    near_2 = [[0, 3.0], [0, 2.0]]
    emb = np.array(near_1 + near_2 + [[0.0, 0.0]] * 20)
    weight = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    return emb, weight, np.array([5.0, 0.0, 0.0])


def test_base_serves_every_class_boundary_though_all_predictions_are_one_class():
    emb, weight, bias = base_case()
    assert (emb @ weight.T + bias).argmax(1).max() == 0
    for seed in range(6):  # whatever order the classes take their turns in
        picks = set(make_strategy("base").query(context(emb, weight, bias, seed=seed), 3).positions.tolist())
        assert 5 in picks  # class 2's pick: the item nearest the 0|2 boundary
        assert len(picks & set(range(5))) == 2  # class 1's and class 0's: both at the crowded 0|1 boundary
        six = make_strategy("base").query(context(emb, weight, bias, seed=seed), 6).positions.tolist()
        assert {5, 6} <= set(six)  # two turns each: class 2 takes both items near its boundary


def test_base_spreads_the_extra_picks_over_classes_when_k_is_below_c():
    emb, weight, bias = base_case()
    got_class_2 = [5 in make_strategy("base").query(context(emb, weight, bias, seed=s), 2).positions for s in range(20)]
    assert 0 < sum(got_class_2) < 20  # the authors' fixed order would never serve class 2 here


# --- GALAXY -----------------------------------------------------------------------------


def test_bisection_takes_the_middle_of_the_shortest_path_from_the_negative_end():
    assert bisection_node(np.array([1, 0, 0, 0, 0, -1]), 1) == 2  # path 5..0, its node [6 // 2]
    assert bisection_node(np.array([1, 0, 0, -1, 0, 0, 0, 0, 0, 1]), 1) == 1  # the shorter gap: path 3..0, [4 // 2]
    assert bisection_node(np.array([1, 1, 0, 0]), 1) is None  # no negative node
    assert bisection_node(np.array([0, 1, -1, 0]), 1) is None  # cut apart: no unlabelled node between
    assert bisection_node(np.array([0, 1, -1, 0]), 2) in (0, 3)  # the next order goes round the cut


def galaxy_case(seed=0):
    """A 1-D pool: z0 = x, z1 = -x. 8 candidates predicted class 1 (x < 0), 24 class 0,
    shuffled; L holds one confident item of each class, the two ends of every chain."""
    x = np.concatenate([np.linspace(-2.0, -0.2, 8), np.linspace(0.2, 5.0, 24)])
    order = np.random.default_rng(seed).permutation(len(x))
    emb = np.stack([x[order], np.zeros(len(x))], 1)
    weight, bias = np.array([[1.0, 0.0], [-1.0, 0.0]]), np.zeros(2)
    labelled = np.array([[10.0, 0.0], [-10.0, 0.0]])
    return context(emb, weight, bias, labelled, [0, 1], seed), order


def test_galaxy_bisects_from_the_middle_of_the_chain_toward_the_boundary():
    ctx, order = galaxy_case()
    picks = order[make_strategy("galaxy").query(ctx, 5).positions]  # ranks along x; 7 | 8 straddle the boundary
    assert picks[0] in (15, 16)  # the middle of the 34-node chain (L at both ends)
    assert {7, 8} <= set(picks.tolist())  # the two items either side of the boundary
    assert all(7 <= p <= 16 for p in picks)  # every later pick halves the uncertain stretch
    assert abs(picks[1:] - 7.5).max() < abs(picks[0] - 7.5)
    more = order[make_strategy("galaxy").query(galaxy_case()[0], 8).positions]
    # 7 | 8 now cut apart, order 1 has no path left: the next order goes round the cut
    assert all(4 <= p <= 11 for p in more[5:])


def test_galaxy_without_labels_of_a_class_still_fills_the_batch():
    ctx, _ = galaxy_case()
    ctx.labelled_labels = np.array([0, 0])  # no item of class 1 known: class 1's graph has no path
    picks = make_strategy("galaxy").query(ctx, 6).positions
    assert len(set(picks.tolist())) == 6


def test_galaxy_refuses_labels_that_do_not_match_l():
    ctx, _ = galaxy_case()
    ctx.labelled_labels = np.array([0, 1, 1])
    with pytest.raises(ValueError, match="3 labels for 2"):
        make_strategy("galaxy").query(ctx, 3)


# --- class-balanced entropy -------------------------------------------------------------


def entropy_case(n_class_1):
    """20 candidates predicted class 0, the most uncertain; ``n_class_1`` predicted class 1,
    surer, their entropy falling with their index."""
    x = np.concatenate([np.full(20, 0.05) + np.arange(20) * 1e-3, -1.0 - np.arange(n_class_1) * 0.2])
    emb = np.stack([x, np.zeros(len(x))], 1)
    weight = np.array([[1.0, 0.0], [-1.0, 0.0]])
    return context(emb, weight, np.zeros(2), np.zeros((10, 2)), [0] * 10)


def test_balanced_entropy_asks_the_class_l_lacks():
    ctx = entropy_case(6)  # L holds 10 of class 0 and none of class 1
    picks = make_strategy("balanced-em").query(ctx, 4).positions.tolist()
    assert sorted(picks) == [20, 21, 22, 23]  # the four most uncertain predicted class 1
    plain = np.argsort(-ctx.entropy)[:4]
    assert (plain < 20).all()  # plain entropy would have asked class 0 only


def test_balanced_entropy_fills_up_when_the_lacking_class_runs_out():
    picks = make_strategy("balanced-em").query(entropy_case(2), 5).positions.tolist()
    assert {20, 21} <= set(picks) and len(set(picks)) == 5


def test_rebalancing_quota_fills_the_deficits_first_then_spreads():
    rng = np.random.default_rng(0)
    quota = rebalancing_quota(9, np.array([5, 2, 0]), np.array([10, 10, 10]), rng)
    assert quota.sum() == 9 and (quota >= [0, 3, 5]).all()
    capped = rebalancing_quota(6, np.array([5, 0, 0]), np.array([10, 1, 10]), rng)
    assert capped.sum() == 6 and capped[1] == 1  # class 1 has one candidate to give


# --- every imbalance strategy on awkward shapes -------------------------------------------


@pytest.mark.parametrize("name", IMBALANCE)
@pytest.mark.parametrize(
    "shape",
    [
        dict(),
        dict(c=2),
        dict(skew=6.0),  # nearly every candidate predicted class 0: k exceeds the others' candidates
        dict(labels=[0, 0, 0]),  # L has seen one class of three
        dict(labels=[0, 4, 7, 1]),  # L holds classes the model has no output for
        dict(labels=[]),
        dict(c=6, labels=[0, 1]),
    ],
)
def test_each_returns_k_distinct_positions_deterministically(name, shape):
    first = make_strategy(name).query(random_context(seed=3, **shape), 12).positions
    again = make_strategy(name).query(random_context(seed=3, **shape), 12).positions
    assert len(first) == 12 and len(set(first.tolist())) == 12
    assert first.min() >= 0 and first.max() < 40
    np.testing.assert_array_equal(first, again)


@pytest.mark.parametrize("name", IMBALANCE)
def test_each_returns_the_pool_when_k_exceeds_it(name):
    picks = make_strategy(name).query(random_context(n=5, skew=4.0), 9).positions
    assert sorted(picks.tolist()) == [0, 1, 2, 3, 4]
