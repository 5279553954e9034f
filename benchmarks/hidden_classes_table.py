"""Issue 26's discovery table from ``simulate --hidden-classes --json`` files, one per strategy.

    python benchmarks/hidden_classes_table.py benchmarks/results/hidden-classes/*.json

Per strategy: labels until every class was known (the oracle had named it once), the
labels at which the pool's rarest class was found, how many classes were known at 100
labels, and the balanced accuracy's AULC over the run (the bench's own metrics).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from aeep_core.bench.metrics import aulc, value_at


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    args = parser.parse_args()
    rows = []
    for path in args.files:
        run = json.loads(path.read_text())
        counts = np.asarray(run["pool_counts"])
        rarest = str(int(np.argmin(counts)))
        found = {d["class"]: d["labels"] for d in run["discovered"]}
        labelled = [r["labelled"] for r in run["rounds"]]
        known = value_at(labelled, [r["classes_known"] for r in run["rounds"]], 100)
        area = aulc(labelled, [r["balanced_accuracy"] for r in run["rounds"]])
        rows.append((run["strategy"], run["labels_to_all_known"], found.get(rarest), known, area, int(counts.min())))
    rows.sort(key=lambda r: (r[1] is None, r[1] or 0, -(r[4] or 0)))
    print(
        f"| strategy | labels until every class is known | rarest class ({rows[0][5]} items) found at | classes known at 100 | balanced AULC |"
    )
    print("|---|---|---|---|---|")
    for name, everything, rare, known, area, _ in rows:
        cell = lambda v: "never" if v is None else str(v)  # noqa: E731
        print(
            f"| {name} | {cell(everything)} | {cell(rare)} | {cell(None if known is None else int(known))} | {100 * (area or 0):.1f} |"
        )


if __name__ == "__main__":
    main()
