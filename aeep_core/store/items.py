"""Stable item identities (path + content hash) and the data-folder drift they reveal.

An item is a (path, hash) pair: a renamed file keeps its identity (same hash, its old
path gone), a file whose content changed becomes a new item (same path, new hash), and
files with equal content are noticed as duplicates.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from aeep_core.pool import Pool
from aeep_core.store.db import Store, decode_path, encode_path

StageProgress = Callable[[str, int, int], None]


@dataclass
class Drift:
    """What changed in the data folder since the project last saw it."""

    added: int = 0  # new paths
    vanished: int = 0  # paths gone (their labels are kept, exported as missing)
    changed: int = 0  # same path, new content: a new item
    renamed: int = 0  # same content at a new path: the same item
    duplicates: list[list[str]] = field(default_factory=list)  # names sharing one content

    @property
    def any(self) -> bool:
        return bool(self.added or self.vanished or self.changed or self.renamed)


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fingerprint(
    pool: Pool, known: dict[str, tuple[int, int, str]], progress: StageProgress | None = None
) -> list[tuple[str, str, int | None, int | None]]:
    """(path, hash, size, mtime_ns) of every pool item, in pool order.

    File items hash their bytes, reusing ``known[path] = (size, mtime_ns, hash)`` when
    the file's size and mtime are unchanged; items without a file (IDX rows, sequences)
    use their pool name as path and hash their event history (sequences) or their
    input tensor (IDX rows).
    """
    paths, events = pool.meta.get("paths"), pool.meta.get("events")
    out: list[tuple[str, str, int | None, int | None]] = []
    for i, name in enumerate(pool.names):
        if paths is not None:
            st = os.stat(paths[i])
            cached = known.get(name)
            if cached is not None and cached[:2] == (st.st_size, st.st_mtime_ns):
                digest = cached[2]
            else:
                digest = file_sha256(Path(paths[i]))
            out.append((name, digest, st.st_size, st.st_mtime_ns))
        elif events is not None:
            # The history itself, not the matrix: the matrix moves with the event embedding,
            # which is retrained when patients join the pool.
            text = json.dumps(events[i], sort_keys=True, default=str)
            out.append((name, hashlib.sha256(text.encode()).hexdigest(), None, None))
        else:
            out.append((name, hashlib.sha256(pool.inputs[i].numpy().tobytes()).hexdigest(), None, None))
        if progress is not None and (i % 256 == 255 or i == len(pool) - 1):
            progress("hash", i + 1, len(pool))
    return out


def sync_items(store: Store, pool: Pool, progress: StageProgress | None = None) -> tuple[list[int | None], Drift]:
    """Map every pool item to its item id, recording drift in the store (one transaction).

    Read-only stores are not written: items they have never seen map to None.
    """
    rows = [
        {**dict(r), "path": decode_path(r["path"])}
        for r in store.query("SELECT id, path, hash, present, size, mtime_ns FROM items ORDER BY id")
    ]
    known = {r["path"]: (r["size"], r["mtime_ns"], r["hash"]) for r in rows if r["present"] and r["size"] is not None}
    current = fingerprint(pool, known, progress)
    by_key = {(r["path"], r["hash"]): r for r in rows}
    paths_now = {p for p, *_ in current}
    ids: list[int | None] = [None] * len(current)
    matched: set[int] = set()
    for i, (path, digest, *_) in enumerate(current):
        row = by_key.get((path, digest))
        if row is not None:
            ids[i] = row["id"]
            matched.add(row["id"])
    # A rename: an unmatched item whose content sits in a row whose path is gone.
    orphans: dict[str, list] = defaultdict(list)
    for r in rows:
        if r["id"] not in matched and r["path"] not in paths_now:
            orphans[r["hash"]].append(r)
    drift = Drift()
    renames, inserts = [], []
    old_paths = {r["path"] for r in rows}
    for i, (path, digest, size, mtime) in enumerate(current):
        if ids[i] is not None:
            continue
        if orphans.get(digest):
            row = orphans[digest].pop(0)
            ids[i] = row["id"]
            matched.add(row["id"])
            renames.append((path, size, mtime, row["id"]))
            drift.renamed += 1
        else:
            inserts.append(i)
            drift.changed += path in old_paths
            drift.added += path not in old_paths
    gone = [r["id"] for r in rows if r["id"] not in matched and r["present"]]
    drift.vanished = sum(1 for r in rows if r["id"] not in matched and r["present"] and r["path"] not in paths_now)
    groups: dict[str, list[str]] = defaultdict(list)
    for path, digest, *_ in current:
        groups[digest].append(path)
    drift.duplicates = [g for g in groups.values() if len(g) > 1]
    if store.read_only:
        return ids, drift
    now = time.time()
    with store.transaction() as c:
        c.executemany("UPDATE items SET present = 0 WHERE id = ?", [(i,) for i in gone])
        c.executemany(
            "UPDATE items SET path = ?, size = ?, mtime_ns = ?, present = 1 WHERE id = ?",
            [(encode_path(path), size, mtime, item) for path, size, mtime, item in renames],
        )
        # Matched rows: the file may be back, or touched without a content change.
        by_id = {r["id"]: r for r in rows}
        c.executemany(
            "UPDATE items SET present = 1, size = ?, mtime_ns = ? WHERE id = ?",
            [
                (size, mtime, ids[i])
                for i, (_, _, size, mtime) in enumerate(current)
                if ids[i] in by_id
                and (not by_id[ids[i]]["present"] or (by_id[ids[i]]["size"], by_id[ids[i]]["mtime_ns"]) != (size, mtime))
            ],
        )
        for i in inserts:
            path, digest, size, mtime = current[i]
            ids[i] = c.execute(
                "INSERT INTO items (path, hash, present, first_seen, size, mtime_ns) VALUES (?, ?, 1, ?, ?, ?)",
                (encode_path(path), digest, now, size, mtime),
            ).lastrowid
    return ids, drift


def add_items(store: Store, pool: Pool) -> list[int]:
    """The item id of each item of ``pool``, items joining a growing pool (photos as they
    are embedded): an item the store knows by path and content keeps its id and is marked
    present; any other is inserted. Unlike :func:`sync_items`, nothing else is touched."""
    current = fingerprint(pool, {})
    ids: list[int] = []
    with store.transaction() as c:
        for path, digest, size, mtime in current:
            row = c.execute("SELECT id FROM items WHERE path = ? AND hash = ?", (encode_path(path), digest)).fetchone()
            if row is not None:
                c.execute("UPDATE items SET present = 1, size = ?, mtime_ns = ? WHERE id = ?", (size, mtime, row["id"]))
                ids.append(int(row["id"]))
            else:
                cursor = c.execute(
                    "INSERT INTO items (path, hash, present, first_seen, size, mtime_ns) VALUES (?, ?, 1, ?, ?, ?)",
                    (encode_path(path), digest, time.time(), size, mtime),
                )
                ids.append(int(cursor.lastrowid or 0))
    return ids
