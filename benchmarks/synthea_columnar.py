"""Synthea CSV exports read with DuckDB: the same records as ``read_synthea_export``.

Not used by the loaders: on the published Synthea data (many small exports) it measured
slower than the row reader, faster only on one large export (BENCHMARKS.md, "Ingestion");
kept here as the benchmark's contender until a columnar record format makes it win.

The row-by-row reader spends most of its time in Python: ``csv`` parsing, a dict per row,
``datetime.fromisoformat`` per timestamp, then a sort per patient. Here DuckDB parses,
casts, joins to ``patients.csv`` and sorts in C++ (in parallel, spilling to disk past its
memory limit), and Python only appends ready-made ``(time, code, text, type)`` rows to
their patient. Same tolerance as the row reader, because Synthea exports are published data
we cannot edit: a file without the needed columns, a row with the wrong number of fields, a
time that does not parse or an empty code is left out and reported, not fatal.

``benchmarks/ingestion.py`` measures both readers on ``../shared/data/ehr`` and checks that
they return identical records.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from aeep_core.pool import DataError, SkippedFile
from aeep_core.sequences import tables
from aeep_core.sequences.readers import _TYPE_ORDER, SYNTHEA_TABLES, PatientRecord, _numeric_date_layout
from aeep_core.sequences.tables import Progress


def _load(con: Any, path: Path, view: str, keep: tuple[str, ...] = ()) -> list[str]:
    """Columns ``keep`` of ``path`` (those present) as text, upper-cased; bad rows rejected into ``rej_<view>``."""
    header = [c.strip().strip('"').upper() for c in next(csv.reader([tables._first_line(path)]), [])]
    spec = "{" + ", ".join(f"{tables._quote(c)}: 'VARCHAR'" for c in header) + "}"
    cols = ", ".join(tables._ident(c) for c in header if c in keep) or "*"
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {view} AS SELECT {cols} FROM read_csv({tables._quote(str(path))}, header = true, "
        f"columns = {spec}, store_rejects = true, rejects_table = 'rej_{view}', rejects_scan = 'rejs_{view}', "
        "strict_mode = false, quote = '\"', escape = '\"')"
    )
    return header


def read_synthea_columnar(folder: Path | str, progress: Progress | None = None) -> tuple[list[PatientRecord], list[SkippedFile]]:
    """Read one Synthea CSV export with DuckDB; return (records, skipped) as the row reader does."""
    folder = Path(folder)
    pfile = folder / "patients.csv"
    con = tables.connect()
    skipped: list[SkippedFile] = []
    try:
        try:
            header = _load(con, pfile, "pat", ("ID", "BIRTHDATE"))
            if not {"ID", "BIRTHDATE"} <= set(header):
                raise DataError(f"lacks column {', '.join(sorted({'ID', 'BIRTHDATE'} - set(header)))}")
        except Exception as exc:  # noqa: BLE001 -- any engine error here means an unreadable patients.csv
            raise DataError(f"{pfile}: {exc}; a Synthea export needs a readable patients.csv") from None
        rows = con.execute(
            "SELECT trim(ID), NULLIF(trim(BIRTHDATE), '') FROM pat WHERE NULLIF(trim(ID), '') IS NOT NULL"
        ).fetchall()
        patients = {pid: PatientRecord(pid, [], None, birthdate=birth, source=str(folder)) for pid, birth in rows}
        if not patients:
            raise DataError(f"{pfile}: no patient rows; a Synthea export needs a readable patients.csv")
        con.execute("CREATE OR REPLACE TEMP TABLE pids AS SELECT DISTINCT trim(ID) AS pid FROM pat")
        parts, total = [], 0
        for i, table in enumerate(SYNTHEA_TABLES):
            path = folder / table.file
            if not path.is_file():
                continue
            view = f"t{i}"
            try:
                header = _load(con, path, view, ("PATIENT", "CODE", "DESCRIPTION", *table.time_cols))
                tcol = next((c for c in table.time_cols if c in header), table.time_cols[0])
                missing = [c for c in ("PATIENT", "CODE", tcol) if c not in header]
                if missing:
                    raise DataError(f"lacks column {', '.join(missing)} (header: {','.join(header)[:120]})")
                layout = _numeric_date_layout(path, tcol) if _first_time_not_iso(con, view, tcol) else None
            except Exception as exc:  # noqa: BLE001 -- an unreadable file is left out, like the row reader does
                skipped.append(SkippedFile(str(path), f"{str(exc).splitlines()[0]}; file left out"))
                continue
            if layout is not None:
                skipped.append(SkippedFile(str(path), f"{tcol} is not ISO-8601; read as {layout} (unambiguous in this file)"))
                when = f"try_strptime(replace(trim({tcol}), '/', '-'), '{layout}')"
            else:
                # Time-zone casts (ICU) are slow; only values with an offset after the seconds need one
                # ("Z" casts right as a plain timestamp).
                v = f"trim({tcol})"
                when = (
                    f"CASE WHEN length({v}) > 19 AND (contains(substr({v}, 20), '+') OR contains(substr({v}, 20), '-')) "
                    f"THEN CAST(TRY_CAST({v} AS TIMESTAMP WITH TIME ZONE) AS TIMESTAMP) ELSE TRY_CAST({v} AS TIMESTAMP) END"
                )
            text = "trim(COALESCE(DESCRIPTION, ''))" if "DESCRIPTION" in header else "''"
            # rn (file order) breaks ties last, as the row reader's stable sort does.
            con.execute(
                f"CREATE OR REPLACE TEMP TABLE e{i} AS SELECT trim(PATIENT) AS pid, {when} AS ts, trim(CODE) AS code, "
                f"{text} AS text, '{table.type}' AS typ, rowid AS rn, trim(PATIENT) IN (SELECT pid FROM pids) AS known "
                f"FROM {view}"
            )
            bad, unknown, rejected, n = con.execute(
                f"SELECT count(*) FILTER (WHERE known AND (ts IS NULL OR code = '' OR code IS NULL)), "
                f"count(*) FILTER (WHERE NOT known), (SELECT count(DISTINCT line) FROM rej_{view}), count(*) FROM e{i}"
            ).fetchone()
            if bad + rejected:
                skipped.append(
                    SkippedFile(str(path), f"{bad + rejected} rows left out (bad time, empty code or wrong number of fields)")
                )
            if unknown:
                skipped.append(SkippedFile(str(path), f"{unknown} rows name patients not in patients.csv; left out"))
            parts.append(f"SELECT * FROM e{i}")
            total += n
        if parts:
            rank = "CASE typ " + " ".join(f"WHEN '{t}' THEN {r}" for t, r in _TYPE_ORDER.items()) + " ELSE 99 END"
            tables.fill_events(
                con,
                f"SELECT pid, strftime(ts, '%Y-%m-%dT%H:%M:%S') AS t, code, text, typ, {rank} AS rank, rn "
                f"FROM ({' UNION ALL '.join(parts)}) WHERE ts IS NOT NULL AND code <> '' AND known",
                "e.pid, e.t, e.rank, e.typ, e.code, e.rn",
                patients,
                total,
                progress,
            )
    finally:
        con.close()
    records = [rec for rec in patients.values() if rec.events]
    if len(records) < len(patients):
        skipped.append(SkippedFile(str(pfile), f"{len(patients) - len(records)} patients have no events; left out"))
    return records, skipped


def _first_time_not_iso(con: Any, view: str, tcol: str) -> bool:
    """Whether the first row's time fails to parse as ISO-8601 (then the file's date layout is sniffed)."""
    row = con.execute(f"SELECT {tcol} FROM {view} LIMIT 1").fetchone()
    if row is None or row[0] is None:
        return False
    return con.execute("SELECT TRY_CAST(trim(?) AS TIMESTAMP WITH TIME ZONE) IS NULL", [row[0]]).fetchone()[0]
