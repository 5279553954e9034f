"""Reading projects without opening them for labelling: listing, finding, exporting.

Everything here uses read-only connections and takes no writer lock, so it works
while the labelling app has the project open.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aeep_core import locations
from aeep_core.store.db import Store
from aeep_core.store.errors import StoreError

EXPORT_FIELDS = ("path", "label", "labelled_at", "round", "exploration", "missing")


def all_projects() -> list[Path]:
    """Project folders under the user data directory, by name."""
    root = locations.projects_dir()
    if not root.is_dir():
        return []
    return sorted(p for p in root.iterdir() if locations.project_db(p).is_file())


def resolve_project(target: str | Path) -> Path:
    """A project folder from a project folder, a data folder, or a project's name."""
    path = Path(target).expanduser()
    if locations.project_db(path).is_file():
        return path
    if path.is_dir() and locations.project_db(locations.project_folder(path)).is_file():
        return locations.project_folder(path)
    named = [p for p in all_projects() if p.name == str(target)]
    if not named:
        for p in all_projects():
            try:
                if summary(p)["name"] == str(target):
                    named.append(p)
            except StoreError:
                continue
    if len(named) == 1:
        return named[0]
    if len(named) > 1:
        raise StoreError(f"{target}: several projects have this name ({', '.join(p.name for p in named)}); give the folder")
    raise StoreError(f"{target}: no project found (give a data folder, a project folder, or a name from 'aeep-tui projects')")


def summary(project: Path) -> dict[str, Any]:
    """name, data_path, labelled (current answers other than skip), total (present items),
    rounds (confirmed), last_opened (epoch seconds) of one project."""
    store = Store.open(project, read_only=True)
    try:
        labelled = store.query(
            "SELECT COUNT(*) FROM labels l JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) last "
            "ON last.id = l.id JOIN items i ON i.id = l.item_id WHERE l.label >= 0 AND i.present = 1"
        )[0][0]
        return {
            "name": store.setting("name", project.name),
            "data_path": store.setting("data_path"),
            "labelled": labelled,
            "total": store.query("SELECT COUNT(*) FROM items WHERE present = 1")[0][0],
            "rounds": store.query("SELECT COUNT(*) FROM rounds WHERE status = 'done'")[0][0],
            "last_opened": store.setting("last_opened"),
        }
    finally:
        store.close()


def export_rows(project: Path) -> list[dict[str, Any]]:
    """One row per item whose current answer is a class (skips and taken-back answers are
    not labels): its path (absolute for files, the pool name otherwise), class name, when
    (ISO 8601, UTC), the round, whether it was an exploration pick, and whether the item
    has vanished from the data folder. Answers of an unconfirmed batch are included."""
    store = Store.open(project, read_only=True)
    try:
        classes = store.setting("project")["classes"]
        root = store.setting("data_path")
        files = store.setting("items_are_files", True)
        rows = store.query(
            "SELECT i.path, i.present, l.label, l.at, l.round, ri.exploration FROM labels l "
            "JOIN (SELECT item_id, MAX(id) AS id FROM labels GROUP BY item_id) last ON last.id = l.id "
            "JOIN items i ON i.id = l.item_id "
            "LEFT JOIN round_items ri ON ri.round = l.round AND ri.item_id = l.item_id "
            "WHERE l.label >= 0 ORDER BY l.round, ri.position, i.path"
        )
    finally:
        store.close()
    return [
        {
            "path": str(Path(root) / r["path"]) if files and root else r["path"],
            "label": classes[r["label"]],
            "labelled_at": datetime.fromtimestamp(r["at"], timezone.utc).isoformat(timespec="milliseconds"),
            "round": r["round"],
            "exploration": bool(r["exploration"]),
            "missing": not r["present"],
        }
        for r in rows
    ]


def format_export(rows: list[dict[str, Any]], fmt: str) -> str:
    """``csv`` (header, booleans as true/false) or ``jsonl`` (one object a line)."""
    if fmt == "jsonl":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    if fmt != "csv":
        raise ValueError(f"unknown export format {fmt!r}; use csv or jsonl")
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=EXPORT_FIELDS, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else v) for k, v in r.items()})
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
