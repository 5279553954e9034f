"""Learning-curve figures for the benchmark: labels to a threshold, value at a label
count, area under the curve, and mean ± spread over seeds.

A learning curve is two parallel sequences: ``labelled`` (label counts, increasing) and
``values`` (accuracy or AUROC of the model trained on that many labels; None where a
value was not measured).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np


def _clean(labelled: Sequence[int], values: Sequence[float | None]) -> tuple[np.ndarray, np.ndarray]:
    """Drop points without a value; check the label counts increase."""
    if len(labelled) != len(values):
        raise ValueError(f"curve has {len(labelled)} label counts but {len(values)} values")
    pts = [(float(n), float(v)) for n, v in zip(labelled, values) if v is not None and not math.isnan(v)]
    x = np.array([p[0] for p in pts], dtype=np.float64)
    y = np.array([p[1] for p in pts], dtype=np.float64)
    if len(x) > 1 and np.any(np.diff(x) <= 0):
        raise ValueError("label counts of a learning curve must increase")
    return x, y


def labels_to(labelled: Sequence[int], values: Sequence[float | None], threshold: float) -> int | None:
    """The first label count whose value reaches ``threshold`` (>=); None if never.

    "First reach", not "reach and stay": a practitioner stops labelling the first time
    the model is good enough, so that is the count that costs them.
    """
    x, y = _clean(labelled, values)
    hit = np.flatnonzero(y >= threshold)
    return int(x[hit[0]]) if len(hit) else None


def value_at(labelled: Sequence[int], values: Sequence[float | None], n: float) -> float | None:
    """The curve's value at ``n`` labels, linearly interpolated between measured points.

    Interpolation makes batch sizes comparable (k=50 from 20 labels never lands on 100);
    outside the measured range the answer is None rather than an extrapolation.
    """
    x, y = _clean(labelled, values)
    if len(x) == 0 or n < x[0] or n > x[-1]:
        return None
    return float(np.interp(n, x, y))


def aulc(
    labelled: Sequence[int], values: Sequence[float | None], start: float | None = None, end: float | None = None
) -> float | None:
    """Normalised area under the learning curve: the mean value over [start, end] labels.

    Trapezoids between measured points, divided by the width of the range, so that 1.0
    is a perfect curve and numbers from different budgets stay on one scale. ``start``
    and ``end`` default to the first and last measured counts; a curve must cover them
    (None otherwise), which keeps strategies with the same protocol comparable.
    """
    x, y = _clean(labelled, values)
    if len(x) == 0:
        return None
    lo = x[0] if start is None else float(start)
    hi = x[-1] if end is None else float(end)
    if lo < x[0] or hi > x[-1] or hi < lo:
        return None
    if hi == lo:
        return float(np.interp(lo, x, y))
    inside = (x > lo) & (x < hi)
    xs = np.concatenate([[lo], x[inside], [hi]])
    ys = np.interp(xs, x, y)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2) / (hi - lo))


def spread(values: Sequence[float | None]) -> dict[str, float | int | None]:
    """Mean, standard deviation (population: seeds are the whole set we ran), min, max
    over the values that exist, with ``n`` of them and ``missing`` (None values, e.g. a
    threshold never reached)."""
    present = np.array([float(v) for v in values if v is not None], dtype=np.float64)
    out: dict[str, float | int | None] = {"n": int(len(present)), "missing": len(values) - int(len(present))}
    if len(present) == 0:
        out.update(mean=None, std=None, min=None, max=None)
    else:
        out.update(mean=float(present.mean()), std=float(present.std()), min=float(present.min()), max=float(present.max()))
    return out


def auroc(scores: np.ndarray, labels: np.ndarray) -> float | None:
    """Area under the ROC curve for a binary task (rank formula, ties counted half);
    None when the labels hold a single class."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels).astype(bool)
    n_pos, n_neg = int(labels.sum()), int((~labels).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(scores, kind="mergesort")
    ranks = np.empty(len(scores), dtype=np.float64)
    sorted_scores = scores[order]
    # average ranks over ties so that equal scores count as half a win
    _, first, counts = np.unique(sorted_scores, return_index=True, return_counts=True)
    avg = first + (counts - 1) / 2.0 + 1.0
    ranks[order] = np.repeat(avg, counts)
    return float((ranks[labels].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


# --- figures of a confusion matrix ``[true class, predicted class]`` (counts) --------------
# Classes absent from the test set have no recall, so they are left out rather than counted
# as 0 or 1: these figures are over the classes the test set can measure.
def _recalls(confusion: np.ndarray) -> np.ndarray:
    confusion = np.asarray(confusion, dtype=np.float64)
    support = confusion.sum(axis=1)
    present = support > 0
    return np.diag(confusion)[present] / support[present]


def balanced_accuracy(confusion: np.ndarray) -> float | None:
    """Mean per-class recall over the classes present in the test set (None if none):
    on a balanced test set it equals accuracy; on a skewed one a model that ignores a rare
    class loses that class's full share."""
    recalls = _recalls(confusion)
    return float(recalls.mean()) if len(recalls) else None


def min_recall(confusion: np.ndarray) -> float | None:
    """The lowest per-class recall over the classes present in the test set (None if none):
    how well the worst-served class is found."""
    recalls = _recalls(confusion)
    return float(recalls.min()) if len(recalls) else None


def macro_f1(confusion: np.ndarray) -> float | None:
    """Mean F1 = 2 TP / (2 TP + FP + FN) over the classes present in the test set (None if
    none); predictions of an absent class still count as false positives of that guess."""
    confusion = np.asarray(confusion, dtype=np.float64)
    tp = np.diag(confusion)
    support, predicted = confusion.sum(axis=1), confusion.sum(axis=0)
    present = support > 0
    if not present.any():
        return None
    f1 = 2 * tp[present] / (support[present] + predicted[present])
    return float(f1.mean())


# --- how the labels spread over the classes of a long-tailed pool -------------------------
def rarest_classes(pool_counts: Sequence[int], n: int = 3) -> list[int]:
    """The ``n`` classes with the fewest pool items (ties: lower class first), among the
    classes the pool holds, never all of them: with two classes, the rarer one."""
    counts = np.asarray(pool_counts, dtype=np.int64)
    present = np.flatnonzero(counts > 0)
    order = present[np.argsort(counts[present], kind="stable")]
    return order[: max(0, min(n, len(present) - 1))].tolist()


def labels_to_all_classes(
    labelled: Sequence[int], per_class: Sequence[Sequence[int] | None], pool_counts: Sequence[int]
) -> int | None:
    """The first label count at which every class the pool holds has at least one label
    (``per_class``: labels per class at each count); None if that never happened."""
    held = np.asarray(pool_counts, dtype=np.int64) > 0
    for n, counts in zip(labelled, per_class):
        if counts is not None and np.all(np.asarray(counts, dtype=np.int64)[held] >= 1):
            return int(n)
    return None
