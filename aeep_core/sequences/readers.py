"""Readers that turn event files into patient records (time-ordered event lists).

Three formats:

* JSONL, one patient a line: ``{"id": ..., "events": [{"time", "code", "text", "type"}], "label": ...}``
  (``label`` optional; ``text`` and ``type`` optional per event);
* a long CSV with header ``patient_id,time,code[,text,type[,label]]``, one event a row;
* a Synthea CSV export directory (``patients.csv`` plus whichever of ``conditions.csv``,
  ``medications.csv``, ... exist), in any of the Synthea column layouts.

JSONL and long CSV are files a person wrote for this app, so a malformed line is an error that
names the file, the line and the fix. Synthea exports are published data we cannot edit, so
there a broken file or row is left out and reported (``SkippedFile``) instead.
"""

from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aeep_core.pool import DataError, SkippedFile

#: Event dict keys, as stored in ``Pool.meta["events"][i]``.
EVENT_KEYS = ("time", "code", "text", "type")
DEFAULT_TYPE = "event"
# A patient's events at the same instant are ordered by type, so the order never depends on
# the order of files or rows (it feeds the embedding window and the matrix).
_TYPE_ORDER = {
    t: i for i, t in enumerate(["encounter", "condition", "procedure", "medication", "immunization", "careplan", "allergy"])
}
LONG_CSV_REQUIRED = ("patient_id", "time", "code")
TIME_HELP = "use ISO-8601 such as 2019-03-01 or 2019-03-01T14:05:00Z"


@dataclass
class PatientRecord:
    """One patient: id, events sorted by time, optional ground-truth label and birth date."""

    id: str
    events: list[dict[str, str]]
    label: str | None = None
    birthdate: str | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def parse_time(value: Any) -> str:
    """Normalise an ISO-8601 date or datetime to ``YYYY-MM-DDTHH:MM:SS`` (UTC, naive).

    Raises ``ValueError`` when ``value`` is not ISO-8601. Aware times are converted to UTC
    so that exports mixing dates and ``...Z`` timestamps sort on one clock.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"time {value!r} is empty or not a string")
    text = value.strip()
    try:
        dt = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith(("Z", "z")) else text)
    except ValueError:
        raise ValueError(f"time {value!r} is not ISO-8601") from None
    if dt.tzinfo is not None:
        dt = dt.astimezone(timezone.utc).replace(tzinfo=None)
    return dt.isoformat(timespec="seconds")


def sort_events(events: list[dict[str, str]]) -> list[dict[str, str]]:
    """Events in time order; ties broken by type then code, so the order is reproducible."""
    return sorted(events, key=lambda e: (e["time"], _TYPE_ORDER.get(e["type"], 99), e["type"], e["code"]))


def _event(time: Any, code: Any, text: Any = "", etype: Any = "") -> dict[str, str]:
    code_s = "" if code is None else str(code).strip()
    if not code_s:
        raise ValueError("code is empty")
    return {
        "time": parse_time(time),
        "code": code_s,
        "text": "" if text is None else str(text).strip(),
        "type": (str(etype).strip().lower() if etype else "") or DEFAULT_TYPE,
    }


def _label(value: Any) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, bool):  # JSON true/false: 1/0, like the usual binary task encoding
        return str(int(value))
    return str(value).strip()


# --- JSONL ---------------------------------------------------------------------------------
def read_jsonl(path: Path | str) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """Read one patient per line; return (records, skipped). Patients without events are skipped."""
    path = Path(path)
    records: list[PatientRecord] = []
    skipped: list[SkippedFile] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{where}: not valid JSON ({exc.msg}); write one patient object per line") from None
            if not isinstance(obj, dict) or "id" not in obj:
                raise DataError(f'{where}: no "id"; each line must be {{"id": ..., "events": [...]}}')
            pid = str(obj["id"])
            if pid in seen:
                raise DataError(f"{where}: patient id {pid!r} already used on line {seen[pid]}; give each patient one line")
            seen[pid] = lineno
            raw = obj.get("events")
            if not isinstance(raw, list):
                raise DataError(f'{where}: "events" must be a list of {{"time", "code", "text", "type"}} objects')
            events = []
            for j, ev in enumerate(raw, start=1):
                if not isinstance(ev, dict):
                    raise DataError(f'{where}: event {j} is not an object; use {{"time": ..., "code": ...}}')
                for key in ("time", "code"):
                    if key not in ev:
                        raise DataError(f'{where}: event {j} has no "{key}"; every event needs "time" and "code"')
                try:
                    events.append(_event(ev["time"], ev["code"], ev.get("text", ""), ev.get("type", "")))
                except ValueError as exc:
                    fix = TIME_HELP if "time" in str(exc) else "give every event a non-empty code"
                    raise DataError(f"{where}: event {j}: {exc}; {fix}") from None
            if not events:
                skipped.append(SkippedFile(where, f"patient {pid!r} has no events; left out (nothing to show or learn)"))
                continue
            records.append(PatientRecord(pid, sort_events(events), _label(obj.get("label")), source=str(path)))
    return records, skipped


def write_jsonl(records: list[PatientRecord], path: Path | str) -> None:
    """Write records in the JSONL format :func:`read_jsonl` reads (labels included)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            obj: dict[str, Any] = {"id": r.id, "events": r.events}
            if r.label is not None:
                obj["label"] = r.label
            fh.write(json.dumps(obj, separators=(",", ":")) + "\n")


