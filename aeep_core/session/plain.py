"""The plain engine: retrain on L after each confirmed batch, then choose; with a trainer
process, started before Enter (on the model's guess for the last card, or, following the
person's pace, on the answers given so far)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from aeep_core.learning.learner import RETRACT, SKIPPED, ActiveLearner
from aeep_core.learning.pipelined import Pace
from aeep_core.pool import Pool
from aeep_core.session.engines import (
    Choice,
    RecordOutcome,
    Retrainer,
    SaveCorrection,
    SaveCorrections,
    StageProgress,
    batch_arrays,
    engine_state,
    learn_from,
    retrain_and_choose,
)
from aeep_core.session.types import Batch, ProjectSettings


class PlainEngine:
    """Retrain on L after each confirmed batch, evaluate, then let the strategy choose.

    With a retrainer process, the retrain starts before Enter. Exact (the default): when
    one card is left, on the model's guess for it, and again if the answer differs.
    ``settings.follow_pace`` (the app's projects): as many cards before the last as the
    measured training time and the person's pace need (:class:`Pace`), on the answers
    given by then; the later answers join L before the choice and training a round
    later, so Enter waits only for the choice (BENCHMARKS.md, "Training ahead").
    """

    training = False  # nothing runs in the background

    def __init__(
        self,
        learner: ActiveLearner,
        settings: ProjectSettings,
        retrainer: Retrainer | None = None,
        resume: dict[str, Any] | None = None,
    ):
        """``resume``: the engine state stored with the project's last round, whose pace
        and lookahead a reopened project trains ahead by from its first batch."""
        self.learner, self.settings = learner, settings
        self.retrainer = retrainer  # None: retrain in this process
        # A correction made while choose() trains (in a worker) waits here: L must not change
        # under a running retrain. It is taken when the retrain ends, as reopening replays it.
        self._lock = threading.Lock()
        self._choosing = False
        self._pending: list[tuple[int, int]] = []
        self._corrections = 0  # corrections taken so far: a batch chosen ahead of one is stale
        self._confirmed: tuple[int, np.ndarray] | None = None  # the last confirmed batch: (round, answers)
        self.pace = Pace() if settings.follow_pace and retrainer is not None else None
        # cards left when training starts ahead (follow_pace); until the pace is measured,
        # the pipelined trainer's least lookahead
        self.lookahead = self._capped(settings.lookahead)
        if self.pace is not None and resume and resume.get("pace"):
            self.pace.load_state_dict(resume["pace"])
            self.lookahead = self._capped(int(resume.get("lookahead") or self.lookahead))
        self._generation = 0  # batches handed out: the pace counts answers within one
        # (round, positions answered, key) of the training started ahead of Enter
        self._early: tuple[int, np.ndarray, Any] | None = None
        self._ahead_record: dict[str, Any] = {}  # how the open batch was chosen ahead: kept when it is confirmed

    def adopt(self, batch: Batch, m: int | None) -> None:
        """A batch this engine did not choose: its answers start a new pace."""
        self._generation += 1

    def answer(self, position: int, label: int) -> None:
        """Only the pace (follow_pace): the plain engine learns from confirmed batches."""
        if self.pace is not None and label != RETRACT:
            self.pace.answered(self._generation, time.monotonic())

    def answered(self, batch: Batch) -> None:
        """Start on the next batch in the retrainer's process before Enter, if it is time
        (see the class doc); anything that differs at Enter makes it start again."""
        if self.retrainer is None:
            return
        if self.pace is not None:
            self._train_ahead(batch)
            return
        arrays = batch_arrays(batch)
        answers = arrays[3]
        left = np.flatnonzero(answers == RETRACT)
        if len(left) > 1 or (len(left) == 1 and arrays[2][left[0]] < 0):
            return  # more than one card left, or a cold batch: nothing to guess with
        if len(left) == 1:
            answers = answers.copy()
            answers[left[0]] = arrays[2][left[0]]  # the model's guess: right for most cards
            arrays = (arrays[0], arrays[1], arrays[2], answers)
        s = self.settings
        key = self._ahead_key((batch.round, answers.tobytes()), len(self.learner.pool))
        self.retrainer.speculate(key, self.learner, arrays, s.batch_size, s.budget)

    def _train_ahead(self, batch: Batch) -> None:
        """Train on the answers so far once at most ``lookahead`` cards are left; again only
        if one of those answers changes."""
        assert self.retrainer is not None
        ids, exploration, predicted, answers = batch_arrays(batch)
        if self._early is not None and self._early_key(batch.round, answers) == self._early[2]:
            return  # training on these answers already
        given = np.flatnonzero(answers != RETRACT)
        if len(answers) - len(given) > self.lookahead:
            return
        key = self._answers_key(batch.round, given, answers)
        self._early = (batch.round, given, key)
        held = np.where(answers == RETRACT, SKIPPED, answers)  # unanswered: out of L and U while it trains
        self.retrainer.train_ahead(key, self.learner, (ids, exploration, predicted, held))

    def _early_key(self, round_: int, answers: np.ndarray) -> tuple[Any, ...] | None:
        """The key of the training started ahead, as ``answers`` are now (None: none started)."""
        if self._early is None or self._early[0] != round_:
            return None
        return self._answers_key(round_, self._early[1], answers)

    def _answers_key(self, round_: int, positions: np.ndarray, answers: np.ndarray) -> tuple[Any, ...] | None:
        """The key of training on ``answers`` at ``positions`` (None if one was taken back)."""
        if bool((answers[positions] == RETRACT).any()):
            return None
        return self._ahead_key((round_, positions.tobytes(), answers[positions].tobytes()))

    def _ahead_key(self, batch: tuple[Any, ...], *more: Any) -> tuple[Any, ...]:
        """What a batch started ahead depends on beyond the learner's last confirmed state:
        the batch (round, answers), and, as they are now, the corrections and the classes."""
        learner = self.learner
        return (*batch, self._corrections, tuple(learner.pool.class_names), learner.merged_classes, *more)

    def classes_changed(self) -> None:
        """Nothing to do: each retrain reads the classes as they are then."""

    def grew(self, part: Pool) -> None:
        """The learner shares the session's pool; a retrainer's process hears of ``part``."""
        if self.retrainer is not None:
            self.retrainer.grew(part)

    def check(self) -> bool:
        """Nothing to check between retrains: a retrainer process that died is restarted by the next one."""
        return True

    @property
    def trainer_pid(self) -> int | None:
        """The retrainer's process id (None: retraining runs in this process)."""
        return None if self.retrainer is None else self.retrainer.pid

    @property
    def restarts(self) -> int:
        return 0 if self.retrainer is None else self.retrainer.restarts

    @property
    def last_failure(self) -> str | None:
        return None if self.retrainer is None else self.retrainer.last_failure

    def confirm(self, batch: Batch, record: RecordOutcome) -> None:
        """Teach the learner the batch (mp and batch accuracy when it was chosen by a
        model); if recording fails the learner is put back, so confirming again is safe."""
        learner = self.learner
        arrays = batch_arrays(batch)
        self._confirmed = (batch.round, arrays[3])
        before = learner.state_dict(model=False)
        try:
            mp, accuracy, cold = learn_from(learner, arrays)
            record(mp, accuracy, {**engine_state(learner, cold), **self._ahead_record})
        except BaseException:
            learner.load_state_dict(before)
            raise

    def correct(self, item: int, label: int, save: SaveCorrection) -> None:
        """Into L now, or when the running retrain ends (the batch it chooses did not see it)."""

        def save_one() -> list[tuple[int, int]]:
            save()
            return [(item, label)]

        self.correct_many(save_one)

    def correct_many(self, save: SaveCorrections) -> None:
        """:meth:`correct` for every correction ``save`` commits, in its order."""
        with self._lock:
            corrections = save()
            self._corrections += 1
            if self._choosing:
                self._pending.extend(corrections)
            else:
                for item, label in corrections:
                    self.learner.correct(item, label)

    def choose(self, progress: StageProgress | None, should_stop: Callable[[], bool] | None) -> Choice | None:
        """Train, evaluate, score and choose; None when stopped (the last model kept)."""
        with self._lock:
            self._choosing = True
        try:
            choice = self._choose(progress, should_stop)
        finally:
            with self._lock:
                self._choosing = False
                for item, label in self._pending:
                    self.learner.correct(item, label)
                self._pending = []
        self._early, self._confirmed = None, None
        if choice is not None:
            self._generation += 1
            self._follow_pace(choice)
        return choice

    def _follow_pace(self, choice: Choice) -> None:
        """Set the next lookahead from this round's training seconds and the pace; the
        round stores both (the side panel shows them)."""
        if self.pace is None:
            return
        trained = float(choice.stats.get("train_s") or 0.0)
        # No answer to spare: Enter, one more key, is the spare. Each card fewer trained
        # late is worth it (flowers: AULC -0.47 at 3 late answers, -1.52 at 5).
        self.lookahead = self.pace.lookahead(0.0, trained, least=1, k=self._capped(self.settings.batch_size) + 1, spare=0)
        choice.engine.update(pace=self.pace.state_dict(), lookahead=self.lookahead)
        keep = ("pace", "lookahead", "late_answers")
        self._ahead_record = {key: choice.engine[key] for key in keep if key in choice.engine}

    def _confirmed_key(self) -> tuple[Any, ...] | None:
        """The key the work started ahead must have for the confirmed batch, with the
        corrections and classes as they are now (one made since confirming makes it stale)."""
        if self._confirmed is None:
            return None
        round_, answers = self._confirmed
        if self.pace is not None:
            return self._early_key(round_, answers)
        return self._ahead_key((round_, answers.tobytes()), len(self.learner.pool))

    def _capped(self, lookahead: int) -> int:
        """At most half a batch trains a round late."""
        return max(1, min(lookahead, self.settings.batch_size // 2))

    def _choose(self, progress: StageProgress | None, should_stop: Callable[[], bool] | None) -> Choice | None:
        s = self.settings
        if self.retrainer is not None:
            return self.retrainer.choose(self.learner, s.batch_size, s.budget, progress, should_stop, ahead=self._confirmed_key())
        return retrain_and_choose(self.learner, s.batch_size, s.budget, progress, should_stop)

    @property
    def evaluation_pending(self) -> bool:
        """Never: the plain loop tests each model before it chooses."""
        return False

    def late_evaluation(self, should_stop: Callable[[], bool] | None) -> tuple[float | None, list[list[int]] | None] | None:
        """Nothing awaited: the plain loop tests each model before it chooses."""
        return None

    def close(self) -> None:
        """Stop the retrainer's process, if there is one."""
        if self.retrainer is not None:
            self.retrainer.close()
