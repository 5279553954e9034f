"""``aeep-tui config``: where the config file is, whether it reads, and an example."""

from __future__ import annotations

import argparse
import sys


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("config", help="show the config file's path and settings, or print an example to start from")
    p.add_argument("--path", action="store_true", help="print only the config file's path")
    p.add_argument("--example", action="store_true", help="print an example config file (every key, commented)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core import locations
    from aeep_tui.config import EXAMPLE, KNOWN, load_config

    path = locations.config_file()
    if args.path:
        print(path)
        return 0
    if args.example:
        sys.stdout.write(EXAMPLE)
        return 0
    config = load_config(path)  # a bad file: a one-line error from main()
    if config.path is None:
        print(f"{path} (not there yet: built-in defaults apply)")
        print(f"start one with: aeep-tui config --example > {path}")
        return 0
    print(path)
    for key in KNOWN:
        value = getattr(config, key)
        if value is not None and value != {}:
            print(f"  {key} = {value}")
    return 0
