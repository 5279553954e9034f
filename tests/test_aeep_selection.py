"""AEEP's selection rules on hand-made contexts: the defects of issue 12 stay fixed."""

import numpy as np
import pytest

from aeep_core.strategies import greedy, make_strategy
from tests.test_strategies import context


def _with_zero_rows(n_zero: int = 6, n: int = 60, seed: int = 0):
    """Candidates 0..n_zero-1 have phi = 0 and the highest possible entropy (the probe's picture)."""
    rng = np.random.default_rng(seed)
    emb = rng.normal(size=(n, 8))
    emb[:n_zero] = 0.0
    probs = rng.dirichlet(np.ones(3) * 0.5, size=n)
    probs[:n_zero] = 1 / 3
    return context(emb=emb, probs=probs, lab=rng.normal(size=(5, 8)), seed=seed), n_zero


@pytest.mark.parametrize("name", ["aeep", "ee"])
@pytest.mark.parametrize("explore", ["typical", "farthest"])
def test_zero_embeddings_are_not_chosen_while_others_remain(name, explore):
    ctx, n_zero = _with_zero_rows()
    sel = make_strategy(name, explore=explore).query(ctx, 10)
    assert not (sel.positions < n_zero).any()  # neither exploration nor exploitation takes them
    assert sel.exploration.any() and (~sel.exploration).any()


def test_zero_embeddings_fill_the_batch_only_when_nothing_else_is_left():
    ctx, n_zero = _with_zero_rows(n_zero=6, n=10)
    sel = make_strategy("aeep").query(ctx, 8)
    assert len(set(sel.positions.tolist())) == 8 and (sel.positions < n_zero).sum() == 4


def test_max_redundancy_rejects_a_near_duplicate_that_a_mean_lets_through():
    # five mutually orthogonal, maximally uncertain items; item 5 duplicates item 0 and is
    # nearly as uncertain; item 6 points somewhere new but is less uncertain.
    unit = np.eye(8)[[0, 1, 2, 3, 4, 0, 5]]
    h = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.95, 0.7])
    picks = greedy.informative_diverse(unit, h, 6, beta=1.0)
    assert sorted(picks[:5]) == [0, 1, 2, 3, 4]
    assert picks[5] == 6  # a mean over five picks would dilute the duplicate's penalty to 1/5


def test_exploration_avoids_the_batch_already_chosen():
    known = np.array([[1.0, 0.0, 0.0]])
    unit = np.array([[0.0, 0.0, 1.0], [0.0, 0.1, 1.0], [0.0, 1.0, 0.0]])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    assert greedy.farthest_first(unit, known, 1) == [0]
    assert greedy.farthest_first(unit, known, 1, chosen=[0]) == [2]  # S counts as known: 1 is next to 0


def _pool_with_outliers(seed: int = 0):
    """Three dense clusters (one already labelled) and eight isolated outliers on the far
    side of the labelled cluster."""
    rng = np.random.default_rng(seed)
    centres = np.eye(16)[:3] * 5
    dense = np.repeat(centres, 50, axis=0) + rng.normal(0, 0.3, (150, 16))
    outliers = rng.normal(0, 2, (8, 16)) - centres[0]
    unit = np.vstack([dense, outliers])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    known = unit[:2]  # two labelled items in cluster 0
    return unit, known


