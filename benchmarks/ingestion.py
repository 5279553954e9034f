"""Ingestion speed: the row-by-row Synthea reader against the DuckDB one (rows/s), and OMOP.

Three inputs: (1) every export under ``../shared/data/ehr`` as it is (19 small exports,
~340k events); (2) one large export made by repeating the biggest export ``--scale`` times
with renamed patients (a proxy for one real extract of millions of rows); (3) the OMOP
sample ``../shared/data/omop/synthea27nj`` (DuckDB only: there is no row reader for OMOP).
Both Synthea readers must return identical records; the script checks it. Best of
``--repeat`` runs, after one warm-up (the DuckDB import is not counted). Prints a table and
writes JSON.

    OMP_NUM_THREADS=1 python benchmarks/ingestion.py --scale 20 --json benchmarks/results/ingestion/ingestion.json
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from aeep_core.bench.report import cpu_description

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def scaled_export(src: Path, dst: Path, times: int) -> Path:
    """``src`` repeated ``times`` times into one export, patient ids suffixed ``-k`` per copy."""
    from aeep_core.sequences.readers import SYNTHEA_TABLES

    dst.mkdir(parents=True, exist_ok=True)
    for name in ["patients.csv"] + [t.file for t in SYNTHEA_TABLES]:
        if not (src / name).is_file():
            continue
        with (src / name).open(encoding="utf-8-sig", newline="", errors="replace") as fh:
            rows = list(csv.reader(fh))
        header = [c.strip().upper() for c in rows[0]]
        col = header.index("ID" if name == "patients.csv" else "PATIENT")
        with (dst / name).open("w", newline="") as out:
            w = csv.writer(out)
            w.writerow(rows[0])
            for k in range(times):
                for row in rows[1:]:
                    if len(row) == len(header):
                        row = list(row)
                        row[col] = f"{row[col]}-{k}"
                    w.writerow(row)
    return dst


def timed(fn: Callable[[], tuple[list, list]], repeat: int) -> tuple[float, list]:
    best, recs = float("inf"), []
    for _ in range(repeat):
        t = time.perf_counter()
        recs, _ = fn()
        best = min(best, time.perf_counter() - t)
    return best, recs


def same(a: list, b: list) -> bool:
    return {r.id: (r.birthdate, r.events) for r in a} == {r.id: (r.birthdate, r.events) for r in b}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scale", type=int, default=20, help="copies of the biggest export in the large input")
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--json", type=Path, default=Path("benchmarks/results/ingestion/ingestion.json"))
    args = p.parse_args()
    from synthea_columnar import read_synthea_columnar  # beside this script

    from aeep_core.sequences.loading import synthea_exports
    from aeep_core.sequences.omop import read_omop
    from aeep_core.sequences.readers import read_synthea_export

    ehr = SHARED / "ehr"
    if not ehr.is_dir():
        print(f"no Synthea data at {ehr}; nothing to measure")
        return 1
    exports = synthea_exports(ehr)
    read_synthea_columnar(exports[0])  # warm-up: imports duckdb
    rows = []

    def measure(what: str, folders: list[Path]) -> None:
        def run_all(fn):
            def go():
                out = []
                for f in folders:
                    out += fn(f)[0]
                return out, []

            return go

        t_old, old = timed(run_all(read_synthea_export), args.repeat)
        t_new, new = timed(run_all(read_synthea_columnar), args.repeat)
        n = sum(len(r.events) for r in old)
        rows.append(
            {
                "input": what,
                "events": n,
                "patients": len(old),
                "row_reader_s": round(t_old, 3),
                "duckdb_s": round(t_new, 3),
                "row_reader_rows_per_s": round(n / t_old),
                "duckdb_rows_per_s": round(n / t_new),
                "speedup": round(t_old / t_new, 2),
                "identical": same(old, new),
            }
        )

    measure(f"ehr: {len(exports)} exports as published", exports)
    biggest = max(exports, key=lambda e: sum(f.stat().st_size for f in e.glob("*.csv")))
    with tempfile.TemporaryDirectory() as tmp:
        big = scaled_export(biggest, Path(tmp) / "big", args.scale)
        measure(f"one export: {biggest.name} x{args.scale}", [big])
    omop = SHARED / "omop" / "synthea27nj"
    if omop.is_dir():
        t, recs = timed(lambda: read_omop(omop), args.repeat)
        n = sum(len(r.events) for r in recs)
        rows.append(
            {
                "input": "omop synthea27nj (DuckDB only)",
                "events": n,
                "patients": len(recs),
                "duckdb_s": round(t, 3),
                "duckdb_rows_per_s": round(n / t),
            }
        )
    report = {
        "cpu": cpu_description(),
        "cores": os.cpu_count(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "python": platform.python_version(),
        "duckdb": __import__("duckdb").__version__,
        "repeat": args.repeat,
        "rows": rows,
    }
    print(
        f"CPU {report['cpu']['model']} ({' '.join(report['cpu']['simd'])}; {report['cores']} cores), duckdb {report['duckdb']}, best of {args.repeat}"
    )
    print(f"{'input':<48} {'events':>9} {'row s':>7} {'duckdb s':>8} {'row rows/s':>11} {'duckdb rows/s':>13} {'x':>5} same")
    for r in rows:
        print(
            f"{r['input']:<48} {r['events']:>9,} {r.get('row_reader_s', float('nan')):>7.2f} {r['duckdb_s']:>8.2f} "
            f"{r.get('row_reader_rows_per_s', 0):>11,} {r['duckdb_rows_per_s']:>13,} {r.get('speedup', float('nan')):>5.2f} "
            f"{r.get('identical', '-')}"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=1) + "\n")
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
