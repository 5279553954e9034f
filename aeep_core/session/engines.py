"""How a labelling session gets its batches: the small interface both engines share, and
the plain loop's turn (:func:`retrain_and_choose`: train, evaluate, choose).

The session owns the store and the batch on screen; an engine owns the learner and
decides *when* training and choosing happen. The pipelined engine
(:mod:`aeep_core.session.pipelined`) trains while the person labels; the plain one
(:mod:`aeep_core.session.plain`) retrains after each confirmed batch, or ahead of it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from aeep_core.learning.learner import RETRACT, ActiveLearner, Proposal, confusion_accuracy, next_batch_size
from aeep_core.pool import Pool
from aeep_core.session.types import Batch

StageProgress = Callable[[str, int, int], None]
#: what the session records once an engine has learnt from a confirmed batch:
#: (mp, batch accuracy, engine state to store — None keeps the state the batch was chosen in)
RecordOutcome = Callable[[float | None, float | None, dict[str, Any] | None], None]
#: commits a correction to the store; an engine calls it where no trainer can read the log between
SaveCorrection = Callable[[], object]
#: commits several corrections at once (a merge of classes) and returns them, (pool item, label)
SaveCorrections = Callable[[], Sequence[tuple[int, int]]]


@dataclass
class Choice:
    """A batch an engine chose, with everything the session records about it."""

    proposal: Proposal
    checkpoint: dict[str, Any]  # the state that chose it (weights included), for exact resume
    engine: dict[str, Any]  # the JSON part of that state, stored with the round
    stats: dict[str, Any] = field(default_factory=dict)  # m, entropies, test accuracy and confusion, seconds


class Engine(Protocol):
    """What a session asks of an engine. ``adopt`` hands it a batch it did not choose (a
    restored or a random cold-start one; ``m``: its exploration count); ``answer`` gets
    every answer to the batch on screen as it is saved (a class index, ``SKIPPED`` or ``RETRACT``); ``confirm`` learns from the complete
    batch and calls ``record``; ``choose`` returns the next batch, None when stopped;
    ``correct`` takes a new answer to an item of a confirmed batch (review) into the next
    training, at any time, a retrain running or not: it calls ``save`` first;
    ``correct_many`` does the same for the corrections ``save`` commits and returns;
    ``answered`` follows every answer with the batch as it is."""

    learner: ActiveLearner

    @property
    def training(self) -> bool:
        """Whether a background trainer is running (and so owns L)."""
        ...

    def adopt(self, batch: Batch, m: int | None) -> None: ...

    def answer(self, position: int, label: int) -> None: ...

    def answered(self, batch: Batch) -> None:
        """An answer was saved; ``batch`` as it is now (an engine may start on the next
        batch before the last card: the plain one does)."""
        ...

    def confirm(self, batch: Batch, record: RecordOutcome) -> None: ...

    def correct(self, item: int, label: int, save: SaveCorrection) -> None: ...

    def correct_many(self, save: SaveCorrections) -> None: ...

    def classes_changed(self) -> None: ...

    def grew(self, part: Pool) -> None:
        """``part`` joined the end of the pool (photos embedded meanwhile), between batches."""
        ...

    def check(self) -> bool:
        """Whether the trainer is alive (one that died in its process is restarted)."""
        ...

    @property
    def restarts(self) -> int:
        """How many times a trainer process died and was started again."""
        ...

    @property
    def last_failure(self) -> str | None:
        """How the last one died."""
        ...

    @property
    def trainer_pid(self) -> int | None:
        """The trainer's process id (None: training runs in this process)."""
        ...

    def choose(self, progress: StageProgress | None, should_stop: Callable[[], bool] | None) -> Choice | None: ...

    @property
    def evaluation_pending(self) -> bool:
        """Whether the batch on screen was chosen before its model's test came in."""
        ...

    def late_evaluation(self, should_stop: Callable[[], bool] | None) -> tuple[float | None, list[list[int]] | None] | None:
        """(test accuracy, confusion) of the model that chose the batch on screen, if
        :meth:`choose` returned before it was tested; None when nothing is awaited."""
        ...

    def close(self) -> None: ...


