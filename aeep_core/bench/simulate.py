"""The active-learning loop with ground truth as the oracle (``aeep-tui simulate``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from aeep_core.bench.imbalance import pool_counts
from aeep_core.bench.metrics import auroc, balanced_accuracy, macro_f1, min_recall
from aeep_core.data.loading import Dataset
from aeep_core.learning.learner import SKIPPED, ActiveLearner, RoundRecord, next_batch_size
from aeep_core.learning.training import TrainConfig, score
from aeep_core.pool import DataError, Pool
from aeep_core.session.stats import confusion_matrix
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
    # The project starts knowing only the classes of its initial labels and adds each
    # other class the first time the oracle answers with it, as a person would (issue 26).
    hidden_classes: bool = False
    # The last ``late`` answers of each batch reach training one round late, as when the
    # app trains ahead of Enter (PlainEngine with follow_pace): the model that chooses
    # the next batch has not seen them; the round after it has.
    late: int = 0


class Discovery:
    """The classes a simulated project knows, in the order it met them: the learner's class
    ``j`` is the true class ``order[j]``. Each class the oracle names for the first time is
    added to the learner's pool (so its model grows by one output) before the answer is
    taught, and the labels given by then are recorded."""

    def __init__(self, pool: Pool, initial: np.ndarray):
        self.names = list(pool.class_names)
        self.order: list[int] = sorted({int(c) for c in initial})
        if len(self.order) < 2:
            raise DataError(
                f"--hidden-classes: the {len(initial)} initial labels hold one class; a project starts with two (raise --initial)"
            )
        self.found_at: dict[int, int] = {c: len(initial) for c in self.order}  # true class -> labels when known
        # the learner's own pool: the same items, only the classes met so far, no ground truth
        self.pool = replace(pool, class_names=[self.names[c] for c in self.order], labels=None)

    def answers(self, truth: np.ndarray, labels_after: int) -> np.ndarray:
        """The oracle's answers as the learner's class indices, adding every class not met
        before (``labels_after``: how many labels the project holds once they are taught)."""
        for c in truth.tolist():
            if c not in self.found_at:
                self.found_at[c] = labels_after
                self.order.append(c)
                self.pool.add_class(self.names[c])
        index = {c: j for j, c in enumerate(self.order)}
        return np.array([index[int(c)] for c in truth], dtype=np.int64)

    @property
    def true_classes(self) -> np.ndarray:
        """The true class of each of the learner's classes."""
        return np.array(self.order, dtype=np.int64)

    def summary(self, pool_counts: list[int]) -> dict[str, Any]:
        """What the JSON records: each class with the labels given when it became known (in
        that order), and the labels until every class of the pool was known (None: never)."""
        held = [c for c, n in enumerate(pool_counts) if n > 0]
        found = [{"class": self.names[c], "labels": self.found_at[c]} for c in self.order]
        every = all(c in self.found_at for c in held)
        return {"discovered": found, "labels_to_all_known": max(self.found_at[c] for c in held) if every else None}


@dataclass
class SimulatedRound(RoundRecord):
    """A round of a simulation: the learner's record plus the figures of the test set's
    confusion matrix that judge a model on skewed classes (None without a test set)."""

    balanced_accuracy: float | None = None
    macro_f1: float | None = None
    min_recall: float | None = None


def simulate(
    data: Dataset, settings: SimulationSettings, on_round: Callable[[RoundRecord], None] | None = None
) -> dict[str, Any]:
    """Run rounds until ``budget`` labels; return ``{"strategy", "batch_size", "seed", "rounds"}``.

    Each record describes the model trained on ``labelled`` labels: its test accuracy,
    ``balanced_accuracy``, ``macro_f1`` and ``min_recall`` (and ``auroc`` for a two-class
    task, None otherwise), how many of those labels each class has (``per_class``: on a
    rare-positive task, how many cases were found) and the batch it then chose (m,
    entropies); ``mp`` is measured once that batch is labelled. ``pool_counts``: the
    pool's items per class (ground truth), against which ``per_class`` is read.
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
    discovery = Discovery(pool, truth[first]) if settings.hidden_classes else None
    if discovery is not None:  # the same items, the same draws: only the learner's classes differ
        learner.pool, learner.test = discovery.pool, None

    def oracle(ids: np.ndarray) -> np.ndarray:
        """The true classes of ``ids``, as the learner's class indices."""
        if discovery is None:
            return truth[ids]
        return discovery.answers(truth[ids], len(learner.labels) + len(ids))

    learner.add_labels(first, oracle(first))
    budget = min(settings.budget, len(pool))
    rounds: list[dict[str, Any]] = []
    held: tuple[np.ndarray, np.ndarray] | None = None  # (ids, answers) that reach training late
    while True:
        if held is not None:  # out of L and U while the model trains, as in the app
            learner.add_labels(held[0], np.full(len(held[0]), SKIPPED))
        train_s = learner.train()
        if held is not None:
            learner.add_labels(*held)
        true_classes = None if discovery is None else discovery.true_classes
        scores = evaluate(learner, data.test, true_classes, pool.n_classes)
        record = SimulatedRound(
            labelled=len(learner.labels),
            accuracy=scores["accuracy"],
            m=None,
            mp=None,
            entropy_batch=None,
            entropy_pool=None,
            train_s=train_s,
            select_s=None,
            balanced_accuracy=scores["balanced_accuracy"],
            macro_f1=scores["macro_f1"],
            min_recall=scores["min_recall"],
        )
        per_class = labels_per_class(learner, true_classes, pool.n_classes)  # the labels this model was trained on
        k = next_batch_size(settings.batch_size, len(learner.unlabelled_ids()), budget, len(learner.labels))
        if k > 0:
            proposal = learner.propose(k)
            record.m, record.select_s = proposal.m, proposal.select_s
            record.entropy_batch, record.entropy_pool = proposal.entropy_batch, proposal.entropy_pool
            answers = oracle(proposal.ids)
            record.mp, record.batch_accuracy = learner.teach(proposal, answers)
            late = min(settings.late, len(proposal.ids))
            held = (proposal.ids[len(proposal.ids) - late :], answers[len(answers) - late :]) if late else None
        known = {} if true_classes is None else {"classes_known": len(true_classes)}
        rounds.append(
            {**record.as_dict(), "auroc": scores["auroc"], "per_class": per_class, "confusion": scores["confusion"], **known}
        )
        if on_round is not None:
            on_round(record)
        if k <= 0:
            break
    counts = pool_counts(pool)
    hidden = {} if discovery is None else {"hidden_classes": True, **discovery.summary(counts)}
    return {
        "strategy": settings.strategy,
        "batch_size": settings.batch_size,
        "seed": settings.seed,
        "device": str(learner.device),
        "pool_counts": counts,
        "rounds": rounds,
        **hidden,
    }


