"""Columnar reading of event tables with DuckDB: find tables, scan CSV/Parquet, report bad rows.

Why DuckDB (and not Polars or the ``csv`` module): a real OMOP extract has tens of millions
of rows, more than fits comfortably in Python objects. DuckDB scans CSV and Parquet in
parallel C++, joins, casts and sorts out of core (it spills to a temporary folder past its
memory limit), and, unlike Polars, its CSV reader reports a rejected row's *line number and
column* (``store_rejects``), which is what our error messages must name. It is one wheel with
no dependencies, Parquet and time zones statically linked; we forbid extension downloads so
nothing reaches the network at run time.

The engine is optional: without ``duckdb`` installed, OMOP import fails with one line that
says how to install it; JSONL, long CSV and Synthea keep their pure-Python readers.
"""

from __future__ import annotations

import csv
import gzip
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aeep_core.extras import require
from aeep_core.pool import DataError

#: ``progress(done, total)`` in rows, called as event rows are turned into records.
Progress = Callable[[int, int], None]
_SUFFIXES = (".csv", ".csv.gz", ".tsv", ".tsv.gz", ".parquet")
_FETCH_ROWS = 200_000  # rows per fetch: big enough to amortise the call, small enough for memory


def connect() -> Any:
    """A fresh in-memory DuckDB connection set up for offline, UTC, spill-to-disk work.

    Raises :class:`~aeep_core.extras.MissingExtra` naming the extra when ``duckdb`` is missing.
    """
    duckdb = require("duckdb", "sequences", "reading OMOP tables")
    con = duckdb.connect(":memory:")
    con.execute("SET autoinstall_known_extensions = false")  # never download at run time
    con.execute("SET TimeZone = 'UTC'")  # aware times become UTC, like parse_time()
    con.execute("SET enable_progress_bar = false")  # we draw our own, on stderr
    con.execute(f"SET temp_directory = '{tempfile.gettempdir()}/aeep-duckdb'")  # spill, don't fail
    return con


@dataclass(frozen=True)
class TableFile:
    """One table on disk: its path(s), the name to show in errors, and its format."""

    name: str  # the table's canonical (lower-case) name, e.g. "condition_occurrence"
    path: Path  # a file, or a folder of Parquet parts
    kind: str  # "csv" or "parquet"

    @property
    def shown(self) -> str:
        """What error messages call this table: the file name as the user wrote it."""
        return self.path.name


def find_table(folder: Path, name: str) -> TableFile | None:
    """The file holding table ``name`` in ``folder``, whatever the case of its name.

    Accepts ``name.csv``, ``.csv.gz``, ``.tsv``, ``.parquet`` (``NAME.CSV`` alike) and a
    sub-folder ``name/`` of ``*.parquet`` parts, as Spark-based exports write them.
    """
    want = name.lower()
    for entry in sorted(folder.iterdir()):
        low = entry.name.lower()
        if entry.is_file():
            for suffix in _SUFFIXES:
                if low == want + suffix:
                    return TableFile(want, entry, "parquet" if suffix == ".parquet" else "csv")
        elif entry.is_dir() and low == want and any(entry.glob("*.parquet")):
            return TableFile(want, entry, "parquet")
    return None


def _open_text(path: Path):
    if path.name.lower().endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8-sig", errors="replace")
    return path.open(encoding="utf-8-sig", errors="replace")


def _first_line(path: Path) -> str:
    try:
        with _open_text(path) as fh:
            return fh.readline().rstrip("\r\n")
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot be read ({exc}); check the file") from None


def columns_of(con: Any, table: TableFile) -> list[str]:
    """The table's column names, lower-cased, in file order."""
    if table.kind == "parquet":
        return [c.lower() for c in _raw_parquet_cols(con, table)]
    line = _first_line(table.path)
    sep = "\t" if "\t" in line and "," not in line else ","
    return [c.strip().strip('"').lower() for c in line.split(sep)]


