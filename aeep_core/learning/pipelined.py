"""Zero-wait batches: train while the person labels, choose the next batch before they finish.

The plain loop makes a person wait, after the last label of every batch, for a full
retrain and a scoring pass. :class:`PipelinedLearner` moves both off that path:

* a background thread keeps one warm model and trains it ``steps_per_label`` steps for
  every answer as it arrives (each answer enters the training set exactly once; a
  relabel replaces it, a skip or an undo removes it; a correction to an earlier batch,
  :meth:`PipelinedLearner.correct`, is one more answer in the same queue);
* once all but ``lookahead`` cards of the batch on screen are answered, and the steps
  owed for those answers are done (or ``choose_within`` seconds have passed: a slow
  machine's backlog never holds the choice up; the steps left are trained after it and
  recorded in the snapshot), the same thread chooses the next batch, leaving out
  every labelled item and every item of the batch on screen; AEEP's m adapts from the
  exploration picks answered by then;
* :meth:`next_batch` then usually returns at once.

The trainer's learning rate never anneals (there is no end of round to anneal to), so
its latest weights are a noisy iterate; scoring, choosing and test accuracy use an
exponential moving average of them instead (``average``), which stands in for the plain
loop's one-cycle decay at no extra steps and lets the trainer run at twice the rate it
could use alone (measured by ``benchmarks/pipeline_averaging.py``; see BENCHMARKS.md).

Training is driven by answers, not by the clock: answers are taken one at a time, each
followed by its steps, and the choice happens right after the (k - lookahead)-th answer
of a batch is trained on. The model and the batches after a given sequence of answers
are therefore always the same, and :meth:`snapshot` + ``resume=`` + replaying the answers
given since make a crashed session continue exactly. One thread owns the model; the
caller only enqueues answers.
"""

from __future__ import annotations

import copy
import math
import queue
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch

from aeep_core.learning.class_outputs import grow_optimizer_state
from aeep_core.learning.learner import (
    RETRACT,
    SKIPPED,
    ActiveLearner,
    Proposal,
    confusion_accuracy,
    next_batch_size,
)
from aeep_core.learning.training import (
    adamw,
    class_balanced_batch,
    small_network_threads,
    steps_for_pace,
    training_step,
    training_steps_per_second,
)
from aeep_core.processes import native_threads_as_torch

if TYPE_CHECKING:
    from torch.optim.swa_utils import AveragedModel


FIRST_CHOICE_STEPS = 80  # a first choice among 10,000 candidates, in training steps' time (measured)


def warmed_ema(decay: float) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | int], torch.Tensor]:
    """An exponential moving average whose decay grows with the updates seen,
    min(``decay``, (1 + n) / (10 + n)), as TensorFlow's ExponentialMovingAverage does.

    A plain 0.995 average started at the first step still weighs the untrained start
    at 0.995^n: 56% after the ~120 steps before the first choice, so the demo's second
    batch was chosen (and its guesses shown) by a near-random network.
    """

    def average(averaged: torch.Tensor, current: torch.Tensor, n: torch.Tensor | int) -> torch.Tensor:
        updates = float(n)
        d = min(decay, (1.0 + updates) / (10.0 + updates))
        return d * averaged + (1.0 - d) * current

    return average


