"""The active-learning loop with ground truth as the oracle (``aeep-tui simulate``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aeep_core.bench.imbalance import pool_counts
from aeep_core.bench.metrics import auroc
from aeep_core.data.loading import Dataset
from aeep_core.learning.learner import ActiveLearner, RoundRecord, next_batch_size
from aeep_core.learning.training import TrainConfig, score
from aeep_core.pool import DataError, Pool
from aeep_core.strategies import make_strategy


@dataclass
class SimulationSettings:
    """One simulated run."""

    strategy: str = "aeep"
    batch_size: int = 20
    budget: int = 300
    initial: int = 20
    seed: int = 0
    device: str = "auto"
    candidates: int = 10_000
    train: TrainConfig = field(default_factory=TrainConfig)
    strategy_options: dict[str, Any] = field(default_factory=dict)


def simulate(
    data: Dataset, settings: SimulationSettings, on_round: Callable[[RoundRecord], None] | None = None
) -> dict[str, Any]:
    """Run rounds until ``budget`` labels; return ``{"strategy", "batch_size", "seed", "rounds"}``.

    Each record describes the model trained on ``labelled`` labels: its test accuracy
    (and ``auroc`` for a two-class task, None otherwise), how many of those labels each
    class has (``per_class``: on a rare-positive task, how many cases were found) and the
    batch it then chose (m, entropies); ``mp`` is measured once that batch is labelled.
    ``pool_counts``: the pool's items per class (ground truth), against which
    ``per_class`` is read.
    """
    pool = data.pool
    truth = pool.labels
    if truth is None or not pool.has_labels:
        raise DataError("simulate needs ground truth for every pool item: IDX label files or class-named subfolders")
    if settings.initial < 1 or settings.batch_size < 1:
        raise ValueError("--initial and --batch-size must be at least 1")
    learner = ActiveLearner(
        pool,
        make_strategy(settings.strategy, **settings.strategy_options),
        config=settings.train,
        device=settings.device,
        seed=settings.seed,
        candidates=settings.candidates,
        test=data.test,
    )
    first = learner.initial_ids(settings.initial)
    learner.add_labels(first, truth[first])
    budget = min(settings.budget, len(pool))
    rounds: list[dict[str, Any]] = []
    while True:
        train_s = learner.train()
        accuracy, area = evaluate(learner, data.test)
        record = RoundRecord(len(learner.labels), accuracy, None, None, None, None, train_s, None)
        per_class = labels_per_class(learner)  # the labels this model was trained on
        k = next_batch_size(settings.batch_size, len(learner.unlabelled_ids()), budget, len(learner.labels))
        if k > 0:
            proposal = learner.propose(k)
            record.m, record.select_s = proposal.m, proposal.select_s
            record.entropy_batch, record.entropy_pool = proposal.entropy_batch, proposal.entropy_pool
            record.mp, record.batch_accuracy = learner.teach(proposal, truth[proposal.ids])
        rounds.append({**record.as_dict(), "auroc": area, "per_class": per_class})
        if on_round is not None:
            on_round(record)
        if k <= 0:
            break
    return {
        "strategy": settings.strategy,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "device": str(learner.device),
        "pool_counts": pool_counts(pool),
        "rounds": rounds,
    }


def labels_per_class(learner: ActiveLearner) -> list[int]:
    """How many of the learner's labels each class has, in class order."""
    given = np.fromiter(learner.labels.values(), dtype=np.int64, count=len(learner.labels))
    return np.bincount(given, minlength=learner.pool.n_classes).tolist()


def evaluate(learner: ActiveLearner, test: Pool | None) -> tuple[float | None, float | None]:
    """Test accuracy, and AUROC of the class-1 probability when the task has two classes.

    Scores the test set once for both figures (the learner's own ``evaluate`` gives
    accuracy only). (None, None) without a labelled test set.
    """
    if test is None or test.labels is None or learner.model is None:
        return None, None
    probs, _ = score(learner.model, test.inputs, learner.device)
    accuracy = float((probs.argmax(1) == test.labels).mean())
    area = auroc(probs[:, 1], test.labels == 1) if probs.shape[1] == 2 else None
    return accuracy, area


TABLE_COLUMNS = ("labelled", "accuracy", "m", "mp", "entropy_batch", "entropy_pool", "train_s", "select_s")


def format_row(record: dict[str, Any]) -> str:
    """One line of the per-round table."""
    cells = []
    for col in TABLE_COLUMNS:
        v = record.get(col)
        if v is None:
            cells.append("-")
        elif col == "accuracy" or col == "mp":
            cells.append(f"{100 * v:.1f}%" if col == "accuracy" else f"{v:.2f}")
        elif isinstance(v, float):
            cells.append(f"{v:.2f}")
        else:
            cells.append(str(v))
    return "".join(f"{c:>14}" for c in cells)


def format_header() -> str:
    return "".join(f"{c:>14}" for c in TABLE_COLUMNS)


def summary_line(result: dict[str, Any]) -> str:
    """Medians of the per-round seconds, for quoting."""
    tr = [r["train_s"] for r in result["rounds"] if r["train_s"] is not None]
    se = [r["select_s"] for r in result["rounds"] if r["select_s"] is not None]
    med = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    return f"median seconds per round: train {med(tr):.2f}, select {med(se):.2f} on {result['device']}"
