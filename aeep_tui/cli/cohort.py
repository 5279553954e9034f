"""``aeep-tui cohort DATA --outcome ... --out DIR``: a labelled case-control cohort as JSONL."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path


def data_path(value: str) -> Path | str:
    """argparse ``type`` of a DATA argument: a path, or a ``postgresql://`` URL kept as text
    (``Path`` would fold its ``//``); :func:`resolve_data` turns it into a folder."""
    return value if value.split("://", 1)[0].lower() in ("postgresql", "postgres") and "://" in value else Path(value)


def add_schema_flag(p: argparse.ArgumentParser) -> None:
    """``--schema``: the OMOP CDM's schema when DATA is a database URL."""
    p.add_argument(
        "--schema",
        metavar="NAME",
        help="with a postgresql://USER@HOST:PORT/DB URL as DATA: the schema of the OMOP CDM (default public). "
        "The password comes from PGPASSWORD or ~/.pgpass, never the URL",
    )


def resolve_data(args: argparse.Namespace, attr: str = "data") -> None:
    """Replace ``args.<attr>`` (a path or a database URL) by the folder the commands read;
    a URL with a password, or --schema with a folder, is a one-line error (DataError)."""
    value = getattr(args, attr)
    if value is None:
        return
    from aeep_core.sequences.dbfolder import data_location

    setattr(args, attr, data_location(value, getattr(args, "schema", None)))


def add_outcome_options(p: argparse.ArgumentParser) -> None:
    """The options that define an outcome; shared by the commands that build cohorts."""
    p.add_argument(
        "--outcome",
        metavar="TEXT",
        help="outcome by name: events whose text contains TEXT, any case "
        '(OMOP concept names, Synthea descriptions), e.g. "heart failure" (the default outcome)',
    )
    p.add_argument(
        "--outcome-codes",
        metavar="CODE,CODE",
        help="outcome by code: OMOP concept ids, SNOMED codes or source values, e.g. 316139,319835",
    )
    p.add_argument(
        "--outcome-types",
        default="condition",
        metavar="TYPE,TYPE",
        help="event types that can be the outcome: condition (default), medication, procedure, "
        "measurement, observation, encounter, or any",
    )
    p.add_argument(
        "--gap-days",
        type=float,
        default=0.0,
        metavar="D",
        help="end every history D days before its index date (predict that far ahead; default 0)",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "cohort",
        help="build a labelled case-control cohort (OMOP, Synthea or JSONL) for any outcome",
        description="Cases: patients with an outcome event, their history strictly before the first one. "
        "Controls: the others, cut at an index date matched on the cases' ages. Writes DIR/patients.jsonl, "
        "DIR/test.jsonl and DIR/cohort.json (the summary), a folder label and simulate open directly.",
    )
    p.add_argument(
        "data",
        type=data_path,
        metavar="DATA",
        help="OMOP CDM folder or postgresql:// URL (with --schema), Synthea export(s), or JSONL/long-CSV folder",
    )
    add_schema_flag(p)
    add_outcome_options(p)
    p.add_argument("--name", help="the positive class's label (default: from --outcome, else 'outcome')")
    p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder to write the cohort to")
    p.add_argument(
        "--test-fraction",
        type=float,
        default=0.3,
        metavar="F",
        help="hold out this stratified fraction as DIR/test.jsonl (default 0.3; 0 = none)",
    )
    p.add_argument("--seed", type=int, default=0, help="seed of the control index dates and the split (default 0)")
    p.set_defaults(run=run)


class ProgressBar:
    """A one-line progress bar on stderr for row counts, redrawn at most 10 times a second."""

    def __init__(self, what: str, width: int = 30) -> None:
        self.what, self.width = what, width
        self.start = self.last = time.monotonic()
        self.shown, self.done = False, -1

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        if done == self.done or (now - self.last < 0.1 and done < total):
            return
        self.last, self.shown, self.done = now, True, done
        frac = min(done / total, 1.0) if total else 1.0
        rate = done / max(now - self.start, 1e-6)
        bar = "#" * int(frac * self.width)
        print(
            f"\r{self.what} [{bar:<{self.width}}] {done:,}/{total:,} rows, {rate:,.0f} rows/s",
            end="",
            file=sys.stderr,
            flush=True,
        )

    def close(self) -> None:
        if self.shown:
            print(file=sys.stderr)


def run(args: argparse.Namespace) -> int:
    from aeep_core.sequences.outcomes import (
        build_outcome_cohort,
        make_outcome,
        named_after_events,
        read_source,
        write_cohort,
    )

    if not 0.0 <= args.test_fraction < 1.0:
        print(f"aeep-tui cohort: error: --test-fraction must be in [0, 1), got {args.test_fraction}", file=sys.stderr)
        return 2
    from aeep_core.sequences.dbfolder import is_database_url, parse_database

    shown = str(parse_database(args.data, args.schema or "public")) if is_database_url(args.data) else None
    resolve_data(args)
    shown = shown or str(args.data)
    outcome = make_outcome(args.outcome, args.outcome_codes, args.outcome_types, args.name)
    bar = ProgressBar(f"reading {shown if shown.startswith('postgres') else args.data.name}")
    try:
        source = read_source(args.data, progress=bar)
    finally:
        bar.close()
    if args.outcome_codes and not (args.name or args.outcome):
        outcome = named_after_events(outcome, source.records)
    for note in source.stats.skipped:
        print(f"note: {note}", file=sys.stderr)
    cohort, summary = build_outcome_cohort(source, outcome, seed=args.seed, gap_days=args.gap_days)
    written = write_cohort(cohort, args.out.expanduser(), args.test_fraction, args.seed, summary)
    cases, controls = summary["case_histories"], summary["control_histories"]
    print(
        f"{source.kind} {shown}: {summary['patients_read']} patients; outcome {outcome.name} "
        f"({', '.join(outcome.describe()['codes']) or outcome.phrases[0]!r}), gap {args.gap_days:g} days"
    )
    print(
        f"cases {summary['cases']}, controls {summary['controls']} "
        f"({summary['controls_whole_history']} kept whole: no case age in their record), "
        f"dropped {summary['dropped_empty_history']} with no history before the index"
    )
    for label, g in (("cases", cases), ("controls", controls)):
        print(
            f"  {label:<8} median history {g['median_events']:g} events over {g['median_history_years']:g} years, "
            f"median age at index {g['median_age_at_index']:g}"
        )
    print("wrote " + ", ".join(str(p) for p in written))
    return 0
