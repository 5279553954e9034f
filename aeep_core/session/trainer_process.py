"""Training out of the UI's process: the engines' trainers behind a process boundary.

Both engines can hand their training to a child process (:mod:`aeep_core.processes`), so
the app's process only renders, takes keys and writes the store:

* :class:`RemoteRetrainer` runs the plain loop's turn (:func:`retrain_and_choose`) in a
  child: the learner's state goes in, the trained learner's state and the chosen batch
  come back, and the app's learner is left exactly as if it had trained itself (the same
  seeded steps: the same choices, bit for bit);
* :class:`RemotePipeline` stands for a :class:`PipelinedLearner` that runs in a child:
  answers, corrections and undos cross one queue in the order given, and each batch it
  chooses ahead is pushed back as soon as it is chosen, so Enter finds it waiting.

The pool's tensors go to shared memory once, when the child starts. A child that dies
raises :class:`~aeep_core.processes.ServiceCrashed`; the engines then start a new one
from the store, which holds every answer already.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np
import torch

from aeep_core.learning.learner import RETRACT, ActiveLearner, Proposal
from aeep_core.learning.pipelined import PipelinedLearner, PipelineStats
from aeep_core.pool import Pool
from aeep_core.processes import Emit, ServiceCrashed, ServiceProcess, child_threads
from aeep_core.session.engines import BatchArrays, Choice, StageProgress, learn_from, retrain_and_choose
from aeep_core.strategies import make_strategy

_POLL = 0.05  # seconds between looks at the child's events and at should_stop


def pack(state: dict[str, Any] | None) -> bytes | None:
    """A state with tensors as bytes: one message, no shared-memory handle left behind."""
    if state is None:
        return None
    buffer = io.BytesIO()
    torch.save(state, buffer)
    return buffer.getvalue()


def unpack(data: bytes | None) -> dict[str, Any] | None:
    return None if data is None else torch.load(io.BytesIO(data), weights_only=False)


def _set_classes(learner: ActiveLearner, names: list[str], test_names: list[str] | None, merged: frozenset[int]) -> None:
    """The app's class list, as it is now, in the child's copy of the pools."""
    learner.pool.class_names = list(names)
    if learner.test is not None and test_names is not None:
        learner.test.class_names = list(test_names)
    learner.merged_classes = merged


def _classes_of(learner: ActiveLearner) -> tuple[list[str], list[str] | None, frozenset[int]]:
    test = None if learner.test is None else list(learner.test.class_names)
    return list(learner.pool.class_names), test, learner.merged_classes


# --- the plain loop ----------------------------------------------------------------------
class _RetrainService:
    """In the child: one learner, retrained and asked to choose on demand; job ``j`` stops
    as soon as the parent has cancelled every job up to ``j``."""

    def __init__(self, emit: Emit, learner: ActiveLearner, threads: int, cancelled: Any):
        child_threads(threads)
        self.emit, self.learner, self.cancelled = emit, learner, cancelled
        # (job, weights, seconds, labels trained on) of the training done ahead of Enter
        self._trained: tuple[int, dict[str, Any], float, int] | None = None

    def warm_up(self) -> None:
        """A tiny fit (5 + 5 steps on 8 random items, random classes) of a throwaway
        learner on the same pool: torch's first fit pays one-off costs, and the first real
        round then runs at full speed (flowers head: 1.78 s first, 0.74 s after; 0.74 s
        from the first after this). Every real round seeds itself, so nothing else moves."""
        pool, learner = self.learner.pool, self.learner
        if len(pool) < 2 or pool.n_classes < 1:
            return
        config = replace(learner.config, guess_steps=5, pseudo_label_steps=5, min_steps=5, max_steps=5)
        spare = ActiveLearner(pool, make_strategy("random"), config=config, device=learner.device)
        rng = np.random.default_rng(0)
        ids = rng.choice(len(pool), size=min(8, len(pool)), replace=False)
        spare.add_labels(ids, rng.integers(0, pool.n_classes, len(ids)))
        spare.train()

    def _load(self, state: bytes, classes: tuple[Any, ...], batch: BatchArrays | None) -> None:
        learner = self.learner
        learner.forget_model()
        learner.load_state_dict(unpack(state) or {})
        _set_classes(learner, *classes)
        if batch is not None:  # ahead of Enter: learn the batch as confirming it will
            learn_from(learner, batch)

    def _progress(self, job: int) -> StageProgress:
        return lambda stage, done, total: self.emit(("progress", job, stage, done, total))

    def train_ahead(self, job: int, state: bytes, classes: tuple[Any, ...], batch: BatchArrays) -> None:
        """Train on L and ``batch``'s answers so far; keep the weights for ``choose(trained=job)``."""
        self._trained = None
        self._load(state, classes, batch)
        report = self._progress(job)
        stopped = lambda: self.cancelled.value >= job  # noqa: E731
        seconds = self.learner.train(lambda done, total: report("train", done, total), stopped)
        if not stopped():
            self._trained = (job, self.learner.state_dict(labels=False)["model"], seconds, len(self.learner.labels))

    def choose(
        self,
        job: int,
        state: bytes,
        classes: tuple[Any, ...],
        batch: BatchArrays | None,
        batch_size: int,
        budget: int | None,
        trained: int | None = None,
    ) -> None:
        learner = self.learner
        self._load(state, classes, batch)
        ahead, self._trained, trained_s = self._trained, None, None
        if trained is not None and ahead is not None and ahead[0] == trained:  # else it was stopped: train now
            learner.load_state_dict({"model": ahead[1]})
            trained_s = ahead[2]
        choice = retrain_and_choose(
            learner, batch_size, budget, self._progress(job), lambda: self.cancelled.value >= job, trained_s
        )
        if choice is not None and ahead is not None and trained_s is not None:
            choice.engine["late_answers"] = len(learner.labels) - ahead[3]  # in L, not yet in the model
        payload = None if choice is None else (choice.proposal, pack(choice.checkpoint), choice.engine, choice.stats)
        self.emit(("chosen", job, payload))

    def grew(self, part: Pool) -> None:
        self.learner.pool.extend(part)


