"""`aeep-tui demo` — placeholder until the labelling app lands (issue #5)."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="(not yet) the interactive labelling app")
    p.add_argument("rest", nargs="*")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    print("aeep-tui demo: not yet — the labelling app is under construction; try 'aeep-tui simulate'", file=sys.stderr)
    return 2