# --- long CSV ------------------------------------------------------------------------------
def csv_header(path: Path) -> list[str]:
    """The lower-cased, stripped header of a CSV file ([] when unreadable or empty)."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as fh:
            row = next(csv.reader(fh), [])
    except (OSError, UnicodeDecodeError, csv.Error):
        return []
    return [c.strip().lower() for c in row]


def is_long_csv(path: Path) -> bool:
    """Whether ``path`` is a CSV whose header has patient_id, time and code."""
    return path.suffix.lower() == ".csv" and set(LONG_CSV_REQUIRED) <= set(csv_header(path))


def read_long_csv(path: Path | str) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """Read ``patient_id,time,code[,text,type[,label]]`` rows (any order) into records."""
    path = Path(path)
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh)
        header = [c.strip().lower() for c in next(reader, [])]
        missing = [c for c in LONG_CSV_REQUIRED if c not in header]
        if missing:
            raise DataError(
                f"{path}:1: header lacks {', '.join(missing)} (found: {','.join(header) or 'nothing'}); "
                "the long format is patient_id,time,code[,text,type]"
            )
        col = {c: header.index(c) for c in header}
        events: dict[str, list[dict[str, str]]] = {}
        labels: dict[str, str | None] = {}
        for row in reader:
            line = reader.line_num
            if not any(cell.strip() for cell in row):
                continue
            if len(row) < len(header):
                raise DataError(f"{path}:{line}: {len(row)} fields for {len(header)} columns; fill in or quote the row")
            get = lambda name, row=row: row[col[name]] if name in col else ""  # noqa: E731
            pid = get("patient_id").strip()
            if not pid:
                raise DataError(f"{path}:{line}: empty patient_id; every row names its patient")
            try:
                events.setdefault(pid, []).append(_event(get("time"), get("code"), get("text"), get("type")))
            except ValueError as exc:
                fix = TIME_HELP if "time" in str(exc) else "give every row a non-empty code"
                raise DataError(f"{path}:{line}: {exc}; {fix}") from None
            lab = _label(get("label"))
            if lab is not None:
                if labels.get(pid) not in (None, lab):
                    raise DataError(f"{path}:{line}: patient {pid!r} has labels {labels[pid]!r} and {lab!r}; use one")
                labels[pid] = lab
    if not events:
        raise DataError(f"{path}: no event rows under the header; add rows patient_id,time,code")
    records = [PatientRecord(pid, sort_events(evs), labels.get(pid), source=str(path)) for pid, evs in events.items()]
    return records, []


# --- Synthea export ------------------------------------------------------------------------
@dataclass(frozen=True)
class _Table:
    file: str
    type: str
    time_cols: tuple[str, ...]  # first present one is the event time (layouts differ by version)


SYNTHEA_TABLES = (
    _Table("encounters.csv", "encounter", ("START", "DATE")),
    _Table("conditions.csv", "condition", ("START",)),
    _Table("procedures.csv", "procedure", ("START", "DATE")),
    _Table("medications.csv", "medication", ("START",)),
    _Table("immunizations.csv", "immunization", ("DATE",)),
    _Table("careplans.csv", "careplan", ("START",)),
    _Table("allergies.csv", "allergy", ("START",)),
)


def is_synthea_export(folder: Path) -> bool:
    """A folder with ``patients.csv`` and at least one event table of a Synthea CSV export."""
    return (folder / "patients.csv").is_file() and any((folder / t.file).is_file() for t in SYNTHEA_TABLES)


def _read_rows(path: Path, required: tuple[str, ...]):
    """Yield (line, dict of the wanted upper-cased columns) per row; raise DataError on a bad header."""
    with path.open(encoding="utf-8-sig", newline="", errors="replace") as fh:
        reader = csv.reader(fh)
        header = [c.strip().upper() for c in next(reader, [])]
        missing = [c for c in required if c not in header]
        if missing:
            raise DataError(f"lacks column {', '.join(missing)} (header: {','.join(header)[:120]})")
        for row in reader:
            if len(row) != len(header):
                yield reader.line_num, None  # truncated or over-long row: the caller counts it
                continue
            yield reader.line_num, dict(zip(header, row))


_NUMERIC_DATE = re.compile(r"^(\d{1,2})[-/](\d{1,2})[-/](\d{4})$")


def _numeric_date_layout(path: Path, tcol: str) -> str | None:
    """``%d-%m-%Y`` or ``%m-%d-%Y`` when a file writes its dates that way, else None.

    One export writes ``DD-MM-YYYY``; the layout is decided for the whole file (a day above
    12 in one position and never in the other), because a single date like 01-05-2001 cannot
    tell. Files that are ISO-8601 (the first row parses) are not scanned.
    """
    firsts, seconds, n = 0, 0, 0
    for i, (_, row) in enumerate(_read_rows(path, (tcol,))):
        value = "" if row is None else row[tcol].strip()
        if i == 0:
            try:
                parse_time(value)
                return None
            except ValueError:
                pass
        m = _NUMERIC_DATE.match(value)
        if m is None:
            continue
        n += 1
        firsts += int(m.group(1)) > 12
        seconds += int(m.group(2)) > 12
    if n and firsts and not seconds:
        return "%d-%m-%Y"
    if n and seconds and not firsts:
        return "%m-%d-%Y"
    return None


def _strptime_iso(value: str, layout: str) -> str:
    try:
        return datetime.strptime(value.strip().replace("/", "-"), layout).isoformat(timespec="seconds")
    except ValueError:
        raise ValueError(f"time {value!r} does not match {layout}") from None


def read_synthea_export(folder: Path | str) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """Turn one Synthea CSV export into patient records; broken files/rows are skipped and reported.

    Every patient of ``patients.csv`` becomes a record (birth date kept for cohort index dates);
    patients without any event are reported as skipped. Unknown extra columns are ignored.
    """
    folder = Path(folder)
    skipped: list[SkippedFile] = []
    pfile = folder / "patients.csv"
    patients: dict[str, PatientRecord] = {}
    try:
        for _line, row in _read_rows(pfile, ("ID", "BIRTHDATE")):  # header is upper-cased: Id and ID alike
            pid = None if row is None else row["ID"].strip()
            if row is None or not pid:
                continue
            patients[pid] = PatientRecord(pid, [], None, birthdate=row["BIRTHDATE"].strip() or None, source=str(folder))
    except (DataError, OSError) as exc:
        raise DataError(f"{pfile}: {exc}; a Synthea export needs a readable patients.csv") from None
    if not patients:
        raise DataError(f"{pfile}: no patient rows; a Synthea export needs a readable patients.csv")
    for table in SYNTHEA_TABLES:
        path = folder / table.file
        if not path.is_file():
            continue
        bad, first_bad, unknown_patient = 0, "", 0
        try:
            header = {c.upper() for c in csv_header(path)}
            tcol = next((c for c in table.time_cols if c in header), table.time_cols[0])
            layout = _numeric_date_layout(path, tcol)
            if layout is not None:
                skipped.append(SkippedFile(str(path), f"{tcol} is not ISO-8601; read as {layout} (unambiguous in this file)"))
            for line, row in _read_rows(path, ("PATIENT", "CODE", tcol)):
                try:
                    if row is None:
                        raise ValueError("wrong number of fields (truncated row?)")
                    rec = patients.get(row["PATIENT"].strip())
                    if rec is None:
                        unknown_patient += 1
                        continue
                    when = row[tcol] if layout is None else _strptime_iso(row[tcol], layout)
                    rec.events.append(_event(when, row["CODE"], row.get("DESCRIPTION", ""), table.type))
                except ValueError as exc:
                    bad += 1
                    first_bad = first_bad or f"line {line}: {exc}"
        except (DataError, OSError, csv.Error) as exc:
            skipped.append(SkippedFile(str(path), f"{exc}; file left out"))
            continue
        if bad:
            skipped.append(SkippedFile(str(path), f"{bad} rows left out (first at {first_bad})"))
        if unknown_patient:
            skipped.append(SkippedFile(str(path), f"{unknown_patient} rows name patients not in patients.csv; left out"))
    records = []
    for rec in patients.values():
        if rec.events:
            rec.events = sort_events(rec.events)
            records.append(rec)
    if len(records) < len(patients):
        skipped.append(SkippedFile(str(pfile), f"{len(patients) - len(records)} patients have no events; left out"))
    return records, skipped


def merge_records(groups: list[list[PatientRecord]]) -> tuple[list[PatientRecord], int]:
    """Merge patients that appear in several exports (same id): union of their events.

    Returns (records in first-seen order, number of duplicates merged). Identical events
    (same time, type, code) are kept once, so an export repeated in full adds nothing.
    """
    merged: dict[str, PatientRecord] = {}
    dups = 0
    for group in groups:
        for rec in group:
            have = merged.get(rec.id)
            if have is None:
                merged[rec.id] = rec
                continue
            dups += 1
            seen = {(e["time"], e["type"], e["code"]) for e in have.events}
            extra = [e for e in rec.events if (e["time"], e["type"], e["code"]) not in seen]
            have.events = sort_events(have.events + extra)
            have.birthdate = have.birthdate or rec.birthdate
            have.label = have.label if have.label is not None else rec.label
    return list(merged.values()), dups
