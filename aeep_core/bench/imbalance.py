"""Long-tailed pools for the benchmark: keep fewer items of some classes, as CIFAR-10-LT
is made from CIFAR-10 (Cui et al. 2019), so that strategies are measured on the
imbalance real collections have. Only the pool is cut; the test set stays as loaded
(balanced for MNIST and stratified splits), so its accuracy is a balanced accuracy.
"""

from __future__ import annotations

import numpy as np

from aeep_core.pool import DataError, Dataset, Pool

PROFILES = ("exp", "step")


def class_quotas(head: int, n_classes: int, rho: float, profile: str = "exp") -> np.ndarray:
    """Items kept per rank, head class first: ``head * rho^(-r / (C - 1))`` (``exp``), or
    ``head`` for the first half of the ranks and ``head / rho`` for the rest (``step``).
    At least one item per class, so every class exists in the pool."""
    if rho < 1:
        raise ValueError(f"the imbalance ratio is the head class over the rarest, at least 1; got {rho:g}")
    if profile not in PROFILES:
        raise ValueError(f"the imbalance profile is one of {', '.join(PROFILES)}; got {profile!r}")
    ranks = np.arange(n_classes, dtype=np.float64)
    if profile == "exp":
        share = rho ** (-ranks / max(n_classes - 1, 1))
    else:
        share = np.where(ranks < n_classes - n_classes // 2, 1.0, 1.0 / rho)
    return np.maximum(1, np.floor(head * share + 1e-9)).astype(np.int64)


def long_tailed(data: Dataset, rho: float, profile: str = "exp", seed: int = 0) -> Dataset:
    """``data`` with its pool cut to a long tail of ratio ``rho``; the test set unchanged.

    Which class gets which rank, and which items each class keeps, are drawn from
    ``seed``. The head quota is the smallest class's size, so every rank can be filled
    whichever class draws it. ``rho = 1`` returns ``data`` as it is.
    """
    pool = data.pool
    if rho == 1:
        return data
    if pool.labels is None or not pool.has_labels:
        raise DataError("--imbalance needs ground truth for every pool item: IDX label files or class-named subfolders")
    counts = np.asarray(pool_counts(pool))
    present = np.flatnonzero(counts)
    rng = np.random.default_rng([seed, 0x1A7])  # not the learner's stream: the same cut for every strategy
    order = rng.permutation(present)  # order[r]: the class at rank r
    quotas = class_quotas(int(counts[present].min()), len(present), rho, profile)
    keep = [rng.choice(np.flatnonzero(pool.labels == c), size=q, replace=False) for c, q in zip(order, quotas)]
    kept = np.sort(np.concatenate(keep))
    cut = pool.subset(kept)
    cut.meta = {**cut.meta, "imbalance": {"rho": rho, "profile": profile, "rank_order": order.tolist(), "kept": quotas.tolist()}}
    return Dataset(cut, data.test)


def pool_counts(pool: Pool) -> list[int]:
    """Ground-truth items per class of a fully labelled pool, in class order."""
    if pool.labels is None or not pool.has_labels:
        raise DataError("counting items per class needs ground truth for every pool item")
    return np.bincount(pool.labels, minlength=pool.n_classes).tolist()


def kept_line(counts: list[int] | np.ndarray, rho: float, profile: str, seed: int, class_names: list[str] | None = None) -> str:
    """One line saying how many pool items each class kept after a cut, for the log."""
    names = class_names or [str(c) for c in range(len(counts))]
    kept = ", ".join(f"{name} {int(n)}" for name, n in zip(names, counts))
    return f"long tail rho {rho:g} ({profile}), seed {seed}: pool per class {kept} ({int(np.sum(counts))} in all; test set whole)"
