"""OMOP tables straight from PostgreSQL: the needed columns, streamed into Arrow, handed to DuckDB.

The records are assembled by the same DuckDB query as for files (:mod:`.omop`): this module
only loads the temp tables that query reads, so a database and a folder of its CSV export
give the same patients and events. The work done in the server is what keeps a hospital's
CDM from being copied whole: only the columns an event needs are selected, event rows only
of the persons in ``person``, ordered by person and time, and of the ``concept`` table only
the concepts the events use (a full vocabulary has millions).

Why ADBC's PostgreSQL driver: it reads with ``COPY ... TO STDOUT (FORMAT binary)`` straight
into Arrow columns in C, so no Python object is made per value, and DuckDB scans the Arrow
stream batch by batch (it never all sits in memory as Python rows). It is built on libpq,
so ``PGPASSWORD``, ``~/.pgpass``, ``PGSSLMODE`` and the rest work exactly as in ``psql``.
``benchmarks/omop_scale.py --drivers`` measures it against psycopg 3's COPY and connectorx.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from aeep_core.extras import require
from aeep_core.pool import DataError
from aeep_core.sequences.dbfolder import Database

_PERMISSION_FIX = "ask the database owner for GRANT USAGE ON SCHEMA {s} TO {u}; GRANT SELECT ON ALL TABLES IN SCHEMA {s} TO {u}"


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _user(db: Database) -> str:
    return urlsplit(db.url).username or "(your login name)"


def explain(exc: Exception, db: Database, what: str = "") -> DataError:
    """A one-line :class:`DataError` naming the URL (never a password) and the fix for a driver error."""
    text = str(exc)
    low = text.lower()
    url, user = db.url, _user(db)
    state = getattr(exc, "sqlstate", None) or ""
    if "connection refused" in low or "could not connect" in low or "no such file or directory" in low:
        return DataError(f"{url}: connection refused; check that PostgreSQL runs there and that host and port are right")
    if "could not translate host name" in low or "name or service not known" in low:
        return DataError(f"{url}: unknown host; check the host name in the URL")
    if "password authentication failed" in low:
        return DataError(
            f"{url}: password refused for user {user}; set PGPASSWORD, or the ~/.pgpass line "
            "host:port:database:user:password (chmod 600), to this user's password"
        )
    if "no password supplied" in low:
        return DataError(f"{url}: the server wants a password; set PGPASSWORD or add a ~/.pgpass line for it")
    m = re.search(r'database "([^"]+)" does not exist', text)
    if m:
        return DataError(f"{url}: no database {m.group(1)!r} on that server; check the database name in the URL")
    m = re.search(r'role "([^"]+)" does not exist', text)
    if m:
        return DataError(f"{url}: no user {m.group(1)!r} on that server; check the user name in the URL")
    if state == "42501" or "permission denied" in low:
        return DataError(f"{url}: user {user} may not read {what or 'schema ' + db.schema}; " + _permission_fix(db))
    first = next((line.strip() for line in text.splitlines() if line.strip()), type(exc).__name__)
    return DataError(f"{url}: {first[:200]}{f' (reading {what})' if what else ''}")


def _permission_fix(db: Database) -> str:
    return _PERMISSION_FIX.format(s=_ident(db.schema) if db.schema != db.schema.lower() else db.schema, u=_user(db))


def connect(db: Database) -> Any:
    """An ADBC connection to ``db`` (the password from PGPASSWORD or ~/.pgpass, by libpq); one-line errors."""
    dbapi = require("adbc_driver_postgresql.dbapi", "postgres", "reading OMOP from PostgreSQL")
    try:
        return dbapi.connect(db.url)
    except Exception as exc:  # the driver's errors carry libpq's message; we say what to do
        raise explain(exc, db) from None


def _query(conn: Any, db: Database, sql: str, what: str = "") -> list[tuple]:
    cur = conn.cursor()
    try:
        cur.execute(sql)
        return list(cur.fetchall())
    except Exception as exc:
        raise explain(exc, db, what) from None
    finally:
        cur.close()


def _quote(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class DatabaseTables:
    """The OMOP tables of one schema of a PostgreSQL database (an :class:`.omop.OmopSource`).

    Table and column names match in any case (``PERSON`` and ``person`` alike), as in folders.
    Connecting checks the schema, the ``person`` table and the right to read, so each
    problem is one line before any data moves.
    """

    def __init__(self, db: Database) -> None:
        self.db = db
        self.where, self.header = str(db), ""
        self.conn = connect(db)
        try:
            self._tables = self._catalog()
        except BaseException:
            self.conn.close()
            raise
        self._loaded: dict[str, str] = {}  # table -> the DuckDB view holding it
        self._concept_cols: list[tuple[str, str]] = []  # (view, concept column) of each event table

    def _catalog(self) -> dict[str, tuple[str, dict[str, str], bool]]:
        """lower name -> (real name, {lower column: real column}, may select) of the schema's tables and views."""
        db = self.db
        found = _query(
            self.conn,
            db,
            "SELECT n.nspname, has_schema_privilege(n.oid, 'USAGE') FROM pg_catalog.pg_namespace n "
            f"WHERE lower(n.nspname) = lower({_quote(db.schema)}) ORDER BY n.nspname = {_quote(db.schema)} DESC",
        )
        if not found:
            names = [r[0] for r in _query(self.conn, db, _SCHEMAS)]
            raise DataError(
                f"{db.url}: no schema {db.schema!r} in this database (schemas: {', '.join(names)[:160] or 'none'}); "
                "give the CDM's schema with --schema"
            )
        schema, usable = found[0]
        if not usable:
            raise DataError(f"{db.url}: user {_user(db)} may not use schema {schema}; " + _permission_fix(db))
        rows = _query(
            self.conn,
            db,
            "SELECT c.relname, a.attname, has_table_privilege(c.oid, 'SELECT') FROM pg_catalog.pg_class c "
            "JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace "
            "JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            f"WHERE n.nspname = {_quote(schema)} AND c.relkind IN ('r', 'v', 'm', 'p', 'f') ORDER BY c.relname, a.attnum",
        )
        self.schema = schema
        tables: dict[str, tuple[str, dict[str, str], bool]] = {}
        for rel, col, may in rows:
            real, cols, _ = tables.setdefault(rel.lower(), (rel, {}, bool(may)))
            if real == rel:  # "PERSON" and "person" both present: the first, in name order, wins
                cols.setdefault(col.lower(), col)
        if "person" not in tables:
            raise DataError(
                f"{db.url}: no table person in schema {schema} (tables: {', '.join(sorted(tables))[:160] or 'none'}); "
                "give the CDM's schema with --schema, or load the person table"
            )
        return tables

    def has(self, name: str) -> bool:
        return name in self._tables

    def shown(self, name: str) -> str:
        return f"{self.schema}.{self._tables[name][0] if name in self._tables else name}"

    def close(self) -> None:
        self.conn.close()

    def _from(self, name: str) -> str:
        return f"{_ident(self.schema)}.{_ident(self._tables[name][0])}"

    def _select(self, name: str, keep: list[str], types: dict[str, str]) -> str:
        """The SQL the server runs for one table: its kept columns, cohort persons only, in person and time order."""
        real, cols, _ = self._tables[name]
        select = ", ".join(f"{_ident(cols[c])} AS {_ident(c)}" for c in keep)
        sql = f"SELECT {select} FROM {self._from(name)}"
        if name not in ("person", "concept") and "person_id" in cols:
            person = self._tables["person"][1].get("person_id")
            if person:  # rows of persons not in person never leave the server
                sql += f" WHERE {_ident(cols['person_id'])} IN (SELECT {_ident(person)} FROM {self._from('person')})"
            times = sorted((c for c in keep if "TIMESTAMP" in types.get(c, "")), key=lambda c: "datetime" not in c)
            order = f"COALESCE({', '.join(_ident(cols[c]) for c in times)})" if times else ""
            sql += f" ORDER BY {_ident(cols['person_id'])}" + (f", {order}" if order else "")
        return sql

    def load(self, con: Any, name: str, types: dict[str, str], keep: list[str], view: str) -> list[str]:
        """Stream the kept columns into DuckDB temp table ``view`` (typed as the folder reader types them)."""
        real, cols, may = self._tables[name]
        if not may:
            raise DataError(f"{self.db.url}: user {_user(self.db)} may not read {self.shown(name)}; " + _permission_fix(self.db))
        keep = [c for c in keep if c in cols]
        if name == "concept":
            return self._load_concepts(con, keep, types, view)
        self._stream(con, self._select(name, keep, types), name, keep, types, view)
        self._loaded[name] = view
        concept = next((c for c in keep if c.endswith("_concept_id")), None)
        if concept:
            self._concept_cols.append((view, concept))
        return list(cols)

    def _stream(self, con: Any, sql: str, name: str, keep: list[str], types: dict[str, str], view: str) -> None:
        cur = self.conn.cursor()
        try:
            cur.execute(sql)
            reader = cur.fetch_record_batch()
        except Exception as exc:
            cur.close()
            raise explain(exc, self.db, self.shown(name)) from None
        cast = ", ".join(f"CAST({_ident(c)} AS {types[c]}) AS {_ident(c)}" if c in types else _ident(c) for c in keep)
        try:  # DuckDB scans the Arrow stream by the variable's name, batch by batch
            pg_stream = reader  # noqa: F841 -- read by name in the SQL below
            con.execute(f"CREATE OR REPLACE TEMP TABLE {_ident(view)} AS SELECT {cast} FROM pg_stream")
        except Exception as exc:  # a value that does not cast (dates kept as text, say)
            raise DataError(
                f"{self.db.url}: {self.shown(name)}: {str(exc).splitlines()[0][:200]}; fix those rows or the column's type"
            ) from None
        finally:
            cur.close()

    def _load_concepts(self, con: Any, keep: list[str], types: dict[str, str], view: str) -> list[str]:
        """Only the concepts the loaded events use: their ids go to a temp table in the server, joined there."""
        real, cols, _ = self._tables["concept"]
        used = " UNION ".join(f"SELECT {_ident(c)} AS id FROM {_ident(v)}" for v, c in self._concept_cols)
        select = ", ".join(f"c.{_ident(cols[c])} AS {_ident(c)}" for c in keep)
        sql = f"SELECT {select} FROM {self._from('concept')} c"
        if used:
            pa = require("pyarrow", "postgres", "reading OMOP from PostgreSQL")
            rows = con.execute(f"SELECT DISTINCT id FROM ({used}) WHERE id IS NOT NULL AND id <> 0").fetchall()
            ids = pa.table({"id": pa.array([r[0] for r in rows], pa.int64())})
            try:
                cur = self.conn.cursor()
                cur.adbc_ingest("aeep_concept_ids", ids, mode="replace", temporary=True)
                cur.close()
                sql += f" WHERE c.{_ident(cols['concept_id'])} IN (SELECT id FROM aeep_concept_ids)"
            except Exception:  # no right to make temp tables: read the whole vocabulary instead
                self.conn.rollback()
        self._stream(con, sql, "concept", keep, types, view)
        return list(cols)

    def locate(self, con: Any, name: str, condition: str) -> str:
        """ "(person_id N)": the first matching row's person, from what was loaded (rows have no line numbers)."""
        view = self._loaded.get(name)
        if view is None:
            return "somewhere"
        row = con.execute(f"SELECT person_id FROM {_ident(view)} WHERE {condition} LIMIT 1").fetchone()
        return "somewhere" if row is None else f"row of person_id {row[0]}"


_SCHEMAS = (
    "SELECT nspname FROM pg_catalog.pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
    "AND nspname <> 'information_schema' ORDER BY nspname"
)
