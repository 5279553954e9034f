"""Exporting a project's labels (CSV, JSONL) without opening it for labelling.

A read-only connection and no writer lock: works while the labelling app has it open.
"""

from __future__ import annotations

import csv
import io
import json
import os
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aeep_core.store.classes import read_classes
from aeep_core.store.db import Store

EXPORT_FIELDS = ("path", "label", "labelled_at", "round", "exploration", "missing")
#: the columns added by ``--predictions``: each row says whether it is a person's label or a
#: model's guess, and a guess has its class in ``predicted``, never in ``label``.
PREDICTION_FIELDS = ("kind", "predicted", "confidence")


def export_rows(project: Path) -> list[dict[str, Any]]:
    """One row per item whose current answer is a class (skips and taken-back answers are
    not labels): its path (absolute for files, the pool name otherwise), class name, when
    (ISO 8601, UTC), the round, whether it was an exploration pick, and whether the item
    has vanished from the data folder. Answers of an unconfirmed batch are included."""
    store = Store.open(project, read_only=True)
    try:
        classes = read_classes(store).names  # by index: a label names its class as it is called now
        root = store.setting("data_path")
        files = store.setting("items_are_files", True)
        rows = store.labelled_items()
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
    fields = EXPORT_FIELDS + (PREDICTION_FIELDS if rows and "kind" in rows[0] else ())
    writer = csv.DictWriter(out, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: (str(v).lower() if isinstance(v, bool) else "" if v is None else v) for k, v in r.items()})
    return out.getvalue()


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temp file and a rename: never half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    # surrogateescape: a file name that is not valid UTF-8 is written as its own bytes
    with open(tmp, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
