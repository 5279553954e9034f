"""Review: the items of confirmed batches, the history of their answers, and corrections.

A correction is one more answer row (labels are append-only, so an item's history keeps
every answer with its time) handed to the engine, which takes it into the next training:
into L at once, or once a running retrain ends (plain engine), or into the background
trainer's queue behind the answers given before it (pipelined). Reopening a project
replays it at the same place (:func:`taught_labels`); training and export use the latest
answer either way.

What the model thinks of an item now comes from the newest checkpoint (the model that
chose the newest batch, as ``aeep-tui export --predictions`` uses), scored on a copy of
its weights: the learner's own model may be training in another thread.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from aeep_core.learning.learner import RETRACT, SKIPPED
from aeep_core.learning.portable import choosing_weights, model_from_weights
from aeep_core.learning.training import score
from aeep_core.pool import Pool
from aeep_core.session.classes import ProjectClasses
from aeep_core.session.engines import Engine
from aeep_core.store import Store, StoreError
from aeep_core.store.checkpoints import read_checkpoint


@dataclass
class ReviewItem:
    """An item of a confirmed batch with its current answer; shaped like a
    :class:`~aeep_core.session.types.BatchItem` so the labelling screen's cards can show it."""

    item_id: int  # index into session.pool
    name: str
    round: int  # the confirmed batch it was asked in
    position: int
    exploration: bool
    predicted: int | None  # the model's guess stored before the answer (None: random start)
    confidence: float | None
    answer: int | None  # class index, SKIPPED, or None: returned to the pool
    answered_at: float | None
    corrected: bool  # the current answer was given in review
    model_predicted: int | None = None  # what the newest model says now (None: not known)
    model_confidence: float | None = None

    @property
    def guess(self) -> tuple[int | None, float | None]:
        """The newest model's class and confidence, else the guess made before the answer."""
        if self.model_predicted is not None:
            return self.model_predicted, self.model_confidence
        return self.predicted, self.confidence

    @property
    def disagrees(self) -> bool:
        """The item holds a class and the model's guess is another one: a likely mistake."""
        guess = self.guess[0]
        return self.answer is not None and self.answer >= 0 and guess is not None and guess != self.answer


@dataclass(frozen=True)
class HistoryEntry:
    """One answer an item was given: its label (class, SKIPPED, None: taken back, or returned
    to the pool when a correction), when (Unix time), the round of the item's batch, and for
    a correction the newest confirmed round when it was made."""

    label: int | None
    at: float
    round: int
    corrected_after: int | None

    @property
    def correction(self) -> bool:
        return self.corrected_after is not None


def disagreements_first(items: Sequence[ReviewItem]) -> list[ReviewItem]:
    """The likely mistakes first: items whose label the model disputes, most confident
    dispute first; then skipped items and items back in the pool (by round); then the
    agreements, least confident first; items without any guess last."""

    def key(it: ReviewItem) -> tuple[int, float, int, int]:
        guess, confidence = it.guess
        if it.disagrees:
            return 0, -(confidence or 0.0), it.round, it.position
        if it.answer is None or it.answer == SKIPPED:
            return 1, 0.0, it.round, it.position
        if guess is None:
            return 3, 0.0, it.round, it.position
        return 2, confidence or 0.0, it.round, it.position

    return sorted(items, key=key)


def by_round(items: Sequence[ReviewItem]) -> list[ReviewItem]:
    """Batch by batch, each in the order it was shown."""
    return sorted(items, key=lambda it: (it.round, it.position))


def of_class(items: Sequence[ReviewItem], answer: int | None) -> list[ReviewItem]:
    """The items whose current answer is class ``answer`` (``SKIPPED``: skipped or back in the
    pool), by round."""
    if answer == SKIPPED:
        return by_round([it for it in items if it.answer is None or it.answer == SKIPPED])
    return by_round([it for it in items if it.answer == answer])


