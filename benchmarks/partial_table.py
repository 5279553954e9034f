"""The bench table (Markdown) from a preset's ``.partial`` file(s), finished or not.

    python benchmarks/partial_table.py mnist-lt100 benchmarks/results/imbalance/mnist-lt100.json.partial

A long bench run one seed at a time (``--seeds 10-10``, then ``11-11``, into one
``--json``) leaves every run in the ``.partial`` file, but each report holds only the
seeds of its own invocation. This rebuilds the report over every run the files hold,
with the bench's own summaries (:func:`aeep_core.bench.report.build_report`: balanced
AULC, its paired gap to the best, macro-F1, min recall, rare-3 labels, labels to all
classes), and prints the Markdown table plus AEEP's m and mp per round. ``--json OUT``
also writes the rebuilt report.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from aeep_core.bench.report import build_report, format_markdown
from aeep_core.bench.run import read_partial
from aeep_core.bench.settings import TASKS, parse_variant, preset


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("preset", help="the preset the runs were made with (mnist-lt100, mnist-lt10, flowers-lt10, ...)")
    parser.add_argument("partials", nargs="+", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rebuilt report here")
    args = parser.parse_args()
    runs = [run for path in args.partials for run in read_partial(path).values()]
    settings = preset(args.preset)
    settings.seeds = sorted({int(r["seed"]) for r in runs})
    names = list(dict.fromkeys(r["variant"] for r in runs))
    report = build_report(settings, TASKS[settings.task], [parse_variant(n) for n in names], runs, time.time())
    print(format_markdown(report))
    for name in names:
        for k, summary in report["strategies"][name]["summary"].items():
            m, mp = summary.get("m"), summary.get("mp")
            if m and any(x is not None for x in m):
                cells = lambda xs: " ".join("-" if x is None else f"{x:.2g}" for x in xs)  # noqa: E731
                print(f"{name} k={k}: m per round {cells(m)}; mp {cells(mp or [])}")
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