def _parquet_glob(table: TableFile) -> str:
    target = table.path / "*.parquet" if table.path.is_dir() else table.path
    return _quote(str(target))


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def scan(con: Any, table: TableFile, types: dict[str, str], keep: list[str], view: str) -> list[str]:
    """Load columns ``keep`` of ``table`` into temp table ``view``, ``types`` cast, names lower-cased.

    Only the kept columns are materialised (a measurement table has 20+ columns we never
    use). CSV columns not in ``types`` stay text: a source value like ``00123`` must not
    become 123. Malformed rows -- wrong field count, a value that does not cast -- raise a
    :class:`DataError` naming the file, line and column. Returns every column of the table.
    """
    cols = columns_of(con, table)
    keep = [c for c in keep if c in cols]
    if table.kind == "csv":
        line = _first_line(table.path)
        sep = "\t" if "\t" in line and "," not in line else ","
        spec = "{" + ", ".join(f"{_quote(c)}: {_quote(types.get(c, 'VARCHAR'))}" for c in cols) + "}"
        rej = f"rej_{view}"
        # Single-threaded row numbers would cost the parallel scan; instead ask DuckDB to
        # reject bad rows (with their line) and refuse the table when any were.
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {_ident(view)} AS SELECT {', '.join(map(_ident, keep))} "
            f"FROM read_csv({_quote(str(table.path))}, header = true, delim = {_quote(sep)}, columns = {spec}, "
            f"store_rejects = true, rejects_table = {_quote(rej)}, rejects_scan = {_quote(rej + '_scan')})"
        )
        _raise_first_reject(con, table, rej, cols, types, sep)
    else:
        raw = {c.lower(): c for c in _raw_parquet_cols(con, table)}
        select = ", ".join(
            f"TRY_CAST({_ident(raw[c])} AS {types[c]}) AS {_ident(c)}" if c in types else f"{_ident(raw[c])} AS {_ident(c)}"
            for c in keep
        )
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_ident(view)} AS SELECT {select} FROM read_parquet({_parquet_glob(table)})")
        _raise_failed_casts(con, table, {c: t for c, t in types.items() if c in keep})
    return cols


def _raw_parquet_cols(con: Any, table: TableFile) -> list[str]:
    return list(con.sql(f"SELECT * FROM read_parquet({_parquet_glob(table)}) LIMIT 0").columns)


_FIX = "fix or remove that row and run again"


def _raise_first_reject(con: Any, table: TableFile, rej: str, cols: list[str], types: dict[str, str], sep: str) -> None:
    """Raise a one-line :class:`DataError` for the first row DuckDB rejected, if any.

    DuckDB's line numbers are right, but its ``column_name`` is wrong when the scan is
    projected (it names a neighbour), so we re-parse the rejected line ourselves to name the
    column and value: this runs only when a row is bad.
    """
    row = con.execute(f"SELECT line, csv_line FROM {_ident(rej)} ORDER BY line LIMIT 1").fetchone()
    if row is None:
        return
    line, text = row
    fields = next(csv.reader([text or ""], delimiter=sep), [])
    if len(fields) != len(cols):
        what = f"{len(fields)} fields for {len(cols)} columns"
        raise DataError(f"{table.shown} line {line}: {what} (a missing or extra comma, or an unquoted one?); {_FIX}")
    for col, value in zip(cols, fields):
        typ = types.get(col)
        if typ and value.strip() and con.execute(f"SELECT TRY_CAST(? AS {typ}) IS NULL", [value]).fetchone()[0]:
            raise DataError(
                f"{table.shown} line {line}, column {col}: {value!r} is not a {_TYPE_WORDS.get(typ, typ.lower())}; {_FIX}"
            )
    raise DataError(f"{table.shown} line {line}: cannot be read ({(text or '')[:80]!r}); {_FIX}")


_DATE_WORD = "date or datetime (YYYY-MM-DD[ HH:MM:SS])"
_TYPE_WORDS = {"TIMESTAMP": _DATE_WORD, "TIMESTAMP WITH TIME ZONE": _DATE_WORD, "BIGINT": "whole number", "DOUBLE": "number"}


_INTS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "UTINYINT", "USMALLINT", "UINTEGER")
#: Parquet column types that always cast to our target type (the check re-reads the file otherwise).
_SAFE = {
    "BIGINT": lambda t: t in _INTS,
    "DOUBLE": lambda t: t in (*_INTS, "FLOAT", "DOUBLE") or t.startswith("DECIMAL"),
    "TIMESTAMP WITH TIME ZONE": lambda t: t == "DATE" or t.startswith("TIMESTAMP"),
    "TIMESTAMP": lambda t: t == "DATE" or t.startswith("TIMESTAMP"),
}


