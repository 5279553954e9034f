"""``aeep-tui export``: a project's labels as CSV or JSON Lines, or as class folders to train on."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="write a project's labels as CSV, JSON Lines, or class folders for training")
    p.add_argument("target", metavar="DATA_OR_PROJECT", help="the data folder, the project folder, or the project's name")
    p.add_argument(
        "--format",
        choices=("csv", "jsonl", "imagefolder"),
        default="csv",
        help="csv (default), jsonl, or imagefolder: one folder per class (labelled JSONL for sequences)",
    )
    p.add_argument("--out", type=Path, metavar="F", help="file to write (default: standard output); a new folder for imagefolder")
    p.add_argument("--link", choices=("symlink", "hardlink", "copy"), default="symlink", help="imagefolder: how files get there")
    p.add_argument(
        "--split", metavar="NAME=F", help="imagefolder: hold out a stratified fraction, e.g. val=0.2 (train/ and val/)"
    )
    p.add_argument("--include-skipped", action="store_true", help="imagefolder: skipped items too, in _skipped/ (not a class)")
    p.add_argument(
        "--predictions",
        action="store_true",
        help="csv/jsonl: add the current model's class and confidence for every unlabelled item (kind=prediction)",
    )
    p.set_defaults(run=run)


def _fail(message: str) -> int:
    print(f"aeep-tui: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    from aeep_core.store import StoreError
    from aeep_core.store.catalog import resolve_project

    if args.format == "imagefolder":
        if args.out is None:
            return _fail("--format imagefolder needs --out DIR (a new folder)")
        if args.predictions:
            return _fail("--predictions goes with --format csv or jsonl: predictions are never written as labels")
        return _run_folders(args)
    if args.split or args.include_skipped or args.link != "symlink":
        return _fail("--split, --include-skipped and --link go with --format imagefolder")
    from aeep_core.store.export import export_rows, format_export, write_atomically

    try:
        project = resolve_project(args.target)
        rows = export_rows(project)
        if args.predictions:
            from aeep_core.session.portable import unlabelled_predictions

            rows = [{**r, "kind": "label", "predicted": None, "confidence": None} for r in rows]
            rows += [_prediction_row(r) for r in unlabelled_predictions(project)]
    except StoreError as exc:
        return _fail(str(exc))
    text = format_export(rows, args.format)
    if args.out is None:
        sys.stdout.flush()
        # surrogateescape: a file name that is not valid UTF-8 is written as its own bytes
        sys.stdout.buffer.write(text.encode("utf-8", "surrogateescape"))
        sys.stdout.buffer.flush()
    else:
        write_atomically(args.out, text)
        labels = sum(1 for r in rows if r.get("kind", "label") == "label")
        missing = sum(bool(r["missing"]) for r in rows if r.get("kind", "label") == "label")
        note = f" ({missing} of them no longer in the data folder, marked missing)" if missing else ""
        guesses = f" and {len(rows) - labels} predictions (kind=prediction)" if args.predictions else ""
        print(f"wrote {labels} labels{note}{guesses} to {args.out}", file=sys.stderr)
    return 0


def _prediction_row(r: dict) -> dict:
    """A prediction in the export's columns: no label, no answer time, marked as a guess."""
    return {
        "path": r["path"],
        "label": None,
        "labelled_at": None,
        "round": r["round"],
        "exploration": None,
        "missing": False,
        "kind": "prediction",
        "predicted": r["predicted"],
        "confidence": r["confidence"],
    }


def _run_folders(args: argparse.Namespace) -> int:
    from aeep_core.store import StoreError
    from aeep_core.store.catalog import resolve_project
    from aeep_core.store.dataset_export import export_for_training, parse_split

    split = parse_split(args.split) if args.split else None
    try:
        result = export_for_training(resolve_project(args.target), args.out, args.link, split, args.include_skipped)
    except StoreError as exc:
        return _fail(str(exc))
    for warning in result.warnings:
        print(f"aeep-tui: warning: {warning}", file=sys.stderr)
    parts = ", ".join(f"{name or 'all'}: {sum(c.values())}" for name, c in sorted(result.counts.items()))
    extra = f", {result.skipped} skipped in _skipped/" if result.skipped else ""
    gone = f"; {result.missing} labelled files no longer in the data folder were left out" if result.missing else ""
    print(f"wrote {result.total} labelled items to {args.out} ({parts}{extra}){gone}", file=sys.stderr)
    return 0