class RemoteRetrainer:
    """The plain engine's retrain in a child process (see the module doc). It may start on
    the next batch before Enter (:meth:`speculate`); :meth:`choose` takes that one when
    nothing changed since, else cancels it and retrains."""

    def __init__(self, learner: ActiveLearner, threads: int | None = None):
        self._threads = threads or torch.get_num_threads()
        self._process: ServiceProcess | None = None
        self._jobs = 0
        # (key, job, only trained?) of the batch being chosen, or the model trained, ahead of Enter
        self._ahead: tuple[Any, int, bool] | None = None
        self.restarts = 0
        self.last_failure: str | None = None
        self._start(learner)

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    @property
    def retrains_sent(self) -> int:
        """Retrains asked of the child so far, those started ahead of Enter included."""
        return self._jobs

    def _start(self, learner: ActiveLearner) -> None:
        import torch.multiprocessing as torch_mp

        self._cancelled = torch_mp.get_context("spawn").Value("q", -1)
        self._process = ServiceProcess(_RetrainService, learner, self._threads, self._cancelled, name="aeep-trainer").start()
        self._process.send("warm_up")  # while the person answers the first batch
        self._ahead = None

    def speculate(self, key: Any, learner: ActiveLearner, batch: BatchArrays, batch_size: int, budget: int | None) -> None:
        """Start choosing the batch after ``batch`` (complete, not yet confirmed) now."""
        self._start_ahead(key, lambda: self._send(learner, batch, batch_size, budget), trained_only=False)

    def train_ahead(self, key: Any, learner: ActiveLearner, batch: BatchArrays) -> None:
        """Start training on L and ``batch``'s answers so far (SKIPPED where none yet);
        ``choose(ahead=key)`` then only chooses, on the L it is given."""
        self._start_ahead(key, lambda: self._post("train_ahead", learner, batch), trained_only=True)

    def _start_ahead(self, key: Any, send: Callable[[], int], trained_only: bool) -> None:
        if self._ahead is not None and self._ahead[0] == key:
            return
        self._cancel_ahead()
        try:
            self._ahead = (key, send(), trained_only)
        except ServiceCrashed:
            self._ahead = None  # choose() restarts the process

    def choose(
        self,
        learner: ActiveLearner,
        batch_size: int,
        budget: int | None,
        progress: StageProgress | None,
        should_stop: Callable[[], bool] | None,
        ahead: Any = None,
    ) -> Choice | None:
        """:func:`retrain_and_choose` in the child (or the batch chosen ahead for ``ahead``,
        the confirmed batch's key); one crash starts a new child and tries again."""
        try:
            training = None  # a job training ahead whose progress is this choice's
            if ahead is not None and self._ahead is not None and self._ahead[0] == ahead:
                (_, job, trained_only), self._ahead = self._ahead, None
                if trained_only:  # the weights trained ahead, on L as it is now
                    training, job = job, self._send(learner, None, batch_size, budget, trained=job)
            else:
                self._cancel_ahead()
                job = self._send(learner, None, batch_size, budget)
            result = self._collect(job, progress, should_stop, training)
        except ServiceCrashed as crash:
            self.restarts, self.last_failure = self.restarts + 1, str(crash).splitlines()[0]
            self.close()
            self._start(learner)
            result = self._collect(self._send(learner, None, batch_size, budget), progress, should_stop)
        if result is None:
            return None
        proposal, checkpoint, engine, stats = result
        state = unpack(checkpoint) or {}
        learner.load_state_dict(state)  # the app's learner, as if it had trained itself
        return Choice(proposal, state, engine, stats)

    def grew(self, part: Pool) -> None:
        """``part`` joined the app's pool: the child's copy takes it in before its next
        retrain (calls cross in order). A dead child is restarted with the whole pool."""
        if self._process is not None:
            try:
                self._process.send("grew", part)
            except ServiceCrashed:
                pass

    def _send(
        self, learner: ActiveLearner, batch: BatchArrays | None, batch_size: int, budget: int | None, trained: int | None = None
    ) -> int:
        return self._post("choose", learner, batch, batch_size, budget, trained)

    def _post(self, method: str, learner: ActiveLearner, *args: Any) -> int:
        """Send the child a job on ``learner``'s state as it is now; return its number."""
        assert self._process is not None
        self._jobs += 1
        self._process.send(method, self._jobs, pack(learner.state_dict()), _classes_of(learner), *args)
        return self._jobs

    def _cancel_ahead(self) -> None:
        """Stop the batch being chosen ahead; its result is dropped when it comes."""
        if self._ahead is not None:
            self._cancelled.value = max(self._cancelled.value, self._ahead[1])
            self._ahead = None

    def _collect(
        self, job: int, progress: StageProgress | None, should_stop: Callable[[], bool] | None, training: int | None = None
    ) -> Any:
        assert self._process is not None
        while True:
            if should_stop is not None and should_stop():
                self._cancelled.value = max(self._cancelled.value, job)
            for event in self._process.events(timeout=_POLL):
                if event[0] == "progress" and event[1] in (job, training) and progress is not None:
                    progress(*event[2:])
                elif event[0] == "chosen" and event[1] == job:
                    return event[2]

    def close(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None


# --- the pipelined trainer -------------------------------------------------------------
class _PipelineService:
    """In the child: a :class:`PipelinedLearner`, whose choices are pushed to the parent."""

    def __init__(self, emit: Emit, learner: ActiveLearner, options: dict[str, Any], threads: int):
        child_threads(threads)
        self.emit = emit
        self.broken: BaseException | None = None
        self.pipe = PipelinedLearner(learner, listener=self, **options)

    # the listener: called from the trainer's thread
    def chosen(self, generation: int, proposal: Proposal | None, snapshot: dict[str, Any] | None) -> None:
        self.emit(("chosen", generation, proposal, pack(snapshot)))

    def evaluated(self, labels: int, accuracy: float | None, confusion: np.ndarray | None) -> None:
        self.emit(("evaluated", labels, accuracy, confusion))

    def failed(self, error: BaseException) -> None:
        self.broken = error  # the child's main loop reports it and exits: the parent restarts it

    # calls from the parent, in order
    def queue(self, current: Proposal | None, replay: list[tuple[int | None, int, int]]) -> Proposal | None:
        self.pipe.queue(current=current, replay=replay)
        return self.pipe.current

    def launch(self) -> None:
        self.pipe.launch()

    def answer(self, position: int, label: int) -> None:
        self.pipe.answer(position, label)

    def correct(self, item: int, label: int) -> None:
        self.pipe.correct(item, label)

    def classes(self, names: list[str], test_names: list[str] | None, merged: frozenset[int]) -> None:
        _set_classes(self.pipe.learner, names, test_names, merged)

    def take(self) -> None:
        self.pipe.next_batch()

    def wait_idle(self, timeout: float) -> bool:
        return self.pipe.wait_idle(timeout)

    def close(self) -> None:
        self.pipe.close()


class RemotePipeline:
    """A :class:`PipelinedLearner` in a child process, used as one (the methods the
    pipelined engine calls). The app's learner mirrors every answer, so its L is the
    trainer's once the trainer has absorbed them."""

    def __init__(self, learner: ActiveLearner, threads: int | None = None, **options: Any):
        self.learner = learner
        self.stats = PipelineStats()
        self.current: Proposal | None = None
        self.last_snapshot: dict[str, Any] | None = None
        self._answers: dict[int, int] = {}
        self._generation = 0
        self._chosen: dict[int, tuple[Proposal | None, bytes | None]] = {}
        self._process = ServiceProcess(
            _PipelineService, learner, options, threads or torch.get_num_threads(), name="aeep-trainer"
        ).start()

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def queue(self, current: Proposal | None = None, replay: Sequence[tuple[int | None, int, int]] = ()) -> None:
        """Set the batch on screen and the stored answers to replay (see PipelinedLearner.queue)."""
        self.current = self._process.call("queue", current, list(replay))
        for where, item, label in replay:
            self._mirror(where, item, label)

    def launch(self) -> Proposal | None:
        """Start training; return the batch on screen, waiting for a first choice if none."""
        first = self.current is None
        self._process.send("launch")
        if first:
            self.current = self._wait(0, None)
            self._generation = 1
        return self.current

    def answer(self, position: int, label: int) -> None:
        assert self.current is not None
        self._process.send("answer", position, label)
        self._mirror(position, int(self.current.ids[position]), label)

    def correct(self, item: int, label: int) -> None:
        self._process.send("correct", item, label)
        self._mirror(None, item, label)

    def set_classes(self) -> None:
        """The app's classes changed (added, merged): the trainer's copy follows, in order."""
        self._process.send("classes", *_classes_of(self.learner))

    def next_batch(self, timeout: float | None = None) -> Proposal | None:
        """The batch chosen after the current one (TimeoutError after ``timeout`` s)."""
        assert self.current is not None and len(self._answers) == len(self.current.ids), "answer every card first"
        proposal = self._wait(self._generation, timeout)
        self._process.send("take")
        self._generation += 1
        self._answers = {}
        self.current = proposal
        return proposal

    def wait_idle(self, timeout: float = 30.0) -> bool:
        return bool(self._process.call("wait_idle", timeout, timeout=timeout + 10))

    def close(self) -> None:
        self._process.stop()

    @property
    def alive(self) -> bool:
        return self._process.alive

    def receive(self, timeout: float = 0.1) -> None:
        """Take in what the trainer sent so far (chosen batches, evaluations)."""
        self._drain(timeout)

    def check(self) -> None:
        """Raise ServiceCrashed if the trainer died. Reads no message: the UI's thread calls
        this, and a chosen batch (megabytes of weights) is read by the thread that waits for it."""
        self._process.check()

    # --- internals ------------------------------------------------------------------
    def _mirror(self, position: int | None, item: int, label: int) -> None:
        if position is not None:
            if label == RETRACT:
                self._answers.pop(position, None)
            else:
                self._answers[position] = label
        self.learner.add_labels([item], [label])

    def _wait(self, generation: int, timeout: float | None) -> Proposal | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        while generation not in self._chosen:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError("the next batch was not ready in time")
            self._drain(_POLL if left is None else min(_POLL, left))
        proposal, snapshot = self._chosen.pop(generation)
        self.last_snapshot = unpack(snapshot)
        return proposal

    def _drain(self, timeout: float) -> None:
        for event in self._process.events(timeout=timeout):
            if event[0] == "chosen":
                self._chosen[event[1]] = (event[2], event[3])
            elif event[0] == "evaluated":
                self.stats.accuracy.append((event[1], event[2]))
                self.stats.confusion = event[3]
