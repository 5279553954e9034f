"""The active learner: holds L and U, trains the network, asks the strategy for batches."""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from typing import Any, cast

import numpy as np
import torch

from aeep_core.learning.model import build_model, select_device
from aeep_core.learning.training import Progress, TrainConfig, score, train
from aeep_core.pool import Pool
from aeep_core.strategies import QueryContext, QueryStrategy

SKIPPED = -1  # an answer that leaves the item out of both L and U ("unsure")
RETRACT = -2  # an answer taken back: the item returns to U


def batch_outcome(
    predicted: np.ndarray, exploration: np.ndarray, answers: np.ndarray, strategy: QueryStrategy | None = None
) -> tuple[float | None, float | None]:
    """(mp, batch accuracy) of a labelled batch: how well the exploration picks were
    predicted before labelling (the strategy's ``matching``: the plain share unless it
    averages per class), and the share of all answered picks predicted right.

    Skips, unanswered cards (``answers < 0``) and cards without a prediction
    (``predicted < 0``, a cold-start batch) count in neither; None when nothing counts.
    """
    predicted, answers = np.asarray(predicted), np.asarray(answers)
    given = (answers >= 0) & (predicted >= 0)
    hits = predicted == answers
    explored = given & np.asarray(exploration, dtype=bool)
    matching = strategy.matching if strategy is not None else QueryStrategy().matching
    mp = matching(predicted[explored], answers[explored]) if explored.any() else None
    accuracy = float(hits[given].mean()) if given.any() else None
    return mp, accuracy


def next_batch_size(batch_size: int, available: int, budget: int | None, labelled: int) -> int:
    """How many items the next batch holds: ``batch_size``, fewer when the pool has fewer
    ``available`` items or the budget has fewer labels left (0: nothing to choose)."""
    left = available if budget is None else budget - labelled
    return max(0, min(batch_size, available, left))


@dataclass
class Proposal:
    """A batch chosen for labelling, with what the model thought before seeing labels."""

    ids: np.ndarray  # global item ids, in the order to show them
    exploration: np.ndarray  # bool per item
    predicted: np.ndarray  # class index predicted before labelling
    confidence: np.ndarray  # probability of that class
    entropy_batch: float
    entropy_pool: float  # mean over this round's candidates (an unbiased sample of U)
    m: int | None
    select_s: float


@dataclass
class RoundRecord:
    """One round, in the ``simulate --json`` format (None where a value does not apply)."""

    labelled: int
    accuracy: float | None
    m: int | None
    mp: float | None
    entropy_batch: float | None
    entropy_pool: float | None
    train_s: float | None
    select_s: float | None
    batch_accuracy: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