class Pace:
    """How far ahead to choose: the person's seconds per answer and the seconds from the
    lookahead point to a chosen batch (training owed, scoring, the strategy), both
    smoothed; the next batch is chosen that many answers ahead, plus one to spare, so it
    is ready when the last card is answered, on a fast or a slow machine, at any pace."""

    SMOOTHING = 0.3
    BREAK_S = 30.0  # a gap this long is a pause, not the pace

    def __init__(self, slower_at_once: bool = False) -> None:
        # slower_at_once: a choice slower than the smoothed time is believed at once (a
        # faster one only slowly). The pipelined trainer's choice grows with L (k-means
        # over |L| + n clusters): on a machine at 12 steps/s the smoothed time lagged
        # that growth by about a second, and Enter waited for it at every batch.
        self.slower_at_once = slower_at_once
        self.seconds_per_answer: float | None = None
        self.seconds_to_choose: float | None = None
        self.due_at: float | None = None
        self._last: tuple[int, float] | None = None  # (generation, arrival) of the last live answer

    def answered(self, generation: int, arrived: float) -> None:
        """A live answer (replayed ones arrive at infinity and are not the pace)."""
        if math.isinf(arrived):
            return
        if self._last is not None and self._last[0] == generation and 0 < arrived - self._last[1] < self.BREAK_S:
            self.seconds_per_answer = self._smooth(self.seconds_per_answer, arrived - self._last[1])
        self._last = (generation, arrived)

    def due(self) -> None:
        """The lookahead point of the batch on screen was reached (first call counts)."""
        if self.due_at is None:
            self.due_at = time.monotonic()

    def lookahead(self, due: float | None, chosen: float, least: int, k: int, spare: int = 1) -> int:
        """Record a choice that took ``chosen - due`` seconds; the next batch's lookahead
        (``spare``: answers' time to spare beyond the choice)."""
        if due is not None:
            took = chosen - due
            self.seconds_to_choose = self._smooth(self.seconds_to_choose, took)
            if self.slower_at_once:
                self.seconds_to_choose = max(self.seconds_to_choose, took)
        self.due_at = None
        if self.seconds_per_answer is None or self.seconds_to_choose is None:
            return least
        return self.first_lookahead(self.seconds_to_choose, least, k, max(self.seconds_per_answer, 0.05), spare)

    @staticmethod
    def first_lookahead(seconds_to_choose: float, least: int, k: int, seconds_per_answer: float = 1.0, spare: int = 1) -> int:
        """Answers ahead for a choice that takes ``seconds_to_choose`` at
        ``seconds_per_answer``, plus ``spare``, within [``least``, k - 1]. Alone, before
        anything was timed: a new project's first batch, at a label a second."""
        ahead = math.ceil(seconds_to_choose / seconds_per_answer) + spare
        return int(min(max(least, ahead), max(least, k - 1)))

    def _smooth(self, old: float | None, new: float) -> float:
        return new if old is None else (1 - self.SMOOTHING) * old + self.SMOOTHING * new

    def state_dict(self) -> dict[str, float | None]:
        return {"seconds_per_answer": self.seconds_per_answer, "seconds_to_choose": self.seconds_to_choose}

    def load_state_dict(self, state: dict[str, float | None]) -> None:
        self.seconds_per_answer, self.seconds_to_choose = state.get("seconds_per_answer"), state.get("seconds_to_choose")


def _arrival(replayed: bool) -> float:
    """When an answer reached the queue; replayed history is never "late" (see
    :meth:`PipelinedLearner._absorb_one`): it is absorbed step for step as it first was."""
    return math.inf if replayed else time.monotonic()


class PipelineListener(Protocol):
    """Told what the trainer did, from its thread (the process running it forwards it)."""

    def chosen(self, generation: int, proposal: Proposal | None, snapshot: dict[str, Any] | None) -> None:
        """The batch after batch ``generation`` was chosen (None: the pool is exhausted)."""

    def evaluated(self, labels: int, accuracy: float | None, confusion: np.ndarray | None) -> None:
        """The model that chose was tested: trained on ``labels`` labels."""

    def failed(self, error: BaseException) -> None:
        """Training stopped on ``error``."""


@dataclass
class PipelineStats:
    """What the pipeline did, for tests and the latency benchmark."""

    steps: int = 0
    fed: list[int] = field(default_factory=list)  # item ids in the order they entered training
    selections: int = 0
    select_s: list[float] = field(default_factory=list)
    accuracy: list[tuple[int, float | None]] = field(default_factory=list)  # (labels, test accuracy) per selection
    confusion: np.ndarray | None = None  # the last evaluated model's test confusion matrix


