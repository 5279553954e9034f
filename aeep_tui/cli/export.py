"""``aeep-tui export``: a project's labels as CSV or JSON Lines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a project's labels as CSV or JSON Lines")
    p.add_argument("target", metavar="DATA_OR_PROJECT", help="the data folder, the project folder, or the project's name")
    p.add_argument("--format", choices=("csv", "jsonl"), default="csv", help="csv (default) or jsonl")
    p.add_argument("--out", type=Path, metavar="F", help="write to this file (default: standard output)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core.store import StoreError
    from aeep_core.store.catalog import resolve_project
    from aeep_core.store.export import export_rows, format_export, write_atomically

    try:
        rows = export_rows(resolve_project(args.target))
    except StoreError as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    text = format_export(rows, args.format)
    if args.out is None:
        sys.stdout.write(text)
    else:
        write_atomically(args.out, text)
        missing = sum(r["missing"] for r in rows)
        note = f" ({missing} of them no longer in the data folder, marked missing)" if missing else ""
        print(f"wrote {len(rows)} labels to {args.out}{note}", file=sys.stderr)
    return 0
