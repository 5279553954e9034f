"""OMOP ingestion at hospital scale (issue 29): event rows/s into patient matrices, and peak memory,
from Parquet, CSV and PostgreSQL, at 10^4, 10^5 (and 10^6) persons.

A synthetic CDM is written first (numpy, seeded): persons with log-normal history lengths
(median 60 events, mean ~100, up to 5,000: a hospital's CDM of 10^6 persons holds ~10^8
rows), spread over visit, condition, procedure, drug, measurement and observation tables
in a CDM's proportions; concepts drawn Zipf-like from a vocabulary of 55,000 used concepts
among 155,000 (a partial vocabulary, as extracts ship), 2 % unmapped (concept 0, a source
value). Parquet is written with pyarrow, CSV from it with DuckDB (upper-case file names, as
many exports have), and PostgreSQL is a throwaway cluster (tests/postgres_fixture.py) loaded
with ADBC.

Each measurement runs in a fresh process (its peak RSS is the process's own): the columnar
reader (aeep_core/sequences/columnar.py: the same staging and checks as read_omop, then three
flat arrays) and the patient matrices of every person, built 4,096 persons at a time (the
dense [N, T, D] pool of 10^6 persons would be ~17 GB, more than the rows themselves). The
word2vec embedding is trained on 2,000 persons and timed apart. ``--legacy`` also times
read_omop + patient_matrices (one dict per event) at the smallest scale. ``--drivers`` times
fetching the measurement table's needed columns with ADBC, psycopg 3 (binary COPY) and
connectorx, when installed.

    /tmp/quiet.sh python benchmarks/omop_scale.py --persons 10000 100000 --legacy --drivers
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# table, share of events, concept domain, date column, datetime column, concept column, source column
TABLES = [
    ("visit_occurrence", 0.08, "Visit", "visit_start_date", "visit_start_datetime", "visit_concept_id", "visit_source_value"),
    (
        "condition_occurrence",
        0.10,
        "Condition",
        "condition_start_date",
        "condition_start_datetime",
        "condition_concept_id",
        "condition_source_value",
    ),
    (
        "procedure_occurrence",
        0.12,
        "Procedure",
        "procedure_date",
        "procedure_datetime",
        "procedure_concept_id",
        "procedure_source_value",
    ),
    (
        "drug_exposure",
        0.15,
        "Drug",
        "drug_exposure_start_date",
        "drug_exposure_start_datetime",
        "drug_concept_id",
        "drug_source_value",
    ),
    (
        "measurement",
        0.40,
        "Measurement",
        "measurement_date",
        "measurement_datetime",
        "measurement_concept_id",
        "measurement_source_value",
    ),
    (
        "observation",
        0.15,
        "Observation",
        "observation_date",
        "observation_datetime",
        "observation_concept_id",
        "observation_source_value",
    ),
]
DOMAIN_SIZE = {"Visit": 12, "Condition": 20_000, "Procedure": 10_000, "Drug": 15_000, "Measurement": 5_000, "Observation": 5_000}
FILLER_CONCEPTS = 100_000  # vocabulary no event uses (partial vocabularies still carry many)
BATCH_PERSONS = 4096


def write_cdm(folder: Path, persons: int, seed: int = 0) -> dict[str, int]:
    """A synthetic OMOP CDM as Parquet files in ``folder``; return rows per table."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    ids = np.arange(1, persons + 1, dtype=np.int64)
    birth = np.datetime64("1930-01-01") + rng.integers(0, 80 * 365, persons).astype("timedelta64[D]")
    years = birth.astype("datetime64[Y]").astype(int) + 1970
    months = birth.astype("datetime64[M]").astype(int) % 12 + 1
    days = (birth - birth.astype("datetime64[M]")).astype(int) + 1
    pq.write_table(
        pa.table(
            {
                "person_id": ids,
                "gender_concept_id": rng.choice([8507, 8532], persons),
                "year_of_birth": years,
                "month_of_birth": months,
                "day_of_birth": days,
                "birth_datetime": birth.astype("datetime64[us]"),
                "race_concept_id": np.full(persons, 8527),
                "person_source_value": [f"p{i}" for i in ids],
            }
        ),
        folder / "person.parquet",
    )
    counts = {"person": persons}
    # Concepts: each domain's ids in a block; Zipf-like use (a few codes are most events).
    base, concept_rows = {}, []
    next_id = 1_000_000
    for domain, size in DOMAIN_SIZE.items():
        base[domain] = next_id
        concept_rows.append((np.arange(next_id, next_id + size), domain))
        next_id += size
    concept_rows.append((np.arange(next_id, next_id + FILLER_CONCEPTS), "Other"))
    cid = np.concatenate([r[0] for r in concept_rows])
    dom = np.concatenate([np.full(len(r[0]), r[1], dtype=object) for r in concept_rows])
    pq.write_table(
        pa.table(
            {
                "concept_id": cid,
                "concept_name": [f"{d} concept {i}" for d, i in zip(dom, cid)],
                "domain_id": dom.astype(str),
                "vocabulary_id": np.full(len(cid), "SNOMED"),
                "concept_code": cid.astype(str),
            }
        ),
        folder / "concept.parquet",
    )
    counts["concept"] = len(cid)
    n_events = np.clip(np.round(rng.lognormal(np.log(60.0), 1.0, persons)), 1, 5000).astype(np.int64)
    start = np.datetime64("1995-01-01") + rng.integers(0, 20 * 365, persons).astype("timedelta64[D]")
    span = np.clip(rng.lognormal(np.log(6 * 365.0), 0.8, persons), 30, 40 * 365).astype(np.int64)
    owner = np.repeat(np.arange(persons), n_events)
    table = rng.choice(len(TABLES), owner.size, p=[t[1] for t in TABLES])
    for k, (name, _, domain, dcol, dtcol, ccol, scol) in enumerate(TABLES):
        who = owner[table == k]
        n = who.size
        offset = (rng.random(n) * span[who]).astype(np.int64)
        day = start[who] + offset.astype("timedelta64[D]")
        when = day.astype("datetime64[s]") + rng.integers(7 * 3600, 19 * 3600, n).astype("timedelta64[s]")
        rank = np.minimum(rng.zipf(1.3, n), DOMAIN_SIZE[domain]) - 1
        concept = base[domain] + rank
        unmapped = rng.random(n) < 0.02
        concept[unmapped] = 0
        cols = {
            f"{name.split('_')[0]}_id": np.arange(1, n + 1, dtype=np.int64),
            "person_id": ids[who],
            ccol: concept,
            dcol: day,
            dtcol: when.astype("datetime64[us]"),
            scol: pa.array(rank).cast(pa.string()),  # the source code, as text
        }
        if name == "measurement":
            cols["value_as_number"] = np.round(rng.normal(100, 25, n), 1)
            cols["unit_source_value"] = np.full(n, "mg/dL")
        pq.write_table(pa.table(cols), folder / f"{name}.parquet", row_group_size=1_000_000)
        counts[name] = n
    return counts


