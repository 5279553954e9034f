"""Baselines built for class imbalance: BASE, GALAXY and class-balanced entropy.

Each was checked against its authors' code; the docstrings name the files. Where a
batch serves the classes in turn, the turn order is drawn from ``ctx.rng`` each round
(the authors start at class 0): with fewer picks than classes (k = 20 on 102 flower
classes) a fixed order would never serve the classes of high index.
"""

from __future__ import annotations

import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from aeep_core.strategies.base import QueryContext, QueryStrategy, Selection, softmax


class BalancedSelection(QueryStrategy):
    """BASE (Emam et al., "Active learning at the ImageNet scale", arXiv 2111.12880):
    the classes take turns; each takes the candidate nearest its decision boundary
    (:func:`boundary_distances`) not already in the batch, so a batch holds about
    k / C picks per class however rarely the model predicts it.

    Authors' code (github.com/zeyademam/active_learning): ``compute_margins`` in
    src/query_strategies/mase_sampler.py and ``BASESampler.query`` in base_sampler.py.
    They give class c the quota k // C + (c < k % C) and fill the quotas class after
    class; here the picks alternate over a drawn class order (same quotas, the
    remainder going to drawn classes).
    """

    name = "base"

    def query(self, ctx: QueryContext, k: int) -> Selection:
        distance = boundary_distances(ctx)
        n, n_classes = distance.shape
        chosen = np.zeros(n, dtype=bool)
        rankings: dict[int, list[int]] = {}
        picks: list[int] = []
        for c in class_turns(n_classes, min(k, n), ctx.rng).tolist():
            if c not in rankings:
                rankings[c] = np.argsort(distance[:, c], kind="stable").tolist()
            ranking = rankings[c]
            while chosen[ranking[0]]:  # every class ranks all n candidates, so one is left
                ranking.pop(0)
            picks.append(ranking.pop(0))
            chosen[picks[-1]] = True
        return Selection.of(picks)


def boundary_distances(ctx: QueryContext) -> np.ndarray:
    """``[n, C]``: each candidate's distance in phi space to the boundary of each class.

    For a class c other than the predicted y, the distance to the hyperplane where the
    logits of y and c are equal, (z_y - z_c) / ||w_y - w_c||; for c = y, the nearest of
    those (the way out of y). Classes with identical weights have no boundary (inf).
    """
    w, b = ctx.head_weight.astype(np.float64), ctx.head_bias.astype(np.float64)
    logits = ctx.embeddings.astype(np.float64) @ w.T + b
    predicted = logits.argmax(1)
    gap = logits[np.arange(len(logits)), predicted][:, None] - logits
    squared = (w * w).sum(1)
    spread_sq = squared[:, None] + squared[None, :] - 2 * w @ w.T
    np.fill_diagonal(spread_sq, 0.0)
    spread = np.sqrt(np.maximum(spread_sq, 0.0))[predicted]
    radius = np.divide(gap, spread, out=np.full_like(gap, np.inf), where=spread > 0)
    own = radius.min(1, initial=np.inf)
    return np.where(predicted[:, None] == np.arange(w.shape[0]), own[:, None], radius)


class Galaxy(QueryStrategy):
    """GALAXY (Zhang, Katz-Samuels & Nowak, "GALAXY: Graph-based Active Learning at the
    Extreme", ICML 2022): one-vs-rest linear graphs. For class c, L and the candidates
    are chained in the order of their margin for c (:func:`class_margins`); a labelled
    item is + if its label is c, - otherwise. The classes take turns; each queries the
    middle of the shortest path between a + and a - node (S2's bisection,
    :func:`bisection_node`). Without such a path the graphs' order (edges to the next
    ``order`` nodes along the chain) grows by one and the class tries again; then a
    random candidate.

    Authors' code (github.com/jifanz/GALAXY): src/multiclass/multi_linear_graph.py
    (``create_linear_graphs``), src/graph.py (``Graph.label``,
    ``Graph.shortest_shortest_path``, ``MultiLinearGraph``), src/s2algorithm.py
    (``bisection_query``), src/multiclass/multi_linear_deeps2.py (the loop). There the
    oracle labels each pick at once and only the network waits for the batch; here no
    label comes before the batch ends, so a pick joins the graphs with the model's
    predicted class, and a class's next bisection halves toward the model's boundary.
    """

    name = "galaxy"
    needs_labelled = True

    def query(self, ctx: QueryContext, k: int) -> Selection:
        n, n_classes = ctx.probs.shape
        n_known = len(ctx.labelled_labels)
        if n_known and n_known != len(ctx.labelled_embeddings):
            raise ValueError(f"{n_known} labels for {len(ctx.labelled_embeddings)} labelled embeddings")
        logits = ctx.labelled_embeddings[:n_known].astype(np.float64) @ ctx.head_weight.T + ctx.head_bias
        margin = class_margins(np.vstack([softmax(logits), ctx.probs]))
        node_class = np.concatenate([ctx.labelled_labels.astype(np.int64), np.full(n, -1)])  # -1: not asked
        predicted = ctx.probs.argmax(1)
        chains: dict[int, np.ndarray] = {}
        order = 1
        picks: list[int] = []
        for c in class_turns(n_classes, min(k, n), ctx.rng).tolist():
            if c not in chains:
                chains[c] = np.argsort(margin[:, c], kind="stable")
            chain = chains[c]
            classes = node_class[chain]
            side = np.where(classes < 0, 0, np.where(classes == c, 1, -1))
            node = bisection_node(side, order)
            if node is None and order < len(chain):
                order += 1
                node = bisection_node(side, order)
            if node is None:
                i = int(ctx.rng.choice(np.flatnonzero(node_class[n_known:] < 0)))
            else:
                i = int(chain[node]) - n_known  # the middle of a path is never a labelled node
            picks.append(i)
            node_class[n_known + i] = predicted[i]
        return Selection.of(picks)


