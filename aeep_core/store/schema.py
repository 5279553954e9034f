"""The project database's schema, its versions and forward migrations, and safe opening.

``PRAGMA user_version`` holds the schema version and ``PRAGMA application_id`` marks the
file as ours, so a foreign or corrupt file is refused before anything is written to it.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path

from aeep_core.store.errors import StoreError

APPLICATION_ID = 0x41454550  # "AEEP"
SCHEMA_VERSION = 5
_SQLITE_MAGIC = b"SQLite format 3\x00"

# Version 1: the first layout. Kept verbatim so the migration from it stays tested.
SCHEMA_V1 = """
CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE items (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,                  -- relative to the data folder, or the pool name
    hash TEXT NOT NULL,                  -- sha256 of the file (or of the item's pixels)
    present INTEGER NOT NULL DEFAULT 1,  -- 0: vanished from the data folder
    first_seen REAL NOT NULL,
    UNIQUE (path, hash)
);
CREATE INDEX items_hash ON items (hash);
CREATE TABLE checkpoints (
    id INTEGER PRIMARY KEY,
    file TEXT NOT NULL,                  -- relative to the project folder
    round INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE rounds (
    number INTEGER PRIMARY KEY,          -- 1, 2, ...: the batch's ordinal
    status TEXT NOT NULL CHECK (status IN ('open', 'done')),
    created_at REAL NOT NULL,
    confirmed_at REAL,
    m INTEGER, mp REAL, entropy_batch REAL, entropy_pool REAL,
    batch_accuracy REAL, test_accuracy REAL, train_s REAL, select_s REAL,
    engine TEXT NOT NULL,                -- JSON: learner round and strategy state
    checkpoint_id INTEGER REFERENCES checkpoints (id)
);
CREATE TABLE round_items (
    round INTEGER NOT NULL REFERENCES rounds (number),
    position INTEGER NOT NULL,
    item_id INTEGER NOT NULL REFERENCES items (id),
    exploration INTEGER NOT NULL,
    predicted INTEGER,
    confidence REAL,
    PRIMARY KEY (round, position)
);
CREATE TABLE labels (                    -- append-only: the current answer is the latest row
    id INTEGER PRIMARY KEY,
    item_id INTEGER NOT NULL REFERENCES items (id),
    round INTEGER NOT NULL REFERENCES rounds (number),
    label INTEGER,                       -- class index, -1 skipped, NULL taken back (undo)
    at REAL NOT NULL
);
CREATE INDEX labels_item ON labels (item_id, id);
"""

# The classes a project starts with, from its settings (a no-op before they are written):
# run by the migration for an old project and by :func:`create` for a new one.
CLASSES_FROM_SETTINGS = """
    INSERT INTO classes (id, name, key)
        SELECT c.key, c.value, k.value FROM settings s JOIN json_each(s.value, '$.classes') c
        LEFT JOIN json_each(s.value, '$.keys') k ON k.key = c.key
        WHERE s.key = 'project' AND NOT EXISTS (SELECT 1 FROM classes);
    INSERT INTO class_changes (class, change, name, at)
        SELECT id, 'start', name, COALESCE((SELECT CAST(value AS REAL) FROM settings WHERE key = 'created_at'), 0)
        FROM classes WHERE NOT EXISTS (SELECT 1 FROM class_changes) ORDER BY id;
"""

# Each entry upgrades from version ``key`` to ``key + 1``, inside one transaction.
MIGRATIONS: dict[int, str] = {
    # 2: remember each file's size and mtime with its hash, so reopening a large folder
    # does not read every file again; and let the database itself keep labels append-only.
    1: """
        ALTER TABLE items ADD COLUMN size INTEGER;
        ALTER TABLE items ADD COLUMN mtime_ns INTEGER;
        CREATE TRIGGER labels_no_update BEFORE UPDATE ON labels
            BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a row instead'); END;
        CREATE TRIGGER labels_no_delete BEFORE DELETE ON labels
            BEGIN SELECT RAISE(ABORT, 'labels are append-only: add a row instead'); END;
    """,
    # 3: corrections made in the review screen. An answer row given in its item's own batch
    # keeps corrected_after NULL; a correction holds the newest confirmed round when it was
    # made, so reopening replays it where the learner took it (after that round's batch).
    # The index finds an item's rounds without scanning every batch.
    2: """
        ALTER TABLE labels ADD COLUMN corrected_after INTEGER;
        CREATE INDEX round_items_item ON round_items (item_id, round);
    """,
    # 4: "know when to stop". A fixed stop set (a seeded random sample of the items, drawn
    # once) and, per round, the choosing model's predictions on it (Bloodgood &
    # Vijay-Shanker 2009: stop when consecutive models agree) and its confusion matrix on
    # the --test folder. New tables only, so the migration touches no existing row.
    3: """
        CREATE TABLE stop_set (item_id INTEGER PRIMARY KEY REFERENCES items (id));
        CREATE TABLE round_predictions (
            round INTEGER PRIMARY KEY REFERENCES rounds (number),
            stop_predicted TEXT,             -- JSON list: class per stop-set item (by item_id), null if absent
            test_confusion TEXT              -- JSON [[count]]: rows true class, columns predicted
        );
    """,
    # 5: classes that change while labelling (issue 26). A class's id is its index in every
    # answer row and in the model's outputs, so an id is never reused: a class merged into
    # another stays, marked, its key freed. The partial unique indexes let two live classes
    # share neither a name nor a key. class_changes is the append-only history (start, add,
    # rename, merge, each with its time). Filled from the project's settings, so an old
    # project opens with the classes it had.
    4: """
        CREATE TABLE classes (
            id INTEGER PRIMARY KEY,              -- the class index; 0, 1, ... in the order added
            name TEXT NOT NULL,
            key TEXT,                            -- NULL once merged
            merged_into INTEGER REFERENCES classes (id)
        );
        CREATE UNIQUE INDEX classes_live_name ON classes (name) WHERE merged_into IS NULL;
        CREATE UNIQUE INDEX classes_live_key ON classes (key) WHERE merged_into IS NULL;
        CREATE TABLE class_changes (
            id INTEGER PRIMARY KEY,
            class INTEGER NOT NULL REFERENCES classes (id),
            change TEXT NOT NULL CHECK (change IN ('start', 'add', 'rename', 'merge')),
            name TEXT NOT NULL,                  -- the class's name after the change
            merged_into INTEGER REFERENCES classes (id),
            at REAL NOT NULL
        );
        CREATE TRIGGER class_changes_no_update BEFORE UPDATE ON class_changes
            BEGIN SELECT RAISE(ABORT, 'class changes are append-only'); END;
        CREATE TRIGGER class_changes_no_delete BEFORE DELETE ON class_changes
            BEGIN SELECT RAISE(ABORT, 'class changes are append-only'); END;
    """
    + CLASSES_FROM_SETTINGS,
}


def _fix(db: Path) -> str:
    # Only actions that exist: moving the file, or `aeep-tui forget`, which deletes the project.
    return f"move {db.name} out of {db.parent} to start a new project"


def check_header(db: Path) -> None:
    """Refuse a file that is not one of our databases, by reading its header only."""
    with open(db, "rb") as f:
        head = f.read(100)
    if len(head) < 100 or not head.startswith(_SQLITE_MAGIC):
        raise StoreError(f"{db}: not an aeep-tui project database (not SQLite, or corrupt); {_fix(db)}")
    app_id = int.from_bytes(head[68:72], "big")
    if app_id != APPLICATION_ID:
        raise StoreError(f"{db}: a SQLite database of another program, not an aeep-tui project; {_fix(db)}")


def _configure(conn: sqlite3.Connection) -> None:
    conn.execute("PRAGMA busy_timeout = 5000")
    conn.execute("PRAGMA foreign_keys = ON")
    # FULL: a committed answer survives power loss too, not only a killed process.
    conn.execute("PRAGMA synchronous = FULL")


def create(db: Path, settings: dict[str, str]) -> sqlite3.Connection:
    """A new database at the current schema version, holding ``settings`` (key -> JSON).

    It is built under a temporary name and renamed into place, so a crash never
    leaves a half-made database that a later open would refuse as corrupt.
    """
    db.parent.mkdir(parents=True, exist_ok=True)
    tmp = db.with_name(db.name + ".new")
    for leftover in (tmp, tmp.with_name(tmp.name + "-journal")):
        leftover.unlink(missing_ok=True)
    conn = sqlite3.connect(tmp, isolation_level=None)
    _configure(conn)
    # Rollback-journal mode while building, so the header always carries our id.
    conn.executescript(
        f"BEGIN; {SCHEMA_V1} {' '.join(MIGRATIONS[v] for v in sorted(MIGRATIONS))}"
        f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = {SCHEMA_VERSION}; COMMIT;"
    )
    conn.execute("BEGIN")
    conn.executemany("INSERT INTO settings (key, value) VALUES (?, ?)", settings.items())
    conn.execute("COMMIT")
    conn.executescript(f"BEGIN; {CLASSES_FROM_SETTINGS} COMMIT;")
    conn.close()
    os.replace(tmp, db)
    return open_existing(db)


def _connect(db: Path, mode: str) -> sqlite3.Connection:
    conn = sqlite3.connect(f"{db.resolve().as_uri()}?mode={mode}", uri=True, isolation_level=None, check_same_thread=False)
    _configure(conn)
    return conn


def open_existing(db: Path, read_only: bool = False) -> sqlite3.Connection:
    """Open one of our databases, checked and migrated; raise :class:`StoreError` otherwise.

    The checks run on a read-only connection (which never checkpoints a leftover WAL into
    the file), so nothing is written to a file that fails them; a migration first copies
    the database to ``project.sqlite3.v<N>.bak``.
    """
    check_header(db)
    try:
        conn = _connect(db, "ro")
        try:
            bad = conn.execute("PRAGMA quick_check").fetchone()[0]
            version = conn.execute("PRAGMA user_version").fetchone()[0]
        finally:
            if not read_only:
                conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"{db}: cannot read the database ({exc}); {_fix(db)}") from exc
    problem = None
    if bad != "ok":
        problem = f"{db}: the database is corrupt ({bad}); {_fix(db)}"
    elif version > SCHEMA_VERSION:
        problem = f"{db}: made by a newer aeep-tui (schema {version}, this one knows {SCHEMA_VERSION}); upgrade aeep-tui"
    elif version < 1:
        problem = f"{db}: holds no aeep-tui schema; {_fix(db)}"
    elif version < SCHEMA_VERSION and read_only:
        problem = f"{db}: needs an upgrade (schema {version} -> {SCHEMA_VERSION}); open it once for labelling (aeep-tui label DATA) to upgrade it"
    if problem is not None:
        conn.close()
        raise StoreError(problem)
    if read_only:
        return conn
    try:
        conn = _connect(db, "rw")
        try:
            if version < SCHEMA_VERSION:
                migrate(conn, db, version)
            conn.execute("PRAGMA journal_mode = WAL")
        except BaseException:
            conn.close()
            raise
    except sqlite3.Error as exc:
        raise StoreError(f"{db}: cannot open the database for writing ({exc}); check its permissions and free space") from exc
    return conn


def migrate(conn: sqlite3.Connection, db: Path, version: int) -> None:
    """Apply every migration from ``version`` up, each in its own transaction."""
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # the backup copy then holds everything
    backup = db.with_name(f"{db.name}.v{version}.bak")
    if not backup.exists():
        shutil.copy2(db, backup)
    while version < SCHEMA_VERSION:
        try:
            conn.executescript(f"BEGIN IMMEDIATE; {MIGRATIONS[version]} PRAGMA user_version = {version + 1}; COMMIT;")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise StoreError(f"{db}: upgrading schema {version} failed ({exc}); the backup {backup.name} is untouched") from exc
        version += 1
