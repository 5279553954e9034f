"""OMOP Common Data Model (5.3 / 5.4) folders as patient records, read with DuckDB.

An OMOP folder holds one file per table -- CSV (comma or tab), gzipped CSV or Parquet, its
name in any case (``CONDITION_OCCURRENCE.csv``, ``condition_occurrence.parquet``). We read
``person`` (required: who the patients are, and their birth dates for age matching) and
whichever event tables are present:

=====================  ============  =====================================================
table                  event type    time (datetime, else date)
=====================  ============  =====================================================
visit_occurrence       encounter     visit_start_datetime / visit_start_date
condition_occurrence   condition     condition_start_datetime / condition_start_date
procedure_occurrence   procedure     procedure_datetime / procedure_date
drug_exposure          medication    drug_exposure_start_datetime / ..._start_date
measurement            measurement   measurement_datetime / measurement_date
observation            observation   observation_datetime / observation_date
=====================  ============  =====================================================

An event's code is its standard ``*_concept_id`` (the code researchers define cohorts
with), or its ``*_source_value`` when the concept is 0 or absent (unmapped rows are common
in real extracts). Its text is the concept's name from ``concept`` when that table has it,
else the source value. The type names follow the Synthea reader where they mean the same
(drug exposure = medication, visit = encounter), so both sources embed and display alike.

Unlike Synthea exports, an OMOP folder is the user's own extract: a malformed row (wrong
number of fields, a date that is not a date, no date at all) is an error naming the table,
line and column; rows with neither concept nor source value, and rows of persons absent
from ``person``, are left out and counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from aeep_core.pool import DataError, SkippedFile
from aeep_core.sequences import tables
from aeep_core.sequences.dbfolder import is_database_folder, read_database_folder
from aeep_core.sequences.readers import _TYPE_ORDER, PatientRecord
from aeep_core.sequences.tables import Progress, TableFile, find_table

_TIME = "TIMESTAMP WITH TIME ZONE"  # dates parse too, and "...Z" / "+02:00" land on UTC


@dataclass(frozen=True)
class OmopTable:
    """Where one OMOP event table keeps the columns an event needs."""

    name: str
    type: str
    concept: str
    date: str
    datetime: str
    source: str
    value: str = ""  # a numeric result shown in the text (measurements)
    unit: str = ""


OMOP_TABLES = (
    OmopTable(
        "visit_occurrence", "encounter", "visit_concept_id", "visit_start_date", "visit_start_datetime", "visit_source_value"
    ),
    OmopTable(
        "condition_occurrence",
        "condition",
        "condition_concept_id",
        "condition_start_date",
        "condition_start_datetime",
        "condition_source_value",
    ),
    OmopTable(
        "procedure_occurrence",
        "procedure",
        "procedure_concept_id",
        "procedure_date",
        "procedure_datetime",
        "procedure_source_value",
    ),
    OmopTable(
        "drug_exposure",
        "medication",
        "drug_concept_id",
        "drug_exposure_start_date",
        "drug_exposure_start_datetime",
        "drug_source_value",
    ),
    OmopTable(
        "measurement",
        "measurement",
        "measurement_concept_id",
        "measurement_date",
        "measurement_datetime",
        "measurement_source_value",
        value="value_as_number",
        unit="unit_source_value",
    ),
    OmopTable(
        "observation",
        "observation",
        "observation_concept_id",
        "observation_date",
        "observation_datetime",
        "observation_source_value",
        value="value_as_number",
        unit="unit_source_value",
    ),
)


class OmopSource(Protocol):
    """Where OMOP tables come from: a folder of files (:class:`FolderTables`) or a database
    (:class:`aeep_core.sequences.database.DatabaseTables`). The assembly below is one
    DuckDB query over the temp tables a source loads, so both give the same records."""

    where: str  # what messages call the source: the folder, or the URL (never a password)
    header: str  # where a table's column names are, after its name: " line 1" for files

    def has(self, name: str) -> bool:
        """Whether table ``name`` (lower-case canonical name) is present."""
        ...

    def shown(self, name: str) -> str:
        """What error messages call table ``name``."""
        ...

    def load(self, con: Any, name: str, types: dict[str, str], keep: list[str], view: str) -> list[str]:
        """Load columns ``keep`` of ``name`` (``types`` cast) into DuckDB temp table ``view``; return all its columns."""
        ...

    def locate(self, con: Any, name: str, condition: str) -> str:
        """Where the first row of ``name`` matching ``condition`` is ("line 5", "row 5"): errors only."""
        ...

    def close(self) -> None:
        """Let go of what the source holds (a database connection)."""
        ...


class FolderTables:
    """OMOP tables as files in one folder (CSV, gzipped CSV, Parquet; any name case)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.where, self.header = str(folder), " line 1"
        self._files = {spec: find_table(folder, spec) for spec in ("person", "concept", *(t.name for t in OMOP_TABLES))}

    def has(self, name: str) -> bool:
        return self._files.get(name) is not None

    def _file(self, name: str) -> TableFile:
        table = self._files[name]
        assert table is not None, name
        return table

    def shown(self, name: str) -> str:
        return self._file(name).shown

    def load(self, con: Any, name: str, types: dict[str, str], keep: list[str], view: str) -> list[str]:
        return tables.scan(con, self._file(name), types, keep, view)

    def locate(self, con: Any, name: str, condition: str) -> str:
        return tables.where_first(con, self._file(name), condition)

    def close(self) -> None:
        pass


