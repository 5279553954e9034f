"""A labelling session that trains while the person labels (zero-wait batches, issue #7).

:class:`PipelinedSession` keeps the store exactly as :class:`LabellingSession` does (every
answer committed before ``label`` returns, one round row per batch, a checkpoint per
round) but hands the engine work to a :class:`~aeep_core.pipeline.PipelinedLearner`: each
answer is also passed to the background trainer, and the next batch is usually chosen
before the last card is answered, so ``prepare_next_batch`` returns almost at once.

Exact resume: each round's checkpoint holds the trainer's whole state when it chose the
batch (model, optimizer, generators, L, answers absorbed). Reopening restores it and
replays the answer rows stored since, in order, which retrains the same steps and so
chooses the same next batch as a session never interrupted.
"""

from __future__ import annotations

import io
import json
import time
from dataclasses import replace
from collections.abc import Callable
from typing import Any

import numpy as np

from aeep_core.learner import SKIPPED, Proposal
from aeep_core.pipeline import RETRACT, PipelinedLearner
from aeep_core.session import Batch, LabellingSession, SessionStats, StageProgress


class PipelinedSession(LabellingSession):
    """:class:`LabellingSession` with the background trainer; open it through
    ``LabellingSession.open`` with ``ProjectSettings(pipelined=True)``."""

    def _restore(self) -> None:
        super()._restore()
        self._pipe: PipelinedLearner | None = None
        if not self.read_only and self.batch is not None and self._store.current_labels():
            # a batch is on screen: the trainer resumes in the background at once; between
            # batches it starts in prepare_next_batch (a worker), never blocking open()
            self._start_pipeline()

    # --- the trainer --------------------------------------------------------------------
    def _snapshot(self) -> dict[str, Any] | None:
        import torch

        row = self._store.last_checkpoint()
        if row is None:
            return None
        try:
            state = torch.load(io.BytesIO((self.project_path / row["file"]).read_bytes()), map_location="cpu", weights_only=True)
        except (OSError, RuntimeError, ValueError):
            return None
        return state if "absorbed" in state else None  # a plain session's checkpoint: model only

    def _start_pipeline(self) -> Proposal | None:
        """Start the trainer on the stored state (the last snapshot plus every answer
        since); return the batch it chose when none was open, else None."""
        s = self.settings
        snapshot = self._snapshot()
        answers = self._store.query("SELECT item_id, round, label FROM labels ORDER BY id")
        current_round = None if self.batch is None else self.batch.round
        if snapshot is not None:
            answers = answers[int(snapshot["absorbed"]) :]
        else:
            # No trainer state yet: L is what the plain restore rebuilt from done rounds;
            # only the open batch's answers are new. The trainer owes a full round first.
            answers = [a for a in answers if a["round"] == current_round]
        positions = {} if self.batch is None else {db: pos for pos, db in enumerate(self._batch_db_items)}
        backlog, answered = [], []
        for a in answers:
            label = RETRACT if a["label"] is None else int(a["label"])
            if a["round"] == current_round and a["item_id"] in positions:
                answered.append((positions[a["item_id"]], label))
            elif a["item_id"] in self._index:
                backlog.append((self._index[a["item_id"]], label))
        self._pipe = PipelinedLearner(
            self.learner, s.batch_size, lookahead=s.lookahead, steps_per_label=s.steps_per_label,
            evaluate=self.test is not None, resume=snapshot, budget=s.budget,
        )
        chosen = self._pipe.start(current=self._current_proposal(), backlog=backlog, answered=answered)
        return chosen if self.batch is None else None

    def _current_proposal(self) -> Proposal | None:
        if self.batch is None:
            return None
        items = self.batch.items
        row = self._store.query("SELECT m FROM rounds WHERE number = ?", (self.batch.round,))
        return Proposal(
            ids=np.array([it.item_id for it in items], dtype=np.int64),
            exploration=np.array([it.exploration for it in items], dtype=bool),
            predicted=np.array([-1 if it.predicted is None else it.predicted for it in items], dtype=np.int64),
            confidence=np.array([it.confidence or 0.0 for it in items]),
            entropy_batch=float("nan"), entropy_pool=float("nan"), m=row[0]["m"] if row else None, select_s=0.0,
        )

    # --- the person's answers ------------------------------------------------------------
    def label(self, position: int, answer: int) -> None:
        super().label(position, answer)
        if self._pipe is not None:
            self._pipe.answer(position, answer)

    def undo(self) -> int | None:
        position = super().undo()
        if position is not None and self._pipe is not None:
            self._pipe.answer(position, RETRACT)
        return position

    def confirm_batch(self) -> None:
        """Record the complete batch's outcome; the trainer already has every answer."""
        batch = self._batch_to_confirm()
        given = [it for it in batch.items if it.answer != SKIPPED and it.predicted is not None]
        explored = [it for it in given if it.exploration]
        mp = float(np.mean([it.predicted == it.answer for it in explored])) if explored else None
        acc = float(np.mean([it.predicted == it.answer for it in given])) if given else None
        row = self._store.query("SELECT engine FROM rounds WHERE number = ?", (batch.round,))
        engine = json.loads(row[0]["engine"]) if row else {}
        self._store.finish_round(batch.round, engine, mp, acc)  # the trainer's state is in the checkpoint
        self.batch, self._answer_seq = None, {}

    # --- the engine's turn -----------------------------------------------------------
    def prepare_next_batch(
        self, progress: StageProgress | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Batch | None:
        """The batch the trainer chose ahead (waiting only if the person was faster than
        training); the very first batch is the plain session's random one."""
        if self.batch is None and not self.read_only and not self._store.current_labels():
            batch = super().prepare_next_batch(progress, should_stop)  # the random cold start
            if batch is not None:
                self._start_pipeline()
            return batch
        from aeep_core.store.files import write_checkpoint

        with self._busy:
            done, result = self._nothing_to_prepare()
            if done:
                return result
            if progress:
                progress("train", 0, 1)
            start = time.perf_counter()
            proposal = self._start_pipeline() if self._pipe is None else self._wait_for_batch(should_stop)
            if proposal is None:
                return None
            if progress:
                progress("train", 1, 1)
            pipe, number = self._pipe, (self._store.rounds() or [{"number": 0}])[-1]["number"] + 1
            snapshot = pipe.last_snapshot
            # the trainer has moved on since it chose: save the state it chose in
            ckpt = write_checkpoint(self.project_path, number, snapshot["model"], extra=snapshot)
            items = [(self._item_ids[i], bool(e), int(p), float(c))
                     for i, e, p, c in zip(proposal.ids.tolist(), proposal.exploration, proposal.predicted, proposal.confidence)]
            stats = {"m": proposal.m, "entropy_batch": proposal.entropy_batch, "entropy_pool": proposal.entropy_pool,
                     "test_accuracy": pipe.stats.accuracy[-1][1] if pipe.stats.accuracy else None,
                     "train_s": time.perf_counter() - start, "select_s": proposal.select_s}
            engine = {"learner_round": snapshot.get("learner_round", self.learner.round), "strategy": snapshot.get("strategy", {}),
                      "cold": False, "pipelined": True}
            self._store.add_round(number, items, engine, stats, checkpoint=ckpt)
            self._prune_checkpoints()
            self._set_batch(number, self._store.round_items(number), {})
            return self.batch

    def _wait_for_batch(self, should_stop: Callable[[], bool] | None) -> Proposal | None:
        while True:
            try:
                return self._pipe.next_batch(timeout=0.2)
            except TimeoutError:
                if should_stop is not None and should_stop():
                    return None

    # --- reading -------------------------------------------------------------------------
    def _answer_counts(self) -> tuple[int, int]:
        """(labelled, skipped) from the store: the trainer's L changes under our feet."""
        rows = self._store.current_labels()
        return sum(1 for r in rows if r["label"] is not None and r["label"] >= 0), sum(1 for r in rows if r["label"] == SKIPPED)

    @property
    def finished(self) -> bool:
        if self.batch is not None:
            return False
        labelled, skipped = self._answer_counts()
        return (self.settings.budget is not None and labelled >= self.settings.budget) or labelled + skipped >= len(self.pool)

    @property
    def evaluations(self) -> list[tuple[int, float | None]]:
        """(labels the model was trained on, its test accuracy) each time the trainer chose
        a batch since this session opened: the model that chose is ``lookahead`` answers
        behind the screen, and ``stats.labelled`` would hide that."""
        return [] if self._pipe is None else list(self._pipe.stats.accuracy)

    @property
    def stats(self) -> SessionStats:
        labelled, skipped = self._answer_counts()
        return replace(super().stats, labelled=labelled, skipped=skipped)

    def close(self) -> None:
        if self._pipe is not None:
            self._pipe.close()
        super().close()
