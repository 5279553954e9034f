"""Zero-wait batches: train while the person labels, choose the next batch before they finish.

The plain loop makes a person wait, after the last label of every batch, for a full
retrain and a scoring pass. :class:`PipelinedLearner` moves both off that path:

* a background thread keeps training one warm model on L, absorbing each answer the
  moment it is given (each answer enters the training set exactly once; an undo or a
  relabel replaces it, a skip removes it);
* once all but ``lookahead`` cards of the batch on screen are answered, the same thread
  chooses the next batch with the model as it is, leaving out every labelled item and
  every item of the batch on screen, and AEEP's m adapts from the exploration picks
  answered so far;
* :meth:`next_batch` then usually returns at once.

One thread owns the model and the learner's state; the caller only enqueues answers and
waits for batches, so no lock is held while a person types.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from aeep_core.learner import SKIPPED, ActiveLearner, Proposal
from aeep_core.model import build_model
from aeep_core.training import class_balanced_batch, training_step


@dataclass
class PipelineStats:
    """What the pipeline did, for tests and the latency benchmark."""

    steps: int = 0
    fed: list[int] = field(default_factory=list)  # item ids in the order they entered training
    selections: int = 0
    select_s: list[float] = field(default_factory=list)
    accuracy: list[tuple[int, float | None]] = field(default_factory=list)  # (labels, test accuracy) per selection


class PipelinedLearner:
    """Drive an :class:`ActiveLearner` without making the person wait between batches."""

    def __init__(
        self, learner: ActiveLearner, batch_size: int, lookahead: int = 2, chunk_steps: int = 10,
        lr: float = 1e-3, evaluate: bool = False,
    ):
        self.learner = learner
        self.evaluate = evaluate
        self.batch_size = batch_size
        self.lookahead = max(0, lookahead)
        self.chunk_steps = chunk_steps
        self.lr = lr
        self.stats = PipelineStats()
        self.current: Proposal | None = None
        self._answers: dict[int, int] = {}  # position in the current batch -> label
        self._inbox: queue.SimpleQueue[tuple[int, int]] = queue.SimpleQueue()
        self._wake = threading.Event()
        self._ready: Proposal | None = None
        self._ready_event = threading.Event()
        self._exhausted = False
        # A request names the batch it is for, so a late request cannot trigger a second
        # selection for a batch whose successor is already chosen.
        self._generation = 0
        self._requested = -1
        self._selected = -1
        # A fresh model trains a full round's worth of steps before it may choose.
        self._steps_before_select = 0 if learner.model is not None else learner.config.steps_for(max(1, len(learner.labels)))
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._rng = np.random.default_rng([learner.seed, 2**21])
        self._gen = torch.Generator().manual_seed(learner.seed)
        self._thread = threading.Thread(target=self._run, name="aeep-pipeline", daemon=True)

    # --- the person's side ----------------------------------------------------------
    def start(self, initial: int | None = None) -> Proposal | None:
        """Start training; return the first batch (random when nothing is labelled yet)."""
        if not self.learner.labels:
            ids = self.learner.initial_ids(initial or self.batch_size)
            n = len(ids)
            self.current = Proposal(ids, np.zeros(n, bool), np.full(n, -1), np.zeros(n), float("nan"), float("nan"), None, 0.0)
        self._thread.start()
        if self.current is None:
            self._request_selection()
            self.current = self._take_ready(None)
        return self.current

    def answer(self, position: int, label: int) -> None:
        """The person labelled (or skipped, ``SKIPPED``) card ``position`` of the current batch."""
        assert self.current is not None
        self._answers[position] = label
        self._inbox.put((int(self.current.ids[position]), int(label)))
        if len(self._answers) >= len(self.current.ids) - self.lookahead:
            self._request_selection()
        self._wake.set()

    def next_batch(self, timeout: float | None = None) -> Proposal | None:
        """The batch after the current one, once every card is answered (blocks until
        chosen); None when the pool is exhausted."""
        assert self.current is not None and len(self._answers) == len(self.current.ids), "answer every card first"
        self._request_selection()
        self.current = self._take_ready(timeout)
        return self.current

    def close(self) -> None:
        """Stop the background thread (training state stays in the learner)."""
        self._stop.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout=30)

    # --- internals --------------------------------------------------------------------
    def _request_selection(self) -> None:
        self._requested = self._generation
        self._wake.set()

    def _selection_due(self) -> bool:
        return self._requested == self._generation != self._selected and self._steps_before_select <= 0

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
            while not self._stop.is_set():
                self._absorb()
                if self._selection_due() and self.learner.model is not None:
                    self._select()
                elif self.learner.labels:
                    self._train_chunk()
                else:
                    self._wake.wait(0.1)
                    self._wake.clear()
        except BaseException as exc:  # surfaced to the caller by _take_ready
            self._error = exc
            self._ready_event.set()

    def _absorb(self) -> None:
        while True:
            try:
                item, label = self._inbox.get_nowait()
            except queue.Empty:
                return
            if label != SKIPPED and item not in self.learner.labels:
                self.stats.fed.append(item)
            elif label == SKIPPED and item in self.learner.labels:
                self.stats.fed.remove(item)
            self.learner.add_labels([item], [label])

    def _train_chunk(self) -> None:
        learner = self.learner
        if learner.model is None:
            torch.manual_seed(learner.seed * 7919)
            learner.model = build_model(learner.pool.inputs, learner.pool.modality, learner.pool.n_classes).to(learner.device)
        if self._optimizer is None:
            self._optimizer = torch.optim.AdamW(learner.model.parameters(), lr=self.lr, weight_decay=learner.config.weight_decay)
        ids = np.fromiter(learner.labels, dtype=np.int64)
        y = np.fromiter(learner.labels.values(), dtype=np.int64)
        learner.model.train()
        for _ in range(self.chunk_steps):
            pick = class_balanced_batch(y, learner.config.batch_size, self._rng)
            x = learner.pool.inputs[torch.from_numpy(ids[pick])].to(learner.device)
            training_step(learner.model, self._optimizer, x, torch.from_numpy(y[pick]).to(learner.device),
                          learner.config, self._gen, learner.pool.modality)
            self.stats.steps += 1
            self._steps_before_select -= 1
            if self._selection_due():
                break  # the person is nearly done: choose now rather than finish the chunk
        learner.model.eval()

    def _select(self) -> None:
        start = time.perf_counter()
        learner, current = self.learner, self.current
        self._selected = self._generation
        if current is not None and current.m is not None:
            answers = dict(self._answers)  # written by the caller's thread; read a snapshot
            explored = [p for p, y in answers.items() if current.exploration[p] and y != SKIPPED]
            hits = [current.predicted[p] == answers[p] for p in explored]
            learner.strategy.observe(float(np.mean(hits)) if hits else None)
        exclude = np.unique(current.ids) if current is not None else None
        free = learner.unlabelled_ids()
        k = min(self.batch_size, len(free) if exclude is None else len(np.setdiff1d(free, exclude)))
        if k <= 0:
            self._exhausted = True
        else:
            self._ready = learner.propose(k, exclude=exclude)
            learner.round += 1
        self.stats.selections += 1
        self.stats.select_s.append(time.perf_counter() - start)
        self._ready_event.set()
        if self.evaluate and not self._exhausted:
            self.stats.accuracy.append((len(learner.labels), learner.evaluate()))