def class_margins(probs: np.ndarray) -> np.ndarray:
    """``[N, C]``: p_c - max over c' != c of p_c', GALAXY's margin score for class c
    (positive only for the predicted class). Needs C >= 2. The authors' code sorts by
    p_c - max p + 1e-8 max p: the same for the other classes, and for the predicted
    class an order by confidence, where this margin orders by the lead."""
    top = np.partition(probs, -2, axis=1)
    best_other = np.where(np.arange(probs.shape[1]) == probs.argmax(1)[:, None], top[:, -2:-1], top[:, -1:])
    return probs - best_other


def bisection_node(side: np.ndarray, order: int) -> int | None:
    """S2's query on a linear graph of ``order``: the middle node of the shortest path
    from a + node to a - node, None if no path joins them.

    ``side`` holds +1, -1 (labelled) or 0 (not) for each node along the chain. Node i
    links to i + 1 .. i + order, except that labelled nodes of opposite sides are cut
    apart, so a path holds at least one unlabelled node and its middle is one. As in
    ``bisection_query``, the middle is counted from the - end.
    """
    positive, negative = np.flatnonzero(side > 0), np.flatnonzero(side < 0)
    if not len(positive) or not len(negative):
        return None
    n = len(side)
    steps = np.arange(1, min(order, n - 1) + 1)
    tail = np.concatenate([np.arange(n - s) for s in steps])
    head = tail + np.repeat(steps, n - steps)
    kept = side[tail] * side[head] >= 0
    graph = csr_matrix((np.ones(int(kept.sum())), (tail[kept], head[kept])), shape=(n, n))
    dist, previous, _ = dijkstra(graph, directed=False, indices=positive, return_predecessors=True, min_only=True)
    end = int(negative[np.argmin(dist[negative])])
    if not np.isfinite(dist[end]):
        return None
    node = end
    for _ in range((int(dist[end]) + 1) // 2):
        node = int(previous[node])
    return node


class ClassBalancedEntropy(QueryStrategy):
    """Class-balanced entropy: small-text's ``ClassBalancer`` (Schröder et al., "Small-Text:
    Active Learning for Text Classification in Python", EACL 2023 demos) around
    highest-entropy selection. Candidates are split by predicted class; each class gets
    a quota (:func:`rebalancing_quota`) that brings the labels per class in L toward
    balance, and fills it with its highest-entropy candidates.

    Authors' code (github.com/webis-de/small-text):
    small_text/query_strategies/class_balancing.py (``_sample_distribution``,
    ``_get_rebalancing_distribution``, ``ClassBalancer._query_class_balanced``).
    """

    name = "balanced-em"

    def query(self, ctx: QueryContext, k: int) -> Selection:
        n, n_classes = ctx.probs.shape
        predicted = ctx.probs.argmax(1)
        quota = rebalancing_quota(min(k, n), ctx.class_counts, np.bincount(predicted, minlength=n_classes), ctx.rng)
        picks: list[int] = []
        for c in np.flatnonzero(quota):
            members = np.flatnonzero(predicted == c)
            picks += members[np.argsort(-ctx.entropy[members], kind="stable")[: quota[c]]].tolist()
        return Selection.of(picks)


def rebalancing_quota(k: int, labelled: np.ndarray, predicted: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Picks per class for a batch of ``k`` (small-text's ``_get_rebalancing_distribution``).

    A target is built one pick at a time, each to the class furthest below L's largest
    class (ties drawn); a class gets no more than it has predicted candidates. What the
    target cannot place goes to drawn spare candidates, first counting a class's spares
    as its predicted candidates less its labels in L and its quota (small-text's count,
    which keeps well-labelled classes from filling the rest), then any spare candidates.
    """
    deficit = labelled.max(initial=0) - labelled
    target = np.zeros(len(labelled), dtype=np.int64)
    for _ in range(k):
        gap = target - deficit
        ties = np.flatnonzero(gap == gap.min())
        target[ties[0] if len(ties) == 1 else rng.choice(ties)] += 1
    quota = np.minimum(predicted, target)
    quota += _draw_spares(np.maximum(predicted - labelled - quota, 0), k - int(quota.sum()), rng)
    quota += _draw_spares(predicted - quota, k - int(quota.sum()), rng)
    return quota


def _draw_spares(spares: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """How many of ``count`` spares, drawn without replacement, fall in each class."""
    if count <= 0:
        return np.zeros(len(spares), dtype=np.int64)
    pool = rng.permutation(np.repeat(np.arange(len(spares)), spares))
    return np.bincount(pool[:count], minlength=len(spares))


def class_turns(n_classes: int, k: int, rng: np.random.Generator) -> np.ndarray:
    """The class each of ``k`` picks serves: round robin over a class order drawn from ``rng``."""
    return rng.permutation(n_classes)[np.arange(k) % n_classes]
