"""The paper-preset table of issue 12, per batch size k, from a bench JSON or ``.partial``.

    python benchmarks/paper_table.py benchmarks/results/paper/paper-preset.jsonl [--ref aeep]

Per strategy and k: acc@100/200/500, labels to 95/97/98% (mean over the seeds that reach
it; "n/N" when some never do), AULC over 20 → 500 labels (mean ± sd over seeds), and for
``--ref`` the paired difference in AULC to the best other strategy at that k (mean ±
standard error over the seeds both ran). Works on an unfinished run: every figure says
how many seeds it has. The figures are the bench report's own (aeep_core.bench.metrics).
"""

from __future__ import annotations

import argparse
import json
import math
from collections import defaultdict
from pathlib import Path

import numpy as np

from aeep_core.bench.metrics import aulc, labels_to, value_at

AT = (100, 200, 500)
THRESHOLDS = (0.95, 0.97, 0.98)
START, END = 20, 500


def read_runs(path: Path) -> list[dict]:
    if path.name.endswith((".partial", ".jsonl")):  # one {"run": ...} per line
        return [json.loads(line)["run"] for line in path.read_text().splitlines() if line.strip()]
    return [r for s in json.loads(path.read_text())["strategies"].values() for r in s["runs"]]


def curve(run: dict) -> tuple[list[int], list[float | None]]:
    return [q["labelled"] for q in run["rounds"]], [q.get("accuracy") for q in run["rounds"]]


def mean_sd(values: list[float]) -> str:
    if not values:
        return "–"
    return f"{100 * np.mean(values):.2f} ± {100 * np.std(values):.2f}" if len(values) > 1 else f"{100 * values[0]:.2f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--ref", default="aeep", help="the strategy whose paired difference is shown (default aeep)")
    args = parser.parse_args()
    by: dict[int, dict[str, dict[int, dict]]] = defaultdict(lambda: defaultdict(dict))
    for f in args.files:
        for run in read_runs(f):
            by[int(run["batch_size"])][run["variant"]][int(run["seed"])] = run
    for k in sorted(by):
        table = by[k]
        areas = {v: {s: aulc(*curve(r), START, END) for s, r in runs.items()} for v, runs in table.items()}
        print(f"\n### k = {k}\n")
        print("| strategy | seeds | acc@100 | acc@200 | acc@500 | L→95 | L→97 | L→98 | AULC |")
        print("|---|---|---|---|---|---|---|---|---|")
        order = sorted(table, key=lambda v: -np.mean([a for a in areas[v].values() if a is not None] or [0]))
        for v in order:
            runs = table[v]
            accs = [mean_sd([a for r in runs.values() if (a := value_at(*curve(r), n)) is not None]) for n in AT]
            reach = []
            for t in THRESHOLDS:
                hits = [n for r in runs.values() if (n := labels_to(*curve(r), t)) is not None]
                reach.append(
                    "–"
                    if not hits
                    else f"{np.mean(hits):.0f}" + ("" if len(hits) == len(runs) else f" ({len(hits)}/{len(runs)})")
                )
            area = mean_sd([a for a in areas[v].values() if a is not None])
            print(f"| {v} | {len(runs)} | " + " | ".join(accs + reach + [area]) + " |")
        if args.ref in areas:
            ref = areas[args.ref]
            best, best_mean = None, -math.inf
            for v, a in areas.items():
                shared = [s for s in a if s in ref and a[s] is not None]
                if v != args.ref and shared and np.mean([a[s] for s in shared]) > best_mean:
                    best, best_mean = v, float(np.mean([a[s] for s in shared]))
            if best is not None:
                diffs = [ref[s] - areas[best][s] for s in ref if s in areas[best] and ref[s] is not None]
                se = np.std(diffs, ddof=1) / math.sqrt(len(diffs)) if len(diffs) > 1 else float("nan")
                print(
                    f"\n{args.ref} − {best} (best other strategy at k = {k}), AULC paired by seed over "
                    f"{len(diffs)} seed(s): {100 * np.mean(diffs):+.2f} ± {100 * se:.2f} (se) points; "
                    f"per seed {', '.join(f'{100 * d:+.2f}' for d in diffs)}"
                )


if __name__ == "__main__":
    main()
