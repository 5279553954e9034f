"""The engine side of a labelling session, kept in the project store as it goes.

Every answer is committed to SQLite before :meth:`LabellingSession.label` returns; each
round records its batch, the engine state it was chosen in and the checkpoint of the
model that chose it. Reopening a project therefore restores the unfinished batch with
its answers, and the next batch is the one an uninterrupted session would have chosen:
every random choice of the learner comes from (seed, round), both stored.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core import locations
from aeep_core.learner import SKIPPED, ActiveLearner, Proposal
from aeep_core.session_types import Batch, BatchItem, ProjectSettings, SessionStats
from aeep_core.store import ProjectLocked, Store, StoreError
from aeep_core.store.items import Drift, sync_items

StageProgress = Callable[[str, int, int], None]

__all__ = [
    "SKIPPED", "ProjectSettings", "BatchItem", "Batch", "SessionStats", "LabellingSession",
    "ProjectLocked", "StoreError", "Drift",
]


def _engine_state(learner: ActiveLearner, cold: bool) -> dict[str, Any]:
    # The learner's generators are all seeded from (seed, round): round is the RNG state.
    return {"learner_round": learner.round, "strategy": copy.deepcopy(learner.strategy.state_dict()), "cold": cold}


class LabellingSession:
    """A project opened for labelling (or read-only viewing). Use :meth:`open`."""

    def __init__(self, store: Store, settings: ProjectSettings, loaded: Any, item_ids: list[int], drift: Drift):
        from aeep_core.strategies import make_strategy
        from aeep_core.training import TrainConfig

        self._store, self.settings, self.drift = store, settings, drift
        self.pool, self.test = loaded.pool, loaded.test
        self.project_path, self.read_only = store.project, store.read_only
        self._item_ids = item_ids  # pool index -> stored item id (None: unseen, read-only only)
        self._index = {item: i for i, item in enumerate(item_ids) if item is not None}
        self.learner = ActiveLearner(
            self.pool, make_strategy(settings.strategy), config=TrainConfig(**settings.train), device=settings.device,
            seed=settings.seed, candidates=settings.candidates, test=self.test,
        )
        self.batch: Batch | None = None
        self._batch_db_items: list[int] = []  # stored item id per batch position
        self._answer_seq: dict[int, int] = {}  # batch position -> label row id of its answer (undo order)
        self._cold = False
        self._busy = threading.Lock()
        self._restore()

    # --- opening -----------------------------------------------------------------------
    @staticmethod
    def find(data: Path, project_dir: Path | None = None) -> Path | None:
        """The existing project's folder for ``data`` (or at ``project_dir``), or None."""
        project = Path(project_dir) if project_dir is not None else locations.project_folder(Path(data))
        db = locations.project_db(project)
        return project if db.is_file() and db.stat().st_size > 0 else None

    @classmethod
    def open(
        cls, data: Path, settings: ProjectSettings | None = None, project_dir: Path | None = None,
        read_only: bool = False, progress: StageProgress | None = None,
    ) -> "LabellingSession":
        """Open the project of ``data``, creating it (``settings`` required) when there is none.

        An existing project keeps its stored settings. ``progress(stage, done, total)``
        reports "load" (decoding the data) and "hash" (identifying items). Raises :class:`ProjectLocked` when
        another process has it open (unless ``read_only``), :class:`StoreError` for an
        unusable database, ``DataError`` for unusable data, ValueError for bad settings.
        """
        from aeep_core.store.files import load_project_data

        data = Path(data).expanduser().resolve()
        project = cls.find(data, project_dir)
        if project is not None:
            store = Store.open(project, read_only=read_only)
            try:
                settings = ProjectSettings.from_dict(store.setting("project"))
                loaded = load_project_data(data, settings, progress)
                if not read_only:
                    store.set_settings(data_path=str(data), last_opened=time.time(),
                                       items_are_files="paths" in loaded.pool.meta)
            except BaseException:
                store.close()
                raise
        else:
            project = Path(project_dir) if project_dir is not None else locations.project_folder(data)
            if read_only:
                raise StoreError(f"{data}: no project yet for this folder; open it once for labelling first")
            if settings is None:
                raise ValueError(f"{data}: a new project needs settings (classes and keys)")
            settings.validate()
            loaded = load_project_data(data, settings, progress)  # bad data leaves no project behind
            now = time.time()
            store = Store.create(project, {
                "project": asdict(settings), "data_path": str(data), "name": data.name, "created_at": now,
                "last_opened": now, "items_are_files": "paths" in loaded.pool.meta,
            })
        if settings.pipelined and cls is LabellingSession:
            from aeep_core.session_pipeline import PipelinedSession

            cls = PipelinedSession
        try:
            item_ids, drift = sync_items(store, loaded.pool, progress)
            return cls(store, settings, loaded, item_ids, drift)
        except BaseException:
            store.close()
            raise

    def _restore(self) -> None:
        """Rebuild the learner from the store: labels in the order they were taught, the
        strategy and RNG state, the last model, and the open batch with its answers."""
        rounds = self._store.rounds()
        latest = {r["item_id"]: r for r in self._store.current_labels()}
        ids, ys = [], []
        for r in rounds:
            if r["status"] != "done":
                continue
            for ri in self._store.round_items(r["number"]):
                idx, lab = self._index.get(ri["item_id"]), latest.get(ri["item_id"])
                if idx is not None and lab is not None and lab["label"] is not None:
                    ids.append(idx)
                    ys.append(lab["label"])
        self.learner.add_labels(ids, ys)
        if rounds:
            engine = json.loads(rounds[-1]["engine"])
            self.learner.round = int(engine["learner_round"])
            self.learner.strategy.load_state_dict(engine["strategy"])
            self._cold = bool(engine.get("cold"))
        self._load_checkpoint()
        if rounds and rounds[-1]["status"] == "open":
            self._set_batch(rounds[-1]["number"], self._store.round_items(rounds[-1]["number"]), latest)

    def _set_batch(self, number: int, rows: list, latest: dict) -> None:
        items, self._batch_db_items, self._answer_seq = [], [], {}
        for ri in rows:
            idx = self._index.get(ri["item_id"])
            if idx is None:  # vanished from the data folder since the batch was chosen
                continue
            lab = latest.get(ri["item_id"])
            answer = lab["label"] if lab is not None and lab["round"] == number else None
            if answer is not None:
                self._answer_seq[len(items)] = lab["id"]
            items.append(BatchItem(idx, self.pool.names[idx], bool(ri["exploration"]), ri["predicted"], ri["confidence"], answer))
            self._batch_db_items.append(ri["item_id"])
        self.batch = Batch(number, items)

    def _load_checkpoint(self) -> None:
        from aeep_core.store.files import load_checkpoint

        row = self._store.last_checkpoint()
        model = None if row is None else load_checkpoint(self.project_path, row["file"], row["sha256"], self.pool)
        if model is not None:
            self.learner.model = model.to(self.learner.device)

    # --- the person's answers ------------------------------------------------------------
    def _check_position(self, position: int) -> Batch:
        if self.batch is None:
            raise ValueError("no batch is open; call prepare_next_batch() first")
        if not 0 <= position < len(self.batch.items):
            raise ValueError(f"position {position} is outside the batch (0..{len(self.batch.items) - 1})")
        return self.batch

    def label(self, position: int, answer: int) -> None:
        """Answer the item at ``position`` (class index or SKIPPED); committed on return."""
        batch = self._check_position(position)
        if answer != SKIPPED and not 0 <= answer < len(self.settings.classes):
            raise ValueError(f"answer {answer} is not a class index (0..{len(self.settings.classes) - 1}) or SKIPPED")
        self._answer_seq[position] = self._store.add_label(self._batch_db_items[position], batch.round, int(answer))
        batch.items[position].answer = int(answer)

    def undo(self) -> int | None:
        """Take back the latest answer in the open batch (a new row); return its position."""
        if self.batch is None or not self._answer_seq:
            return None
        position = max(self._answer_seq, key=self._answer_seq.__getitem__)
        self._store.add_label(self._batch_db_items[position], self.batch.round, None)
        del self._answer_seq[position]
        self.batch.items[position].answer = None
        return position

    def _batch_to_confirm(self) -> Batch:
        """The open batch, if it may be confirmed now; a clear error otherwise."""
        batch = self.batch
        if batch is None or not batch.complete:
            raise ValueError("the batch is not complete: answer (or skip) every item first")
        if self.read_only:
            raise StoreError(f"{self.project_path}: opened read-only; close the other process and reopen to change it")
        return batch

    def confirm_batch(self) -> None:
        """Teach the learner the complete batch's answers (mp, batch accuracy); record the round."""
        batch = self._batch_to_confirm()
        ids = np.array([it.item_id for it in batch.items], dtype=np.int64)
        answers = np.array([it.answer for it in batch.items], dtype=np.int64)
        before = copy.deepcopy((self.learner.labels, self.learner.skipped, self.learner.round, self.learner.strategy.state_dict()))
        try:
            if self._cold:
                self.learner.add_labels(ids, answers)
                mp = acc = None
            else:
                row = self._store.query("SELECT * FROM rounds WHERE number = ?", (batch.round,))[0]
                proposal = Proposal(
                    ids=ids, exploration=np.array([it.exploration for it in batch.items], dtype=bool),
                    predicted=np.array([it.predicted for it in batch.items], dtype=np.int64),
                    confidence=np.array([it.confidence for it in batch.items], dtype=np.float64),
                    entropy_batch=row["entropy_batch"], entropy_pool=row["entropy_pool"], m=row["m"], select_s=row["select_s"],
                )
                mp, acc = self.learner.teach(proposal, answers)
            self._store.finish_round(batch.round, _engine_state(self.learner, self._cold), mp, acc)
        except BaseException:
            # Nothing was recorded: put the learner back so confirming again is safe.
            l, s, r, st = before
            self.learner.labels, self.learner.skipped, self.learner.round = l, s, r
            self.learner.strategy.load_state_dict(st)
            raise
        self.batch, self._answer_seq = None, {}

    # --- the engine's turn -------------------------------------------------------------
    def _nothing_to_prepare(self) -> tuple[bool, Batch | None]:
        """(True, what prepare_next_batch returns) when no new batch is due: one is open,
        or the work is finished; raise when read-only; (False, None) otherwise."""
        if self.batch is not None:
            return True, self.batch
        if self.read_only:
            raise StoreError(f"{self.project_path}: opened read-only; close the other process and reopen to label")
        return (True, None) if self.finished else (False, None)

    def prepare_next_batch(
        self, progress: StageProgress | None = None, should_stop: Callable[[], bool] | None = None
    ) -> Batch | None:
        """Train, score and select the next batch and record it; None when finished or stopped.

        Stages reported: ("train", step, steps), ("evaluate", 0|1, 1), ("score", n, N).
        The first batch, with nothing labelled, is a uniform random sample seeded by the
        project's seed. Safe to run in a worker thread while the UI reads ``stats``.
        """
        from aeep_core.store.files import write_checkpoint

        with self._busy:
            done, result = self._nothing_to_prepare()
            if done:
                return result
            learner, s = self.learner, self.settings
            unlabelled = learner.unlabelled_ids()
            budget_left = len(unlabelled) if s.budget is None else s.budget - len(learner.labels)
            k = min(s.batch_size, budget_left, len(unlabelled))
            number = (self._store.rounds() or [{"number": 0}])[-1]["number"] + 1
            report = (lambda stage: (lambda d, t: progress(stage, d, t))) if progress else (lambda stage: None)
            if not learner.labels:
                picks = np.random.default_rng([s.seed, 2**20, number]).choice(unlabelled, size=k, replace=False)
                items = [(self._item_ids[i], False, None, None) for i in picks.tolist()]
                self._store.add_round(number, items, _engine_state(learner, True), {})
                self._cold = True
            else:
                train_s = learner.train(progress=report("train"), should_stop=should_stop)
                if should_stop is not None and should_stop():
                    # The model is half-trained: record nothing, go back to the last good one.
                    learner.model = None
                    self._load_checkpoint()
                    return None
                if progress:
                    progress("evaluate", 0, 1)
                accuracy = learner.evaluate()
                if progress:
                    progress("evaluate", 1, 1)
                prop = learner.propose(k, progress=report("score"))
                items = [
                    (self._item_ids[i], bool(e), int(p), float(c))
                    for i, e, p, c in zip(prop.ids.tolist(), prop.exploration, prop.predicted, prop.confidence)
                ]
                ckpt = write_checkpoint(self.project_path, number, learner.model)
                stats = {"m": prop.m, "entropy_batch": prop.entropy_batch, "entropy_pool": prop.entropy_pool,
                         "test_accuracy": accuracy, "train_s": train_s, "select_s": prop.select_s}
                self._store.add_round(number, items, _engine_state(learner, False), stats, checkpoint=ckpt)
                self._cold = False
                self._prune_checkpoints()
            self._set_batch(number, self._store.round_items(number), {})
            return self.batch

    def _prune_checkpoints(self) -> None:
        # Keep the newest two files: the DB points at the newest, the other is a spare.
        keep = set(self._store.checkpoint_files()[-2:])
        folder = locations.checkpoints_dir(self.project_path)
        for f in folder.iterdir() if folder.is_dir() else []:
            if f"{folder.name}/{f.name}" not in keep:
                f.unlink(missing_ok=True)

    # --- reading -----------------------------------------------------------------------
    @property
    def finished(self) -> bool:
        """No batch open and the budget is reached or every item is answered."""
        if self.batch is not None:
            return False
        budget_hit = self.settings.budget is not None and len(self.learner.labels) >= self.settings.budget
        return budget_hit or len(self.learner.unlabelled_ids()) == 0

    @property
    def stats(self) -> SessionStats:
        """Current figures (cheap: reads the rounds table, never the model)."""
        rounds = self._store.rounds()
        done = [r for r in rounds if r["status"] == "done"]
        answers = [it.answer for it in self.batch.items] if self.batch else []
        last, last_done = (rounds[-1] if rounds else None), (done[-1] if done else None)
        get = lambda row, key: None if row is None else row[key]  # noqa: E731
        return SessionStats(
            round=get(last, "number") or 0,
            labelled=len(self.learner.labels) + sum(1 for a in answers if a is not None and a != SKIPPED),
            skipped=len(self.learner.skipped) + answers.count(SKIPPED),
            pool_size=len(self.pool), budget=self.settings.budget,
            m=get(last, "m"), mp=get(last_done, "mp"),
            m_history=[r["m"] for r in rounds], mp_history=[r["mp"] for r in rounds],
            entropy_batch=get(last, "entropy_batch"), entropy_pool=get(last, "entropy_pool"),
            batch_accuracy=get(last_done, "batch_accuracy"),
            test_accuracy=next((r["test_accuracy"] for r in reversed(rounds) if r["test_accuracy"] is not None), None),
            accuracy_history=[r["test_accuracy"] for r in rounds],
            device=str(self.learner.device), train_s=get(last, "train_s"), select_s=get(last, "select_s"),
        )

    def source_path(self, item_id: int) -> Path | None:
        """The original file of pool item ``item_id`` (None for IDX rows and sequences)."""
        paths = self.pool.meta.get("paths")
        return Path(paths[item_id]) if paths is not None else None

    def close(self) -> None:
        """Close the database and release the writer lock."""
        self._store.close()

    def __enter__(self) -> "LabellingSession":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