class PipelinedLearner:
    """Drive an :class:`ActiveLearner` without making the person wait between batches."""

    def __init__(
        self,
        learner: ActiveLearner,
        batch_size: int,
        lookahead: int = 2,
        steps_per_label: int | None = 25,
        lr: float = 2e-3,
        evaluate: bool = False,
        resume: dict[str, Any] | None = None,
        budget: int | None = None,
        average: float = 0.995,
        choose_within: float | None = None,
        listener: PipelineListener | None = None,
        follow_pace: bool = False,
    ):
        self.listener = listener
        # follow_pace: ``lookahead`` is the least; each batch's lookahead is then set, when
        # the batch is chosen, from the measured time to choose and the person's pace
        # (see Pace), and kept in the snapshot so a replay chooses at the same answer.
        self.pace = Pace(slower_at_once=True) if follow_pace else None
        self._batch_lookahead = max(0, lookahead)
        self.learner, self.batch_size, self.evaluate, self.budget = learner, batch_size, evaluate, budget
        self.lookahead, self.lr = max(0, lookahead), lr
        # None: the trainer's thread measures the machine before its first step (_run)
        self.steps_per_label: int = 0 if steps_per_label is None else steps_per_label
        self._measure_pace = steps_per_label is None
        self.average = average  # EMA decay per step of the weights that choose (0: the latest weights)
        # Seconds the choice may wait at the lookahead point for steps still owed (None:
        # for all of them, so every replay is exact to the step, whatever the machine).
        self.choose_within = choose_within
        self._due_since: float | None = None
        self._averaged: AveragedModel | None = None
        self.stats = PipelineStats()
        self.current: Proposal | None = None
        self._answers: dict[int, int] = {}  # position in the current batch -> label (caller's view)
        self._seen: dict[int, int] = {}  # the same, as far as the trainer has absorbed it
        self._seen_generation = 0
        self._absorbed = 0  # answers absorbed since the pipeline began (resumed count included)
        # (generation, position, item, label, arrival time); generation -1 = replayed history
        self._inbox: queue.SimpleQueue[tuple[int, int, int, int, float]] = queue.SimpleQueue()
        self._waiting: tuple[int, int, int, int, float] | None = None  # taken from the inbox, not yet absorbed
        self._wake = threading.Event()
        self._ready: Proposal | None = None
        self._ready_snapshot: dict[str, Any] | None = None
        self._ready_event = threading.Event()
        # A request names the batch it is for, so a late request cannot trigger a second
        # selection for a batch whose successor is already chosen.
        self._generation, self._requested, self._selected = 0, -1, -1
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._rng = np.random.default_rng([learner.seed, 2**21])
        self._gen = torch.Generator().manual_seed(learner.seed)
        # dropout draws from torch's global generator: the trainer keeps its own copy of it
        self._global_rng = torch.Generator().manual_seed(learner.seed * 7919 + 1).get_state()
        self._owed = 0
        self._busy = False  # the thread holds an answer it took but has not yet recorded
        if resume is not None:
            self._restore(resume)
        elif learner.labels:  # labels but no pipeline state: a fresh model trains a full round first
            self._owed = learner.config.steps_for(len(learner.labels))
        self._thread = threading.Thread(target=self._run, name="aeep-pipeline", daemon=True)

    # --- the person's side ----------------------------------------------------------
    def start(
        self,
        current: Proposal | None = None,
        initial: int | None = None,
        backlog: Sequence[tuple[int, int]] = (),
        answered: Sequence[tuple[int, int]] = (),
        replay: Sequence[tuple[int | None, int, int]] = (),
    ) -> Proposal | None:
        """Start the thread and return the batch to show: ``current`` (a resumed batch),
        else a random one when nothing is labelled yet, else a freshly chosen one.

        Resuming from a snapshot: ``backlog`` holds the (item, label) answers to earlier
        batches given after the snapshot, ``answered`` the (position, label) answers to
        ``current`` so far; or ``replay`` holds both, (position in ``current`` or None,
        item, label), which keeps corrections between answers in their place. Each is
        replayed in the order given. :meth:`queue` and :meth:`launch` are the two halves.
        """
        self.queue(current, initial, backlog, answered, replay)
        return self.launch()

    def queue(
        self,
        current: Proposal | None = None,
        initial: int | None = None,
        backlog: Sequence[tuple[int, int]] = (),
        answered: Sequence[tuple[int, int]] = (),
        replay: Sequence[tuple[int | None, int, int]] = (),
    ) -> None:
        """The first half of :meth:`start`: set the batch on screen and queue the answers to
        replay, without starting the thread (so a caller can hold a lock over it alone)."""
        self.current = current
        for item, label in backlog:
            self._inbox.put((-1, -1, int(item), int(label), _arrival(replayed=True)))
        if current is None and not self.learner.labels:
            ids = self.learner.initial_ids(initial or self.batch_size)
            n = len(ids)
            self.current = Proposal(ids, np.zeros(n, bool), np.full(n, -1), np.zeros(n), float("nan"), float("nan"), None, 0.0)
        for position, label in answered:
            self.answer(position, label, replayed=True)
        for where, item, label in replay:
            if where is None:
                self.correct(item, label, replayed=True)
            else:
                self.answer(where, label, replayed=True)

    def launch(self) -> Proposal | None:
        """The second half of :meth:`start`: run the thread; return the batch to show,
        waiting for the first choice when there was none."""
        self._thread.start()
        if self.current is None:
            self._request_selection()
            self.current = self._take_ready(None)
        return self.current

    def answer(self, position: int, label: int, replayed: bool = False) -> None:
        """Card ``position`` of the current batch was labelled, skipped (``SKIPPED``) or
        un-answered (``RETRACT``); ``replayed``: an answer from the store's log."""
        assert self.current is not None
        if label == RETRACT:
            self._answers.pop(position, None)
        else:
            self._answers[position] = label
        self._inbox.put((self._generation, position, int(self.current.ids[position]), int(label), _arrival(replayed)))
        self._wake.set()

    def correct(self, item: int, label: int, replayed: bool = False) -> None:
        """An item of an earlier batch got a new answer (a class, ``SKIPPED`` or ``RETRACT``,
        from review): it is taken in order with the answers, and a class owes its steps."""
        self._inbox.put((-1, -1, int(item), int(label), _arrival(replayed)))
        self._wake.set()

    def next_batch(self, timeout: float | None = None) -> Proposal | None:
        """The batch after the current one, once every card is answered (blocks until
        chosen); None when the pool is exhausted."""
        assert self.current is not None and len(self._answers) == len(self.current.ids), "answer every card first"
        self.current = self._take_ready(timeout)
        return self.current

    @property
    def last_snapshot(self) -> dict[str, Any] | None:
        """The state the current batch was chosen in (model, optimizer, generators): what a
        store checkpoints so that a crash resumes exactly."""
        return self._ready_snapshot

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """Block until every answer given so far is absorbed and trained on; False on timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            idle = self._inbox.empty() and self._waiting is None and self._owed <= 0 and not self._busy
            if self._error is not None or idle:
                return self._error is None
            time.sleep(0.01)
        return False

    def close(self) -> None:
        """Stop the background thread (training state stays in the learner); a caller
        blocked in :meth:`next_batch` gets a RuntimeError."""
        self._stop.set()
        self._wake.set()
        if self._error is None:
            self._error = RuntimeError("the pipeline was closed")
            self._ready_event.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    # --- internals --------------------------------------------------------------------
    def _request_selection(self) -> None:
        self._requested = self._generation
        self._wake.set()

    def _selection_due(self) -> bool:
        """Right after the (k - lookahead)-th answer of the batch is trained on (or, for a
        start without a batch, once the answers queued before it are trained on): a point
        fixed by the answers, not by the clock, unless ``choose_within`` runs out first."""
        if self._selected == self._seen_generation:
            return False
        if self.current is None:
            # Only once every answer queued before the start is in L (a resumed trainer's
            # replay): choosing earlier could pick an item the replay labels.
            due = self._requested == self._generation and self._inbox.empty() and self._waiting is None
        else:
            due = self._seen_generation == self._generation and len(self._seen) >= len(self.current.ids) - self._batch_lookahead
        if due and self.pace is not None:
            self.pace.due()
        if not due or self._owed <= 0:
            self._due_since = None
            return due
        if self.choose_within is None or self.current is None:  # no batch on screen: nobody waits yet
            return False
        self._due_since = self._due_since if self._due_since is not None else time.monotonic()
        return time.monotonic() - self._due_since >= self.choose_within

    def _take_ready(self, timeout: float | None) -> Proposal | None:
        if not self._ready_event.wait(timeout):
            raise TimeoutError("the next batch was not ready in time")
        if self._error is not None:
            raise RuntimeError(f"background training failed: {self._error}") from self._error
        self._ready_event.clear()
        ready, self._ready = self._ready, None
        self._answers = {}
        self._generation += 1
        return ready

    def _run(self) -> None:
        try:
            native_threads_as_torch()
            if self._measure_pace:
                # Measured here, by the thread that trains: whoever starts the pipeline
                # (the app's first batch) does not wait for it, and the app's process
                # never loads the optimiser's machinery for it. Kept in every snapshot.
                rate = training_steps_per_second(self.learner.pool)
                self.steps_per_label = steps_for_pace(rate)
                if self.pace is not None and self.current is not None:
                    self._batch_lookahead = Pace.first_lookahead(
                        self._first_choice_estimate(rate), self.lookahead, len(self.current.ids)
                    )
            while not self._stop.is_set():
                if self._selection_due() and self.learner.labels:
                    self._select()
                elif self._absorb_one():
                    continue
                elif self._owed > 0 and self.learner.labels:
                    self._train(min(self._owed, 5))  # short chunks: stop() stays prompt
                else:
                    self._wake.wait(0.2)
                    self._wake.clear()
        except BaseException as exc:  # surfaced to the caller by _take_ready
            self._error = exc
            self._ready_event.set()
            if self.listener is not None:
                self.listener.failed(exc)

    def _absorb_one(self) -> bool:
        """Take the next answer into L (and owe its training steps); False if none is due.

        An answer is due once the steps owed for the previous ones are trained, so the
        model after a sequence of answers does not depend on the clock; on a machine
        that falls behind (``choose_within`` set), also once it has waited that long, so
        the lookahead point still comes on time and the choice is not held up.
        """
        self._busy = True
        if self._waiting is None:
            try:
                self._waiting = self._inbox.get_nowait()
            except queue.Empty:
                self._busy = False
                return False
        generation, position, item, label, arrived = self._waiting
        if self.pace is not None and generation >= 0 and label != RETRACT:
            self.pace.answered(generation, arrived)
        late = self.choose_within is not None and time.monotonic() - arrived >= self.choose_within
        if self._owed > 0 and not late:
            self._busy = False
            return False
        self._waiting = None
        learner = self.learner
        if generation >= 0:
            if generation != self._seen_generation:
                self._seen_generation, self._seen = generation, {}
            if label == RETRACT:
                self._seen.pop(position, None)
            else:
                self._seen[position] = label
        if label >= 0:
            if item not in learner.labels:
                self.stats.fed.append(item)
            self._owed += self._steps_for_answer()
            self._grow(label + 1)
        elif item in self.stats.fed:  # an item fed before a resume is not in this trainer's list
            self.stats.fed.remove(item)
        learner.add_labels([item], [label])
        self._absorbed += 1
        self._busy = False
        return True

    def _grow(self, n_classes: int) -> None:
        """Give the model, its optimizer state and its average an output for every class up
        to ``n_classes`` (a class added while labelling, at its first answer: a point fixed
        by the answers, so a replay grows where the original did)."""
        model = self.learner.model
        if model is None:
            return  # the first training builds it with every class of the pool
        grown = self.learner.grow_model(n_classes, model)
        if grown and self._optimizer is not None:
            grow_optimizer_state(self._optimizer, grown)
        if grown and self._averaged is not None:
            self.learner.grow_model(n_classes, self._averaged.module)  # the same new rows: drawn from (seed, class)

    def _steps_for_answer(self) -> int:
        """Steps owed for one answer: ``steps_per_label``, but while the first batch is
        labelled enough to give the network the plain loop's first round
        (``config.min_steps``) by the time that batch is answered. A few hundred steps of a
        new network are what make its first guesses better than chance; spread at the
        usual rate they would take several batches. Counted from |L|, so replays agree.
        """
        if len(self.learner.labels) >= self.batch_size:
            return self.steps_per_label
        return max(self.steps_per_label, -(-self.learner.config.min_steps // self.batch_size))

    def _first_choice_estimate(self, steps_per_second: float) -> float:
        """Seconds the first choice will take on this machine, from its training rate.
        Scoring and choosing among 10,000 MNIST candidates at the first choice took as
        long as 69-81 training steps (1.56 s at 49 steps/s natively; 5.7 and 6.7 s at
        12.1 steps/s, emulated). Without it the first batch chose ``lookahead`` answers
        ahead, and at 12 steps/s Enter waited about 6 s for that choice."""
        learner = self.learner
        candidates = min(learner.candidates, len(learner.pool) - len(learner.labels))
        return FIRST_CHOICE_STEPS * candidates / 10_000 / max(steps_per_second, 1e-3)

    def _train(self, steps: int) -> None:
        learner = self.learner
        model = learner.model
        if model is None:
            torch.manual_seed(learner.seed * 7919)
            model = learner.new_model()
        if self._optimizer is None:
            self._optimizer = adamw(model.parameters(), lr=self.lr, weight_decay=learner.config.weight_decay)
        ids = np.fromiter(learner.labels, dtype=np.int64)
        y = np.fromiter(learner.labels.values(), dtype=np.int64)
        model.train()
        with torch.random.fork_rng(devices=[]), small_network_threads(learner.pool.modality):
            torch.set_rng_state(self._global_rng)
            for _ in range(steps):
                pick = class_balanced_batch(y, learner.config.batch_size, self._rng)
                x = learner.pool.inputs[torch.from_numpy(ids[pick])].to(learner.device)
                training_step(
                    model,
                    self._optimizer,
                    x,
                    torch.from_numpy(y[pick]).to(learner.device),
                    learner.config,
                    self._gen,
                    learner.pool.modality,
                )
                if self.average > 0:
                    self._average_model(model).update_parameters(model)
            self._global_rng = torch.get_rng_state()
        model.eval()
        self.stats.steps += steps
        self._owed -= steps

    def _select(self) -> None:
        start = time.perf_counter()
        learner, current = self.learner, self.current
        self._selected = self._generation
        if current is not None and current.m is not None:
            answers = np.full(len(current.ids), SKIPPED)  # cards not yet answered count as no answer
            for position, label in self._seen.items():
                answers[position] = label
            learner.observe(learner.outcome(current.predicted, current.exploration, answers)[0])
        exclude = np.unique(current.ids) if current is not None else None
        free = learner.unlabelled_ids()
        available = len(free) if exclude is None else len(np.setdiff1d(free, exclude))
        pending = 0 if current is None else len(current.ids) - len(self._seen)
        k = next_batch_size(self.batch_size, available, self.budget, len(learner.labels) + pending)
        if k > 0:
            self._ready = learner.propose(k, exclude=exclude, model=self._choosing_model())
            learner.chose()
            if self.pace is not None:
                due = self.pace.due_at if current is not None else None
                self._batch_lookahead = self.pace.lookahead(due, time.monotonic(), self.lookahead, k)
            self._ready_snapshot = self.snapshot()
        self.stats.selections += 1
        self.stats.select_s.append(time.perf_counter() - start)
        chosen, snapshot = self._ready, self._ready_snapshot if k > 0 else None
        self._ready_event.set()
        if self.listener is not None:
            self.listener.chosen(self._selected, chosen, snapshot)
        if self.evaluate and k > 0:
            self.stats.confusion = learner.test_confusion(model=self._choosing_model())
            self.stats.accuracy.append((len(learner.labels), confusion_accuracy(self.stats.confusion)))
            if self.listener is not None:
                self.listener.evaluated(*self.stats.accuracy[-1], self.stats.confusion)

    def _average_model(self, model: torch.nn.Module) -> AveragedModel:
        if self._averaged is None:
            from torch.optim.swa_utils import AveragedModel

            self._averaged = AveragedModel(model, avg_fn=warmed_ema(self.average))
        return self._averaged

    def _choosing_model(self) -> torch.nn.Module | None:
        """The weights that score, choose and are evaluated: the average, once there is one."""
        return None if self._averaged is None else self._averaged.module.eval()

    def snapshot(self) -> dict[str, Any]:
        """Model, optimizer and generator states (copies), for :class:`PipelinedLearner` ``resume``."""
        return {
            **self.learner.state_dict(),
            "optimizer": None if self._optimizer is None else copy.deepcopy(self._optimizer.state_dict()),
            "average": None
            if self._averaged is None
            else {k: v.detach().cpu().clone() for k, v in self._averaged.state_dict().items()},
            "rng": copy.deepcopy(self._rng.bit_generator.state),
            "torch_gen": self._gen.get_state().clone(),
            "global_rng": self._global_rng.clone(),
            "absorbed": self._absorbed,
            "owed": self._owed,  # steps not yet trained when this batch was chosen
            "steps_per_label": self.steps_per_label,
            "batch_lookahead": self._batch_lookahead,  # the batch it chose is chosen ahead by this many answers
            "pace": None if self.pace is None else self.pace.state_dict(),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        learner = self.learner
        learner.load_state_dict(state)
        if state.get("model") is not None and learner.model is not None:
            self._optimizer = adamw(learner.model.parameters(), lr=self.lr, weight_decay=learner.config.weight_decay)
            if state.get("optimizer") is not None:
                self._optimizer.load_state_dict(state["optimizer"])
                for group in self._optimizer.param_groups:  # a snapshot from before adamw() says foreach=None
                    group["foreach"] = True
            if state.get("average") is not None and self.average > 0:
                self._average_model(learner.model).load_state_dict(state["average"])
        self._rng.bit_generator.state = state["rng"]
        self._gen.set_state(state["torch_gen"])
        self._global_rng = state["global_rng"].clone()
        self._absorbed = int(state["absorbed"])
        self._owed = int(state.get("owed", 0))
        self._batch_lookahead = int(state.get("batch_lookahead", self.lookahead))
        if self.pace is not None and state.get("pace"):
            self.pace.load_state_dict(state["pace"])
