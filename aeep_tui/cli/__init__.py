"""``aeep-tui`` entry point: one sub-command per module in :mod:`aeep_tui.cli`."""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

# Every module in aeep_tui.cli is a sub-command: it defines ``add_parser(subparsers)``
# (cheap: heavy imports stay inside ``run``) and ``run(args) -> int``. The order below is
# the order of ``--help``; modules not listed follow alphabetically.
ORDER = ["label", "review", "demo", "simulate", "bench", "cohort", "projects", "export", "model", "predict", "forget", "config"]


def version() -> str:
    """The installed package's version (pyproject.toml), or "unknown" from a bare checkout."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as installed

    try:
        return installed("aeep-tui")
    except PackageNotFoundError:
        return "unknown"


def _command_modules() -> list[str]:
    found = [m.name for m in pkgutil.iter_modules(__path__) if not m.name.startswith("_")]
    return sorted(found, key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="aeep-tui",
        description="Label data in the terminal while a CNN retrains and AEEP active learning picks each batch.",
    )
    parser.add_argument("--version", action="version", version=f"aeep-tui {version()}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in _command_modules():
        importlib.import_module(f"{__name__}.{name}").add_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    from aeep_core.extras import MissingExtra
    from aeep_core.pool import DataError
    from aeep_tui.config import ConfigError

    try:
        return int(args.run(args) or 0)
    except (DataError, MissingExtra, ConfigError) as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("aeep-tui: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
