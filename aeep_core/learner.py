"""The active learner: holds L and U, trains the network, asks the strategy for batches."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from aeep_core.data.pool import Pool
from aeep_core.model import build_model, select_device
from aeep_core.strategies import QueryContext, QueryStrategy
from aeep_core.training import Progress, TrainConfig, score, train

SKIPPED = -1


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
        """Record answers; ``SKIPPED`` (-1) leaves an item out of both L and U."""
        for i, y in zip(np.asarray(ids).tolist(), np.asarray(labels).tolist()):
            if y == SKIPPED:
                self.skipped.add(int(i))
                self.labels.pop(int(i), None)
            elif not 0 <= y < self.pool.n_classes:
                raise ValueError(f"label {y} is not a class index (0..{self.pool.n_classes - 1})")
            else:
                self.labels[int(i)] = int(y)
                self.skipped.discard(int(i))

    # --- one round ---------------------------------------------------------------
    def train(self, progress: Progress | None = None, should_stop=None) -> float:
        """(Re)train the network on L; return the seconds it took."""
        if not self.labels:
            raise ValueError("nothing is labelled yet: label a few items before training")
        start = time.perf_counter()
        # Seeded every round, fresh or warm: dropout draws from this generator too, so a
        # restored learner trains exactly as an uninterrupted one.
        torch.manual_seed(self.seed * 7919 + self.round)
        if self.model is None or not self.config.warm_start:
            self.model = build_model(self.pool.inputs, self.pool.modality, self.pool.n_classes)
        ids = np.fromiter(self.labels, dtype=np.int64)
        y = np.fromiter(self.labels.values(), dtype=np.int64)
        train(
            self.model, self.pool.inputs[torch.from_numpy(ids)], y, self.config, self.device,
            seed=self.seed * 7919 + self.round, modality=self.pool.modality, progress=progress, should_stop=should_stop,
        )
        return time.perf_counter() - start

    def propose(self, k: int, progress: Progress | None = None, exclude: np.ndarray | None = None) -> Proposal:
        """Score a candidate subset of U and let the strategy choose ``k`` of them.

        ``exclude``: items to leave out although not yet labelled (the batch on screen,
        when the next one is chosen before the person finishes it).
        """
        if self.model is None:
            raise RuntimeError("train() before propose()")
        start = time.perf_counter()
        rng = np.random.default_rng([self.seed, self.round])
        unlabelled = self.unlabelled_ids()
        if exclude is not None and len(exclude):
            unlabelled = np.setdiff1d(unlabelled, exclude, assume_unique=True)
        if len(unlabelled) == 0:
            raise ValueError("the pool is exhausted: every item is labelled or skipped")
        cand = unlabelled if len(unlabelled) <= self.candidates else np.sort(rng.choice(unlabelled, self.candidates, replace=False))
        probs, emb = score(self.model, self.pool.inputs[torch.from_numpy(cand)], self.device, progress=progress)
        lab_ids = np.fromiter(self.labels, dtype=np.int64)
        lab_emb = np.zeros((0, emb.shape[1]), np.float32)
        if self.strategy.needs_labelled:
            _, lab_emb = score(self.model, self.pool.inputs[torch.from_numpy(lab_ids)], self.device)
        head = self.model.head
        ctx = QueryContext(
            candidates=cand, probs=probs, embeddings=emb, labelled_embeddings=lab_emb,
            head_weight=head.weight.detach().cpu().numpy(), head_bias=head.bias.detach().cpu().numpy(), rng=rng,
            _inputs=lambda: (self.pool.flat_inputs(cand), self.pool.flat_inputs(lab_ids)),
        )
        sel = self.strategy.query(ctx, k)
        pos = sel.positions
        h = ctx.entropy
        return Proposal(
            ids=cand[pos], exploration=sel.exploration.copy(), predicted=probs[pos].argmax(1),
            confidence=probs[pos].max(1), entropy_batch=float(h[pos].mean()), entropy_pool=float(h.mean()),
            m=int(sel.exploration.sum()) if self.strategy.m is not None else None, select_s=time.perf_counter() - start,
        )

    def teach(self, proposal: Proposal, labels: np.ndarray | list[int]) -> tuple[float | None, float | None]:
        """Take the oracle's answers for a proposal; adapt the strategy; return (mp, batch accuracy)."""
        labels = np.asarray(labels, dtype=np.int64)
        self.add_labels(proposal.ids, labels)
        given = labels != SKIPPED
        hits = proposal.predicted == labels
        explored = given & proposal.exploration
        mp = float(hits[explored].mean()) if explored.any() else None
        batch_acc = float(hits[given].mean()) if given.any() else None
        self.strategy.observe(self.informative_mp(mp))
        self.round += 1
        return mp, batch_acc

    def informative_mp(self, mp: float | None) -> float | None:
        """``mp`` if it can tell the strategy anything, else None (no adaptation).

        While L holds a single class the model predicts that class everywhere; on
        imbalanced data (heart failure: 3% positives) the exploration picks are then
        mostly that class, "matched", and m would collapse before the first positive is
        found. Exploring is exactly what such a model needs, so m holds until L has two.
        """
        return mp if len(set(self.labels.values())) >= 2 else None

    def evaluate(self) -> float | None:
        """Accuracy on the held-out test set, or None without one."""
        if self.test is None or self.model is None or self.test.labels is None:
            return None
        probs, _ = score(self.model, self.test.inputs, self.device)
        return float((probs.argmax(1) == self.test.labels).mean())

    # --- persistence -------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Everything but the pool needed to continue exactly (model weights included)."""
        return {
            "round": self.round,
            "labels": [[i, y] for i, y in self.labels.items()],
            "skipped": sorted(self.skipped),
            "strategy": self.strategy.state_dict(),
            "model": None if self.model is None else {k: v.cpu() for k, v in self.model.state_dict().items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.round = int(state["round"])
        self.labels = {int(i): int(y) for i, y in state["labels"]}
        self.skipped = set(int(i) for i in state["skipped"])
        self.strategy.load_state_dict(state.get("strategy", {}))
        if state.get("model") is not None:
            self.model = build_model(self.pool.inputs, self.pool.modality, self.pool.n_classes)
            self.model.load_state_dict(state["model"])
            self.model.to(self.device).eval()