def test_typical_exploration_picks_centres_of_unexplored_clusters_not_outliers():
    unit, known = _pool_with_outliers()
    picks = greedy.typical_unexplored(unit, known, 2, seed=0)
    assert sorted(p // 50 for p in picks) == [1, 2]  # the two clusters nobody has labelled
    assert greedy.farthest_first(unit, known, 1)[0] >= 150  # farthest-first takes an outlier


def test_aeep_explores_representatively_by_default():
    unit, known = _pool_with_outliers()
    probs = np.full((len(unit), 3), 1 / 3)
    sel = make_strategy("aeep").query(context(emb=unit, lab=known, probs=probs), 3)  # m = 2
    assert sorted(p // 50 for p in sel.positions[sel.exploration]) == [1, 2]


def test_novel_exploration_takes_the_least_familiar_uncovered_clusters():
    """explore="novel" ranks the uncovered clusters by how unlike L they are, not by size:
    here the far side of the labelled cluster, where the outliers lie."""
    unit, known = _pool_with_outliers()
    ctx = context(emb=unit, lab=known, probs=np.full((len(unit), 3), 1 / 3))
    sel = make_strategy("aeep", explore="novel").query(ctx, 3)  # m = 2
    assert (sel.positions[sel.exploration] >= 150).all()


def test_aeep_m_is_bounded():
    s = make_strategy("aeep")
    s.query(context(), 20)
    for _ in range(10):
        s.observe(0.0)
    assert s.m == 15  # never above m_max * k: exploitation keeps a quarter of the batch
    for _ in range(10):
        s.observe(1.0)
    assert s.m == 1


def test_aeep_paper_jumps_to_k_times_one_minus_mp():
    s = make_strategy("aeep-paper")
    sel = s.query(context(), 20)
    assert s.m == 15 and sel.exploration.sum() == 15
    s.observe(0.8)
    assert s.m == 4
    s.observe(0.0)
    assert s.m == 20
    s.observe(1.0)
    assert s.m == 1


def test_aeep_paper_exploits_first_and_explores_away_from_the_exploitation_picks():
    unit = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, 0.1, 1.0], [0.0, 1.0, 0.0]])
    probs = np.array([[0.9, 0.05, 0.05], [1 / 3, 1 / 3, 1 / 3], [0.9, 0.05, 0.05], [0.9, 0.05, 0.05]])
    s = make_strategy("aeep-paper", m_fraction=0.5)
    sel = s.query(context(emb=unit, lab=unit[:1], probs=probs), 2)
    assert sel.positions[~sel.exploration].tolist() == [1]  # most uncertain
    assert sel.positions[sel.exploration].tolist() == [3]  # 2 is next to the exploitation pick


def test_macro_mp_is_not_outvoted_by_easy_negatives():
    labels = np.array([0] * 14 + [1])
    predicted = np.zeros(15, dtype=int)  # every control right, the one case wrong
    assert make_strategy("aeep", mp_average="pooled").matching(predicted, labels) == pytest.approx(14 / 15)
    assert make_strategy("aeep", mp_average="macro").matching(predicted, labels) == pytest.approx(0.5)


def test_rare_mp_holds_exploration_while_the_rare_class_is_unseen_among_the_picks():
    labels = np.zeros(15, dtype=int)
    predicted = np.zeros(15, dtype=int)  # fifteen controls, every one predicted right
    rare = make_strategy("aeep", mp_average="rare")
    imbalanced = np.array([280, 20])  # 7% cases in L: under half the uniform share
    assert make_strategy("aeep", mp_average="pooled").matching(predicted, labels, imbalanced) == 1.0
    assert rare.matching(predicted, labels, imbalanced) == pytest.approx(0.5)  # nothing known of the cases
    case_found = np.array([0] * 14 + [1])
    assert rare.matching(case_found, case_found, imbalanced) == pytest.approx(2 / 3)  # one case, right: (1+1)/(1+2)
    balanced = np.array([150, 150])  # no rare class: the pooled share, as the papers have it
    assert rare.matching(predicted, labels, balanced) == 1.0
    assert rare.matching(predicted, labels, None) == 1.0


@pytest.mark.parametrize("name", ["aeep", "ee"])
def test_fisher_exploitation_picks_what_bmal_picks_and_exploration_adds_the_rest(name):
    """``exploit="fisher"`` (the ablation): the exploitation picks are BMAL's first k - m
    picks on the same candidates; exploration picks are others; explore-first order counts
    the exploration picks as already in the batch."""
    ctx = context(n=80, seed=3)
    k = 10
    sel = make_strategy(name, exploit="fisher").query(ctx, k)
    m = int(sel.exploration.sum())
    assert 1 <= m < k and len(set(sel.positions.tolist())) == k
    bmal = make_strategy("bmal").query(ctx, k)
    np.testing.assert_array_equal(sel.positions[m:], bmal.positions[: k - m])

    first = make_strategy(name, exploit="fisher", order="explore-first").query(ctx, k)
    explored = first.positions[first.exploration].tolist()
    assert not set(explored) & set(first.positions[~first.exploration].tolist())
    with pytest.raises(ValueError, match="exploit is entropy|fisher"):
        make_strategy(name, exploit="badge")


