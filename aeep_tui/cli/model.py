"""``aeep-tui model export DATA --out model.pt``: take the project's current model away."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("model", help="take a project's model away (model export)")
    actions = p.add_subparsers(dest="model_command", metavar="ACTION", required=True)
    e = actions.add_parser(
        "export",
        help="write the current model as TorchScript, classes and preprocessing inside",
        description="Write the model that chose the newest batch as one TorchScript file (torch.jit.load), "
        "with its class names and input shape inside (extra file aeep.json) and beside it (OUT.json); "
        "a sequence model also carries its event vocabulary, event vectors and sequence length T. "
        "Run it on files or patients with 'aeep-tui predict OUT DATA'.",
    )
    e.add_argument("target", metavar="DATA_OR_PROJECT", help="the data folder, the project folder, or the project's name")
    e.add_argument("--out", type=Path, required=True, metavar="F", help="the model file to write, e.g. model.pt")
    e.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core.session.portable import export_project_model
    from aeep_core.store import StoreError

    try:
        meta = export_project_model(args.target, args.out)
    except StoreError as exc:
        print(f"aeep-tui: error: {exc}", file=sys.stderr)
        return 2
    shape = meta["input"]
    if meta["modality"] == "sequence":
        given = f"the last {shape['length']} events of a patient ({len(meta['events']['tokens'])} known events) as input"
        data = "DATA"
    else:
        given, data = f"{shape['channels']}x{shape['size']}x{shape['size']} input", "FILES"
    print(
        f"wrote {args.out}: {len(meta['classes'])} classes ({', '.join(meta['classes'])}), "
        f"{given}, trained on {meta['labelled']} labels (round {meta['round']}); try: aeep-tui predict {args.out} {data}",
        file=sys.stderr,
    )
    return 0