def write_csv(parquet: Path, folder: Path) -> None:
    """The same tables as CSV, upper-case file names (PERSON.csv), written by DuckDB."""
    import duckdb

    folder.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    for f in sorted(parquet.glob("*.parquet")):
        con.execute(f"COPY (SELECT * FROM read_parquet('{f}')) TO '{folder / (f.stem.upper() + '.csv')}' (HEADER, DELIMITER ',')")
    con.close()


def load_postgres(cluster, parquet: Path, schema: str = "cdm") -> float:
    """Bulk-load the Parquet tables into ``schema`` with ADBC (COPY); return seconds."""
    import pyarrow.parquet as pq

    from tests.postgres_fixture import admin

    t = time.perf_counter()
    with admin(cluster) as conn, conn.cursor() as cur:
        cur.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        cur.execute(f"CREATE SCHEMA {schema}")
        for f in sorted(parquet.glob("*.parquet")):
            cur.adbc_ingest(f.stem, pq.ParquetFile(f).iter_batches(1_000_000), mode="create", db_schema_name=schema)
        cur.execute("ANALYZE")
    return time.perf_counter() - t


def measure(source: str, path: str, legacy: bool) -> dict:
    """One measurement, in this (fresh) process: read to columns, then matrices of every person."""
    from aeep_core.sequences.columnar import matrices, read_omop_columns
    from aeep_core.sequences.embedding import train_event_embedding
    from aeep_core.sequences.matrix import choose_length

    out: dict = {"source": source}
    # What the imports alone hold (numpy, DuckDB, and torch through aeep_core.sequences): the floor of peak RSS.
    out["import_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    t0 = time.perf_counter()
    cols = read_omop_columns(path)
    out["read_s"] = time.perf_counter() - t0
    out["rows"], out["persons"] = cols.rows, len(cols.persons)
    t = time.perf_counter()
    sample = np.linspace(0, len(cols.persons) - 1, min(2000, len(cols.persons))).astype(np.int64)
    embedding = train_event_embedding(list(cols.sequences(sample)), dim=32, seed=0, epochs=5)
    out["embedding_s"] = time.perf_counter() - t
    length = choose_length(cols.lengths())
    out["T"] = length
    t = time.perf_counter()
    checksum = 0.0
    for lo in range(0, len(cols.persons), BATCH_PERSONS):
        x = matrices(cols, embedding, length, np.arange(lo, min(lo + BATCH_PERSONS, len(cols.persons))))
        checksum += float(x[:, -1, -2].sum())  # touch the result: every person has a last event
    out["matrices_s"] = time.perf_counter() - t
    assert checksum == len(cols.persons)
    out["total_s"] = out["read_s"] + out["matrices_s"]
    out["rows_per_s"] = out["rows"] / out["total_s"]
    out["peak_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    if legacy:
        from aeep_core.sequences.matrix import patient_matrices
        from aeep_core.sequences.omop import read_omop

        del cols
        t = time.perf_counter()
        records, _ = read_omop(path)
        mid = time.perf_counter()
        for lo in range(0, len(records), BATCH_PERSONS):
            patient_matrices([r.events for r in records[lo : lo + BATCH_PERSONS]], embedding, length)
        out["legacy_read_s"] = mid - t
        out["legacy_total_s"] = time.perf_counter() - t
        out["legacy_rows_per_s"] = out["rows"] / out["legacy_total_s"]
    return out


def run_measure(source: str, path: Path, legacy: bool, env: dict) -> dict:
    cmd = [sys.executable, __file__, "--measure", source, str(path)] + (["--legacy"] if legacy else [])
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise RuntimeError(f"{source} {path}: {done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def drivers(cluster, password: str) -> list[dict]:
    """Seconds to fetch measurement's needed columns (ordered by person, time) with each installed driver."""
    sql = (
        "SELECT person_id, measurement_concept_id, measurement_date, measurement_datetime, measurement_source_value, "
        "value_as_number, unit_source_value FROM cdm.measurement ORDER BY person_id, measurement_datetime"
    )
    url = cluster.url()
    out = []
    try:
        import adbc_driver_postgresql.dbapi as adbc

        t = time.perf_counter()
        with adbc.connect(url) as conn, conn.cursor() as cur:
            cur.execute(sql)
            n = cur.fetch_arrow_table().num_rows
        out.append({"driver": "adbc-driver-postgresql (COPY binary -> Arrow)", "rows": n, "s": time.perf_counter() - t})
    except ImportError:
        pass
    try:
        import psycopg

        t = time.perf_counter()
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            n = 0
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT BINARY)") as copy:
                copy.set_types(["int8", "int8", "date", "timestamp", "text", "float8", "text"])
                for _row in copy.rows():
                    n += 1
        out.append({"driver": "psycopg 3 (COPY binary -> Python rows)", "rows": n, "s": time.perf_counter() - t})
        import pyarrow.csv as pacsv

        t = time.perf_counter()
        with psycopg.connect(url) as conn, conn.cursor() as cur:
            buf = bytearray()
            with cur.copy(f"COPY ({sql}) TO STDOUT (FORMAT CSV)") as copy:
                for block in copy:
                    buf += block
        table = pacsv.read_csv(
            __import__("io").BytesIO(bytes(buf)),
            read_options=pacsv.ReadOptions(column_names=[f"c{i}" for i in range(7)]),
        )
        out.append({"driver": "psycopg 3 (COPY CSV -> pyarrow.csv)", "rows": table.num_rows, "s": time.perf_counter() - t})
    except ImportError:
        pass
    try:
        import connectorx as cx

        # connectorx has no libpq: it reads neither PGPASSWORD nor ~/.pgpass, so the password must be in its URL.
        cx_url = url.replace("postgres@", f"postgres:{password}@")
        t = time.perf_counter()
        table = cx.read_sql(cx_url, sql, return_type="arrow")
        out.append({"driver": "connectorx (Rust, -> Arrow)", "rows": table.num_rows, "s": time.perf_counter() - t})
    except ImportError:
        pass
    for d in out:
        d["rows_per_s"] = d["rows"] / d["s"]
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--persons", type=int, nargs="+", default=[10_000, 100_000])
    p.add_argument("--sources", nargs="+", default=["parquet", "csv", "postgres"])
    p.add_argument("--work", type=Path, default=Path("/tmp/aeep-omop-scale"), help="where the synthetic CDMs go")
    p.add_argument("--legacy", action="store_true", help="also time read_omop + patient_matrices at the smallest scale")
    p.add_argument("--drivers", action="store_true", help="compare PostgreSQL drivers at the largest scale")
    p.add_argument("--json", type=Path, default=ROOT / "benchmarks/results/omop/omop_scale.json")
    p.add_argument("--prepare", action="store_true", help="only write the synthetic CDMs (untimed), then stop")
    p.add_argument("--measure", nargs=2, metavar=("SOURCE", "PATH"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure(args.measure[0], args.measure[1], args.legacy)))
        return 0
    from aeep_core.bench.report import cpu_description
    from tests.postgres_fixture import PASSWORD, start_cluster

    env = {**os.environ, "PGPASSWORD": PASSWORD, "AEEP_TUI_HOME": str(args.work / "home")}
    os.environ["PGPASSWORD"] = PASSWORD
    results: dict = {"machine": cpu_description(), "scales": [], "drivers": []}
    cluster = start_cluster() if "postgres" in args.sources and not args.prepare else None
    try:
        for n in sorted(args.persons):
            base = args.work / f"p{n}"
            t = time.perf_counter()
            if not (base / "parquet" / "person.parquet").is_file():
                counts = write_cdm(base / "parquet", n)
                (base / "counts.json").write_text(json.dumps(counts))
            counts = json.loads((base / "counts.json").read_text())
            if "csv" in args.sources and not (base / "csv" / "PERSON.csv").is_file():
                write_csv(base / "parquet", base / "csv")
            scale = {"persons": n, "event_rows": sum(v for k, v in counts.items() if k not in ("person", "concept"))}
            scale["concepts"], scale["write_s"] = counts["concept"], time.perf_counter() - t
            print(f"{n:,} persons: {scale['event_rows']:,} event rows, {counts['concept']:,} concepts", file=sys.stderr)
            if args.prepare:
                continue
            for source in args.sources:
                if source == "postgres":
                    assert cluster is not None
                    scale["postgres_load_s"] = load_postgres(cluster, base / "parquet")
                    from aeep_core.sequences.dbfolder import Database, database_folder

                    os.environ["AEEP_TUI_HOME"] = env["AEEP_TUI_HOME"]
                    path = database_folder(Database(cluster.url(), "cdm"))
                else:
                    path = base / source
                legacy = args.legacy and n == min(args.persons)
                r = run_measure(source, path, legacy, env)
                r["persons_scale"] = n
                results["scales"].append(r)
                print(_row(r), file=sys.stderr)
            if args.drivers and n == max(args.persons) and cluster is not None:
                results["drivers"] = drivers(cluster, PASSWORD)
            du = subprocess.run(["du", "-sm", str(base)], capture_output=True, text=True).stdout.split()[0]
            scale["disk_mb"] = int(du)
            results.setdefault("data", []).append(scale)
    finally:
        if cluster is not None:
            cluster.stop()
    if args.prepare:
        return 0
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=1) + "\n")
    print(table(results))
    print(f"wrote {args.json}")
    return 0


def _row(r: dict) -> str:
    legacy = f" | {r['legacy_rows_per_s']:,.0f}" if "legacy_rows_per_s" in r else " | -"
    return (
        f"| {r['persons_scale']:,} | {r['source']} | {r['rows']:,} | {r['read_s']:.1f} | {r['matrices_s']:.1f} | "
        f"{r['rows_per_s']:,.0f} | {r['peak_rss_mb']:,.0f} | {r['T']}{legacy} |"
    )


def table(results: dict) -> str:
    m = results["machine"]
    lines = [
        f"Machine: {m['model']} ({', '.join(m['simd'])}), {m['cores']} cores",
        "",
        "| persons | source | event rows | read s | matrices s | rows/s | peak RSS MB | T | dict path rows/s |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [_row(r) for r in results["scales"]]
    if results["drivers"]:
        lines += ["", "| driver (measurement, needed columns) | rows | s | rows/s |", "|---|---:|---:|---:|"]
        lines += [f"| {d['driver']} | {d['rows']:,} | {d['s']:.1f} | {d['rows_per_s']:,.0f} |" for d in results["drivers"]]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
