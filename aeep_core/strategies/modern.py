"""Baselines on the network's features: BMAL (Fisher information), core-set, BADGE."""

from __future__ import annotations

import numpy as np
from sklearn.cluster import kmeans_plusplus

from aeep_core.strategies.base import QueryContext, QueryStrategy, Selection
from aeep_core.strategies.greedy import fisher_greedy
from aeep_core.strategies.simple import k_centre_greedy


class BatchModeFisher(QueryStrategy):
    """BMAL (Hoi et al., ICML 2006): choose S minimising tr(I_S^-1 I_U) (:func:`fisher_greedy`)."""

    name = "bmal"

    def __init__(self, ridge: float = 1e-2):
        self.ridge = ridge

    def query(self, ctx: QueryContext, k: int) -> Selection:
        return Selection.of(fisher_greedy(ctx.unit, ctx.probs, k, self.ridge))


class CoreSet(QueryStrategy):
    """k-centre greedy on phi (Sener & Savarese 2018): cover the pool with balls around L ∪ S."""

    name = "coreset"
    needs_labelled = True

    def query(self, ctx: QueryContext, k: int) -> Selection:
        return Selection.of(k_centre_greedy(ctx.embeddings.astype(np.float64), ctx.labelled_embeddings.astype(np.float64), k))


class Badge(QueryStrategy):
    """BADGE (Ash et al. 2020): k-means++ seeding on gradient embeddings
    g(x) = (p(x) - onehot(argmax p(x))) ⊗ phi(x), uncertain (large g) and diverse (D² sampling).
    Seeding is scikit-learn's ``kmeans_plusplus`` with one trial, i.e. plain D² sampling."""

    name = "badge"

    def query(self, ctx: QueryContext, k: int) -> Selection:
        p = ctx.probs.astype(np.float64)
        residual = p.copy()
        residual[np.arange(len(p)), p.argmax(1)] -= 1.0
        g = (residual[:, :, None] * ctx.embeddings[:, None, :]).reshape(len(p), -1)
        k = min(k, len(g))
        seed = int(ctx.rng.integers(2**31 - 1))
        _, picks = kmeans_plusplus(g, n_clusters=k, n_local_trials=1, random_state=seed)
        picks = list(dict.fromkeys(int(i) for i in picks))  # D² never repeats unless g has ties at 0
        if len(picks) < k:
            rest = [i for i in ctx.rng.permutation(len(g)) if i not in set(picks)]
            picks += rest[: k - len(picks)]
        return Selection.of(picks)
