"""The project database: pragmas, one writer, refusing bad files untouched, migrations, errors."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from aeep_core import locations
from aeep_core.session import LabellingSession, ProjectSettings
from aeep_core.store import SCHEMA_VERSION, ProjectLocked, Store, StoreError
from aeep_core.store.classes import add_class, class_changes, merge_class, read_classes, rename_class
from aeep_core.store.schema import APPLICATION_ID, SCHEMA_V1
from tests.conftest import make_image_folder

SETTINGS = {"project": {"classes": ["a", "b"], "keys": ["1", "2"]}, "name": "x"}


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_database_is_wal_with_foreign_keys_a_version_and_our_id(tmp_path):
    store = Store.create(tmp_path / "p", SETTINGS)
    try:
        one = lambda sql: store.query(sql)[0][0]  # noqa: E731
        assert one("PRAGMA journal_mode") == "wal" and one("PRAGMA foreign_keys") == 1
        assert one("PRAGMA user_version") == SCHEMA_VERSION and one("PRAGMA application_id") == APPLICATION_ID
        assert store.setting("project")["classes"] == ["a", "b"]
        with pytest.raises(StoreError, match="FOREIGN KEY"):  # a label must point at an item and a round
            store.add_label(item_id=42, round_=1, label=0)
        assert store.query("SELECT COUNT(*) FROM labels")[0][0] == 0
        with store.transaction() as c:
            c.execute("INSERT INTO items (path, hash, first_seen) VALUES ('a.png', 'h', 0)")
            c.execute("INSERT INTO rounds (number, status, created_at, engine) VALUES (1, 'open', 0, '{}')")
        store.add_label(1, 1, 0)
        for sql in ("UPDATE labels SET label = 1", "DELETE FROM labels"):
            with pytest.raises(StoreError, match="append-only"), store.transaction() as c:
                c.execute(sql)
        assert [tuple(r) for r in store.query("SELECT item_id, label FROM labels")] == [(1, 0)]
    finally:
        store.close()
    assert not (tmp_path / "p" / "project.sqlite3.new").exists()


_HOLDER = """
import sys, time
from aeep_core.store import Store
s = Store.open(sys.argv[1])
print("ready", flush=True)
time.sleep(120)
"""


def test_second_writer_is_refused_naming_the_pid_and_a_killed_writer_leaves_no_block(tmp_path):
    project = tmp_path / "p"
    Store.create(project, SETTINGS).close()
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    holder = subprocess.Popen([sys.executable, "-c", _HOLDER, str(project)], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert holder.stdout.readline().strip() == "ready"
        with pytest.raises(ProjectLocked, match=f"pid {holder.pid}") as err:
            Store.open(project)
        assert err.value.pid == holder.pid and "aeep-tui export" in str(err.value)  # what works meanwhile
        Store.open(project, read_only=True).close()  # reading beside the writer is fine
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    assert f"{holder.pid} " in locations.project_lock(project).read_text()  # stale content...
    Store.open(project).close()  # ...blocks nobody


def test_second_writer_in_the_same_process_is_refused(tmp_path):
    first = Store.create(tmp_path / "p", SETTINGS)
    with pytest.raises(ProjectLocked, match=f"pid {os.getpid()}"):
        Store.open(tmp_path / "p")
    first.close()
    Store.open(tmp_path / "p").close()


def _corrupt_page(db: Path) -> None:
    data = bytearray(db.read_bytes())
    data[100:1024] = b"\xa5" * 924  # page 1 after the header: the schema's b-tree
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", ["garbage", "truncated", "page", "foreign", "newer", "empty_schema"])
def test_corrupt_or_foreign_database_is_refused_with_one_line_and_left_untouched(tmp_path, damage):
    project = tmp_path / "p"
    db = locations.project_db(project)
    if damage in ("garbage", "truncated", "page", "newer"):
        Store.create(project, SETTINGS).close()
    if damage == "garbage":
        db.write_bytes(os.urandom(8192))
    elif damage == "truncated":
        db.write_bytes(db.read_bytes()[:60])
    elif damage == "page":
        _corrupt_page(db)
    elif damage == "newer":
        with sqlite3.connect(db) as c:
            c.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
        c.close()
    else:
        project.mkdir()
        c = sqlite3.connect(db)
        if damage == "foreign":
            c.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, title TEXT)")
        else:  # ours by id, but no schema: a file that was never finished
            c.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            c.execute("CREATE TABLE t (x)")
        c.commit()
        c.close()
    before, names = digest(db), sorted(p.name for p in project.iterdir())
    with pytest.raises(StoreError) as err:
        Store.open(project)
    message = str(err.value)
    assert "\n" not in message and str(db) in message
    assert {
        "garbage": "not SQLite",
        "truncated": "not SQLite",
        "page": "corrupt",
        "foreign": "another program",
        "newer": "newer aeep-tui",
        "empty_schema": "no aeep-tui schema",
    }[damage] in message
    assert digest(db) == before
    assert "move project.sqlite3" in message or "upgrade" in message
    assert not (tmp_path / "p" / "project.sqlite3.v1.bak").exists()
    if damage in ("garbage", "truncated", "foreign"):
        assert sorted(p.name for p in project.iterdir()) == names  # not even a -wal beside it
    # the session surfaces the same error, and the lock is released for the next try
    data = make_image_folder(tmp_path / "img", per_class=2, n_classes=2)
    with pytest.raises(StoreError):
        LabellingSession.open(data, project_dir=project)
    assert digest(db) == before


def _downgrade_to_v1(db: Path) -> None:
    """Rewrite a current database as schema version 1 (what version 1 code wrote)."""
    v1 = db.with_name("v1.sqlite3")
    c = sqlite3.connect(v1, isolation_level=None)
    c.executescript(SCHEMA_V1 + f"PRAGMA application_id = {APPLICATION_ID}; PRAGMA user_version = 1;")
    c.execute("ATTACH ? AS cur", (str(db),))
    for table in ("settings", "items", "checkpoints", "rounds", "round_items", "labels"):
        cols = [r[1] for r in c.execute(f"PRAGMA main.table_info({table})")]
        c.execute(f"INSERT INTO main.{table} SELECT {', '.join(cols)} FROM cur.{table}")
    c.execute("DETACH cur")
    c.execute("PRAGMA journal_mode = WAL")
    c.close()
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    os.replace(v1, db)


def test_migration_from_schema_1_keeps_every_answer_and_the_open_batch(tmp_path):
    data = make_image_folder(tmp_path / "img", per_class=6)
    settings = ProjectSettings(
        classes=["class0", "class1", "class2"],
        keys=["a", "b", "c"],
        batch_size=4,
        device="cpu",
        train={"min_steps": 5, "max_steps": 5},
    )
    project = tmp_path / "p"
    with LabellingSession.open(data, settings, project_dir=project) as s:
        s.prepare_next_batch()
        for pos in range(4):
            s.label(pos, pos % 3)
        s.confirm_batch()
        s.prepare_next_batch()
        s.label(1, 2)
        before = [(it.name, it.answer, it.exploration, it.predicted) for it in s.batch.items]
        labels_before = s._store.query("SELECT item_id, round, label, at FROM labels ORDER BY id")
    db = locations.project_db(project)
    _downgrade_to_v1(db)
    with sqlite3.connect(db) as c:
        assert c.execute("PRAGMA user_version").fetchone()[0] == 1
        assert "size" not in [r[1] for r in c.execute("PRAGMA table_info(items)")]
    c.close()
    with LabellingSession.open(data, project_dir=project) as s:
        assert s._store.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
        assert [(it.name, it.answer, it.exploration, it.predicted) for it in s.batch.items] == before
        assert [tuple(r) for r in s._store.query("SELECT item_id, round, label, at FROM labels ORDER BY id")] == [
            tuple(r) for r in labels_before
        ]
        assert s._store.query("SELECT COUNT(*) FROM items WHERE size IS NULL")[0][0] == 0  # filled on open
        assert len(s._store.query("SELECT name FROM sqlite_master WHERE type = 'trigger'")) == 4
        assert read_classes(s._store).names == ["class0", "class1", "class2"]  # from the settings
        assert s.drift.added == 0 and s.stats.labelled == 5
    assert (project / "project.sqlite3.v1.bak").exists()


def test_a_failing_write_is_one_line_and_keeps_committed_rows(tmp_path):
    store = Store.create(tmp_path / "p", SETTINGS)
    try:
        with store.transaction() as c:
            c.execute("INSERT INTO items (path, hash, first_seen) VALUES ('a.png', 'h', 0)")
            c.execute("INSERT INTO rounds (number, status, created_at, engine) VALUES (1, 'open', 0, '{}')")
        store.add_label(1, 1, 0)
        # A full disk, for real: SQLite may not grow the file past its current pages.
        pages = store.query("PRAGMA page_count")[0][0]
        store.query(f"PRAGMA max_page_count = {pages}")
        with pytest.raises(StoreError, match="full.*free some disk space") as err:
            with store.transaction() as c:
                c.executemany("INSERT INTO settings (key, value) VALUES (?, ?)", [(f"k{i}", "x" * 500) for i in range(200)])
        assert "\n" not in str(err.value)
        assert [tuple(r) for r in store.query("SELECT item_id, label FROM labels")] == [(1, 0)]
    finally:
        store.close()


def _item_and_rounds(store: Store, items: int, done: int, open_round: int | None) -> None:
    with store.transaction() as c:
        c.executemany(
            "INSERT INTO items (path, hash, first_seen) VALUES (?, ?, 0)", [(f"{i}.png", f"h{i}") for i in range(items)]
        )
        for n in range(1, done + 1):
            c.execute("INSERT INTO rounds (number, status, created_at, engine) VALUES (?, 'done', 0, '{}')", (n,))
        if open_round is not None:
            c.execute("INSERT INTO rounds (number, status, created_at, engine) VALUES (?, 'open', 0, '{}')", (open_round,))


def test_classes_start_from_the_settings_then_add_rename_and_merge_keep_every_answer(tmp_path):
    store = Store.create(tmp_path / "p", {**SETTINGS, "created_at": 1234.5})
    try:
        assert [(c.index, c.name, c.key, c.live) for c in read_classes(store).classes] == [
            (0, "a", "1", True),
            (1, "b", "2", True),
        ]
        assert [(r["class"], r["change"], r["at"]) for r in class_changes(store)] == [(0, "start", 1234.5), (1, "start", 1234.5)]
        added = add_class(store, " fox ", "f")
        assert (added.index, added.name, added.key) == (2, "fox", "f")
        with pytest.raises(ValueError, match="exists"):
            add_class(store, "fox", "x")
        with pytest.raises(ValueError, match="taken"):
            add_class(store, "owl", "2")
        _item_and_rounds(store, items=4, done=1, open_round=2)
        for item, round_, label in ((1, 1, 2), (2, 1, 0), (3, 2, 2), (4, 2, 1)):
            store.add_label(item, round_, label)
        rename_class(store, 2, "red fox")
        assert read_classes(store).names == ["a", "b", "red fox"]
        assert {r["item_id"]: r["label"] for r in store.current_labels()} == {1: 2, 2: 0, 3: 2, 4: 1}  # kept by index
        with pytest.raises(ValueError, match="exists"):
            rename_class(store, 0, "b")

        moved = merge_class(store, 2, 0)  # red fox into a: item 1 (confirmed) and item 3 (open batch)
        assert [(m.item_id, m.round, m.confirmed) for m in moved] == [(1, 1, True), (3, 2, False)]
        assert {r["item_id"]: r["label"] for r in store.current_labels()} == {1: 0, 2: 0, 3: 0, 4: 1}
        assert [(r["label"], r["corrected_after"]) for r in store.item_history(1)] == [(2, None), (0, 1)]  # history kept
        assert [(r["label"], r["corrected_after"]) for r in store.item_history(3)] == [(2, None), (0, None)]
        classes = read_classes(store)
        assert classes.merged == {2} and classes[2].key is None and classes.resolve(2) == 0
        assert [c.name for c in classes.live] == ["a", "b"] and classes.find("red fox") == classes[0]
        assert add_class(store, "red fox", "f").index == 3  # the name and key are free again; the index is not reused
        with pytest.raises(ValueError, match="not a class"):
            merge_class(store, 2, 1)  # merged away already
        assert [r["change"] for r in class_changes(store)] == ["start", "start", "add", "rename", "merge", "add"]
        with pytest.raises(StoreError, match="append-only"), store.transaction() as c:
            c.execute("DELETE FROM class_changes")
    finally:
        store.close()
    reopened = Store.open(tmp_path / "p")
    try:
        assert read_classes(reopened).names == ["a", "b", "red fox", "red fox"] and read_classes(reopened).merged == {2}
    finally:
        reopened.close()


def test_a_schema_4_project_opens_with_its_classes_and_a_backup(tmp_path):
    project = tmp_path / "p"
    Store.create(project, {"project": {"classes": ["cat", "dog"], "keys": ["c", "d"]}}).close()
    db = locations.project_db(project)
    c = sqlite3.connect(db, isolation_level=None)
    c.executescript(
        "DROP TABLE class_changes; DROP TABLE classes; PRAGMA user_version = 4;"  # what schema 4 code wrote
    )
    c.close()
    store = Store.open(project)
    try:
        assert store.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION == 5
        assert [(c.name, c.key) for c in read_classes(store).classes] == [("cat", "c"), ("dog", "d")]
    finally:
        store.close()
    assert (project / "project.sqlite3.v4.bak").exists()
