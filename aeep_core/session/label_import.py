"""Starting from labels someone already has: a ``path,label`` CSV read, checked against the
project, and recorded as the starting set before the first batch.

Nothing is ever overwritten: an unknown class, a file the project does not hold, two
answers for one file in the CSV, or a file the project already labelled differently is
reported in one line (``FILE:LINE: what; the fix``) and left out.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

from aeep_core.learning.learner import SKIPPED
from aeep_core.pool import DataError
from aeep_core.session.session import LabellingSession


@dataclass(frozen=True)
class LabelRow:
    """One answer of the file: its line number, the path as written, the class as written."""

    line: int
    path: str
    label: str


@dataclass
class ImportReport:
    """What an import did: labels recorded, lines that agreed with the project already,
    and one line for each problem."""

    imported: int = 0
    already: int = 0
    problems: list[str] = field(default_factory=list)


def read_label_file(path: Path) -> list[LabelRow]:
    """The rows of a ``path,label`` CSV: with a header naming ``path`` and ``label`` (such
    as ``aeep-tui export``'s own), else the first two columns; blank lines ignored. Names
    that are not valid UTF-8 come through as the file system spells them."""
    try:
        # surrogateescape: a path's undecodable bytes survive to match the file's real name
        with open(path, encoding="utf-8-sig", errors="surrogateescape", newline="") as f:
            raw = list(enumerate(csv.reader(f), start=1))
    except OSError as exc:
        raise DataError(f"{path}: cannot read the labels file ({exc.strerror}); check the path") from exc
    except csv.Error as exc:
        raise DataError(f"{path}: not a CSV file ({exc}); give path,label lines") from exc
    rows = [(n, cells) for n, cells in raw if any(c.strip() for c in cells)]
    if not rows:
        raise DataError(f"{path}: no labels in the file; give path,label lines")
    head = [c.strip().lower() for c in rows[0][1]]
    cols = (0, 1)
    if "path" in head and "label" in head:
        cols = (head.index("path"), head.index("label"))
        rows = rows[1:]
    return [LabelRow(n, _cell(cells, cols[0]), _cell(cells, cols[1])) for n, cells in rows]


def _cell(cells: list[str], i: int) -> str:
    return cells[i].strip() if i < len(cells) else ""


def shown(text: str | Path) -> str:
    """``text`` safe to print anywhere: bytes that are not UTF-8 as ``\\xff`` escapes."""
    return str(text).encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def classes_in(rows: list[LabelRow]) -> list[str]:
    """The distinct class names of the rows, sorted: a new project's classes when none are given."""
    return sorted({r.label for r in rows if r.label})


def _locate(session: LabellingSession) -> dict[str, int]:
    """Every way a row may name an item -> its pool position: absolute (resolved) paths and
    paths relative to the data folder for files; pool names for IDX rows and patients."""
    pool = session.pool
    where = {name: i for i, name in enumerate(pool.names)}
    for i, p in enumerate(pool.meta.get("paths") or []):
        where[p] = i
    return where


def import_label_file(session: LabellingSession, source: Path, rows: list[LabelRow] | None = None) -> ImportReport:
    """Check ``source``'s rows against ``session`` and record the good ones as the starting
    set (:meth:`LabellingSession.import_labels`); every problem is one line of the report."""
    rows = read_label_file(source) if rows is None else rows
    classes = session.classes.current
    names = [c.name for c in classes.live]
    where = _locate(session)
    root = Path(session.pool.meta.get("root") or ".")
    current = session.current_answers()
    report = ImportReport()
    chosen: dict[int, tuple[int, LabelRow]] = {}  # pool item -> (class, first row naming it)
    refused: set[int] = set()
    say = report.problems.append
    for r in rows:
        at, path = f"{shown(source)}:{r.line}", shown(r.path)
        if not r.path or not r.label:
            say(f"{at}: expected path,label; fix or remove the line")
            continue
        item = where.get(r.path)
        if item is None:
            candidate = Path(r.path) if Path(r.path).is_absolute() else root / r.path
            item = where.get(str(candidate.resolve()))
        if item is None:
            say(f"{at}: {path} is not an item of {root} (no such file, not an image, or undecodable); fix the path")
            continue
        found = classes.find(r.label)  # a class merged since the file was written names where it went
        if found is None:
            say(f"{at}: class '{shown(r.label)}' is not one of this project's classes ({', '.join(names)}); fix the label")
            continue
        y = found.index
        if item in chosen and chosen[item][0] != y:
            first = chosen[item][1]
            say(f"{at}: {path} is '{r.label}' here but '{first.label}' on line {first.line}; neither is imported, keep one")
            refused.add(item)
            continue
        chosen.setdefault(item, (y, r))
    answers = []
    for item, (y, r) in chosen.items():
        if item in refused:
            continue
        had = current.get(item)
        if had == y:
            report.already += 1
        elif had is not None:
            kept = "skipped" if had == SKIPPED else f"'{classes[had].name}'"
            say(f"{shown(source)}:{r.line}: {shown(r.path)} is already {kept} in the project; kept that (relabel it in the app)")
        else:
            answers.append((item, y))
    session.import_labels(answers, source=Path(source).name)
    report.imported = len(answers)
    return report
