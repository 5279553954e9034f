"""``aeep-tui label DATA``: label a folder batch by batch in the terminal app."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("label", help="label a folder of images batch by batch while the model retrains")
    from aeep_tui.cli.cohort import add_schema_flag, data_path

    p.add_argument(
        "data",
        type=data_path,
        metavar="DATA",
        help="folder of images (or MNIST IDX files) to label, a sequence folder, or an OMOP CDM's postgresql:// URL",
    )
    add_schema_flag(p)
    p.add_argument("--classes", help="class names, comma-separated (default: classes.txt in DATA, else asked)")
    add_config_flags(p)
    p.add_argument("--test", type=Path, metavar="DIR", help="labelled folder (class subfolders) for test accuracy")
    p.add_argument("--budget", type=int, metavar="N", help="stop after N labels")
    p.add_argument(
        "--train-steps",
        type=int,
        metavar="N",
        help="gradient steps per retrain (default: 300-600 by data size); fewer is faster on a slow machine",
    )
    add_backbone_flag(p)
    p.add_argument(
        "--labels",
        type=Path,
        metavar="FILE.csv",
        help="start from labels you have: path,label lines, imported before the first batch (never overwriting)",
    )
    add_pipeline_flag(p)
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.set_defaults(run=run)


def add_config_flags(p: argparse.ArgumentParser) -> None:
    """The flags the config file gives defaults for (None here: see :func:`aeep_tui.config.apply_config`)."""
    p.add_argument("--batch-size", "-k", type=int, help="items per batch (default: batch_size in the config file, else 12)")
    p.add_argument(
        "--strategy", help="aeep (default), ee, random, em, kff, bmal, coreset, badge (default: strategy in the config file)"
    )
    p.add_argument(
        "--device", help="auto (cuda, then mps, then cpu), cpu, cuda, mps (default: device in the config file, else auto)"
    )


def _backbone_name(value: str) -> str:
    from aeep_core.data.backbones import is_backbone, unknown_backbone

    if value in ("auto", "cnn") or is_backbone(value):
        return value
    raise argparse.ArgumentTypeError(unknown_backbone(value))


def add_backbone_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--backbone",
        default="auto",
        type=_backbone_name,
        metavar="NAME",
        help="image folders: cnn (the paper's network, trained from scratch), efficientnet-lite1 "
        "or the faster efficientnet-lite0 (pretrained on ImageNet, shipped, frozen, features "
        "computed once), a torchvision model whose ImageNet weights are in the torch hub cache "
        "(e.g. resnet18; never downloaded), or auto (cnn for small grey images such as digits, "
        "efficientnet-lite1 for photos; default)",
    )


def add_pipeline_flag(p: argparse.ArgumentParser) -> None:
    """--pipeline / --no-pipeline; neither: auto (a new project's setting, see ProjectSettings)."""
    group = p.add_mutually_exclusive_group()
    group.add_argument(
        "--pipeline",
        dest="pipelined",
        action="store_true",
        help="train while you label, so the next batch is ready at once (the default for networks "
        "trained end to end; photos on a pretrained backbone retrain between batches in under a second)",
    )
    group.add_argument(
        "--no-pipeline",
        dest="pipelined",
        action="store_false",
        help="retrain after each batch instead of while you label (a new project's setting)",
    )
    p.set_defaults(pipelined=None)


def settings_from_args(args: argparse.Namespace):
    """The settings a new project starts from; the setup screen confirms classes, batch size, strategy."""
    from aeep_core.session import ProjectSettings
    from aeep_tui.config import key_map_for
    from aeep_tui.keys import assign_keys, parse_classes

    classes = parse_classes(args.classes or "")
    return ProjectSettings(
        classes=classes,
        keys=assign_keys(classes, key_map_for(classes, args.config.keys)) if len(classes) <= 36 else [],
        strategy=args.strategy,
        batch_size=args.batch_size,
        budget=args.budget,
        seed=args.seed,
        device=args.device,
        test_dir=str(args.test.expanduser().resolve()) if args.test else None,
        follow_pace=True,  # choose as far ahead as this machine and this person need
        train={"min_steps": args.train_steps, "max_steps": args.train_steps} if args.train_steps else {},
        pipelined=args.pipelined,
        backbone=args.backbone,
    )


def check_folder(path: Path, what: str) -> None:
    from aeep_core.pool import DataError

    if not path.expanduser().is_dir():
        raise DataError(f"{path}: {what} folder not found; check the path")


def read_config(args: argparse.Namespace) -> None:
    """Fill unset flags from the config file (flags win) and keep it as ``args.config``."""
    from aeep_tui.config import apply_config, load_config

    args.config = load_config()
    apply_config(args, args.config)


def run_app(data: Path, settings, confirm_setup: bool = True, config=None, review: bool = False) -> int:
    """Run the labelling app on ``data`` (``review``: opened on the review screen); print a
    one-line error or where the work is kept."""
    import torch

    from aeep_tui.app import LabellingApp, training_threads

    torch.set_num_threads(training_threads())
    app = LabellingApp(data, settings, confirm_setup=confirm_setup, config=config, review=review)
    app.run()
    for note in app.exit_notes:
        print(f"aeep-tui: warning: {note}", file=sys.stderr)
    if app.error_message:
        print(f"aeep-tui: error: {app.error_message}", file=sys.stderr)
        return 2
    if app.opened_project is not None:
        print(f"aeep-tui: answers saved in {app.opened_project}; run the same command to continue")
    return app.return_code or 0


def import_labels_first(args: argparse.Namespace) -> int:
    """Import ``--labels`` into the project of ``args.data`` (created from the flags, with
    classes from --classes, classes.txt or the file, when there is none); print one line
    per problem and a summary; return the exit code (0: go on to the app)."""
    from dataclasses import replace

    from aeep_core.pool import DataError
    from aeep_core.session import LabellingSession, StoreError
    from aeep_core.session.label_import import classes_in, import_label_file, read_label_file
    from aeep_tui.config import key_map_for
    from aeep_tui.keys import assign_keys
    from aeep_tui.screens.setup import classes_from_folder

    rows = read_label_file(args.labels)
    data = args.data.expanduser()
    settings = settings_from_args(args)
    if LabellingSession.find(data) is None and not settings.classes:
        classes = classes_from_folder(data) or classes_in(rows)
        try:
            settings = replace(settings, classes=classes, keys=assign_keys(classes, key_map_for(classes, args.config.keys)))
        except ValueError as exc:
            raise DataError(f"{args.labels}: {exc}; give the classes with --classes") from exc
    print(f"aeep-tui: reading {data} to import {args.labels}", file=sys.stderr)
    try:
        with LabellingSession.open(data, settings) as session:
            report = import_label_file(session, args.labels, rows)
    except (StoreError, ValueError) as exc:
        print(f"aeep-tui: error: {data}: {exc}", file=sys.stderr)
        return 2
    for line in report.problems:
        print(f"aeep-tui: {line}", file=sys.stderr)
    agreed = f", {report.already} already labelled the same" if report.already else ""
    problems = f", {len(report.problems)} lines left out (above)" if report.problems else ""
    print(f"aeep-tui: imported {report.imported} labels from {args.labels}{agreed}{problems}", file=sys.stderr)
    return 0


def run(args: argparse.Namespace) -> int:
    from aeep_tui.cli.cohort import resolve_data

    resolve_data(args)  # a database URL becomes the folder that stands for it (and keeps its project)
    read_config(args)
    check_folder(args.data, "data")
    if args.test is not None:
        check_folder(args.test, "test")
    if args.labels is not None:
        code = import_labels_first(args)
        if code:
            return code
    return run_app(args.data.expanduser(), settings_from_args(args), config=args.config)
