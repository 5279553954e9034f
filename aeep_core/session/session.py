"""A labelling session: the project store, the batch on screen, and the engine behind it.

Every answer is committed to SQLite before :meth:`LabellingSession.label` returns; each
round records its batch, the engine state it was chosen in and the checkpoint of the
model that chose it. Reopening a project therefore restores the unfinished batch with
its answers, and the next batch is the one an uninterrupted session would have chosen:
every random choice of the learner comes from (seed, round), both stored.

*When* the model trains is the engine's business (:mod:`aeep_core.session.engines`):
after each batch (plain) or while the person labels (pipelined); the session is the same.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core import locations
from aeep_core.data.progressive import EmbeddingProgress
from aeep_core.learning.learner import RETRACT, SKIPPED, ActiveLearner, next_batch_size
from aeep_core.learning.training import TrainConfig
from aeep_core.pool import Dataset
from aeep_core.session.classes import ProjectClasses
from aeep_core.session.engines import Engine, StageProgress, engine_state
from aeep_core.session.growing import GrowingPool
from aeep_core.session.pipelined import LoggedAnswer, PipelinedEngine
from aeep_core.session.plain import PlainEngine
from aeep_core.session.project_data import open_project
from aeep_core.session.review import Review, taught_labels
from aeep_core.session.stats import StatsReport, StopSet, build_report
from aeep_core.session.trainer_process import RemoteRetrainer
from aeep_core.session.types import Batch, BatchItem, ProjectSettings, SessionStats
from aeep_core.store import RoundPredictions, Store, StoreError
from aeep_core.store.checkpoints import prune_checkpoints, read_checkpoint, write_checkpoint
from aeep_core.store.classes import Repointed
from aeep_core.store.items import Drift, sync_items
from aeep_core.strategies import make_strategy


def _stored_engine(round_row: sqlite3.Row | None) -> dict[str, Any]:
    """The engine state stored with a round (empty without one)."""
    return json.loads(round_row["engine"]) if round_row is not None and round_row["engine"] else {}


def _pace(round_row: sqlite3.Row | None) -> dict[str, Any]:
    """The trainer's pace figures stored with a round (the plain loop's where it trains ahead)."""
    engine = _stored_engine(round_row)
    pace = engine.get("pace") or {}
    return {
        "seconds_per_answer": pace.get("seconds_per_answer"),
        "seconds_to_choose": pace.get("seconds_to_choose"),
        "lookahead": engine.get("lookahead"),
    }


class LabellingSession:
    """A project opened for labelling (or read-only viewing). Use :meth:`open`."""

    def __init__(
        self,
        store: Store,
        settings: ProjectSettings,
        loaded: Dataset,
        item_ids: list[int | None],
        drift: Drift,
        separate_process: bool = False,
        trainer_threads: int | None = None,
    ):
        self._store, self.settings, self.drift = store, settings, drift
        self.pool, self.test = loaded.pool, loaded.test
        self.project_path, self.read_only = store.project, store.read_only
        self._item_ids = item_ids  # pool index -> stored item id (None: unseen, read-only only)
        self._index = {item: i for i, item in enumerate(item_ids) if item is not None}
        self._stop_set = StopSet.load(store, item_ids, settings.seed)  # drawn once per project
        learner = ActiveLearner(
            self.pool,
            make_strategy(settings.strategy),
            config=TrainConfig(**settings.train),
            device=settings.device,
            seed=settings.seed,
            candidates=settings.candidates,
            test=self.test,
            stop_set=None if self._stop_set is None else self._stop_set.positions,
        )
        # separate_process: training runs in a child process (session.trainer_process), so
        # this one only renders, takes keys and writes the store.
        self.engine: Engine = (
            PipelinedEngine(
                learner,
                settings,
                self._history,
                evaluate=self.test is not None,
                shown=lambda: self.batch,
                separate_process=separate_process,
                trainer_threads=trainer_threads,
            )
            if settings.pipelined
            else PlainEngine(
                learner,
                settings,
                RemoteRetrainer(learner, trainer_threads) if separate_process and not store.read_only else None,
                resume=_stored_engine(store.last_round()),
            )
        )
        # A photo folder still being embedded: its photos join the pool between batches.
        self._growing = (
            GrowingPool(store, loaded.pending, len(self.pool), lambda: list(self.pool.class_names))
            if loaded.pending is not None and not store.read_only
            else None
        )
        self._grow_due = True  # photos join once per batch: when it is complete, or before choosing
        self.batch: Batch | None = None
        self._batch_db_items: list[int] = []  # stored item id per batch position
        self._answer_seq: dict[int, int] = {}  # batch position -> label row id of its answer (undo order)
        self._busy = threading.Lock()
        # The classes as they are now, and adding, renaming, merging them (session.classes).
        pools = [p for p in (self.pool, self.test) if p is not None]
        self.classes = ProjectClasses(store, pools, self.engine, self._index, self._reanswered)
        # Confirmed batches: browse them, see each answer's history, correct (session.review).
        self.review = Review(store, self.engine, self.pool, item_ids, self._index, self.classes)
        self._restore()

    @property
    def learner(self) -> ActiveLearner:
        """The engine's learner (L, U, the model, the round): read it, never write it."""
        return self.engine.learner

    # --- opening -----------------------------------------------------------------------
    @staticmethod
    def find(data: Path, project_dir: Path | None = None) -> Path | None:
        """The existing project's folder for ``data`` (or at ``project_dir``), or None."""
        project = Path(project_dir) if project_dir is not None else locations.project_folder(Path(data))
        db = locations.project_db(project)
        return project if db.is_file() and db.stat().st_size > 0 else None

    @classmethod
    def open(
        cls,
        data: Path,
        settings: ProjectSettings | None = None,
        project_dir: Path | None = None,
        read_only: bool = False,
        progress: StageProgress | None = None,
        separate_process: bool = False,
        trainer_threads: int | None = None,
    ) -> LabellingSession:
        """Open the project of ``data``, creating it (``settings`` required) when there is none.

        An existing project keeps its stored settings. ``progress(stage, done, total)``
        reports "load" (decoding the data) and "hash" (identifying items). Raises :class:`ProjectLocked` when
        another process has it open (unless ``read_only``), :class:`StoreError` for an
        unusable database, ``DataError`` for unusable data, ValueError for bad settings.
        ``separate_process``: train in a child process (what the app does), with
        ``trainer_threads`` torch threads (None: as many as this process has then).
        """
        data = Path(data).expanduser().resolve()
        existing = cls.find(data, project_dir)
        project = existing or (Path(project_dir) if project_dir is not None else locations.project_folder(data))
        store, settings, loaded = open_project(data, project, existing is not None, settings, read_only, progress)
        try:
            item_ids, drift = sync_items(store, loaded.pool, progress)
            return cls(store, settings, loaded, item_ids, drift, separate_process, trainer_threads)
        except BaseException:
            store.close()
            raise

    def _restore(self) -> None:
        """Rebuild the learner from the store: labels in the order they were taught (and
        corrected), the strategy and RNG state, the last model, and the open batch with its answers."""
        rounds = self._store.rounds()
        latest = {r["item_id"]: r for r in self._store.current_labels()}
        self.learner.add_labels(*taught_labels(self._store, self._index))  # corrections in their place
        if rounds:
            self.learner.load_state_dict(json.loads(rounds[-1]["engine"]))
        self._load_checkpoint_model()
        if rounds and rounds[-1]["status"] == "open":
            batch = self._set_batch(rounds[-1]["number"], self._store.round_items(rounds[-1]["number"]), latest)
            if not self.read_only:
                self.engine.adopt(batch, rounds[-1]["m"])

    def _set_batch(self, number: int, rows: list[sqlite3.Row], latest: dict[int, sqlite3.Row]) -> Batch:
        """Put round ``number`` on screen, with the answers in ``latest`` that belong to it."""
        items: list[BatchItem] = []
        self._batch_db_items, self._answer_seq = [], {}
        for ri in rows:
            idx = self._index.get(ri["item_id"])
            if idx is None:  # vanished from the data folder since the batch was chosen
                continue
            lab = latest.get(ri["item_id"])
            answer = lab["label"] if lab is not None and lab["round"] == number else None
            if lab is not None and answer is not None:
                self._answer_seq[len(items)] = lab["id"]
            items.append(BatchItem(idx, self.pool.names[idx], bool(ri["exploration"]), ri["predicted"], ri["confidence"], answer))
            self._batch_db_items.append(ri["item_id"])
        self.batch = Batch(number, items)
        self._grow_due = True
        return self.batch

    def _last_checkpoint(self) -> dict[str, Any] | None:
        """The state saved with the newest round that has one, if its checksum holds."""
        row = self._store.last_checkpoint()
        return None if row is None else read_checkpoint(self.project_path, row["file"], row["sha256"])

    def _load_checkpoint_model(self) -> None:
        state = self._last_checkpoint()
        if state is not None and state.get("model") is not None:
            self.learner.load_state_dict({"model": state["model"]})

    def _history(self) -> tuple[dict[str, Any] | None, list[LoggedAnswer]]:
        """The last checkpoint and every stored answer in order, for an engine to resume from."""
        positions = {db: pos for pos, db in enumerate(self._batch_db_items)} if self.batch is not None else {}
        current = None if self.batch is None else self.batch.round
        log = [
            LoggedAnswer(
                self._index.get(a["item_id"]),
                a["round"],
                a["label"],
                positions.get(a["item_id"]) if a["round"] == current else None,
            )
            for a in self._store.answers()
        ]
        return self._last_checkpoint(), log

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
        if answer != SKIPPED and not self.classes.current.is_live(answer):
            raise ValueError(f"answer {answer} is not a class index (of a class not merged away) or SKIPPED")
        self._answer_seq[position] = self._store.add_label(self._batch_db_items[position], batch.round, int(answer))
        batch.items[position].answer = int(answer)
        self.engine.answer(position, int(answer))
        if sum(item.answer is None for item in batch.items) <= 1:
            # before a choice started now (exact replays); training ahead starts earlier,
            # but the photos reach its process before Enter's choice, in order
            self._take_in_embedded()
        self.engine.answered(batch)

    def _take_in_embedded(self) -> None:
        """Photos embedded since the last batch join the end of the pool (once per batch);
        every position already handed out keeps its item."""
        if self._growing is None or not self._grow_due:
            return
        self._grow_due = False
        for part, ids in self._growing.take():
            start = len(self.pool)
            self.pool.extend(part)
            for offset, item in enumerate(ids):
                self._item_ids.append(item)
                self._index[item] = start + offset
            self.engine.grew(part)

    def _wait_for_photos(self, should_stop: Callable[[], bool] | None) -> bool:
        """Take in the photos embedded since the last batch; when every photo of the pool is
        answered while more are being embedded, wait for them (False: stopped meanwhile)."""
        self._take_in_embedded()
        while self._growing is not None and not self._growing.finished and len(self.learner.unlabelled_ids()) == 0:
            if should_stop is not None and should_stop():
                return False
            time.sleep(0.2)
            self._grow_due = True
            self._take_in_embedded()
        return True

    def _reanswered(self, moved: Repointed, label: int) -> None:
        """An answer of the open batch that a merge re-pointed (already stored): the card
        shows it, undo takes it back, the engine hears it as an answer."""
        if self.batch is None or moved.item_id not in self._batch_db_items:
            return
        position = self._batch_db_items.index(moved.item_id)
        self._answer_seq[position] = moved.row_id
        self.batch.items[position].answer = label
        self.engine.answer(position, label)
        self.engine.answered(self.batch)

    def undo(self) -> int | None:
        """Take back the latest answer in the open batch (a new row); return its position."""
        if self.batch is None or not self._answer_seq:
            return None
        position = max(self._answer_seq, key=self._answer_seq.__getitem__)
        self._store.add_label(self._batch_db_items[position], self.batch.round, None)
        del self._answer_seq[position]
        self.batch.items[position].answer = None
        self.engine.answer(position, RETRACT)
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
        """Let the engine learn from the complete batch (mp, batch accuracy); record the round."""
        batch = self._batch_to_confirm()
        self.engine.confirm(batch, lambda mp, accuracy, engine: self._store.finish_round(batch.round, engine, mp, accuracy))
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
        """Have the engine choose the next batch and record it; None when finished or stopped.

        Stages reported: ("train", step, steps), ("evaluate", 0|1, 1), ("score", n, N).
        The first batch, with nothing labelled, is a uniform random sample seeded by the
        project's seed. Safe to run in a worker thread while the UI reads ``stats``.
        """
        with self._busy:
            done, result = self._nothing_to_prepare()
            if done:
                return result
            if not self._wait_for_photos(should_stop):
                return None
            number = self._store.next_round_number()
            if self._answer_counts()[0] == 0:
                self._record_cold_batch(number)
                return self.batch
            choice = self.engine.choose(progress, should_stop)
            if choice is None:
                return None
            prop = choice.proposal
            items = [
                (self._item_ids[i], bool(e), int(p), float(c))
                for i, e, p, c in zip(prop.ids.tolist(), prop.exploration, prop.predicted, prop.confidence)
            ]
            ckpt = write_checkpoint(self.project_path, number, choice.checkpoint)
            stop = None if self._stop_set is None else self._stop_set.align(prop.stop_predicted)
            predictions = RoundPredictions(stop, choice.stats.get("test_confusion"))
            self._store.add_round(number, items, choice.engine, choice.stats, checkpoint=ckpt, predictions=predictions)
            # Keep the newest two files: the DB points at the newest, the other is a spare.
            prune_checkpoints(self.project_path, self._store.checkpoint_files()[-2:])
            self._set_batch(number, self._store.round_items(number), {})
            return self.batch

    @property
    def evaluation_pending(self) -> bool:
        """Whether the open batch's model is still being tested (:meth:`record_late_evaluation`)."""
        return self.engine.evaluation_pending

    def record_late_evaluation(self, should_stop: Callable[[], bool] | None = None) -> float | None:
        """Wait for the test of the model that chose the open batch, if it was shown before
        the test was in (the pipelined trainer tests after choosing), and record it with
        the batch's round; its accuracy, or None when nothing was awaited. For a worker."""
        batch = self.batch
        tested = None if batch is None else self.engine.late_evaluation(should_stop)
        if batch is None or tested is None:
            return None
        accuracy, confusion = tested
        self._store.set_round_evaluation(batch.round, accuracy, confusion)
        return accuracy

    def _record_cold_batch(self, number: int) -> None:
        """A uniform random first batch (nothing is labelled to train on), seeded by the
        project's seed and the round number."""
        s, learner = self.settings, self.learner
        unlabelled = learner.unlabelled_ids()
        k = next_batch_size(s.batch_size, len(unlabelled), s.budget, 0)
        picks = np.random.default_rng([s.seed, 2**20, number]).choice(unlabelled, size=k, replace=False)
        items = [(self._item_ids[i], False, None, None) for i in picks.tolist()]
        self._store.add_round(number, items, engine_state(learner, True), {})
        self.engine.adopt(self._set_batch(number, self._store.round_items(number), {}), None)

    # --- labels brought in from a file ---------------------------------------------------
    def current_answers(self) -> dict[int, int]:
        """Pool item -> its current answer (class index or SKIPPED) for every answered item,
        the open batch's included; what an import must never overwrite."""
        return {
            self._index[r["item_id"]]: int(r["label"])
            for r in self._store.current_labels()
            if r["item_id"] in self._index and r["label"] is not None
        }

    def import_labels(self, answers: list[tuple[int, int]], source: str) -> None:
        """Record ``answers`` (pool item, class index) from a file as one round, done at
        once, and put them into L: the next batch is then chosen by a model trained on
        them instead of the random cold start. Only before labelling starts in this
        session, with no batch open: a batch on screen was chosen without them."""
        if self.read_only:
            raise StoreError(f"{self.project_path}: opened read-only; close the other process and reopen to import")
        # A running background trainer owns L; it starts with the first batch of a session.
        if self.batch is not None or self.engine.training:
            raise ValueError(
                "a batch is already open in this project; labels from a file are a starting set, "
                "imported before the first batch (label these in the app instead)"
            )
        if not answers:
            return
        rows: list[tuple[int, int]] = []
        for i, y in answers:
            item = self._item_ids[i]
            if item is None or not self.classes.current.is_live(y):
                raise ValueError(f"cannot import answer {y} for pool item {i}")
            rows.append((item, y))
        engine = {**engine_state(self.learner, True), "import": source}
        self._store.add_import_round(self._store.next_round_number(), rows, engine)
        self.learner.add_labels([i for i, _ in answers], [y for _, y in answers])

    # --- reading -----------------------------------------------------------------------
    def _answer_counts(self) -> tuple[int, int]:
        """(labelled, skipped) items of the pool, the open batch's answers included; read
        from the store, since a pipelined trainer takes answers into L in its own time."""
        rows = [r for r in self._store.current_labels() if r["item_id"] in self._index]
        return sum(1 for r in rows if r["label"] is not None and r["label"] >= 0), sum(1 for r in rows if r["label"] == SKIPPED)

    @property
    def finished(self) -> bool:
        """No batch open and the budget is reached or every item is answered."""
        if self.batch is not None:
            return False
        labelled, skipped = self._answer_counts()
        budget_hit = self.settings.budget is not None and labelled >= self.settings.budget
        more_to_come = self._growing is not None and not self._growing.finished
        return budget_hit or (labelled + skipped >= len(self.pool) and not more_to_come)

    @property
    def stats(self) -> SessionStats:
        """Current figures (cheap: reads the rounds table, never the model)."""
        rounds = self._store.rounds()
        done = [r for r in rounds if r["status"] == "done"]
        labelled, skipped = self._answer_counts()
        last, last_done = (rounds[-1] if rounds else None), (done[-1] if done else None)
        get = lambda row, key: None if row is None else row[key]  # noqa: E731
        return SessionStats(
            round=get(last, "number") or 0,
            labelled=labelled,
            skipped=skipped,
            pool_size=len(self.pool),
            budget=self.settings.budget,
            m=get(last, "m"),
            mp=get(last_done, "mp"),
            m_history=[r["m"] for r in rounds],
            mp_history=[r["mp"] for r in rounds],
            entropy_batch=get(last, "entropy_batch"),
            entropy_pool=get(last, "entropy_pool"),
            batch_accuracy=get(last_done, "batch_accuracy"),
            test_accuracy=next((r["test_accuracy"] for r in reversed(rounds) if r["test_accuracy"] is not None), None),
            accuracy_history=[r["test_accuracy"] for r in rounds],
            device=str(self.learner.device),
            model=f"head on {self.pool.meta['backbone']}" if self.pool.modality == "features" else "cnn",
            train_s=get(last, "train_s"),
            select_s=get(last, "select_s"),
            trainer_restarts=self.engine.restarts,
            trainer_failure=self.engine.last_failure,
            embedding=self.embedding_progress(),
            **_pace(last),
        )

    def embedding_progress(self) -> EmbeddingProgress | None:
        """How far a photo folder's background embedding is (and why it stopped, if it gave
        up); None when every photo is in the pool (or none is being embedded)."""
        if self._growing is None:
            return None
        progress = self._growing.progress()
        return None if self._growing.finished and progress.failure is None else progress

    def check_trainer(self) -> bool:
        """Whether the trainer is alive; one whose process died is started again from the
        store in the background (cheap: the app calls it on a timer)."""
        return self.engine.check()

    def report(self) -> StatsReport:
        """The stats view's figures (:mod:`aeep_core.session.stats`); reads the store
        only, so a worker thread may call it while the model trains."""
        return build_report(self._store, self.classes.current)

    def source_path(self, item_id: int) -> Path | None:
        """The original file of pool item ``item_id`` (None for IDX rows and sequences)."""
        paths = self.pool.meta.get("paths")
        return Path(paths[item_id]) if paths is not None else None

    @property
    def evaluations(self) -> list[tuple[int, float | None]]:
        """(labels the model was trained on, test accuracy) of every model that chose a
        batch in the background since this session opened (pipelined engine; else empty)."""
        return list(getattr(self.engine, "evaluations", []))

    def close(self) -> None:
        """Stop embedding and the engine, close the database and release the writer lock."""
        if self._growing is not None:
            self._growing.close()
        self.engine.close()
        self._store.close()

    def __enter__(self) -> LabellingSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