def _raise_failed_casts(con: Any, table: TableFile, types: dict[str, str]) -> None:
    """Parquet: a typed column whose value did not cast is NULL now; find the first such row."""
    raw = {c.lower(): c for c in _raw_parquet_cols(con, table)}
    stored = {
        str(r[0]).lower(): str(r[1]).upper()
        for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet({_parquet_glob(table)})").fetchall()
    }
    for col, typ in types.items():
        if col not in raw or _SAFE.get(typ, lambda t: False)(stored.get(col, "")):
            continue  # typed in the file already (an int64 id, a timestamp): no value can fail, no second read
        bad = con.execute(
            f"SELECT file_row_number, CAST({_ident(raw[col])} AS VARCHAR) FROM read_parquet({_parquet_glob(table)}, "
            f"file_row_number = true) WHERE {_ident(raw[col])} IS NOT NULL AND TRY_CAST({_ident(raw[col])} AS {typ}) IS NULL "
            "ORDER BY file_row_number LIMIT 1"
        ).fetchone()
        if bad is not None:
            word = _TYPE_WORDS.get(typ, typ.lower())
            raise DataError(f"{table.shown} row {bad[0] + 1}, column {col}: {bad[1]!r} is not a {word}; {_FIX}")


def where_first(con: Any, table: TableFile, condition: str) -> str:
    """ "line N" (CSV, header = 1) or "row N" (Parquet) of the first row of ``table`` matching ``condition``.

    For errors found after loading (a row without a date). Runs on the error path only: it
    re-reads the file in order, which the fast parallel scan does not promise. ``scan`` has
    refused rejected rows already, so in a CSV data row k is line k + 1.
    """
    if table.kind == "csv":
        line = _first_line(table.path)
        sep = "\t" if "\t" in line and "," not in line else ","
        source = f"read_csv({_quote(str(table.path))}, header = true, delim = {_quote(sep)}, all_varchar = true)"
    else:
        source = f"read_parquet({_parquet_glob(table)})"
    con.execute("SET preserve_insertion_order = true")
    row = con.execute(
        f"SELECT n FROM (SELECT row_number() OVER () AS n, * FROM {source}) WHERE {condition} ORDER BY n LIMIT 1"
    ).fetchone()
    if row is None:
        return "somewhere"
    return f"line {int(row[0]) + 1}" if table.kind == "csv" else f"row {int(row[0])}"


def fill_events(
    con: Any, events_sql: str, order_by: str, patients: dict[str, Any], total: int, progress: Progress | None = None
) -> None:
    """Append the rows of ``events_sql`` (pid, t, code, text, typ), sorted by ``order_by``, to ``patients[pid].events``.

    Python builds one dict per event and nothing else: each distinct (code, text, type) is
    fetched once and shared by all its events (a million "Encounter for check up" rows hold
    one string, not a million), rows arrive as small integers, and the garbage collector is
    paused while millions of new dicts are made (it would rescan them all, for no cycle).
    """
    import gc

    con.execute(f"CREATE OR REPLACE TEMP TABLE _e AS {events_sql}")
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _v AS SELECT (row_number() OVER ()) - 1 AS vid, * FROM "
        "(SELECT DISTINCT code, text, typ FROM _e)"
    )
    vocab = con.execute("SELECT code, text, typ FROM _v ORDER BY vid").fetchall()
    pids = [r[0] for r in con.execute("SELECT DISTINCT pid FROM _e ORDER BY pid").fetchall()]
    con.execute(
        "CREATE OR REPLACE TEMP TABLE _p AS SELECT (row_number() OVER (ORDER BY pid)) - 1 AS pix, pid FROM "
        "(SELECT DISTINCT pid FROM _e)"
    )
    sql = (
        f"SELECT p.pix, e.t, v.vid FROM _e e JOIN _v v ON e.code = v.code AND e.text = v.text AND e.typ = v.typ "
        f"JOIN _p p ON p.pid = e.pid ORDER BY {order_by}"
    )
    lists = [patients[pid].events for pid in pids]
    enabled = gc.isenabled()
    gc.disable()
    try:
        for rows in fetch_chunks(con, sql, total, progress):
            for pix, t, vid in rows:
                code, text, typ = vocab[vid]
                lists[pix].append({"time": t, "code": code, "text": text, "type": typ})
    finally:
        if enabled:
            gc.enable()


def fetch_chunks(con: Any, sql: str, total: int, progress: Progress | None = None) -> Iterator[list[tuple]]:
    """Run ``sql`` and yield its rows in chunks, reporting ``progress(done, total)`` after each."""
    cur = con.execute(sql)
    done = 0
    while True:
        rows = cur.fetchmany(_FETCH_ROWS)
        if not rows:
            break
        done += len(rows)
        if progress is not None:
            progress(done, total)
        yield rows
