"""``aeep-tui simulate``: the active-learning loop with ground truth as the oracle."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def add_parser(sub: argparse._SubParsersAction) -> None:
    from aeep_core.strategies import STRATEGIES

    p = sub.add_parser("simulate", help="run active learning with the true labels as the oracle")
    from aeep_tui.cli.cohort import add_schema_flag, data_path

    p.add_argument(
        "--data",
        required=True,
        type=data_path,
        help="image folder (class subfolders), MNIST IDX folder, labelled event-sequence folder, or with an outcome "
        "an OMOP CDM's postgresql:// URL",
    )
    add_schema_flag(p)
    test = p.add_mutually_exclusive_group()
    test.add_argument("--test", type=Path, help="labelled test folder (default: t10k files of an IDX folder)")
    test.add_argument("--test-split", type=float, metavar="F", help="hold out this fraction of the pool as test set")
    p.add_argument("--strategy", default="aeep", choices=sorted(STRATEGIES))
    p.add_argument("--batch-size", "-k", type=int, default=20)
    p.add_argument("--budget", type=int, default=300, help="stop at this many labels")
    p.add_argument("--initial", type=int, default=20, help="size of the random seed set")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto (cuda, then mps, then cpu), cpu, cuda, mps")
    p.add_argument("--candidates", type=int, default=10_000, help="unlabelled items scored per round")
    p.add_argument("--fresh-start", action="store_true", help="train a new network each round (default: continue the last one)")
    p.add_argument("--no-pair-loss", action="store_true", help="ablation: train with classification loss only")
    p.add_argument("--json", type=Path, help="write every round to this JSON file")
    p.add_argument(
        "--hidden-classes",
        action="store_true",
        help="start knowing only the classes of the initial labels and add each other class when the oracle first "
        "answers with it, as a person would; the JSON records the labels until every class is known",
    )
    from aeep_tui.cli.bench import add_imbalance_options

    add_imbalance_options(p)  # cut with --seed
    from aeep_tui.cli.label import add_backbone_flag

    add_backbone_flag(p)
    from aeep_tui.cli.cohort import add_outcome_options

    add_outcome_options(p)  # labels from an outcome cohort: OMOP/Synthea folders have none of their own
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from aeep_core.bench.simulate import (
        SimulationSettings,
        discovery_line,
        format_header,
        format_row,
        simulate,
        summary_line,
    )
    from aeep_core.data import load_dataset
    from aeep_core.learning.training import TrainConfig
    from aeep_tui.cli.cohort import resolve_data

    resolve_data(args)  # a database URL: the folder that stands for it
    if args.outcome or args.outcome_codes:
        from aeep_core.sequences.outcomes import make_outcome, outcome_dataset

        outcome = make_outcome(args.outcome, args.outcome_codes, args.outcome_types)
        data = outcome_dataset(args.data, outcome, args.seed, args.test_split or 0.3, args.gap_days)
    else:
        data = load_dataset(args.data, test=args.test, test_split=args.test_split, seed=args.seed, backbone=args.backbone)
    for s in data.pool.skipped:
        print(f"skipped {s}", file=sys.stderr)
    if args.imbalance is not None and args.imbalance != 1:
        from aeep_core.bench.imbalance import kept_line, long_tailed, pool_counts

        profile = args.imbalance_profile or "exp"
        data = long_tailed(data, args.imbalance, profile, args.seed)
        print(kept_line(pool_counts(data.pool), args.imbalance, profile, args.seed, data.pool.class_names))
    config = TrainConfig(warm_start=not args.fresh_start, pair_weight=0.0 if args.no_pair_loss else 1.0)
    settings = SimulationSettings(
        strategy=args.strategy,
        batch_size=args.batch_size,
        budget=args.budget,
        initial=args.initial,
        seed=args.seed,
        device=args.device,
        candidates=args.candidates,
        train=config,
        hidden_classes=args.hidden_classes,
    )
    print(
        f"{args.strategy}: pool {len(data.pool)}, test {len(data.test) if data.test else 0}, "
        f"k={args.batch_size}, budget {args.budget}, seed {args.seed}"
    )
    print(format_header())
    result = simulate(data, settings, on_round=lambda r: print(format_row(r.as_dict()), flush=True))
    print(summary_line(result))
    if args.hidden_classes:
        print(discovery_line(result))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
        print(f"wrote {args.json}")
    return 0