def omop_event_tables(source: OmopSource) -> list[OmopTable]:
    """The OMOP event tables present in ``source`` (in :data:`OMOP_TABLES` order)."""
    return [spec for spec in OMOP_TABLES if source.has(spec.name)]


def is_omop_folder(folder: Path | str) -> bool:
    """Whether ``folder`` holds an OMOP ``person`` table or any OMOP event table (any case, CSV/Parquet),
    or is the folder that stands for a database (:func:`.database.database_folder`).

    Deliberately loose: a folder with ``condition_occurrence.csv`` but no ``person`` is still
    recognised as OMOP, so that reading it says "person is missing" instead of "no data".
    """
    folder = Path(folder)
    if not folder.is_dir():
        return False
    if is_database_folder(folder):
        return True
    return find_table(folder, "person") is not None or any(find_table(folder, t.name) for t in OMOP_TABLES)


def omop_source(folder: Path | str) -> OmopSource:
    """The table source of an OMOP folder: its files, or the database it stands for."""
    folder = Path(folder)
    if is_database_folder(folder):
        from aeep_core.sequences.database import DatabaseTables  # lazy: the driver is optional

        return DatabaseTables(read_database_folder(folder))
    return FolderTables(folder)


def _need(src: OmopSource, name: str, cols: list[str], wanted: list[str], fix: str) -> None:
    missing = [c for c in wanted if c not in cols]
    if missing:
        raise DataError(f"{src.shown(name)}{src.header}: no column {', '.join(missing)} (columns: {','.join(cols)[:160]}); {fix}")


def _pid(text: bool) -> str:
    """The person id as the readers key it: its text (records), or the integer itself (columns)."""
    return "trim(CAST(person_id AS VARCHAR))" if text else "person_id"


def _read_persons(con: Any, src: OmopSource, records: bool = True) -> dict[str, PatientRecord]:
    if not src.has("person"):
        raise DataError(
            f"{src.where}: no person table (person.csv or person.parquet); an OMOP folder needs it "
            "to know its patients -- export it with the event tables"
        )
    types = {"year_of_birth": "BIGINT", "month_of_birth": "BIGINT", "day_of_birth": "BIGINT", "birth_datetime": _TIME}
    keep = ["person_id", *types]
    if not records:
        types = {"person_id": "BIGINT"}  # OMOP's person_id is an integer: numbers join and sort faster than text
    cols = src.load(con, "person", types, keep, "t_person")
    _need(src, "person", cols, ["person_id"], "the person table must have person_id")
    y = "year_of_birth" if "year_of_birth" in cols else "NULL"
    m = "month_of_birth" if "month_of_birth" in cols else "NULL"
    d = "day_of_birth" if "day_of_birth" in cols else "NULL"
    bdt = "CAST(birth_datetime AS TIMESTAMP)" if "birth_datetime" in cols else "NULL"
    con.execute(f"CREATE OR REPLACE TEMP TABLE persons AS SELECT {_pid(records)} AS pid FROM t_person")
    if not records:  # the columnar reader numbers persons in SQL: no Python object per person
        if not con.execute("SELECT count(*) FROM persons WHERE pid IS NOT NULL").fetchall()[0][0]:
            raise DataError(f"{src.shown('person')}: no person rows; the person table lists the patients to read")
        return {}
    # Birth date: birth_datetime, else year-month-day (a missing month or day counts as 1).
    rows = con.execute(
        f"SELECT trim(CAST(person_id AS VARCHAR)) AS pid, COALESCE(strftime({bdt}, '%Y-%m-%d'), "
        f"strftime(TRY_CAST(printf('%04d-%02d-%02d', {y}, COALESCE({m}, 1), COALESCE({d}, 1)) AS DATE), '%Y-%m-%d')) "
        f"FROM t_person WHERE person_id IS NOT NULL ORDER BY TRY_CAST(pid AS BIGINT) NULLS LAST, pid"
    ).fetchall()
    if not rows:
        raise DataError(f"{src.shown('person')}: no person rows; the person table lists the patients to read")
    return {pid: PatientRecord(pid, [], None, birthdate=birth, source=src.where) for pid, birth in rows if pid}


