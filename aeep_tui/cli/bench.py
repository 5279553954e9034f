"""``aeep-tui bench``: strategies × seeds × batch sizes side by side, resumable."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def _ints(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give whole numbers separated by commas, e.g. 10,20") from None


def _seeds(text: str) -> list[int]:
    """``N``: seeds 0..N-1 (as always); ``A-B``: A to B; ``a,b,A-B``: those seeds."""
    try:
        if "," not in text and "-" not in text.strip():
            seeds = list(range(int(text)))  # a count: 0 is no seed at all, refused below
        else:
            seeds = []
            for part in filter(None, (t.strip() for t in text.split(","))):
                first, dash, last = part.partition("-")
                seeds += list(range(int(first), int(last) + 1)) if dash else [int(part)]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give a count (5: seeds 0-4), a range (10-14) or a list (10,11,12)") from None
    if not seeds or len(set(seeds)) != len(seeds):
        raise argparse.ArgumentTypeError(f"{text!r}: the seeds must be at least one (seed 0 alone: 1 or 0-0), none twice")
    return seeds


def _ratio(text: str) -> float:
    try:
        rho = float(text)
    except ValueError:
        rho = float("nan")
    if not rho >= 1:  # nan fails too
        raise argparse.ArgumentTypeError(f"{text!r}: the imbalance is head class / rarest class, a number of at least 1")
    return rho


#: --preset's names (settings.PRESETS, which is too heavy to import for the parser)
PRESET_NAMES = ["quick", "ablations", "paper", "mnist-lt10", "mnist-lt100", "flowers-lt10"]


def add_imbalance_options(p: argparse.ArgumentParser) -> None:
    """--imbalance and --imbalance-profile, shared by bench and simulate."""
    p.add_argument(
        "--imbalance",
        type=_ratio,
        metavar="RHO",
        help="cut the pool to a long tail: the commonest class keeps RHO times the rarest's items (the classes' "
        "ranks drawn from the seed; the test set stays whole; needs labelled data). 1 = as loaded",
    )
    p.add_argument(
        "--imbalance-profile",
        choices=["exp", "step"],
        help="exp: counts fall geometrically from head to tail (default); step: half the classes keep 1/RHO",
    )


def add_parser(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "bench",
        help="compare AEEP with the baselines on MNIST (table, JSON, PNG)",
        description="Run every strategy on the same seeds, initial sets, network and test set; print the "
        "table, write every round to JSON and the learning curves to PNG. Finished runs are kept in "
        "JSON.partial, so running the same command again after an interruption continues.",
    )
    p.add_argument(
        "--preset",
        default="quick",
        choices=PRESET_NAMES,
        help="quick: 8 strategies, 1 seed, k=20, 300 labels (≤ 15 min on 2 cores); ablations: aeep, ee "
        "and the ablations, same settings; paper: every strategy, 3 seeds, k 10,20,50, 500 labels, quick's candidates and test (hours; resumable); "
        "mnist-lt10, mnist-lt100: long-tailed MNIST pools (rho 10, 100), the baselines and the imbalance "
        "strategies, seeds 10-14, quick's settings; flowers-lt10: the photos task on flowers, rho 10, k=10, "
        "100 labels, seeds 10-14 (default quick)",
    )
    p.add_argument(
        "--task",
        choices=["mnist", "heart-failure", "outcome", "photos", "latency"],
        help="mnist (default, or the preset's); heart-failure (Synthea cohort, AUROC); outcome (a cohort of --outcome or "
        "--outcome-codes from an OMOP, Synthea or JSONL folder given by --data, AUROC); photos (a class-folder photo set, "
        "--data, default ../shared/data/photos/flowers); latency (a simulated person "
        "labels through the app: waits, keystrokes, memory, plain vs pipelined)",
    )
    p.add_argument(
        "--test-split",
        type=float,
        metavar="F",
        help="photos and outcome tasks: hold out this fraction as test set (default 0.25 photos, 0.3 outcome)",
    )
    p.add_argument("--test", type=Path, metavar="DIR", help="photos task: a labelled test folder instead of a split")
    from aeep_tui.cli.cohort import add_outcome_options
    from aeep_tui.cli.label import add_backbone_flag

    add_backbone_flag(p)
    add_outcome_options(p)  # the outcome task: a cohort of any outcome from an OMOP/Synthea/JSONL folder
    p.add_argument(
        "--seconds-per-label", type=float, metavar="S", help="latency task: the simulated person's pace (quick: 1.0, paper: 2.0)"
    )
    from aeep_tui.cli.cohort import add_schema_flag, data_path

    p.add_argument(
        "--data",
        type=data_path,
        help="data folder (default ../shared/data/mnist, or ehr for heart-failure); for the outcome task also an "
        "OMOP CDM's postgresql:// URL with --schema",
    )
    add_schema_flag(p)
    p.add_argument(
        "--strategies",
        help="comma-separated: aeep, ee, random, em, kff, bmal, coreset, badge, "
        "aeep-nopair, aeep-pixels, aeep-fresh; options as aeep[beta=0.5,rate=0.3]",
    )
    p.add_argument(
        "--seeds",
        type=_seeds,
        metavar="SEEDS",
        help="N: seeds 0..N-1; A-B: seeds A to B; or a list, e.g. 10,11,12 (tune on 0-4, report on 10-14)",
    )
    add_imbalance_options(p)
    p.add_argument("--batch-sizes", type=_ints, metavar="K,K", help="batch sizes, e.g. 10,20,50")
    p.add_argument("--budget", type=int, help="labels at the end of each run")
    p.add_argument("--initial", type=int, help="random labelled seed set (default 20)")
    p.add_argument("--candidates", type=int, help="unlabelled items scored per round")
    p.add_argument(
        "--test-subset",
        type=int,
        metavar="N",
        help="test on a fixed random N of the test set (quick: 5000); 0 = the whole test set",
    )
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, mps")
    p.add_argument(
        "--threads",
        type=int,
        help="torch CPU threads (1 is faster when other jobs share the cores); with --ray, per run (default --task-cpus)",
    )
    p.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="runs at once, in worker processes of one thread each "
        "(default 1; 2 on a 2-core machine finishes sooner than 2 threads)",
    )
    cluster = p.add_argument_group("on a Ray cluster (pip install 'aeep-tui[cluster]'; BENCHMARKS.md)")
    cluster.add_argument(
        "--ray",
        nargs="?",
        const="",
        metavar="ADDRESS",
        help="run every (strategy, seed, k) as a Ray task: no ADDRESS starts a local cluster of this machine's "
        "cores; 'auto' joins the cluster this machine belongs to; ray://HEAD:10001 a remote one. The data is "
        "read here and shipped once; every node needs aeep-tui installed",
    )
    cluster.add_argument("--task-cpus", type=float, default=1.0, metavar="N", help="CPUs per run with --ray (default 1)")
    cluster.add_argument(
        "--task-gpus", type=float, default=0.0, metavar="N", help="GPUs per run with --ray; 0.25 puts 4 runs on a GPU (default 0)"
    )
    cluster.add_argument(
        "--retries",
        type=int,
        default=3,
        metavar="N",
        help="with --ray: times a run is retried when its worker or node dies (default 3)",
    )
    p.add_argument("--json", type=Path, help="report file (default bench-PRESET.json); runs go to JSON.partial as they finish")
    p.add_argument("--plot", type=Path, help="learning-curve PNG (default: the JSON path with .png)")
    p.add_argument(
        "--slowdown",
        type=float,
        metavar="F",
        help="latency task: run the replay in a machine F times slower than this one, every process and thread "
        "of it slowed (a CPU quota per thread in a cgroup; needs a writable cgroup)",
    )
    p.add_argument(
        "--emulate-steps",
        type=float,
        metavar="R",
        help="latency task: run the replay in an emulated AVX2-only machine that trains R steps/s "
        "(e.g. 24.6; AVX2 kernels and a per-thread CPU quota, calibrated; needs a writable cgroup)",
    )
    p.add_argument("--modes", help="latency task: plain,pipelined (default both)")
    p.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    p.add_argument("--fresh", action="store_true", help="ignore finished runs in JSON.partial and start over")
    p.set_defaults(run=run)


def run_latency(args: argparse.Namespace) -> int:
    """``--task latency``: plain vs pipelined, each (mode, seed) in a fresh process."""
    from aeep_core.bench.latency import MODES, format_table
    from aeep_core.bench.settings import TASKS
    from aeep_tui.latency_replay import preset, run

    if args.seeds is not None and args.seeds != list(range(len(args.seeds))):
        print("aeep-tui: error: --task latency runs seeds 0..N-1: give --seeds N", file=sys.stderr)
        return 2
    if args.imbalance is not None:
        print("aeep-tui: error: --imbalance cuts the pool of the strategy benches, not --task latency", file=sys.stderr)
        return 2
    modes = tuple(args.modes.split(",")) if args.modes else None
    if modes is not None and not set(modes) <= set(MODES):
        print(f"aeep-tui: error: --modes takes {','.join(MODES)} (one or both), got {args.modes!r}", file=sys.stderr)
        return 2
    if args.slowdown is not None and args.slowdown < 1:
        print(
            f"aeep-tui: error: --slowdown is a factor of at least 1 (2 = half the training speed), got {args.slowdown}",
            file=sys.stderr,
        )
        return 2
    if args.emulate_steps is not None and (args.emulate_steps <= 0 or args.slowdown is not None):
        print("aeep-tui: error: --emulate-steps takes a positive rate (steps/s), and not with --slowdown", file=sys.stderr)
        return 2
    if args.emulate_steps is not None or args.slowdown is not None:
        from aeep_core.bench.slow_machine import NoCgroup, ThreadQuotas

        try:
            ThreadQuotas().close()  # fail now, in one line, rather than after loading anything
        except (NoCgroup, OSError) as e:
            print(f"aeep-tui: error: the slow-machine emulation cannot run here: {e}", file=sys.stderr)
            return 2
    settings = preset(
        args.preset,
        args.data or TASKS["mnist"].default_data(),
        seconds_per_label=args.seconds_per_label,
        budget=args.budget,
        seeds=None if args.seeds is None else len(args.seeds),
        candidates=args.candidates,
        device=args.device,
        batch_size=args.batch_sizes[0] if args.batch_sizes else None,
        slowdown=args.slowdown,
        emulate_steps=args.emulate_steps,
        modes=modes,
    )
    out = args.json or Path(f"bench-latency-{args.preset}.json")
    partial = out.with_name(out.name + ".partial")
    if args.fresh and partial.exists():
        partial.unlink()
    result = run(settings, progress=lambda line: print(line, file=sys.stderr, flush=True), partial=partial)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    m = result["machine"]
    emulated = m["emulation"]
    print(
        f"on {m['model']} ({' '.join(m['simd'])}; {m['cores']} cores), {m['training_threads']} training threads: "
        f"{m['training_steps_per_s']} training steps/s with {m['cpu_capability']} kernels"
        + (f" (emulated: every thread {emulated['factor']:g}× slower, {emulated['isa']} kernels)" if emulated else "")
    )
    print(format_table(result))
    print(f"wrote {out}")
    return 0


def run(args: argparse.Namespace) -> int:
    from aeep_tui.cli.cohort import resolve_data

    resolve_data(args)  # a database URL: the folder that stands for it
    if args.task == "latency":
        if args.ray is not None:
            print("aeep-tui bench: error: --ray runs the strategy benches, not --task latency", file=sys.stderr)
            return 2
        return run_latency(args)
    import torch

    from aeep_core.bench.plots import plot_report
    from aeep_core.bench.report import format_markdown, format_table
    from aeep_core.bench.run import ProgressLine, RunsLost, run_bench
    from aeep_core.bench.settings import parse_variant, preset, split_list

    executor = None
    if args.ray is not None or args.task_gpus or args.task_cpus != 1.0:
        if args.ray is None:
            print("aeep-tui bench: error: --task-cpus and --task-gpus go with --ray", file=sys.stderr)
            return 2
        if args.jobs > 1:
            print("aeep-tui bench: error: give --jobs (local processes) or --ray (a Ray cluster), not both", file=sys.stderr)
            return 2
        from aeep_core.bench.cluster import RayExecutor

        try:  # ray is an extra: without it this fails now, in one line (MissingExtra)
            executor = RayExecutor(args.ray or None, args.task_cpus, args.task_gpus, args.threads, args.retries)
        except ValueError as exc:
            print(f"aeep-tui bench: error: {exc}", file=sys.stderr)
            return 2
    elif args.threads:
        torch.set_num_threads(args.threads)
    test_subset = None if args.test_subset is None else (args.test_subset or -1)
    try:
        settings = preset(
            args.preset,
            task=args.task,
            data=args.data,
            strategies=split_list(args.strategies) if args.strategies else None,
            seeds=args.seeds,
            batch_sizes=args.batch_sizes,
            budget=args.budget,
            initial=args.initial,
            candidates=args.candidates,
            test_subset=test_subset,
            device=args.device,
            backbone=args.backbone,
            test_split=args.test_split,
            test=args.test,
            outcome=args.outcome,
            outcome_codes=args.outcome_codes,
            outcome_types=args.outcome_types,
            gap_days=args.gap_days,
            imbalance=args.imbalance,
            imbalance_profile=args.imbalance_profile,
        )
        for spec in settings.strategies:
            parse_variant(spec)  # a typo fails now, not after an hour of other runs
    except ValueError as exc:
        print(f"aeep-tui bench: error: {exc}", file=sys.stderr)
        return 2
    if settings.test_subset == -1:  # 0 on the command line: the whole test set, whatever the preset says
        settings.test_subset = None
    out = args.json or Path(f"bench-{args.preset}.json")
    partial = out.with_name(out.name + ".partial")
    if args.fresh and partial.exists():
        partial.unlink()
    if executor is not None:
        n = executor.threads
        where = (
            f"Ray {args.ray or 'local cluster'}; a run: {args.task_cpus:g} CPU, {args.task_gpus:g} GPU, {n} thread{'s' * (n > 1)}"
        )
    else:
        where = f"{args.jobs} jobs" if args.jobs > 1 else f"{torch.get_num_threads()} threads"
    print(
        f"bench {args.preset}: {settings.task}, strategies {', '.join(settings.strategies)}; seeds "
        f"{settings.seeds}; k {settings.batch_sizes}; {settings.initial}→{settings.budget} labels; "
        f"{settings.candidates} candidates; test {settings.test_subset or 'all'}; "
        + (f"long tail rho {settings.imbalance:g} ({settings.imbalance_profile}); " if settings.imbalance != 1 else "")
        + f"{where}",
        file=sys.stderr,
    )
    from aeep_core.bench.cluster import ClusterUnavailable

    try:
        report = run_bench(settings, partial=partial, progress=ProgressLine(0), jobs=args.jobs, executor=executor)
    except (RunsLost, ClusterUnavailable) as exc:
        print(f"aeep-tui bench: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"aeep-tui bench: interrupted; finished runs are kept in {partial}: the same command continues", file=sys.stderr)
        return 130
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    png = plot_report(report, args.plot or out.with_suffix(".png"))
    print(format_table(report))
    if args.markdown:
        print(format_markdown(report))
    print(f"wrote {out} and {png} ({report['wall_s']:.0f} s)")
    return 0
