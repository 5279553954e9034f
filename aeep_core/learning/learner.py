"""The active learner: holds L and U, trains the network, asks the strategy for batches."""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, cast

import numpy as np
import torch

from aeep_core.learning.class_outputs import LiveOutputs, grow_head, head_size
from aeep_core.learning.model import build_model, select_device
from aeep_core.learning.training import Progress, TrainConfig, score, train
from aeep_core.pool import Pool
from aeep_core.strategies import QueryContext, QueryStrategy

SKIPPED = -1  # an answer that leaves the item out of both L and U ("unsure")
RETRACT = -2  # an answer taken back: the item returns to U


def batch_outcome(
    predicted: np.ndarray,
    exploration: np.ndarray,
    answers: np.ndarray,
    strategy: QueryStrategy | None = None,
    class_counts: np.ndarray | None = None,
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
    mp = matching(predicted[explored], answers[explored], class_counts) if explored.any() else None
    accuracy = float(hits[given].mean()) if given.any() else None
    return mp, accuracy


def confusion_accuracy(confusion: np.ndarray | None) -> float | None:
    """The share on the diagonal of a confusion matrix (None for none or an empty one)."""
    if confusion is None or confusion.sum() == 0:
        return None
    return float(np.trace(confusion) / confusion.sum())


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
    # the choosing model's class for each item of the learner's stop set (None without one)
    stop_predicted: np.ndarray | None = None


def confident_last(confidence: np.ndarray) -> np.ndarray:
    """The order to show a batch in: the strategy's, its item of highest ``confidence`` moved to
    the end. The plain loop may start the next round when one card is left, taking the model's
    guess for it (``PlainEngine.answered`` without follow_pace): shown last, the card left is
    usually the one the model is surest of, and the guess usually right. Training ahead
    (follow_pace), the last cards train a round late: the surest among them."""
    order = np.arange(len(confidence))
    if len(order) < 2:
        return order
    top = int(np.argmax(confidence))
    return np.append(np.delete(order, top), top)


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
    # Items whose predictions every proposal records, to tell when the model has stopped
    # changing (the session's stop set); None: none are recorded.
    stop_set: np.ndarray | None = None
    # Classes merged into others: their outputs stay but are never predicted
    # (learning.class_outputs); the session sets it, a new frozenset each time.
    merged_classes: frozenset[int] = frozenset()

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

    def class_counts(self) -> np.ndarray:
        """Labels per class in L, [C]."""
        return np.bincount(np.fromiter(self.labels.values(), dtype=np.int64), minlength=self.pool.n_classes)

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

    def grow_model(self, n_classes: int, model: torch.nn.Module | None = None) -> list[torch.Tensor]:
        """Give ``model`` (default the learner's) ``n_classes`` outputs, every weight it has
        kept and the new rows drawn from (seed, class) alone (:func:`grow_head`); return
        the parameters that grew, for an optimizer's state to follow."""
        model = model if model is not None else self.model
        return [] if model is None else grow_head(model, n_classes, self.seed)

    def _score(self, model: torch.nn.Module, ids: np.ndarray, progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Probabilities (merged classes masked out) and embeddings of pool items ``ids``."""
        inputs = self.pool.inputs[torch.from_numpy(np.asarray(ids, dtype=np.int64))]
        return score(model, inputs, self.device, progress=progress, without=self.merged_classes)

    def forget_model(self) -> None:
        """Drop the model (e.g. one whose training was interrupted)."""
        self.model = None

    def _continues_model(self) -> bool:
        """Whether a round continues last round's network (``config.warm_start``).

        Only networks that learn their own features: warm start was measured better for
        the CNN trained end to end, while the small head on a frozen backbone's features
        refits in a second and, continued, kept the overfit of its first rounds (flowers,
        AEEP at 100 labels: 83.2% warm vs 85.0% fresh, 3 seeds; BENCHMARKS.md).
        """
        return self.config.warm_start and self.pool.modality != "features"

    # --- one round ---------------------------------------------------------------
    def train(self, progress: Progress | None = None, should_stop=None) -> float:
        """(Re)train the network on L (and, for a head on features, on its confident
        guesses: ``config.pseudo_label_share``); return the seconds it took."""
        if not self.labels:
            raise ValueError("nothing is labelled yet: label a few items before training")
        start = time.perf_counter()
        round_seed = self.seed * 7919 + self.round
        # Seeded every round, fresh or warm: dropout draws from this generator too, so a
        # restored learner trains exactly as an uninterrupted one.
        torch.manual_seed(round_seed)
        model = self.model if self.model is not None and self._continues_model() else self.new_model()
        self.grow_model(self.pool.n_classes, model)  # a class added since the last round gets its output
        ids = np.fromiter(self.labels, dtype=np.int64)
        y = np.fromiter(self.labels.values(), dtype=np.int64)
        if not self._self_trains():
            self._fit(model, ids, y, self.config, round_seed, progress, should_stop)
            return time.perf_counter() - start
        # Self-training: a short fit makes guesses, a fresh head learns L + the confident ones.
        cap = self.config.max_steps  # --train-steps bounds both fits
        first, second = min(self.config.guess_steps, cap), min(self.config.pseudo_label_steps, cap)
        total = first + second
        self._fit(
            model,
            ids,
            y,
            replace(self.config, min_steps=first, max_steps=first),
            round_seed,
            None if progress is None else lambda done, _: progress(done, total),
            should_stop,
        )
        if should_stop is not None and should_stop():
            return time.perf_counter() - start
        guessed, guesses = self._confident_guesses(model)
        torch.manual_seed(round_seed + 1)
        self._fit(
            self.new_model(),
            np.concatenate([ids, guessed]),
            np.concatenate([y, guesses]),
            replace(self.config, min_steps=second, max_steps=second),
            round_seed,
            None if progress is None else lambda done, _: progress(first + done, total),
            should_stop,
        )
        return time.perf_counter() - start

    def _fit(
        self,
        model: torch.nn.Module,
        ids: np.ndarray,
        y: np.ndarray,
        config: TrainConfig,
        seed: int,
        progress: Progress | None,
        should_stop: Callable[[], bool] | None,
    ) -> None:
        """Train ``model`` on items ``ids`` with classes ``y``."""
        inputs = self.pool.inputs[torch.from_numpy(ids)]
        train(model, inputs, y, config, self.device, seed, self.pool.modality, progress, should_stop)

    def _self_trains(self) -> bool:
        """Whether rounds refit on confident guesses too (heads on features; TrainConfig)."""
        return self.pool.modality == "features" and self.config.pseudo_label_share > 0

    def _confident_guesses(self, model: torch.nn.Module) -> tuple[np.ndarray, np.ndarray]:
        """(items, classes): ``model``'s guesses for its most confident
        ``pseudo_label_share`` of a random candidate subset of U (at most ``candidates``
        items, as :meth:`propose` scores, so a huge pool costs no more). A pool in random
        order draws the run of rows this round's :meth:`propose` draws (the same seed), so a
        store on disk reads it once, not twice; other pools keep a draw of their own."""
        key = [self.seed, self.round] if self.pool.meta.get("random_order") else [self.seed, self.round, 1]
        unlabelled = self._draw_candidates(np.random.default_rng(key), self.unlabelled_ids())
        probs, _ = self._score(model, unlabelled)
        n = int(self.config.pseudo_label_share * len(unlabelled))
        confident = np.argsort(-probs.max(1), kind="stable")[:n]
        return unlabelled[confident], probs.argmax(1)[confident]

    def _draw_candidates(self, rng: np.random.Generator, unlabelled: np.ndarray) -> np.ndarray:
        """At most ``candidates`` of the ``unlabelled`` items, a random subset. A pool whose
        positions are already in a random order (``meta["random_order"]``: a photo folder's
        seeded order, its features stored in that order) gives a run of them, wrapping at the
        end: as random, and read from a store on disk in one sequential pass instead of
        10,000 scattered ones (BENCHMARKS.md, "Scale"). The run starts at the same fraction
        of ``unlabelled`` for the same ``rng``, so draws that leave out a few items (the
        batch on screen) still cover nearly the same rows."""
        n, c = len(unlabelled), self.candidates
        if n <= c:
            return unlabelled
        if self.pool.meta.get("random_order"):
            return unlabelled[(int(rng.random() * n) + np.arange(c)) % n]
        return rng.choice(unlabelled, c, replace=False)

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
        cand = np.sort(self._draw_candidates(rng, unlabelled))
        merged = self.merged_classes  # read once: a merge made meanwhile (another thread) waits for the next round
        probs, emb = score(model, self.pool.inputs[torch.from_numpy(cand)], self.device, progress=progress, without=merged)
        lab_ids = np.fromiter(self.labels, dtype=np.int64)
        lab_emb = np.zeros((0, emb.shape[1]), np.float32)
        if self.strategy.needs_labelled:
            _, lab_emb = self._score(model, lab_ids)
        head = cast(torch.nn.Linear, model.head)
        live = LiveOutputs(probs.shape[1], merged)  # the strategy never sees a merged class
        ctx = QueryContext(
            candidates=cand,
            probs=live.columns(probs),
            embeddings=emb,
            labelled_embeddings=lab_emb,
            head_weight=live.rows(head.weight.detach().cpu().numpy()),
            head_bias=live.rows(head.bias.detach().cpu().numpy()),
            rng=rng,
            labelled_labels=live.positions(np.fromiter(self.labels.values(), dtype=np.int64, count=len(self.labels))),
            _inputs=lambda: (self.pool.flat_inputs(cand), self.pool.flat_inputs(lab_ids)),
        )
        sel = self.strategy.query(ctx, k)
        order = confident_last(probs[sel.positions].max(1))
        pos, exploration = sel.positions[order], sel.exploration[order]
        h = ctx.entropy
        stop_predicted = None if self.stop_set is None else self._stop_predictions(model, cand, probs)
        return Proposal(
            ids=cand[pos],
            exploration=exploration,
            predicted=probs[pos].argmax(1),
            confidence=probs[pos].max(1),
            entropy_batch=float(h[pos].mean()),
            entropy_pool=float(h.mean()),
            m=int(sel.exploration.sum()) if self.strategy.m is not None else None,
            select_s=time.perf_counter() - start,
            stop_predicted=stop_predicted,
        )

    def _stop_predictions(self, model: torch.nn.Module, cand: np.ndarray, probs: np.ndarray) -> np.ndarray:
        """The model's class for each stop-set item. Items among this round's candidates
        were just scored by the same model: only the others are scored again."""
        stop = np.asarray(self.stop_set, dtype=np.int64)
        predicted = np.empty(len(stop), dtype=np.int64)
        # cand is sorted (a sorted subset of U), so a binary search finds the shared items
        at = np.clip(np.searchsorted(cand, stop), 0, max(len(cand) - 1, 0))
        shared = (cand[at] == stop) if len(cand) else np.zeros(len(stop), bool)
        predicted[shared] = probs[at[shared]].argmax(1)
        rest = np.flatnonzero(~shared)
        if len(rest):
            rest_probs, _ = self._score(model, stop[rest])
            predicted[rest] = rest_probs.argmax(1)
        return predicted

    def teach(self, proposal: Proposal, labels: np.ndarray | list[int]) -> tuple[float | None, float | None]:
        """Take the oracle's answers for a proposal; adapt the strategy; return (mp, batch accuracy)."""
        labels = np.asarray(labels, dtype=np.int64)
        self.add_labels(proposal.ids, labels)
        mp, batch_acc = self.outcome(proposal.predicted, proposal.exploration, labels)
        self.observe(mp)
        self.round += 1
        return mp, batch_acc

    def outcome(self, predicted: np.ndarray, exploration: np.ndarray, answers: np.ndarray) -> tuple[float | None, float | None]:
        """(mp, batch accuracy) of a labelled batch (:func:`batch_outcome`) over the live
        classes: a merged class, with no labels, is not a rare class to find."""
        live = LiveOutputs(self.pool.n_classes, self.merged_classes)
        answers = np.asarray(answers, dtype=np.int64)
        given = np.where(answers >= 0, live.positions(answers), answers)  # skips and no answers stay as they are
        counts = live.columns(self.class_counts())
        return batch_outcome(live.positions(predicted), exploration, given, self.strategy, counts)

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
        return confusion_accuracy(self.test_confusion(model))

    def test_confusion(self, model: torch.nn.Module | None = None) -> np.ndarray | None:
        """Confusion matrix ``[true, predicted]`` (counts) of ``model`` (default the
        learner's) on the held-out test set, or None without one."""
        model = model if model is not None else self.model
        if self.test is None or model is None or self.test.labels is None:
            return None
        probs, _ = score(model, self.test.inputs, self.device, without=self.merged_classes)
        n = self.pool.n_classes
        truth = np.asarray(self.test.labels, dtype=np.int64)
        known = (truth >= 0) & (truth < n)  # an item of unknown class counts nowhere
        return np.bincount(truth[known] * n + probs.argmax(1)[known], minlength=n * n).reshape(n, n)

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
        dropped: the next round trains afresh. Weights saved before a class was added keep
        their outputs: the next training grows them (:meth:`grow_model`).
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
            saved = head_size(state["model"]) or self.pool.n_classes
            model = build_model(self.pool.inputs, self.pool.modality, min(saved, self.pool.n_classes))
            try:
                model.load_state_dict(state["model"])
            except (RuntimeError, KeyError, ValueError):
                self.model = None
                return
            self.model = model.to(self.device).eval()
