"""One project's database: settings, items, append-only labels, rounds and checkpoints.

A :class:`Store` is one SQLite connection shared by the UI thread and the training
worker (``check_same_thread=False``), every use serialised by one lock. Each write is
one transaction committed before the method returns; a failing write raises
:class:`StoreError` and leaves every earlier commit intact.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeep_core import locations
from aeep_core.store import schema
from aeep_core.store.errors import StoreError
from aeep_core.store.lock import WriterLock

# A stored item path that is not valid UTF-8 (SQLite text must be): its bytes in hex behind
# a NUL, which no file name can contain, so the escape is unambiguous and reversible.
_RAW = "\x00raw:"


def encode_path(name: str) -> str:
    """An item's path as stored: itself, or (undecodable bytes) a reversible escape."""
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return _RAW + os.fsencode(name).hex()


def decode_path(text: str) -> str:
    """The inverse of :func:`encode_path`: the name as the file system gives it."""
    return os.fsdecode(bytes.fromhex(text[len(_RAW) :])) if text.startswith(_RAW) else text


def _with_paths(rows: list[sqlite3.Row]) -> list[dict[str, Any]]:
    return [{**dict(r), "path": decode_path(r["path"])} for r in rows]


# Joins each item's latest answer row (answers are append-only; the newest one counts).
LATEST_ANSWER = "JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) last ON last.id = l.id"


@dataclass(frozen=True)
class RoundPredictions:
    """What the model that chose a round predicted: its class for each stop-set item
    (aligned with :meth:`Store.stop_set`, None where the item is gone) and its confusion
    matrix on the test folder (rows: true class)."""

    stop: list[int | None] | None = None
    test_confusion: list[list[int]] | None = None


def _json_or_null(value: Any) -> str | None:
    return None if value is None else json.dumps(value)


