"""Baselines that need no learned similarity: random, entropy maximisation, k-farthest-first."""

from __future__ import annotations

import numpy as np

from aeep_core.strategies.base import QueryContext, QueryStrategy, Selection, softmax


class RandomSampling(QueryStrategy):
    """Uniform from the pool."""

    name = "random"

    def query(self, ctx: QueryContext, k: int) -> Selection:
        return Selection.of(ctx.rng.choice(len(ctx.candidates), size=min(k, len(ctx.candidates)), replace=False))


class EntropyMaximisation(QueryStrategy):
    """Highest entropy first, re-scored after each pick.

    Re-scoring: after a pick, the last layer is nudged (a few gradient steps on the
    cached embeddings) toward the label the model predicts for it, as if it were
    labelled; entropies are then recomputed. Near-copies of a pick become confident,
    so the batch does not collapse onto one region. Costs only ``n x d x C`` per pick.
    """

    name = "em"

    def __init__(self, steps: int = 5, lr: float = 0.5):
        self.steps, self.lr = steps, lr

    def query(self, ctx: QueryContext, k: int) -> Selection:
        phi, w, b = ctx.embeddings.astype(np.float64), ctx.head_weight.astype(np.float64), ctx.head_bias.astype(np.float64)
        blocked = np.zeros(len(phi), dtype=bool)
        h = ctx.entropy.astype(np.float64)
        picks: list[int] = []
        for _ in range(min(k, len(phi))):
            i = int(np.argmax(np.where(blocked, -np.inf, h)))
            picks.append(i)
            blocked[i] = True
            target = np.zeros(len(b))
            target[int(np.argmax(phi[i] @ w.T + b))] = 1.0
            scale = self.lr / max(float(phi[i] @ phi[i]), 1e-12)
            for _ in range(self.steps):
                p = softmax(phi[i] @ w.T + b)
                w -= scale * np.outer(p - target, phi[i])
                b -= self.lr * (p - target)
            p = softmax(phi @ w.T + b)
            h = -(np.clip(p, 1e-12, 1) * np.log(np.clip(p, 1e-12, 1))).sum(1)
        return Selection.of(picks)


class KFarthestFirst(QueryStrategy):
    """Farthest-first traversal from L in input space (Euclidean): pure exploration."""

    name = "kff"

    def query(self, ctx: QueryContext, k: int) -> Selection:
        cand, known = ctx.input_rows
        return Selection.of(k_centre_greedy(cand, known, k))


def k_centre_greedy(x: np.ndarray, known: np.ndarray, k: int) -> list[int]:
    """Repeatedly pick the row of ``x`` farthest (Euclidean) from ``known`` and earlier picks."""
    sq = (x * x).sum(1)
    if len(known):
        d = sq[:, None] - 2 * x @ known.T + (known * known).sum(1)[None, :]
        nearest = d.min(1)
    else:
        nearest = np.full(len(x), np.inf)
    picks: list[int] = []
    for _ in range(min(k, len(x))):
        i = int(np.argmax(nearest))
        picks.append(i)
        nearest = np.minimum(nearest, sq - 2 * x @ x[i] + sq[i])
        nearest[picks] = -np.inf
    return picks