@dataclass
class ActiveLearner:
    """Orchestrates rounds: :meth:`train`, :meth:`propose`, then :meth:`teach` the answers.

    Every random choice of round r comes from generators seeded by (seed, r), so a run
    restored with :meth:`load_state_dict` continues exactly as one never interrupted.
    ``candidates`` caps how many unlabelled items are scored per round (a fresh random
    subset each round); the whole pool is scored when it is smaller.
    """

    pool: Pool
    strategy: QueryStrategy
    config: TrainConfig = field(default_factory=TrainConfig)
    device: str | torch.device = "auto"
    seed: int = 0
    candidates: int = 10_000
    test: Pool | None = None
    labels: dict[int, int] = field(default_factory=dict)  # item id -> class, in labelling order
    skipped: set[int] = field(default_factory=set)
    round: int = 0
    model: torch.nn.Module | None = None

    def __post_init__(self) -> None:
        self.device = select_device(self.device) if isinstance(self.device, str) else self.device

    # --- the labelled set ------------------------------------------------------
    def unlabelled_ids(self) -> np.ndarray:
        mask = np.ones(len(self.pool), dtype=bool)
        taken = list(self.labels) + list(self.skipped)
        mask[np.asarray(taken, dtype=np.int64)] = False
        return np.flatnonzero(mask)

    def initial_ids(self, n: int) -> np.ndarray:
        """A uniform random seed set of ``n`` items, the same for every strategy under one seed."""
        return np.random.default_rng([self.seed, 2**20]).choice(len(self.pool), size=min(n, len(self.pool)), replace=False)

    def add_labels(self, ids: np.ndarray | list[int], labels: np.ndarray | list[int]) -> None:
        """Record answers; ``SKIPPED`` leaves an item out of both L and U, ``RETRACT``
        returns it to U."""
        for i, y in zip(np.asarray(ids).tolist(), np.asarray(labels).tolist()):
            if y == SKIPPED:
                self.skipped.add(int(i))
                self.labels.pop(int(i), None)
            elif y == RETRACT:
                self.skipped.discard(int(i))
                self.labels.pop(int(i), None)
            elif not 0 <= y < self.pool.n_classes:
                raise ValueError(f"label {y} is not a class index (0..{self.pool.n_classes - 1})")
            else:
                self.labels[int(i)] = int(y)
                self.skipped.discard(int(i))

    def correct(self, item: int, label: int) -> None:
        """Change the answer of an item of an earlier batch (a correction from review): a
        class relabels it or moves it from the skipped items into L, ``SKIPPED`` takes it out
        of L, ``RETRACT`` returns it to U. A relabelled item keeps its place in L's order;
        the next training uses the new answer."""
        if label not in (SKIPPED, RETRACT) and not 0 <= label < self.pool.n_classes:
            raise ValueError(f"label {label} is not a class index (0..{self.pool.n_classes - 1}), SKIPPED or RETRACT")
        if not 0 <= item < len(self.pool):
            raise ValueError(f"item {item} is not in the pool (0..{len(self.pool) - 1})")
        self.add_labels([item], [label])

    @property
    def classes_seen(self) -> int:
        """How many distinct classes L holds."""
        return len(set(self.labels.values()))

    # --- the model ---------------------------------------------------------------
    def new_model(self) -> torch.nn.Module:
        """Replace the model by a freshly initialised one (from torch's global generator)."""
        self.model = build_model(self.pool.inputs, self.pool.modality, self.pool.n_classes).to(self.device)
        return self.model

    def forget_model(self) -> None:
        """Drop the model (e.g. one whose training was interrupted)."""
        self.model = None

    # --- one round ---------------------------------------------------------------
    def train(self, progress: Progress | None = None, should_stop=None) -> float:
        """(Re)train the network on L; return the seconds it took."""
        if not self.labels:
            raise ValueError("nothing is labelled yet: label a few items before training")
        start = time.perf_counter()
        # Seeded every round, fresh or warm: dropout draws from this generator too, so a
        # restored learner trains exactly as an uninterrupted one.
        torch.manual_seed(self.seed * 7919 + self.round)
        model = self.model if self.model is not None and self.config.warm_start else self.new_model()
        ids = np.fromiter(self.labels, dtype=np.int64)
        y = np.fromiter(self.labels.values(), dtype=np.int64)
        train(
            model,
            self.pool.inputs[torch.from_numpy(ids)],
            y,
            self.config,
            self.device,
            seed=self.seed * 7919 + self.round,
            modality=self.pool.modality,
            progress=progress,
            should_stop=should_stop,
        )
        return time.perf_counter() - start

    def propose(
        self,
        k: int,
        progress: Progress | None = None,
        exclude: np.ndarray | None = None,
        model: torch.nn.Module | None = None,
    ) -> Proposal:
        """Score a candidate subset of U and let the strategy choose ``k`` of them.

        ``exclude``: items to leave out although not yet labelled (the batch on screen,
        when the next one is chosen before the person finishes it). ``model``: score with
        these weights instead of the learner's (the pipelined trainer's average).
        """
        model = model if model is not None else self.model
        if model is None:
            raise RuntimeError("train() before propose()")
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.round])
        unlabelled = self.unlabelled_ids()
        if exclude is not None and len(exclude):
            unlabelled = np.setdiff1d(unlabelled, exclude, assume_unique=True)
        if len(unlabelled) == 0:
            raise ValueError("the pool is exhausted: every item is labelled or skipped")
        cand = (
            unlabelled if len(unlabelled) <= self.candidates else np.sort(rng.choice(unlabelled, self.candidates, replace=False))
        )
        probs, emb = score(model, self.pool.inputs[torch.from_numpy(cand)], self.device, progress=progress)
        lab_ids = np.fromiter(self.labels, dtype=np.int64)
        lab_emb = np.zeros((0, emb.shape[1]), np.float32)
        if self.strategy.needs_labelled:
            _, lab_emb = score(model, self.pool.inputs[torch.from_numpy(lab_ids)], self.device)
        head = cast(torch.nn.Linear, model.head)
        ctx = QueryContext(
            candidates=cand,
            probs=probs,
            embeddings=emb,
            labelled_embeddings=lab_emb,
            head_weight=head.weight.detach().cpu().numpy(),
            head_bias=head.bias.detach().cpu().numpy(),
            rng=rng,
            _inputs=lambda: (self.pool.flat_inputs(cand), self.pool.flat_inputs(lab_ids)),
        )
        sel = self.strategy.query(ctx, k)
        pos = sel.positions
        h = ctx.entropy
        return Proposal(
            ids=cand[pos],
            exploration=sel.exploration.copy(),
            predicted=probs[pos].argmax(1),
            confidence=probs[pos].max(1),
            entropy_batch=float(h[pos].mean()),
            entropy_pool=float(h.mean()),
            m=int(sel.exploration.sum()) if self.strategy.m is not None else None,
            select_s=time.perf_counter() - start,
        )

    def teach(self, proposal: Proposal, labels: np.ndarray | list[int]) -> tuple[float | None, float | None]:
        """Take the oracle's answers for a proposal; adapt the strategy; return (mp, batch accuracy)."""
        labels = np.asarray(labels, dtype=np.int64)
        self.add_labels(proposal.ids, labels)
        mp, batch_acc = batch_outcome(proposal.predicted, proposal.exploration, labels, self.strategy)
        self.observe(mp)
        self.round += 1
        return mp, batch_acc

    def observe(self, mp: float | None) -> None:
        """Tell the strategy how well the exploration picks were predicted (see :meth:`informative_mp`)."""
        self.strategy.observe(self.informative_mp(mp))

    def chose(self) -> None:
        """Count a round whose batch was chosen ahead of its answers (the pipelined trainer):
        the next round's generators must differ from this one's."""
        self.round += 1

    def informative_mp(self, mp: float | None) -> float | None:
        """``mp`` if it can tell the strategy anything, else None (no adaptation).

        While L holds a single class the model predicts that class everywhere; on
        imbalanced data (heart failure: 3% positives) the exploration picks are then
        mostly that class, "matched", and m would collapse before the first positive is
        found. Exploring is exactly what such a model needs, so m holds until L has two.
        """
        return mp if self.classes_seen >= 2 else None

    def evaluate(self, model: torch.nn.Module | None = None) -> float | None:
        """Accuracy on the held-out test set (of ``model``, default the learner's), or None without one."""
        model = model if model is not None else self.model
        if self.test is None or model is None or self.test.labels is None:
            return None
        probs, _ = score(model, self.test.inputs, self.device)
        return float((probs.argmax(1) == self.test.labels).mean())

    # --- persistence -------------------------------------------------------------
    def state_dict(self, *, model: bool = True, labels: bool = True) -> dict[str, Any]:
        """The learner's one persistence format: round, strategy state, and (optionally) L
        and the skipped items in labelling order, and the model's weights (on the CPU).

        Everything but the pool needed to continue exactly; plain JSON apart from the
        weights, so a project's database can hold it without them.
        """
        state: dict[str, Any] = {
            "learner_round": self.round,
            "strategy": copy.deepcopy(self.strategy.state_dict()),
        }
        if labels:
            state["labels"] = [[i, y] for i, y in self.labels.items()]
            state["skipped"] = sorted(self.skipped)
        if model:
            state["model"] = (
                None if self.model is None else {k: v.detach().cpu().clone() for k, v in self.model.state_dict().items()}
            )
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned; keys it lacks leave that part as is.

        Weights that no longer fit the pool (the input size changed with the data) are
        dropped: the next round trains afresh.
        """
        if "learner_round" in state:
            self.round = int(state["learner_round"])
        if "strategy" in state:
            self.strategy.load_state_dict(copy.deepcopy(state["strategy"]))
        if "labels" in state:
            self.labels = {int(i): int(y) for i, y in state["labels"]}
        if "skipped" in state:
            self.skipped = {int(i) for i in state["skipped"]}
        if state.get("model") is not None:
            model = build_model(self.pool.inputs, self.pool.modality, self.pool.n_classes)
            try:
                model.load_state_dict(state["model"])
            except (RuntimeError, KeyError, ValueError):
                self.model = None
                return
            self.model = model.to(self.device).eval()
