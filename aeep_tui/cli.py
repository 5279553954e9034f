"""``aeep-tui`` entry point: one sub-command per module in :mod:`aeep_tui.commands`."""

from __future__ import annotations

import argparse
import importlib
import sys

# Each module defines ``add_parser(subparsers)`` and ``run(args) -> int``. Imported
# lazily so that ``aeep-tui simulate`` does not pay for Textual, nor ``label`` for sklearn.
COMMANDS = {
    "label": "aeep_tui.commands.label",
    "demo": "aeep_tui.commands.demo",
    "simulate": "aeep_tui.commands.simulate",
}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aeep-tui",
        description="Label data in the terminal while a CNN retrains and AEEP active learning picks each batch.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in COMMANDS.values():
        importlib.import_module(module).add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from aeep_core.data.pool import DataError

    try:
        return int(args.run(args) or 0)
    except DataError as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aeep-tui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