class Store:
    """Open with :meth:`create` or :meth:`open`; :meth:`close` releases the writer lock."""

    def __init__(self, project: Path, conn: sqlite3.Connection, lock: WriterLock | None):
        self.project = Path(project)
        self.db = locations.project_db(self.project)
        self.read_only = lock is None
        self._conn: sqlite3.Connection | None = conn
        self._conn.row_factory = sqlite3.Row
        self._writer = lock
        self._mutex = threading.RLock()

    # --- opening and closing ---------------------------------------------------------
    @classmethod
    def create(cls, project: Path, settings: dict[str, Any]) -> Store:
        """A new project folder with its database; ``settings`` values are stored as JSON."""
        project = Path(project)
        project.mkdir(parents=True, exist_ok=True)
        lock = WriterLock(locations.project_lock(project)).acquire()
        try:
            db = locations.project_db(project)
            if db.exists() and db.stat().st_size > 0:
                raise StoreError(f"{db}: a project database already exists here; open it instead")
            conn = schema.create(db, {k: json.dumps(v) for k, v in settings.items()})
        except BaseException:
            lock.release()
            raise
        return cls(project, conn, lock)

    @classmethod
    def open(cls, project: Path, read_only: bool = False) -> Store:
        """An existing project; raise :class:`StoreError` (or ProjectLocked) if unusable."""
        project = Path(project)
        db = locations.project_db(project)
        if not db.is_file():
            raise StoreError(f"{db}: no project database here; check the path")
        schema.check_header(db)  # before the lock file: a foreign folder gets nothing new
        lock = None if read_only else WriterLock(locations.project_lock(project)).acquire()
        try:
            conn = schema.open_existing(db, read_only=read_only)
        except BaseException:
            if lock is not None:
                lock.release()
            raise
        return cls(project, conn, lock)

    def close(self) -> None:
        """Close the database and release the writer lock (safe to call twice)."""
        with self._mutex:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None
                    if self._writer is not None:
                        self._writer.release()

    # --- primitives ------------------------------------------------------------------
    def _error(self, exc: sqlite3.Error, doing: str) -> StoreError:
        hint = "free some disk space and try again" if "full" in str(exc) else "answers committed so far are kept"
        return StoreError(f"{self.db}: cannot {doing} ({exc}); {hint}")

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One committed write; rolled back entirely if anything inside fails."""
        if self.read_only:
            raise StoreError(f"{self.project}: opened read-only; close the other process and reopen to change it")
        with self._mutex:
            conn = self._live()
            try:
                conn.execute("BEGIN IMMEDIATE")
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc, "save") from exc
                raise

    def query(self, sql: str, params: tuple | list = ()) -> list[sqlite3.Row]:
        """Rows of a read-only statement."""
        with self._mutex:
            try:
                return self._live().execute(sql, params).fetchall()
            except sqlite3.Error as exc:
                raise self._error(exc, "read") from exc

    def _live(self) -> sqlite3.Connection:
        if self._conn is None:
            raise StoreError(f"{self.project}: the project is closed")
        return self._conn

    # --- settings ----------------------------------------------------------------------
    def setting(self, key: str, default: Any = None) -> Any:
        rows = self.query("SELECT value FROM settings WHERE key = ?", (key,))
        return json.loads(rows[0]["value"]) if rows else default

    def set_settings(self, **values: Any) -> None:
        with self.transaction() as c:
            c.executemany(
                "INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [(k, json.dumps(v)) for k, v in values.items()],
            )

    # --- labels ----------------------------------------------------------------------
    def add_label(self, item_id: int, round_: int, label: int | None) -> int:
        """Append one answer row (None = taken back); return the row's id (ids only grow)."""
        with self.transaction() as c:
            row_id = c.execute(
                "INSERT INTO labels (item_id, round, label, at) VALUES (?, ?, ?, ?)", (item_id, round_, label, time.time())
            ).lastrowid
            assert row_id is not None  # an INSERT always has one
            return row_id

    def current_labels(self) -> list[sqlite3.Row]:
        """The latest answer row of every item that has one: id, item_id, round, label, at."""
        return self.query(f"SELECT l.id, l.item_id, l.round, l.label, l.at FROM labels l {LATEST_ANSWER} ORDER BY l.id")

    def answers(self) -> list[sqlite3.Row]:
        """Every answer row in the order given: item_id, round, label (None = taken back) and
        corrected_after (None, or for a correction made in review the newest confirmed round then)."""
        return self.query("SELECT item_id, round, label, corrected_after FROM labels ORDER BY id")

    def labelled_items(self) -> list[dict[str, Any]]:
        """Items whose current answer is a class: path, present, label, at, round, exploration;
        by round, then batch position."""
        return _with_paths(
            self.query(
                f"SELECT i.path, i.present, l.label, l.at, l.round, ri.exploration FROM labels l {LATEST_ANSWER} "
                "JOIN items i ON i.id = l.item_id "
                "LEFT JOIN round_items ri ON ri.round = l.round AND ri.item_id = l.item_id "
                "WHERE l.label >= 0 ORDER BY l.round, ri.position, i.path"
            )
        )

    def counts(self) -> dict[str, int]:
        """labelled (current answers that are a class, on present items), present (items in
        the data folder) and rounds_done."""
        row = self.query(
            f"SELECT (SELECT COUNT(*) FROM labels l {LATEST_ANSWER} JOIN items i ON i.id = l.item_id "
            "WHERE l.label >= 0 AND i.present = 1), "
            "(SELECT COUNT(*) FROM items WHERE present = 1), (SELECT COUNT(*) FROM rounds WHERE status = 'done')"
        )[0]
        return {"labelled": row[0], "present": row[1], "rounds_done": row[2]}

    # --- review: corrections to confirmed batches ----------------------------------------
    def add_correction(self, item_id: int, label: int | None) -> int:
        """Append a correction to an item of a confirmed batch (class index, -1 skipped, None
        back to the pool); return the row's id. The row keeps the round of the item's batch
        (exports say where it was asked) and records the newest confirmed round, after
        which the learner takes it. StoreError when the item's latest batch is not confirmed."""
        with self.transaction() as c:
            latest = c.execute(
                "SELECT ri.round, r.status FROM round_items ri JOIN rounds r ON r.number = ri.round "
                "WHERE ri.item_id = ? ORDER BY ri.round DESC LIMIT 1",
                (item_id,),
            ).fetchone()
            if latest is None or latest["status"] != "done":
                raise StoreError(f"{self.db}: item {item_id} is in no confirmed batch; answer it on the labelling screen")
            after = c.execute("SELECT MAX(number) FROM rounds WHERE status = 'done'").fetchone()[0]
            row_id = c.execute(
                "INSERT INTO labels (item_id, round, label, at, corrected_after) VALUES (?, ?, ?, ?, ?)",
                (item_id, latest["round"], label, time.time(), after),
            ).lastrowid
            assert row_id is not None
            return row_id

    def item_history(self, item_id: int) -> list[sqlite3.Row]:
        """Every answer row of one item, oldest first: id, round, label (-1 skipped, None taken
        back or returned to the pool), at, corrected_after (None: given in its batch)."""
        return self.query("SELECT id, round, label, at, corrected_after FROM labels WHERE item_id = ? ORDER BY id", (item_id,))

    def reviewable_items(self) -> list[sqlite3.Row]:
        """Every item whose latest batch is confirmed, by round and position: item_id, round,
        position, exploration, predicted and confidence (the model's guess before the answer),
        and its current answer (label, at, corrected_after; label None: back in the pool)."""
        return self.query(
            "SELECT ri.item_id, ri.round, ri.position, ri.exploration, ri.predicted, ri.confidence, "
            "l.label, l.at, l.corrected_after FROM round_items ri JOIN rounds r ON r.number = ri.round "
            "LEFT JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) last ON last.item_id = ri.item_id "
            "LEFT JOIN labels l ON l.id = last.id "
            "WHERE r.status = 'done' AND NOT EXISTS "
            "(SELECT 1 FROM round_items later WHERE later.item_id = ri.item_id AND later.round > ri.round) "
            "ORDER BY ri.round, ri.position"
        )

    # --- rounds ----------------------------------------------------------------------
    def rounds(self) -> list[sqlite3.Row]:
        """Every round row (number, status, engine JSON, figures), oldest first."""
        return self.query("SELECT * FROM rounds ORDER BY number")

    def last_round(self) -> sqlite3.Row | None:
        """The newest round's row, or None."""
        rows = self.query("SELECT * FROM rounds ORDER BY number DESC LIMIT 1")
        return rows[0] if rows else None

    def round(self, number: int) -> sqlite3.Row | None:
        """One round's row, or None."""
        rows = self.query("SELECT * FROM rounds WHERE number = ?", (number,))
        return rows[0] if rows else None

    def next_round_number(self) -> int:
        """The number the next round gets (rounds count from 1)."""
        return int(self.query("SELECT COALESCE(MAX(number), 0) + 1 FROM rounds")[0][0])

    def round_items(self, number: int) -> list[sqlite3.Row]:
        return self.query("SELECT * FROM round_items WHERE round = ? ORDER BY position", (number,))

    def add_round(
        self,
        number: int,
        items: Sequence[tuple[int, bool, int | None, float | None]],
        engine: dict[str, Any],
        stats: dict[str, Any],
        checkpoint: tuple[str, str] | None = None,
        predictions: RoundPredictions | None = None,
    ) -> None:
        """Record an open round: its batch (item id, exploration, predicted, confidence) in
        order, the engine state it was chosen in, the checkpoint (file, sha256) of the
        model that chose it and that model's stop-set and test predictions, all in one
        transaction."""
        now = time.time()
        with self.transaction() as c:
            ckpt_id = None
            if checkpoint is not None:
                cur = c.execute(
                    "INSERT INTO checkpoints (file, round, sha256, created_at) VALUES (?, ?, ?, ?)",
                    (checkpoint[0], number, checkpoint[1], now),
                )
                ckpt_id = cur.lastrowid
            cols = ("m", "entropy_batch", "entropy_pool", "test_accuracy", "train_s", "select_s")
            c.execute(
                f"INSERT INTO rounds (number, status, created_at, engine, checkpoint_id, {', '.join(cols)}) "
                f"VALUES (?, 'open', ?, ?, ?, {', '.join('?' * len(cols))})",
                (number, now, json.dumps(engine), ckpt_id, *(stats.get(k) for k in cols)),
            )
            c.executemany(
                "INSERT INTO round_items (round, position, item_id, exploration, predicted, confidence) VALUES (?, ?, ?, ?, ?, ?)",
                [(number, pos, item, int(expl), pred, conf) for pos, (item, expl, pred, conf) in enumerate(items)],
            )
            if predictions is not None and (predictions.stop is not None or predictions.test_confusion is not None):
                c.execute(
                    "INSERT INTO round_predictions (round, stop_predicted, test_confusion) VALUES (?, ?, ?)",
                    (number, _json_or_null(predictions.stop), _json_or_null(predictions.test_confusion)),
                )

    def finish_round(self, number: int, engine: dict[str, Any] | None, mp: float | None, batch_accuracy: float | None) -> None:
        """Mark a round done with its outcome and the engine state after learning from it
        (None: the state it was chosen in stays)."""
        with self.transaction() as c:
            c.execute(
                "UPDATE rounds SET status = 'done', confirmed_at = ?, engine = COALESCE(?, engine), mp = ?, "
                "batch_accuracy = ? WHERE number = ?",
                (time.time(), None if engine is None else json.dumps(engine), mp, batch_accuracy, number),
            )

    def set_round_evaluation(self, number: int, accuracy: float | None, confusion: list[list[int]] | None) -> None:
        """The test accuracy and confusion matrix of the model that chose round ``number``,
        when they came after the round was recorded (the pipelined trainer tests that model
        after sending its batch: the person does not wait for the test)."""
        with self.transaction() as c:
            c.execute("UPDATE rounds SET test_accuracy = ? WHERE number = ?", (accuracy, number))
            if confusion is not None:
                c.execute(
                    "INSERT INTO round_predictions (round, test_confusion) VALUES (?, ?) "
                    "ON CONFLICT (round) DO UPDATE SET test_confusion = excluded.test_confusion",
                    (number, _json_or_null(confusion)),
                )

    # --- knowing when to stop ------------------------------------------------------------
    def stop_set(self) -> list[int]:
        """The item ids of the stop set, ascending (empty until one is drawn)."""
        return [r[0] for r in self.query("SELECT item_id FROM stop_set ORDER BY item_id")]

    def set_stop_set(self, item_ids: Sequence[int]) -> None:
        """Fix the stop set once; a project that has one keeps it (the predictions of
        every round are aligned with it)."""
        with self.transaction() as c:
            if c.execute("SELECT COUNT(*) FROM stop_set").fetchone()[0] == 0:
                c.executemany("INSERT INTO stop_set (item_id) VALUES (?)", [(int(i),) for i in item_ids])

    def round_predictions(self) -> list[tuple[int, list[int | None] | None, list[list[int]] | None]]:
        """(round, stop-set predictions aligned with :meth:`stop_set`, test confusion matrix)
        of every round that recorded them, oldest first."""
        rows = self.query("SELECT round, stop_predicted, test_confusion FROM round_predictions ORDER BY round")
        load = lambda text: None if text is None else json.loads(text)  # noqa: E731
        return [(r["round"], load(r["stop_predicted"]), load(r["test_confusion"])) for r in rows]

    def guesses(self) -> list[sqlite3.Row]:
        """Every batch card that had a model's guess and has a current answer: round,
        exploration, predicted, confidence and label (the latest answer: a class, -1
        skipped, None taken back), by round and position."""
        return self.query(
            f"SELECT ri.round, ri.exploration, ri.predicted, ri.confidence, l.label FROM round_items ri "
            f"JOIN labels l ON l.item_id = ri.item_id {LATEST_ANSWER} "
            "WHERE ri.predicted IS NOT NULL ORDER BY ri.round, ri.position"
        )

    def last_checkpoint(self) -> sqlite3.Row | None:
        """The checkpoint of the newest round that has one."""
        rows = self.query("SELECT c.* FROM rounds r JOIN checkpoints c ON c.id = r.checkpoint_id ORDER BY r.number DESC LIMIT 1")
        return rows[0] if rows else None

    def checkpoint_files(self) -> list[str]:
        return [r["file"] for r in self.query("SELECT file FROM checkpoints")]

    # --- export and import ---------------------------------------------------------------
    def skipped_items(self) -> list[dict[str, Any]]:
        """Items whose current answer is a skip: path, present, round (for an export that
        asks to keep them apart from the labels)."""
        return _with_paths(
            self.query(
                f"SELECT i.path, i.present, l.round FROM labels l {LATEST_ANSWER} JOIN items i ON i.id = l.item_id "
                "WHERE l.label = -1 ORDER BY l.round, i.path"
            )
        )

    def add_import_round(self, number: int, answers: Sequence[tuple[int, int]], engine: dict[str, Any]) -> None:
        """Record labels brought in from a file as one round, done at once: its items
        (in file order, none an exploration pick, no prediction) and one answer row each,
        all in one transaction, so an import is either whole or absent. Reopening rebuilds
        L from it exactly like from a labelled batch."""
        now = time.time()
        with self.transaction() as c:
            c.execute(
                "INSERT INTO rounds (number, status, created_at, confirmed_at, engine) VALUES (?, 'done', ?, ?, ?)",
                (number, now, now, json.dumps(engine)),
            )
            c.executemany(
                "INSERT INTO round_items (round, position, item_id, exploration, predicted, confidence) "
                "VALUES (?, ?, ?, 0, NULL, NULL)",
                [(number, pos, item) for pos, (item, _) in enumerate(answers)],
            )
            c.executemany(
                "INSERT INTO labels (item_id, round, label, at) VALUES (?, ?, ?, ?)",
                [(item, number, label, now) for item, label in answers],
            )
