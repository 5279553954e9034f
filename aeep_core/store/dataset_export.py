"""Exporting a project's labels *for training*: one folder per class (what torchvision's
``ImageFolder`` and most trainers read) for images, labelled JSONL for event sequences.

Read-only, like :mod:`aeep_core.store.export`: works while the labelling app has the
project open. The result is built in a hidden sibling folder and renamed into place, so
a failed export leaves nothing half-written behind.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aeep_core.pool import DataError
from aeep_core.store.classes import read_classes
from aeep_core.store.db import Store

LINKS = ("symlink", "hardlink", "copy")
SKIPPED_FOLDER = "_skipped"
MANIFEST = "aeep-export.json"


@dataclass
class FolderExport:
    """What an export wrote: items per split and class, and what it left out."""

    out: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # split ("" without one) -> class -> items
    skipped: int = 0  # skipped answers written (only with include_skipped)
    missing: int = 0  # labelled items whose file has left the data folder
    warnings: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return sum(sum(c.values()) for c in self.counts.values())


def parse_split(text: str) -> tuple[str, float]:
    """``val=0.2`` -> ("val", 0.2); a one-line DataError for anything else."""
    name, _, value = text.partition("=")
    try:
        fraction = float(value)
    except ValueError:
        fraction = -1.0
    if not name.strip() or not 0.0 < fraction < 1.0 or name.strip() in ("train", SKIPPED_FOLDER):
        raise DataError(f"--split {text}: give NAME=FRACTION with a fraction between 0 and 1, e.g. --split val=0.2")
    return name.strip(), fraction


def _folder_names(classes: list[str]) -> list[str]:
    """One safe, distinct folder name per class: a class name may hold '/' or be '..'."""
    names: list[str] = []
    for i, c in enumerate(classes):
        safe = "".join("_" if ch in "/\\\0" else ch for ch in c).strip()
        if safe in ("", ".", "..") or safe == SKIPPED_FOLDER or safe in names:
            safe = f"class{i}_{safe.strip('.')}".rstrip("_")
        names.append(safe)
    return names


def _assign(paths_by_class: dict[int, list[str]], split: tuple[str, float] | None, seed: int) -> dict[str, str]:
    """path -> split name ("" without a split): stratified by class, seeded, and leaving at
    least one item of every class in train and, when a class has two, one in the split."""
    where: dict[str, str] = {}
    rng = np.random.default_rng([seed, 14])
    for label in sorted(paths_by_class):
        members = sorted(paths_by_class[label])
        if split is None:
            where.update(dict.fromkeys(members, ""))
            continue
        order = rng.permutation(len(members))
        n_val = 0 if len(members) < 2 else min(len(members) - 1, max(1, round(split[1] * len(members))))
        for rank, i in enumerate(order):
            where[members[i]] = split[0] if rank < n_val else "train"
    return where


def _place(src: Path, dest: Path, link: str) -> None:
    if link == "symlink":
        os.symlink(src, dest)
    elif link == "hardlink":
        try:
            os.link(src, dest)
        except OSError as exc:
            if exc.errno in (errno.EXDEV, errno.EPERM, errno.EMLINK):
                raise DataError(
                    f"{src}: cannot hard-link into {dest.parent} ({exc.strerror}); use --link copy or --link symlink"
                ) from exc
            raise
    else:
        shutil.copy2(src, dest)


def _fresh_target(out: Path) -> Path:
    """The temp folder to build in; refuses an ``out`` that already holds something."""
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out}: already exists and is not empty; give a new folder or remove it")
    tmp = out.with_name(f".{out.name}.{os.getpid()}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def _finish(tmp: Path, out: Path, manifest: dict[str, Any]) -> None:
    (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    if out.is_dir():
        out.rmdir()  # empty (checked before): the rename needs the name free
    os.replace(tmp, out)


def export_for_training(
    project: Path, out: Path, link: str = "symlink", split: tuple[str, float] | None = None, include_skipped: bool = False
) -> FolderExport:
    """Write the project's labels under ``out`` for a trainer: ``out/<class>/<file>`` (or
    ``out/train/<class>/…`` and ``out/<split>/<class>/…``) for images, ``labelled.jsonl``
    (or ``train.jsonl`` and ``<split>.jsonl``) for sequences; skipped answers go to
    ``out/_skipped/`` (``skipped.jsonl``) only when asked. Files are linked or copied,
    never moved; ``aeep-export.json`` records classes, counts and settings."""
    if link not in LINKS:
        raise DataError(f"--link {link}: use one of {', '.join(LINKS)}")
    store = Store.open(project, read_only=True)
    try:
        settings = store.setting("project")
        root, files = store.setting("data_path"), store.setting("items_are_files", True)
        labelled = store.labelled_items()
        skipped = store.skipped_items() if include_skipped else []
        project_classes = read_classes(store)
    finally:
        store.close()
    classes = project_classes.names  # by index: labels are indices; a merged class holds none
    seed = int(settings.get("seed", 0))
    by_class: dict[int, list[str]] = {}
    for r in labelled:
        by_class.setdefault(int(r["label"]), []).append(r["path"])
    where = _assign(by_class, split, seed)
    label_of = {r["path"]: int(r["label"]) for r in labelled}
    present = {r["path"]: bool(r["present"]) for r in [*labelled, *skipped]}
    out = Path(out).expanduser()
    tmp = _fresh_target(out)
    try:
        if files:
            result = _write_folders(Path(root), out, tmp, classes, label_of, where, [r["path"] for r in skipped], present, link)
        else:
            result = _write_sequences(Path(root), out, tmp, classes, label_of, where, [r["path"] for r in skipped])
        if split is not None:
            for c, n in result.counts.get("train", {}).items():
                if n and not result.counts.get(split[0], {}).get(c):
                    result.warnings.append(
                        f"{split[0]} holds no '{c}' (too few labelled); ImageFolder's class indices then differ from train's"
                    )
        _finish(
            tmp,
            out,
            {
                "classes": [c.name for c in project_classes.live],
                "labels_by": "a person, in aeep-tui (predictions are never exported as labels)",
                "counts": result.counts,
                "split": None if split is None else {"name": split[0], "fraction": split[1], "seed": seed},
                "link": link,
                "skipped_written": result.skipped,
                "missing_left_out": result.missing,
                "data_path": root,
            },
        )
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return result


def _write_folders(
    root: Path,
    out: Path,
    tmp: Path,
    classes: list[str],
    label_of: dict[str, int],
    where: dict[str, str],
    skipped: list[str],
    present: dict[str, bool],
    link: str,
) -> FolderExport:
    folders = _folder_names(classes)
    result = FolderExport(out)
    used: set[Path] = set()
    jobs: list[tuple[str, str, str, str | None]] = [
        (p, where[p], folders[label_of[p]], classes[label_of[p]]) for p in sorted(label_of)
    ]
    jobs += [(p, "", SKIPPED_FOLDER, None) for p in skipped]
    for rel, part, folder, cls in jobs:
        src = root / rel
        if not present[rel] or not src.is_file():
            result.missing += 1
            continue
        # Flattened, so files of one class from different sub-folders cannot collide.
        dest_dir = tmp / part / folder if part else tmp / folder
        dest = dest_dir / rel.replace(os.sep, "__")
        n = 1
        while dest in used:
            n += 1
            dest = dest.with_name(f"{Path(rel).stem}-{n}{Path(rel).suffix}")
        used.add(dest)
        dest_dir.mkdir(parents=True, exist_ok=True)
        _place(src.resolve(), dest, link)
        if cls is None:
            result.skipped += 1
        else:
            result.counts.setdefault(part, {}).setdefault(cls, 0)
            result.counts[part][cls] += 1
    return result


def _write_sequences(
    root: Path, out: Path, tmp: Path, classes: list[str], label_of: dict[str, int], where: dict[str, str], skipped: list[str]
) -> FolderExport:
    from aeep_core.sequences import looks_like_sequences
    from aeep_core.sequences.loading import read_records

    if not looks_like_sequences(root):
        raise DataError(
            f"{root}: this project's items are rows of IDX files, not files to put in folders; use --format csv or jsonl"
        )
    records = {r.id: r for r in read_records(root)[0]}
    result = FolderExport(out)
    groups: dict[str, list[str]] = {}
    for name in sorted(label_of):
        if name not in records:
            result.missing += 1
            continue
        part = where[name] or "labelled"
        groups.setdefault(part, []).append(json.dumps({**_record(records[name]), "label": classes[label_of[name]]}))
        key = where[name]
        result.counts.setdefault(key, {}).setdefault(classes[label_of[name]], 0)
        result.counts[key][classes[label_of[name]]] += 1
    for name in skipped:
        if name in records:
            groups.setdefault("skipped", []).append(json.dumps(_record(records[name])))
            result.skipped += 1
    for part, lines in groups.items():
        (tmp / f"{part}.jsonl").write_text("".join(line + "\n" for line in lines), encoding="utf-8", errors="surrogateescape")
    return result


def _record(r: Any) -> dict[str, Any]:
    """A patient in the JSONL format the sequence reader reads (no label)."""
    return {"id": r.id, "events": r.events}