def taught_labels(store: Store, index: dict[int, int]) -> tuple[list[int], list[int]]:
    """(pool items, answers) in the order the learner took them: each confirmed batch's
    answers as confirmed, then the corrections made after that round in the order given
    (an answer may be ``SKIPPED`` or ``RETRACT``). Replaying them with
    ``ActiveLearner.add_labels`` rebuilds L in the order an uninterrupted session holds it."""
    confirmed: dict[tuple[int, int], int | None] = {}  # (item, round) -> its last answer in the batch
    corrections: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for a in store.answers():
        if a["corrected_after"] is None:
            confirmed[(a["item_id"], a["round"])] = a["label"]
        else:
            corrections[a["corrected_after"]].append((a["item_id"], a["label"]))
    ids: list[int] = []
    answers: list[int] = []
    for r in store.rounds():
        if r["status"] != "done":
            continue
        for ri in store.round_items(r["number"]):
            idx, label = index.get(ri["item_id"]), confirmed.get((ri["item_id"], r["number"]))
            if idx is not None and label is not None:
                ids.append(idx)
                answers.append(label)
        for item, label in corrections.get(r["number"], []):
            if (idx := index.get(item)) is not None:
                ids.append(idx)
                answers.append(RETRACT if label is None else label)
    return ids, answers


class Review:
    """The review of one session's confirmed batches (``session.review``)."""

    def __init__(
        self, store: Store, engine: Engine, pool: Pool, item_ids: list[int | None], index: dict[int, int], classes: ProjectClasses
    ):
        self._store, self._engine, self.pool, self._classes = store, engine, pool, classes
        # the session's own (they grow with a photo pool still being embedded)
        self._item_ids = item_ids  # pool index -> stored item id
        self._index = index  # stored item id -> pool index

    def items(self) -> list[ReviewItem]:
        """Every item of a confirmed batch still in the data folder, by round and position
        (an item asked again later is listed with its latest batch; one on screen is not)."""
        out = []
        for r in self._store.reviewable_items():
            idx = self._index.get(r["item_id"])
            if idx is None:
                continue
            out.append(
                ReviewItem(
                    item_id=idx,
                    name=self.pool.names[idx],
                    round=r["round"],
                    position=r["position"],
                    exploration=bool(r["exploration"]),
                    predicted=r["predicted"],
                    confidence=r["confidence"],
                    answer=r["label"],
                    answered_at=r["at"],
                    corrected=r["corrected_after"] is not None,
                )
            )
        return out

    def history(self, item: int) -> list[HistoryEntry]:
        """Every answer pool item ``item`` was given, oldest first (empty if none)."""
        stored = self._item_ids[item]
        if stored is None:
            return []
        return [HistoryEntry(r["label"], r["at"], r["round"], r["corrected_after"]) for r in self._store.item_history(stored)]

    def correct(self, item: int, answer: int | None) -> None:
        """Give pool item ``item`` of a confirmed batch a new answer: a class index, SKIPPED,
        or None (back to the pool, to be asked again). Committed before it returns; the
        next training uses it. StoreError (nothing changed) for an item not in a
        confirmed batch, ValueError for an answer that is not one of these."""
        if answer is not None and answer != SKIPPED and not self._classes.current.is_live(answer):
            raise ValueError(f"answer {answer} is not a class index (of a class not merged away), SKIPPED or None")
        stored = self._item_ids[item] if 0 <= item < len(self._item_ids) else None
        if stored is None:
            raise StoreError(f"{self._store.project}: item {item} is not in this project")
        label = RETRACT if answer is None else int(answer)
        self._engine.correct(item, label, lambda: self._store.add_correction(stored, answer))

    def model_predictions(self, items: Sequence[int]) -> tuple[np.ndarray, np.ndarray] | None:
        """(class, confidence) per pool item from the newest checkpoint's model; None when
        there is none yet (before the first trained batch) or it no longer fits the data.
        Safe in a worker thread while the engine trains: it scores a copy of the weights
        and draws nothing from torch's global generator."""
        row = self._store.last_checkpoint()
        state = None if row is None else read_checkpoint(Path(self._store.project), row["file"], row["sha256"])
        weights = None if state is None else choosing_weights(state)
        if weights is None:
            return None
        inputs = self.pool.inputs
        model = model_from_weights(tuple(inputs.shape[1:]), self.pool.modality, self.pool.n_classes, weights)
        if model is None:
            return None
        ids = torch.as_tensor(np.asarray(items, dtype=np.int64))
        probs, _ = score(model, inputs[ids], self._engine.learner.device, without=self._classes.current.merged)
        if len(probs) == 0:
            return np.zeros(0, np.int64), np.zeros(0, np.float32)
        return probs.argmax(1), probs.max(1)