class Retrainer(Protocol):
    """Runs :func:`retrain_and_choose` for a learner somewhere else (a trainer process)
    and leaves the learner as if it had run here."""

    def choose(
        self,
        learner: ActiveLearner,
        batch_size: int,
        budget: int | None,
        progress: StageProgress | None,
        should_stop: Callable[[], bool] | None,
        ahead: Any = None,
    ) -> Choice | None: ...

    def speculate(self, key: Any, learner: ActiveLearner, arrays: BatchArrays, batch_size: int, budget: int | None) -> None:
        """Start on the batch after ``arrays`` (complete) now; ``choose(ahead=key)`` takes it."""

    def train_ahead(self, key: Any, learner: ActiveLearner, arrays: BatchArrays) -> None:
        """Train now on L and the answers in ``arrays`` so far (``SKIPPED`` where none yet);
        ``choose(ahead=key)`` then only chooses, on L as it is by then."""

    def grew(self, part: Pool) -> None:
        """``part`` joined the end of the learner's pool."""

    def close(self) -> None: ...

    restarts: int
    last_failure: str | None

    @property
    def pid(self) -> int | None: ...


def batch_arrays(batch: Batch) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(pool ids, exploration flags, predictions (-1: none), answers (``RETRACT``: none
    yet)) of a batch, as arrays."""
    items = batch.items
    return (
        np.array([it.item_id for it in items], dtype=np.int64),
        np.array([it.exploration for it in items], dtype=bool),
        np.array([-1 if it.predicted is None else it.predicted for it in items], dtype=np.int64),
        np.array([RETRACT if it.answer is None else it.answer for it in items], dtype=np.int64),
    )


BatchArrays = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def learn_from(learner: ActiveLearner, arrays: BatchArrays) -> tuple[float | None, float | None, bool]:
    """Teach the learner a complete batch (:func:`batch_arrays`): (mp, batch accuracy,
    whether it was a cold batch, chosen without a model). One definition for the plain
    engine and for a retrainer that starts on the next batch before Enter."""
    ids, exploration, predicted, answers = arrays
    if bool((predicted < 0).all()):
        learner.add_labels(ids, answers)
        return None, None, True
    proposal = Proposal(ids, exploration, predicted, np.zeros(len(ids)), 0.0, 0.0, None, 0.0)
    mp, accuracy = learner.teach(proposal, answers)
    return mp, accuracy, False


def engine_state(learner: ActiveLearner, cold: bool) -> dict[str, Any]:
    """The JSON part of the learner's state stored with a round; L is in the store itself."""
    return {**learner.state_dict(model=False, labels=False), "cold": cold}


def retrain_and_choose(
    learner: ActiveLearner,
    batch_size: int,
    budget: int | None,
    progress: StageProgress | None,
    should_stop: Callable[[], bool] | None,
    trained_s: float | None = None,
) -> Choice | None:
    """The plain loop's turn: train on L, evaluate, score and choose; None when stopped
    (the learner then keeps the model that chose the last batch). ``trained_s``: the
    learner's model was trained ahead already, in that many seconds. The same code runs
    in the app's process or in a trainer process (:mod:`aeep_core.session.trainer_process`)."""
    report = (lambda stage: lambda d, t: progress(stage, d, t)) if progress else (lambda stage: None)
    k = next_batch_size(batch_size, len(learner.unlabelled_ids()), budget, len(learner.labels))
    train_s = trained_s
    if train_s is None:
        last_good = learner.state_dict(labels=False)["model"]
        train_s = learner.train(progress=report("train"), should_stop=should_stop)
        if should_stop is not None and should_stop():
            # Half-trained: go back to the model that chose the last batch.
            learner.forget_model()
            learner.load_state_dict({"model": last_good})
            return None
    if progress:
        progress("evaluate", 0, 1)
    confusion = learner.test_confusion()
    accuracy = confusion_accuracy(confusion)
    if progress:
        progress("evaluate", 1, 1)
    prop = learner.propose(k, progress=report("score"))
    stats = {
        "m": prop.m,
        "entropy_batch": prop.entropy_batch,
        "entropy_pool": prop.entropy_pool,
        "test_accuracy": accuracy,
        "train_s": train_s,
        "select_s": prop.select_s,
        "test_confusion": None if confusion is None else confusion.tolist(),
    }
    return Choice(prop, learner.state_dict(), engine_state(learner, False), stats)