def _read_concepts(con: Any, src: OmopSource) -> tuple[bool, list[SkippedFile]]:
    if not src.has("concept"):
        return False, [SkippedFile(f"{src.where}/concept", "no concept table: events are named by their source values")]
    cols = src.load(con, "concept", {"concept_id": "BIGINT"}, ["concept_id", "concept_name", "domain_id"], "t_concept")
    _need(src, "concept", cols, ["concept_id", "concept_name"], "the concept table needs concept_id and concept_name")
    return True, []


def _event_select(con: Any, spec: OmopTable, src: OmopSource, view: str, text: bool = True) -> tuple[str, int]:
    """Load one event table; return its part of the events query and its row count (``text``: values for the text too)."""
    types = {spec.concept: "BIGINT", spec.date: _TIME, spec.datetime: _TIME}
    if not text:
        types["person_id"] = "BIGINT"
    if spec.value and text:
        types[spec.value] = "DOUBLE"
    keep = ["person_id", spec.concept, spec.date, spec.datetime, spec.source] + ([spec.value, spec.unit] if text else [])
    cols = src.load(con, spec.name, types, [c for c in keep if c], view)
    _need(src, spec.name, cols, ["person_id"], "every OMOP event table has person_id")
    if spec.date not in cols and spec.datetime not in cols:
        _need(src, spec.name, cols, [spec.date], f"{spec.name} rows need a date")
    if spec.concept not in cols and spec.source not in cols:
        _need(src, spec.name, cols, [spec.concept], f"{spec.name} rows need a concept id or a source value")
    dt = f"CAST({spec.datetime} AS TIMESTAMP)" if spec.datetime in cols else "NULL"
    d = f"CAST({spec.date} AS TIMESTAMP)" if spec.date in cols else "NULL"
    undated = con.execute(f"SELECT count(*) FROM {view} WHERE {dt} IS NULL AND {d} IS NULL").fetchone()[0]
    if undated:
        raw = [c for c in (spec.date, spec.datetime) if c in cols]
        cond = " AND ".join(f"NULLIF(trim(CAST({c} AS VARCHAR)), '') IS NULL" for c in raw)
        where = src.locate(con, spec.name, cond)
        raise DataError(
            f"{src.shown(spec.name)} {where}, column {raw[0]}: no date ({undated} such rows); "
            "every event needs its date -- fill it in or remove those rows"
        )
    concept = spec.concept if spec.concept in cols else "NULL"
    source = f"NULLIF(trim(CAST({spec.source} AS VARCHAR)), '')" if spec.source in cols else "NULL"
    value = ""
    if text and spec.value in cols:
        unit = f"COALESCE(' ' || NULLIF(trim({spec.unit}), ''), '')" if spec.unit in cols else "''"
        value = f"COALESCE(' = ' || CAST({spec.value} AS VARCHAR) || {unit}, '')"
    n = con.execute(f"SELECT count(*) FROM {view}").fetchone()[0]
    sql = (
        f"SELECT {_pid(text)} AS pid, COALESCE({dt}, {d}) AS ts, "
        f"CAST({concept} AS BIGINT) AS cid, {source} AS src, {value or repr('')} AS val, "
        f"'{spec.type}' AS typ, '{spec.name}' AS tab, rowid AS rn FROM {view}"
    )
    return sql, int(n)


def read_omop(folder: Path | str, progress: Progress | None = None) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """Read an OMOP CDM folder (or the database a folder stands for) into patient records; return (records, skipped).

    Events are time-ordered. ``progress(done, total)`` is called as event rows are turned
    into records. Raises :class:`DataError` for a missing ``person`` table or a malformed
    row (naming table, line, column); rows that cannot become events are left out and
    reported in ``skipped``.
    """
    return read_omop_source(omop_source(folder), progress)


def read_omop_source(src: OmopSource, progress: Progress | None = None) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """:func:`read_omop` for any table source (a folder's files, a database's tables)."""
    try:
        return _assemble(src, progress)
    finally:
        src.close()