def labels_per_class(learner: ActiveLearner, true_classes: np.ndarray | None = None, n_classes: int = 0) -> list[int]:
    """How many of the learner's labels each class has, in class order (``true_classes``:
    the true class of each of the learner's classes, when it knows only some of the
    ``n_classes``)."""
    given = np.fromiter(learner.labels.values(), dtype=np.int64, count=len(learner.labels))
    if true_classes is not None:
        return np.bincount(true_classes[given], minlength=n_classes).tolist()
    return np.bincount(given, minlength=learner.pool.n_classes).tolist()


def evaluate(
    learner: ActiveLearner, test: Pool | None, true_classes: np.ndarray | None = None, n_classes: int = 0
) -> dict[str, Any]:
    """The test set's figures: ``accuracy``, ``balanced_accuracy``, ``macro_f1``,
    ``min_recall``, ``confusion`` (``[true, predicted]`` counts, as a list) and ``auroc`` of
    the class-1 probability when the task has two classes (None otherwise).

    Scores the test set once for every figure (the learner's own ``evaluate`` gives
    accuracy only). Every figure is None without a labelled test set. ``true_classes``
    (the true class of each model output, for a learner that knows only some of the
    ``n_classes``): the figures are over every class, one not yet known never predicted.
    """
    figures: dict[str, Any] = dict.fromkeys(("accuracy", "balanced_accuracy", "macro_f1", "min_recall", "auroc", "confusion"))
    if test is None or test.labels is None or learner.model is None:
        return figures
    probs, _ = score(learner.model, test.inputs, learner.device)
    if true_classes is not None:
        every = np.zeros((len(probs), n_classes), dtype=probs.dtype)
        every[:, true_classes[: probs.shape[1]]] = probs
        probs = every
    n = probs.shape[1]
    truth = np.asarray(test.labels, dtype=np.int64)
    known = (truth >= 0) & (truth < n)  # an item of unknown class counts nowhere
    confusion = confusion_matrix(truth[known], probs.argmax(1)[known], n)
    figures.update(
        accuracy=float((probs.argmax(1)[known] == truth[known]).mean()) if known.any() else None,
        balanced_accuracy=balanced_accuracy(confusion),
        macro_f1=macro_f1(confusion),
        min_recall=min_recall(confusion),
        auroc=auroc(probs[known, 1], truth[known] == 1) if n == 2 else None,
        confusion=confusion.tolist(),
    )
    return figures


TABLE_COLUMNS = (
    "labelled",
    "accuracy",
    "balanced_accuracy",
    "m",
    "mp",
    "entropy_batch",
    "entropy_pool",
    "train_s",
    "select_s",
)
_HEADERS = {"balanced_accuracy": "balanced"}  # the column's title where the key is too wide
_PERCENT = ("accuracy", "balanced_accuracy")


def format_row(record: dict[str, Any]) -> str:
    """One line of the per-round table."""
    cells = []
    for col in TABLE_COLUMNS:
        v = record.get(col)
        if v is None:
            cells.append("-")
        elif col in _PERCENT:
            cells.append(f"{100 * v:.1f}%")
        elif isinstance(v, float):
            cells.append(f"{v:.2f}")
        else:
            cells.append(str(v))
    return "".join(f"{c:>14}" for c in cells)


def format_header() -> str:
    return "".join(f"{_HEADERS.get(c, c):>14}" for c in TABLE_COLUMNS)


def summary_line(result: dict[str, Any]) -> str:
    """Medians of the per-round seconds, for quoting."""
    tr = [r["train_s"] for r in result["rounds"] if r["train_s"] is not None]
    se = [r["select_s"] for r in result["rounds"] if r["select_s"] is not None]
    med = lambda xs: float(np.median(xs)) if xs else float("nan")  # noqa: E731
    return f"median seconds per round: train {med(tr):.2f}, select {med(se):.2f} on {result['device']}"


def discovery_line(result: dict[str, Any]) -> str:
    """For ``hidden_classes``: how many classes were met, and the labels until every class
    of the pool was known."""
    found, every = result["discovered"], result["labels_to_all_known"]
    held = sum(1 for n in result["pool_counts"] if n > 0)
    end = f"every class known after {every} labels" if every is not None else "not every class was found"
    return f"classes known: {len(found)} of {held}; {end}"
