"""The pipelined engine: train while the person labels (zero-wait batches).

Every answer goes to a :class:`~aeep_core.learning.pipelined.PipelinedLearner` as it is
saved, and the next batch is usually chosen before the last card is answered, so
:meth:`PipelinedEngine.choose` returns almost at once.

Exact resume: each round's checkpoint holds the trainer's whole state when it chose the
batch (model, optimizer, generators, L, answers absorbed). Starting again from it and
replaying the answers stored since, in order, retrains the same steps and so chooses
the same next batch as a session never interrupted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from aeep_core.learning.learner import RETRACT, ActiveLearner, Proposal
from aeep_core.learning.pipelined import PipelinedLearner
from aeep_core.learning.training import steps_for_pace, training_steps_per_second
from aeep_core.session.engines import Choice, RecordOutcome, SaveCorrection, SaveCorrections, StageProgress, batch_arrays
from aeep_core.session.types import Batch, ProjectSettings


@dataclass(frozen=True)
class LoggedAnswer:
    """One stored answer, in the order given: the pool index of its item (None: no longer
    in the data folder), its round, its label (None: taken back) and, for the batch on
    screen, its position there."""

    item: int | None
    round: int
    label: int | None
    position: int | None


#: the last checkpoint's state (None: none) and every stored answer, in order
History = Callable[[], tuple[dict[str, Any] | None, list[LoggedAnswer]]]


class PipelinedEngine:
    """Hand each answer to a background trainer that chooses the next batch ahead."""

    def __init__(self, learner: ActiveLearner, settings: ProjectSettings, history: History, evaluate: bool):
        self.learner, self.settings, self._history, self._evaluate = learner, settings, history, evaluate
        self._pipe: PipelinedLearner | None = None
        # Held while a trainer is set up from the stored log, and while a correction is saved
        # and handed over: every stored answer then reaches the learner exactly once, in order.
        self._lock = threading.Lock()

    @property
    def training(self) -> bool:
        """Whether the background trainer is running (and so owns L)."""
        return self._pipe is not None

    # --- the batch on screen ---------------------------------------------------------
    def adopt(self, batch: Batch, m: int | None) -> None:
        """Start the trainer with this batch on screen (a running one is replaced: a new
        random batch after a first batch that was all skipped); it resumes in the background."""
        with self._lock:
            if self._pipe is not None:
                self._pipe.close()
                self._pipe = None
        self._start(batch, m)

    def answer(self, position: int, label: int) -> None:
        if self._pipe is not None:
            self._pipe.answer(position, label)

    def correct(self, item: int, label: int, save: SaveCorrection) -> None:
        """Queued to the trainer behind the answers given before it (or into L when no
        trainer runs: the next one starts from the stored log, which holds it)."""

        def save_one() -> list[tuple[int, int]]:
            save()
            return [(item, label)]

        self.correct_many(save_one)

    def correct_many(self, save: SaveCorrections) -> None:
        """:meth:`correct` for every correction ``save`` commits, in its order."""
        with self._lock:
            for item, label in save():
                if self._pipe is not None:
                    self._pipe.correct(item, label)
                else:
                    self.learner.correct(item, label)

    def confirm(self, batch: Batch, record: RecordOutcome) -> None:
        """Record the batch's outcome; the trainer already has every answer, and the state
        stored with the round stays the one it was chosen in (the checkpoint has the rest)."""
        _, exploration, predicted, answers = batch_arrays(batch)
        mp, accuracy = self.learner.outcome(predicted, exploration, answers)
        record(mp, accuracy, None)

    # --- the next batch ----------------------------------------------------------------
    def choose(self, progress: StageProgress | None, should_stop: Callable[[], bool] | None) -> Choice | None:
        """The batch the trainer chose ahead, waiting only if the person was faster than
        training; None when stopped or when the pool is exhausted."""
        if progress:
            progress("train", 0, 1)
        start = time.perf_counter()
        pipe, proposal = self._pipe, None
        if pipe is not None and pipe.current is not None:
            proposal = self._wait(should_stop)
        if proposal is None and not (should_stop is not None and should_stop()):
            if pipe is not None:
                # The trainer found nothing left to choose, but the session says there is: a
                # correction since (an item back in the pool, a label taken out) freed some.
                # A new trainer, started from the stored log, chooses with it.
                with self._lock:
                    pipe.close()
                    self._pipe = None
            proposal = self._start(None, None)
        if proposal is None or self._pipe is None:
            return None
        if progress:
            progress("train", 1, 1)
        pipe = self._pipe
        snapshot = pipe.last_snapshot or {}
        accuracy = pipe.stats.accuracy[-1][1] if pipe.stats.accuracy else None
        stats = {
            "m": proposal.m,
            "entropy_batch": proposal.entropy_batch,
            "entropy_pool": proposal.entropy_pool,
            "test_accuracy": accuracy,
            "train_s": time.perf_counter() - start,
            "select_s": proposal.select_s,
            "test_confusion": None if pipe.stats.confusion is None else pipe.stats.confusion.tolist(),
        }
        engine = {
            "learner_round": snapshot.get("learner_round", self.learner.round),
            "strategy": snapshot.get("strategy", {}),
            "cold": False,
            "pipelined": True,
        }
        return Choice(proposal, snapshot, engine, stats)

    @property
    def evaluations(self) -> list[tuple[int, float | None]]:
        """(labels the model was trained on, its test accuracy) each time the trainer chose
        a batch since the engine started: the model that chose is ``lookahead`` answers
        behind the screen."""
        return [] if self._pipe is None else list(self._pipe.stats.accuracy)

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()

    # --- internals ---------------------------------------------------------------------
    def _start(self, batch: Batch | None, m: int | None) -> Proposal | None:
        """Start the trainer on the stored state (the last snapshot plus every answer
        since, corrections included, in the order given); return the batch it chose when
        none was on screen, else None."""
        s = self.settings
        with self._lock:
            checkpoint, log = self._history()
            snapshot = checkpoint if checkpoint is not None and "absorbed" in checkpoint else None  # else a plain one
            current_round = None if batch is None else batch.round
            if snapshot is not None:
                log = log[int(snapshot["absorbed"]) :]
            else:
                # No trainer state yet: L is what the session rebuilt from done rounds (with
                # their corrections); only the open batch's answers are new. The trainer owes
                # a full round first.
                log = [a for a in log if a.round == current_round]
            replay: list[tuple[int | None, int, int]] = []
            for a in log:
                label = RETRACT if a.label is None else a.label
                if a.round == current_round and a.position is not None and batch is not None:
                    replay.append((a.position, batch.items[a.position].item_id, label))
                elif a.item is not None:
                    replay.append((None, a.item, label))
            if snapshot is not None and "steps_per_label" in snapshot:
                steps = int(snapshot["steps_per_label"])  # what this project's trainer used: replay it exactly
            elif s.steps_per_label > 0:
                steps = s.steps_per_label
            else:  # a trainer's first start (no review yet to wait on the lock): a second or so
                steps = steps_for_pace(training_steps_per_second(self.learner.pool))
            pipe = PipelinedLearner(
                self.learner,
                s.batch_size,
                lookahead=s.lookahead,
                steps_per_label=steps,
                evaluate=self._evaluate,
                resume=snapshot,
                budget=s.budget,
                choose_within=s.choose_within,
            )
            pipe.queue(current=None if batch is None else _shown_proposal(batch, m), replay=replay)
            self._pipe = pipe
        chosen = pipe.launch()  # may wait for a first choice: outside the lock
        return chosen if batch is None else None

    def _wait(self, should_stop: Callable[[], bool] | None) -> Proposal | None:
        assert self._pipe is not None
        while True:
            try:
                return self._pipe.next_batch(timeout=0.2)
            except TimeoutError:
                if should_stop is not None and should_stop():
                    return None


def _shown_proposal(batch: Batch, m: int | None) -> Proposal:
    """The batch on screen as the trainer sees it (predictions -1 where there were none)."""
    ids, exploration, predicted, _ = batch_arrays(batch)
    confidence = np.array([it.confidence or 0.0 for it in batch.items])
    return Proposal(ids, exploration, predicted, confidence, float("nan"), float("nan"), m, 0.0)