def stage_omop(con: Any, src: OmopSource, text: bool = True) -> tuple[dict[str, PatientRecord], list[SkippedFile], int, bool]:
    """Load ``src`` into DuckDB ``con``: temp table ``persons`` (pid), view ``ev`` (pid, ts, cid, src, val, typ, tab, rn)
    and, when present, ``t_concept``. Return (patients by id, in person order; skipped; event rows; has concepts).

    Shared by the record reader below and the columnar one (:mod:`.columnar`), so both
    read, check and report exactly the same rows. ``text=False`` (the columnar reader) skips
    what only the shown text needs: measurement values, the concept names, and a record
    per person (patients is then empty); and person ids are the integers OMOP makes them
    (a person_id that is not a whole number is then an error naming its row).
    """
    present = omop_event_tables(src)
    if not present:
        raise DataError(
            f"{src.where}: no OMOP event table (condition_occurrence, drug_exposure, procedure_occurrence, "
            "measurement, observation or visit_occurrence as .csv or .parquet, or as database tables)"
        )
    patients = _read_persons(con, src, records=text)
    parts, total = [], 0
    for i, spec in enumerate(present):
        sql, n = _event_select(con, spec, src, f"t_ev{i}", text)
        parts.append(sql)
        total += n
    # After the events: a database source then sends only the concepts they use.
    has_concepts, skipped = _read_concepts(con, src) if text else (False, [])
    # A view, not a copy: at 10^8 rows the copy alone took a quarter of the time (and twice the memory).
    con.execute("CREATE OR REPLACE TEMP VIEW ev AS " + " UNION ALL ".join(parts))
    skipped += _left_out(con, src)
    return patients, skipped, total, has_concepts


#: SQL ranking the event types as sort_events() does (ties at one instant).
TYPE_RANK = "CASE typ " + " ".join(f"WHEN '{t}' THEN {r}" for t, r in _TYPE_ORDER.items()) + " ELSE 99 END"
#: An event's code: its concept, else its source value (concept 0 or none).
CODE = "CASE WHEN cid IS NOT NULL AND cid <> 0 THEN CAST(cid AS VARCHAR) ELSE src END"


def _assemble(src: OmopSource, progress: Progress | None) -> tuple[list[PatientRecord], list[SkippedFile]]:
    con = tables.connect()
    try:
        patients, skipped, total, has_concepts = stage_omop(con, src)
        name = "c.concept_name" if has_concepts else "NULL"
        join = "LEFT JOIN t_concept c ON c.concept_id = ev.cid" if has_concepts else ""
        # Sorted here, in DuckDB, in the order sort_events() gives: Python only appends.
        sql = (
            f"SELECT pid, strftime(ts, '%Y-%m-%dT%H:%M:%S') AS t, code, COALESCE({name}, src, '') || val AS text, typ "
            f"FROM (SELECT *, {CODE} AS code FROM ev WHERE pid IN (SELECT pid FROM persons)) ev {join} "
            f"WHERE code IS NOT NULL ORDER BY pid, t, {TYPE_RANK}, typ, code, text, rn"
        )  # text, then file order (rn), for ties: a database has no file order, its rows come in any order
        current: str | None = None
        events: list[dict[str, str]] = []
        for rows in tables.fetch_chunks(con, sql, total, progress):
            for pid, t, code, text, typ in rows:
                if pid != current:
                    current, events = pid, patients[pid].events
                events.append({"time": t, "code": code, "text": text, "type": typ})
        if progress is not None:
            progress(total, total)
    finally:
        con.close()
    records = [r for r in patients.values() if r.events]
    if len(records) < len(patients):
        skipped.append(SkippedFile(f"{src.where}/person", f"{len(patients) - len(records)} persons have no events; left out"))
    if not records:
        raise DataError(f"{src.where}: no person has an event; check that the event tables' person_id match person")
    return records, skipped


def _left_out(con: Any, src: OmopSource) -> list[SkippedFile]:
    """Per table: rows of unknown persons, and rows with neither concept nor source value."""
    rows = con.execute(
        "SELECT tab, count(*) FILTER (WHERE pid NOT IN (SELECT pid FROM persons)), "
        "count(*) FILTER (WHERE (cid IS NULL OR cid = 0) AND src IS NULL) FROM ev GROUP BY tab ORDER BY tab"
    ).fetchall()
    out = []
    for tab, unknown, uncoded in rows:
        where = f"{src.where}/{src.shown(tab)}"
        if unknown:
            out.append(SkippedFile(where, f"{unknown} rows name persons not in person; left out"))
        if uncoded:
            out.append(SkippedFile(where, f"{uncoded} rows have concept 0 and no source value; left out"))
    return out
