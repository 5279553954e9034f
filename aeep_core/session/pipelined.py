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
from aeep_core.pool import Pool
from aeep_core.processes import ServiceCrashed
from aeep_core.session.engines import Choice, RecordOutcome, SaveCorrection, SaveCorrections, StageProgress, batch_arrays
from aeep_core.session.trainer_process import RemotePipeline
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
    """Hand each answer to a background trainer that chooses the next batch ahead.

    ``separate_process``: the trainer runs in a child process
    (:class:`~aeep_core.session.trainer_process.RemotePipeline`), else in a thread of this
    one. A child that dies is replaced by one started from the store (``history`` and the
    batch on screen, ``shown``), which holds every answer; ``restarts`` counts them.
    """

    def __init__(
        self,
        learner: ActiveLearner,
        settings: ProjectSettings,
        history: History,
        evaluate: bool,
        shown: Callable[[], Batch | None] = lambda: None,
        separate_process: bool = False,
        trainer_threads: int | None = None,
    ):
        self.learner, self.settings, self._history, self._evaluate = learner, settings, history, evaluate
        self._shown, self.separate_process, self._threads = shown, separate_process, trainer_threads
        self._pipe: PipelinedLearner | RemotePipeline | None = None
        self._m: int | None = None  # the exploration count of the batch on screen, for a restart
        self._untested: int | None = None  # labels of the model that chose it, while its test is awaited
        self.restarts = 0
        self.last_failure: str | None = None
        self._restarting: threading.Thread | None = None
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
        self._m = m
        self._start(batch, m)

    def answer(self, position: int, label: int) -> None:
        with self._lock:  # not into a trainer half set up by a restart
            pipe = self._pipe
            try:
                if pipe is not None:
                    pipe.answer(position, label)
                return
            except ServiceCrashed as crash:
                failed = crash  # the new trainer replays the store, this answer included
        self._restart_soon(failed, pipe)

    def answered(self, batch: Batch) -> None:
        """Nothing to do: the trainer hears each answer (:meth:`answer`) and chooses ahead itself."""

    def grew(self, part: Pool) -> None:
        """Never called: a pipelined project embeds its whole folder before it opens (the
        trainer chooses ahead on its own schedule, so its pool cannot grow between batches)."""
        raise NotImplementedError("the pipelined engine's pool does not grow")

    def classes_changed(self) -> None:
        """The classes were added to or merged: a trainer in another process hears it, in
        order with the answers (one in this process shares the pools)."""
        if isinstance(self._pipe, RemotePipeline):
            try:
                self._pipe.set_classes()
            except ServiceCrashed as crash:
                self._restart_soon(crash, self._pipe)

    @property
    def trainer_pid(self) -> int | None:
        """The trainer's process id (None: it runs in this process, or not at all)."""
        return self._pipe.pid if isinstance(self._pipe, RemotePipeline) else None

    def check(self) -> bool:
        """Whether the trainer is alive; one in a process that died is replaced in the
        background (the app calls this on a timer, so a crash shows without a key)."""
        pipe = self._pipe
        if isinstance(pipe, RemotePipeline) and self._shown() is not None:  # else choose() is waiting: it restarts
            try:
                pipe.check()
            except ServiceCrashed as crash:
                self._restart_soon(crash, pipe)
                return False
        return True

    def correct(self, item: int, label: int, save: SaveCorrection) -> None:
        """Queued to the trainer behind the answers given before it (or into L when no
        trainer runs: the next one starts from the stored log, which holds it)."""

        def save_one() -> list[tuple[int, int]]:
            save()
            return [(item, label)]

        self.correct_many(save_one)

    def correct_many(self, save: SaveCorrections) -> None:
        """:meth:`correct` for every correction ``save`` commits, in its order."""
        crashed = None
        with self._lock:
            for item, label in save():
                if self._pipe is not None and crashed is None:
                    try:
                        self._pipe.correct(item, label)
                    except ServiceCrashed as crash:
                        crashed = crash  # the store has it: the new trainer replays it
                elif self._pipe is None:
                    self.learner.correct(item, label)
        if crashed is not None:
            self._restart_soon(crashed, self._pipe)

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
        if self._restarting is not None:
            self._restarting.join()  # a trainer restarted while the batch was on screen
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
        self._m = proposal.m
        if progress:
            progress("train", 1, 1)
        pipe = self._pipe
        snapshot = pipe.last_snapshot or {}
        # The trainer tests the choosing model after sending the batch (1-2 s for MNIST's
        # 10,000 test images on a slow machine): the batch goes on screen now, and the
        # test, if not in yet, is recorded when it comes (late_evaluation).
        labels = len(snapshot.get("labels", []))
        tested = self._evaluation(pipe, labels, within=0.0) if self._evaluate else None
        self._untested = labels if self._evaluate and tested is None else None
        accuracy, confusion = tested if tested is not None else (None, None)
        stats = {
            "m": proposal.m,
            "entropy_batch": proposal.entropy_batch,
            "entropy_pool": proposal.entropy_pool,
            "test_accuracy": accuracy,
            "train_s": time.perf_counter() - start,
            "select_s": proposal.select_s,
            "test_confusion": confusion,
        }
        engine = {
            "learner_round": snapshot.get("learner_round", self.learner.round),
            "strategy": snapshot.get("strategy", {}),
            "cold": False,
            "pipelined": True,
            "lookahead": snapshot.get("batch_lookahead"),
            "pace": snapshot.get("pace"),
        }
        return Choice(proposal, snapshot, engine, stats)

    @property
    def evaluations(self) -> list[tuple[int, float | None]]:
        """(labels the model was trained on, its test accuracy) each time the trainer chose
        a batch since the engine started: the model that chose is ``lookahead`` answers
        behind the screen. Reads what a trainer process sent meanwhile (not for the UI's
        thread: it may wait for a message being written)."""
        if isinstance(self._pipe, RemotePipeline):
            self._pipe.receive()
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
            else:  # a trainer's first start: it measures the machine itself (in its own process)
                steps = None
            options: dict[str, Any] = dict(
                batch_size=s.batch_size,
                lookahead=s.lookahead,
                steps_per_label=steps,
                evaluate=self._evaluate,
                resume=snapshot,
                budget=s.budget,
                choose_within=s.choose_within,
                follow_pace=s.follow_pace,
            )
            pipe: PipelinedLearner | RemotePipeline = (
                RemotePipeline(self.learner, self._threads, **options)
                if self.separate_process
                else PipelinedLearner(self.learner, **options)
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
            except ServiceCrashed as crash:
                # Every answer is in the store: a new trainer replays them and chooses.
                return self._restart(crash, self._pipe)

    @property
    def evaluation_pending(self) -> bool:
        """Whether the batch on screen was shown before its model's test came in."""
        return self._untested is not None

    def late_evaluation(self, should_stop: Callable[[], bool] | None) -> tuple[float | None, list[list[int]] | None] | None:
        """(test accuracy, confusion matrix) of the model that chose the batch on screen,
        when :meth:`choose` went on without them: waits (in a worker) until the trainer
        sends them; None when nothing is awaited, the trainer is gone or ``should_stop``."""
        labels, self._untested = self._untested, None
        pipe = self._pipe
        if labels is None or pipe is None:
            return None
        try:
            return self._evaluation(pipe, labels, within=None, should_stop=should_stop)
        except ServiceCrashed:
            return None  # its next start tests the next model; the check notices the crash

    def _evaluation(
        self,
        pipe: PipelinedLearner | RemotePipeline,
        labels: int,
        within: float | None,
        should_stop: Callable[[], bool] | None = None,
    ) -> tuple[float | None, list[list[int]] | None] | None:
        """(accuracy, confusion) of the model trained on ``labels`` labels once the trainer
        has tested it; None if it has not within ``within`` seconds (0: only if it already
        has; None: no limit, until ``should_stop``)."""
        deadline = None if within is None else time.monotonic() + within
        wait: float = 0.0  # a first look at what the trainer sent, without waiting
        while True:
            if isinstance(pipe, RemotePipeline):
                pipe.receive(wait)
            elif wait:
                time.sleep(0.01)
            tested = [a for n, a in pipe.stats.accuracy if n == labels]
            if tested:
                confusion = pipe.stats.confusion if pipe.stats.accuracy[-1][0] == labels else None
                return tested[-1], None if confusion is None else confusion.tolist()
            if (deadline is not None and time.monotonic() >= deadline) or (should_stop is not None and should_stop()):
                return None
            wait = 0.05

    def _restart(self, crash: ServiceCrashed, dead: object) -> Proposal | None:
        """Replace the trainer ``dead`` (a process that died) by one started from the store;
        return the batch it chose when none is on screen."""
        with self._lock:
            if self._pipe is not dead or dead is None:
                return None  # replaced already
            self._pipe = None
            self.restarts, self.last_failure = self.restarts + 1, str(crash).splitlines()[0]
        assert isinstance(dead, RemotePipeline)
        dead.close()
        return self._start(self._shown(), self._m)

    def _restart_soon(self, crash: ServiceCrashed, dead: object) -> None:
        """:meth:`_restart` in a thread of its own: starting a process is no work for a key."""
        thread = threading.Thread(target=self._restart, args=(crash, dead), name="aeep-restart", daemon=True)
        self._restarting = thread
        thread.start()


def _shown_proposal(batch: Batch, m: int | None) -> Proposal:
    """The batch on screen as the trainer sees it (predictions -1 where there were none)."""
    ids, exploration, predicted, _ = batch_arrays(batch)
    confidence = np.array([it.confidence or 0.0 for it in batch.items])
    return Proposal(ids, exploration, predicted, confidence, float("nan"), float("nan"), m, 0.0)
