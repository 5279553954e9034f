"""A throwaway PostgreSQL cluster for tests and benchmarks: initdb in a temporary folder, a free local port.

Real PostgreSQL, not a mock: the OMOP database source is tested against the server it will
meet. The binaries are looked for on PATH, in /usr/local/bin and in Debian's
/usr/lib/postgresql/<major>/bin (``.ci/run`` installs Debian's ``postgresql`` package when
they are missing). PostgreSQL refuses to run as root, so as root the cluster runs as the
``postgres`` user (``runuser``), its folder handed to that user.

The superuser ``postgres`` gets a password (scram-sha-256 over TCP), so tests can check the
bad-password error; ``reader`` is a role that may log in but may read nothing, for the
missing-permission error. Clients get the password through ``PGPASSWORD`` only.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "aeep-test-secret"  # a throwaway cluster's password; tests check it never leaks
READER_PASSWORD = "reader-secret"
SHARED_OMOP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omop" / "synthea27nj"
#: The OMOP tables the loader copies into the database (what the reader can use, and a spare).
OMOP_TABLES = (
    "person",
    "concept",
    "visit_occurrence",
    "condition_occurrence",
    "procedure_occurrence",
    "drug_exposure",
    "measurement",
    "observation",
    "death",
)


def find_binaries() -> Path | None:
    """The folder holding initdb, pg_ctl and postgres, or None when PostgreSQL is not installed."""
    candidates = []
    initdb = shutil.which("initdb")
    if initdb:
        candidates.append(Path(initdb).parent)
    candidates.append(Path("/usr/local/bin"))
    candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)  # Debian, newest first
    for folder in candidates:
        if all((folder / b).is_file() for b in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Cluster:
    """A running cluster: where it listens and how to stop it."""

    bindir: Path
    folder: Path
    port: int
    run_as: list[str]

    def url(self, user: str = "postgres", db: str = "postgres") -> str:
        """A password-free ``postgresql://`` URL, as users give it (the password in PGPASSWORD)."""
        return f"postgresql://{user}@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        subprocess.run(
            [*self.run_as, str(self.bindir / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "immediate", "stop"],
            capture_output=True,
            check=False,
        )
        shutil.rmtree(self.folder, ignore_errors=True)


def start_cluster() -> Cluster:
    """initdb + start on a free port (TCP on 127.0.0.1, the socket in the cluster's folder)."""
    bindir = find_binaries()
    if bindir is None:
        raise RuntimeError("no PostgreSQL binaries (initdb, pg_ctl, postgres)")
    folder = Path(tempfile.mkdtemp(prefix="aeep-pg-"))
    run_as: list[str] = []
    if os.geteuid() == 0:  # postgres will not run as root
        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        run_as = ["runuser", "-u", "postgres", "--"]
    pwfile = folder / "pw"
    pwfile.write_text(PASSWORD + "\n")
    if run_as:
        os.chown(pwfile, pwd.getpwnam("postgres").pw_uid, -1)
    data = folder / "data"
    subprocess.run(
        [*run_as, str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=scram-sha-256", f"--pwfile={pwfile}"]
        + ["-E", "UTF8", "--locale=C", "--no-sync"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    opts = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={folder} -c fsync=off"
    opts += " -c synchronous_commit=off -c full_page_writes=off -c shared_buffers=128MB"
    subprocess.run(
        [*run_as, str(bindir / "pg_ctl"), "-D", str(data), "-o", opts, "-l", str(folder / "log"), "-w", "-t", "30", "start"],
        check=True,
        capture_output=True,
    )
    return Cluster(bindir, folder, port, run_as)


def admin(cluster: Cluster):
    """An ADBC connection as the superuser (autocommit), for loading and granting."""
    import adbc_driver_postgresql.dbapi as dbapi

    # The fixture's own connection may hold the password in its URL; what is tested never does.
    return dbapi.connect(f"postgresql://postgres:{PASSWORD}@127.0.0.1:{cluster.port}/postgres", autocommit=True)


def execute(cluster: Cluster, *statements: str) -> None:
    """Run SQL statements as the superuser."""
    with admin(cluster) as conn, conn.cursor() as cur:
        for sql in statements:
            cur.execute(sql)


def load_folder(
    cluster: Cluster, folder: Path, schema: str = "cdm", tables: tuple[str, ...] = OMOP_TABLES, upper: bool = False
) -> dict[str, int]:
    """Copy the OMOP CSV/Parquet ``tables`` of ``folder`` into ``schema``; return their row counts.

    DuckDB reads each file (types as it infers them: ids bigint, dates date; source values
    text, as the CDM's DDL has them) and ADBC bulk-loads the Arrow table (COPY). ``upper``:
    table and column names in upper case ("PERSON"), as some CDMs are made.
    """
    import duckdb

    from aeep_core.sequences.tables import find_table

    counts = {}
    con = duckdb.connect()
    quoted = f'"{schema}"'
    with admin(cluster) as conn, conn.cursor() as cur:
        cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quoted}")
        for name in tables:
            table = find_table(folder, name)
            if table is None:
                continue
            if table.kind == "parquet":
                src = f"read_parquet('{table.path}')"
            else:
                head = con.sql(f"SELECT * FROM read_csv('{table.path}', header = true) LIMIT 0").columns
                text = ", ".join(f"'{c}': 'VARCHAR'" for c in head if c.lower().endswith(("_source_value", "_code", "_name")))
                src = f"read_csv('{table.path}', header = true, sample_size = -1, types = {{{text}}})"
            rel = con.sql(f"SELECT * FROM {src}")
            cols = ", ".join(f'"{c}" AS "{c.upper() if upper else c.lower()}"' for c in rel.columns)
            arrow = con.sql(f"SELECT {cols} FROM {src}").to_arrow_table()
            target = name.upper() if upper else name
            cur.execute(f'DROP TABLE IF EXISTS {quoted}."{target}"')
            cur.adbc_ingest(target, arrow, mode="create", db_schema_name=schema)
            counts[name] = arrow.num_rows
        cur.execute("ANALYZE")
    con.close()
    return counts


def add_reader_role(cluster: Cluster) -> None:
    """``reader``: may log in, may not use schema cdm (the missing-permission case)."""
    execute(
        cluster,
        "DROP ROLE IF EXISTS reader",
        f"CREATE ROLE reader LOGIN PASSWORD '{READER_PASSWORD}'",
    )


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Cluster]:
    """A running throwaway cluster (skips, saying why, only when PostgreSQL is not installed)."""
    if find_binaries() is None:
        pytest.skip("PostgreSQL is not installed (no initdb/pg_ctl/postgres on PATH, /usr/local/bin or /usr/lib/postgresql)")
    started = time.perf_counter()
    cluster = start_cluster()
    cluster.started_s = time.perf_counter() - started  # type: ignore[attr-defined]
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def omop_database(postgres_cluster: Cluster) -> Iterator[Cluster]:
    """The cluster with ``../shared/data/omop/synthea27nj`` loaded into schema ``cdm``."""
    if not SHARED_OMOP.is_dir():
        pytest.skip(f"{SHARED_OMOP} is absent (the shared OMOP sample)")
    load_folder(postgres_cluster, SHARED_OMOP)
    add_reader_role(postgres_cluster)
    yield postgres_cluster