def _long_tail_pool(seed: int = 0):
    """A big uncovered cluster (a head class nobody has labelled near its centre yet), a
    small cluster far from everything known (a rare class), and the labelled cluster."""
    rng = np.random.default_rng(seed)
    known_centre, head_centre, rare_centre = np.eye(16)[0] * 5, (np.eye(16)[0] + np.eye(16)[1]) * 5, np.eye(16)[2] * 5
    head = head_centre + rng.normal(0, 0.3, (120, 16))
    rare = rare_centre + rng.normal(0, 0.3, (6, 16))
    around_known = known_centre + rng.normal(0, 0.3, (40, 16))
    unit = np.vstack([head, rare, around_known])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    known = unit[-3:]
    return unit, known


def test_novel_exploration_takes_the_unfamiliar_small_cluster_before_the_large_one():
    unit, known = _long_tail_pool()
    by_size = greedy.typical_unexplored(unit, known, 1, seed=0)
    by_novelty = greedy.typical_unexplored(unit, known, 1, seed=0, order_by="novelty")
    assert by_size[0] < 120  # the largest uncovered cluster: the head class
    assert 120 <= by_novelty[0] < 126  # the cluster least like anything known: the rare class


def test_mass_exploration_weighs_unfamiliarity_by_how_much_pool_it_stands_for():
    """A head cluster near L, a rare class's cluster far from it, and two odd items
    farther still: by size the head is explored, by novelty sometimes the odd pair,
    by size times unfamiliarity the rare class every time."""
    rng = np.random.default_rng(0)
    e = np.eye(16)
    centres_and_sizes = [((e[0] + e[1]) * 5, 120), (e[2] * 5, 40), (-e[0] * 5, 2), (e[0] * 5, 40)]
    unit = np.vstack([c + rng.normal(0, 0.3, (n, 16)) for c, n in centres_and_sizes])
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    known = unit[-3:]
    first = {
        order: [greedy.typical_unexplored(unit, known, 1, seed=s, order_by=order)[0] for s in range(5)]
        for order in ("size", "novelty", "mass")
    }
    assert all(i < 120 for i in first["size"])
    assert any(160 <= i < 162 for i in first["novelty"])
    assert all(120 <= i < 160 for i in first["mass"])


@pytest.mark.parametrize(
    "counts, rare",
    [
        ([5, 5, 5], []),
        ([10, 10, 1], [2]),
        ([20, 0, 20], [1]),
        ([0, 0, 0], []),
        ([2, 1, 1, 4, 2, 2, 4, 2, 2, 0], []),  # 20 random labels of 10 balanced classes often miss one
        ([8, 5, 3, 2, 1, 1, 0, 0, 0, 0], [6, 7, 8, 9]),  # 20 random labels of a long tail
        ([31] * 9 + [21], []),  # under its share, not under half of it
    ],
)
def test_rare_classes_are_under_half_their_share_of_an_L_skewed_beyond_chance(counts, rare):
    from aeep_core.strategies.aeep import rare_classes

    assert rare_classes(np.array(counts)).tolist() == rare


def test_explore_rare_switches_the_rule_only_while_a_class_is_rare_in_L():
    unit, known = _long_tail_pool()
    probs = np.full((len(unit), 3), 1 / 3)

    def exploration_pick(labelled_labels):
        ctx = context(emb=unit, lab=known, probs=probs)
        ctx.labelled_labels = np.array(labelled_labels)
        sel = make_strategy("aeep", explore="typical", explore_rare="novel", m_fraction=0.05).query(ctx, 2)  # m = 1
        return int(sel.positions[sel.exploration][0])

    assert exploration_pick([0, 1, 2] * 7) < 120  # balanced L: typical, the largest uncovered cluster
    assert 120 <= exploration_pick([0, 1] * 10) < 126  # class 2 is rare in L: the novel rule finds the small cluster


def test_unknown_exploration_rules_are_refused():
    with pytest.raises(ValueError, match="explore is"):
        make_strategy("aeep", explore_rare="nearest")
