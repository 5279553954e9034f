"""A project's classes as they are now, and how they came to be: added, renamed, merged.

A class's id is its index: in every answer row, in the model's outputs, in the order
exports list classes. Ids are never reused, so nothing stored ever changes meaning: a
class added while labelling takes the next id, a rename changes only the name, and a
class merged into another stays in the table marked ``merged_into``, its key freed and
every answer it held re-pointed by a new label row (labels are append-only: the old rows
stay in each item's history). ``class_changes`` records every change with its time.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass

from aeep_core.store.db import LATEST_ANSWER, Store


@dataclass(frozen=True)
class ProjectClass:
    """One class: its index, current name, key (None once merged) and, once merged, the
    index of the class it was merged into."""

    index: int
    name: str
    key: str | None
    merged_into: int | None = None

    @property
    def live(self) -> bool:
        """Whether answers may still be given to it (it was not merged away)."""
        return self.merged_into is None


@dataclass(frozen=True)
class ClassList:
    """Every class of a project, by index (merged ones included, so an index read from an
    answer row or a model output always finds its class)."""

    classes: tuple[ProjectClass, ...]

    def __len__(self) -> int:
        return len(self.classes)

    def __getitem__(self, index: int) -> ProjectClass:
        return self.classes[index]

    @property
    def names(self) -> list[str]:
        """Name by index, merged classes included."""
        return [c.name for c in self.classes]

    @property
    def keys(self) -> list[str]:
        """Key by index; a merged class has none ('')."""
        return [c.key or "" for c in self.classes]

    @property
    def live(self) -> list[ProjectClass]:
        """The classes answers may be given to, by index."""
        return [c for c in self.classes if c.live]

    @property
    def merged(self) -> frozenset[int]:
        """The indices of classes merged away."""
        return frozenset(c.index for c in self.classes if not c.live)

    def is_live(self, index: int) -> bool:
        """Whether ``index`` names a class that answers may be given to."""
        return 0 <= index < len(self.classes) and self.classes[index].live

    def resolve(self, index: int) -> int:
        """The live class that ``index`` stands for now (itself, or where it was merged)."""
        # No cycle is possible: only a live class can be merged, into another live class.
        into = self.classes[index].merged_into
        while into is not None:
            index, into = into, self.classes[into].merged_into
        return index

    def find(self, name: str) -> ProjectClass | None:
        """The live class called ``name``; else the live class that a merged class of that
        name went into (a file written before the merge still names it); else None."""
        live = next((c for c in self.classes if c.live and c.name == name), None)
        if live is not None:
            return live
        merged = next((c for c in self.classes if c.name == name), None)
        return None if merged is None else self.classes[self.resolve(merged.index)]


@dataclass(frozen=True)
class Repointed:
    """An answer a merge re-pointed: the stored item, the round of its batch, the new label
    row's id, and whether that batch was confirmed (the row is then a correction)."""

    item_id: int
    round: int
    row_id: int
    confirmed: bool


def read_classes(store: Store) -> ClassList:
    """The project's classes as they are now."""
    rows = store.query("SELECT id, name, key, merged_into FROM classes ORDER BY id")
    return ClassList(tuple(ProjectClass(r["id"], r["name"], r["key"], r["merged_into"]) for r in rows))


def class_changes(store: Store) -> list[sqlite3.Row]:
    """Every class change, oldest first: class, change ('start', 'add', 'rename', 'merge'),
    name (after the change), merged_into and at (Unix time)."""
    return store.query("SELECT class, change, name, merged_into, at FROM class_changes ORDER BY id")


def _live_names_and_keys(c: sqlite3.Connection) -> tuple[dict[str, int], dict[str, int]]:
    rows = c.execute("SELECT id, name, key FROM classes WHERE merged_into IS NULL").fetchall()
    return {r["name"]: r["id"] for r in rows}, {r["key"]: r["id"] for r in rows}


def _checked_name(name: str) -> str:
    name = name.strip()
    if not name:
        raise ValueError("a class needs a name")
    return name


def add_class(store: Store, name: str, key: str) -> ProjectClass:
    """Add a class with the next index, committed before it returns. ValueError when a live
    class already has the name or the key."""
    name = _checked_name(name)
    with store.transaction() as c:
        names, keys = _live_names_and_keys(c)
        if name in names:
            raise ValueError(f"a class called {name!r} exists already")
        if not key or key in keys:
            raise ValueError(f"the key {key!r} is taken; choose another")
        index = int(c.execute("SELECT COALESCE(MAX(id) + 1, 0) FROM classes").fetchone()[0])
        c.execute("INSERT INTO classes (id, name, key) VALUES (?, ?, ?)", (index, name, key))
        c.execute("INSERT INTO class_changes (class, change, name, at) VALUES (?, 'add', ?, ?)", (index, name, time.time()))
    return ProjectClass(index, name, key)


def _live_class(c: sqlite3.Connection, index: int) -> sqlite3.Row:
    row = c.execute("SELECT id, name, key, merged_into FROM classes WHERE id = ?", (index,)).fetchone()
    if row is None or row["merged_into"] is not None:
        raise ValueError(f"class {index} is not a class of this project that answers can be given to")
    return row


def rename_class(store: Store, index: int, name: str) -> None:
    """Give class ``index`` a new name; every answer keeps pointing at it (by index)."""
    name = _checked_name(name)
    with store.transaction() as c:
        _live_class(c, index)
        other = _live_names_and_keys(c)[0].get(name)
        if other is not None and other != index:
            raise ValueError(f"a class called {name!r} exists already")
        c.execute("UPDATE classes SET name = ? WHERE id = ?", (name, index))
        c.execute("INSERT INTO class_changes (class, change, name, at) VALUES (?, 'rename', ?, ?)", (index, name, time.time()))


def merge_class(store: Store, source: int, target: int) -> list[Repointed]:
    """Merge class ``source`` into ``target``, in one transaction: every item whose current
    answer is ``source`` gets a new answer row saying ``target`` (a correction when its batch
    is confirmed, as :meth:`Store.add_correction` writes one; an answer of the open batch
    otherwise), and ``source`` is marked merged, its key freed. Returns the re-pointed
    answers in the order their rows were written: the confirmed ones first."""
    if source == target:
        raise ValueError("a class cannot be merged into itself")
    now = time.time()
    with store.transaction() as c:
        name = _live_class(c, source)["name"]
        _live_class(c, target)
        held = c.execute(
            f"SELECT l.item_id, l.round, r.status FROM labels l {LATEST_ANSWER} JOIN rounds r ON r.number = l.round "
            "WHERE l.label = ? ORDER BY r.status = 'open', l.id",
            (source,),
        ).fetchall()
        after = c.execute("SELECT MAX(number) FROM rounds WHERE status = 'done'").fetchone()[0]
        out = []
        for h in held:
            confirmed = h["status"] == "done"
            row_id = c.execute(
                "INSERT INTO labels (item_id, round, label, at, corrected_after) VALUES (?, ?, ?, ?, ?)",
                (h["item_id"], h["round"], target, now, after if confirmed else None),
            ).lastrowid
            assert row_id is not None  # an INSERT always has one
            out.append(Repointed(h["item_id"], h["round"], row_id, confirmed))
        c.execute("UPDATE classes SET merged_into = ?, key = NULL WHERE id = ?", (target, source))
        c.execute(
            "INSERT INTO class_changes (class, change, name, merged_into, at) VALUES (?, 'merge', ?, ?, ?)",
            (source, name, target, now),
        )
    return out
