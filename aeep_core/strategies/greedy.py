"""The selections AEEP is made of (and BMAL's, which an AEEP ablation borrows), vectorised
over the candidates.

Similarity throughout is sim(a, b) = (1 + cos(phi(a), phi(b))) / 2, bounded to [0, 1]
(the network's pair loss is trained on the same quantity), so that it shares a scale
with normalised entropy. Rows are expected unit-length (``unit_rows``).
"""

from __future__ import annotations

import warnings

import numpy as np
from sklearn.cluster import KMeans
from sklearn.exceptions import ConvergenceWarning

from aeep_core.strategies.base import unit_rows
from aeep_core.strategies.seeding import kmeans_plusplus


def similarity(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(1 + cos) / 2 between unit rows of ``a`` and ``b``: 1 same direction, 0 opposite."""
    return (1.0 + a @ b.T) / 2.0


def farthest_first(unit: np.ndarray, known_unit: np.ndarray, n: int, chosen: list[int] | None = None) -> list[int]:
    """Exploration: repeatedly add the candidate whose highest similarity to
    L ∪ S is lowest (farthest-first traversal). ``chosen`` (earlier picks of this
    batch) count as known and are never picked again."""
    chosen = list(chosen or [])
    known = np.vstack([known_unit, unit[chosen]]) if chosen else known_unit
    closest = similarity(unit, known).max(axis=1) if len(known) else np.full(len(unit), -np.inf)
    blocked = np.zeros(len(unit), dtype=bool)
    blocked[chosen] = True
    picks: list[int] = []
    for _ in range(min(n, int((~blocked).sum()))):
        i = int(np.argmin(np.where(blocked, np.inf, closest)))
        picks.append(i)
        blocked[i] = True
        np.maximum(closest, similarity(unit, unit[i : i + 1])[:, 0], out=closest)
    return picks


def informative_diverse(unit: np.ndarray, entropy: np.ndarray, n: int, beta: float, chosen: list[int] | None = None) -> list[int]:
    """Exploitation (ICDM 2017): repeatedly add the candidate maximising
    H(x) - beta * max_{s in S} sim(x, s), S being the batch so far (``chosen`` included).
    The max, not a mean: a mean over a growing S dilutes the penalty of a near-duplicate
    until it no longer changes the picks."""
    chosen = list(chosen or [])
    blocked = np.zeros(len(unit), dtype=bool)
    blocked[chosen] = True
    closest = similarity(unit, unit[chosen]).max(axis=1) if chosen else np.zeros(len(unit))
    picks: list[int] = []
    for _ in range(min(n, int((~blocked).sum()))):
        i = int(np.argmax(np.where(blocked, -np.inf, entropy - beta * closest)))
        picks.append(i)
        blocked[i] = True
        np.maximum(closest, similarity(unit, unit[i : i + 1])[:, 0], out=closest)
    return picks


def _seeds(X: np.ndarray, n_clusters: int, random_state: np.random.RandomState) -> np.ndarray:
    """scikit-learn's k-means++ seeding, faster (:mod:`aeep_core.strategies.seeding`)."""
    return kmeans_plusplus(X, n_clusters, random_state)[0]


def typical_unexplored(
    unit: np.ndarray, known_unit: np.ndarray, n: int, seed: int, chosen: list[int] | None = None, order_by: str = "size"
) -> list[int]:
    """Exploration that represents the pool: cluster the candidates (k-means, as many
    clusters as known items + n, so that each known item can cover one), then take the
    most central candidate of the clusters that hold no known item (L and ``chosen``);
    clusters already covered follow, least covered first. Farthest-first alone favours
    isolated outliers, which tell little about the pool and on which the model's
    accuracy (mp) says nothing about the unexplored regions.

    ``order_by`` ranks the uncovered clusters: ``"size"``, the largest first (the most
    pool a pick represents), or ``"novelty"``, the cluster whose centre is least similar
    to anything known first, or ``"mass"``, by size times unfamiliarity (1 - that
    similarity): how much unseen pool a pick stands for. On a long-tailed pool the
    largest uncovered clusters are the head classes again; the least familiar ones are
    where a rare class hides, and on photos also where a handful of odd pictures sit,
    which weighing by size passes over."""
    chosen = list(chosen or [])
    free = np.setdiff1d(np.arange(len(unit)), chosen)
    n = min(n, len(free))
    if n <= 0:
        return []
    known = np.vstack([known_unit, unit[chosen]]) if chosen else known_unit
    n_clusters = min(len(free), len(known) + n)
    with warnings.catch_warnings():
        # Identical embeddings (duplicate items, a tiny pool) leave some clusters empty;
        # the picks below skip those, so sklearn's warning says nothing to act on.
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=n_clusters, init=_seeds, n_init=1, random_state=seed).fit(unit[free])
    size = np.bincount(km.labels_, minlength=n_clusters)
    covered = np.bincount(km.predict(known), minlength=n_clusters) if len(known) else np.zeros(n_clusters, int)
    if order_by in ("novelty", "mass") and len(known):
        familiarity = similarity(unit_rows(km.cluster_centers_), known).max(axis=1)
        # the least familiar first, or the most unfamiliar pool first
        rank = familiarity if order_by == "novelty" else -size * (1.0 - familiarity)
    else:
        rank = -size.astype(np.float64)  # the largest first
    order = np.lexsort((rank, covered))  # uncovered first
    dist = ((unit[free] - km.cluster_centers_[km.labels_]) ** 2).sum(1)
    picks: list[int] = []
    for c in order:
        members = np.flatnonzero(km.labels_ == c)
        if len(members):
            picks.append(int(free[members[np.argmin(dist[members])]]))
        if len(picks) == n:
            break
    return picks


def fisher_greedy(unit: np.ndarray, probs: np.ndarray, n: int, ridge: float = 1e-2, chosen: list[int] | None = None) -> list[int]:
    """BMAL's batch: greedily add the candidate that most reduces tr(I_S^-1 I_U).

    I_S = ridge*I + sum_{s in S} w(s) f_s f_s^T is the Fisher information of the batch
    and I_U the mean over the candidates, f = the unit rows with a bias term, w(x) =
    sum_c p_c(1 - p_c) the multi-class p(1-p). Sherman–Morrison updates: uncertain (large
    w) and non-redundant (a pick shrinks the gain of whatever it already explains).
    ``chosen`` (earlier picks of the batch) count as in S and are never picked again.
    """
    f = np.hstack([unit, np.ones((len(unit), 1))]).astype(np.float64)
    w = (probs * (1 - probs)).sum(1).astype(np.float64)
    info_pool = (f * w[:, None]).T @ f / max(len(f), 1)
    inv = np.eye(f.shape[1]) / ridge  # (ridge I)^-1
    blocked = np.zeros(len(f), dtype=bool)

    def add(i: int) -> None:
        nonlocal inv
        blocked[i] = True
        u = inv @ f[i]
        inv = inv - w[i] * np.outer(u, u) / (1 + w[i] * f[i] @ u)

    for i in chosen or []:
        add(i)
    picks: list[int] = []
    for _ in range(min(n, int((~blocked).sum()))):
        fg = f @ inv  # [n, d]
        gain = w * np.einsum("nd,de,ne->n", fg, info_pool, fg) / (1 + w * (fg * f).sum(1))
        i = int(np.argmax(np.where(blocked, -np.inf, gain)))
        picks.append(i)
        add(i)
    return picks
