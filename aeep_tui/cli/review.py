"""``aeep-tui review DATA``: open a project straight on its review screen."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "review",
        help="review and correct a project's confirmed batches (the model's disagreements first)",
        description="Open the project of DATA on the review screen: confirmed batches, the items the model "
        "disagrees with first; relabel, skip or un-skip. Esc goes on to labelling; q quits.",
    )
    p.add_argument("data", type=Path, metavar="DATA", help="the data folder of a project made with 'aeep-tui label'")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core.session import LabellingSession
    from aeep_tui.cli.label import check_folder, run_app

    data = args.data.expanduser()
    check_folder(data, "data")
    if LabellingSession.find(data.resolve()) is None:
        print(
            f"aeep-tui: error: {data}: no project for this folder yet; label it first with 'aeep-tui label {data}'",
            file=sys.stderr,
        )
        return 2
    from aeep_tui.config import load_config

    # Same opening as `label`: the writer lock refuses a second instance with one line;
    # the config file's theme applies here too.
    return run_app(data, None, config=load_config(), review=True)
