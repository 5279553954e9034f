"""Per-run and per-strategy figures from bench .partial/.json files (issue 12 tables).

usage: python benchmarks/aeep12_table.py FILE... [--trace]
AULC = trapezoid area of test accuracy from the first to the last label count over
that width, in % (as the bench report); L→x = first label count with accuracy >= x.
Paired differences are against the strategy named by --ref (default bmal), per seed.
"""

import json
import sys
from collections import defaultdict

import numpy as np


def runs(paths):
    out = {}
    for p in paths:
        if p.endswith(".partial"):
            for line in open(p):
                try:
                    item = json.loads(line)
                except json.JSONDecodeError:
                    continue
                r = item["run"]
                out[(r["variant"], r["seed"])] = r
        else:
            for r in json.load(open(p))["runs"]:
                out[(r["variant"], r["seed"])] = r
    return out


def figures(run):
    n = np.array([r["labelled"] for r in run["rounds"]], float)
    a = np.array([r["accuracy"] for r in run["rounds"]], float) * 100
    aulc = np.trapezoid(a, n) / (n[-1] - n[0])
    at = {x: float(np.interp(x, n, a)) for x in (40, 100, 200, 300)}
    to = {t: next((int(count) for count, v in zip(n, a) if v >= t), None) for t in (95, 97, 98)}
    return aulc, at, to


def main(argv):
    trace = "--trace" in argv
    ref = next((a.split("=", 1)[1] for a in argv if a.startswith("--ref=")), "bmal")
    data = runs([a for a in argv if not a.startswith("--")])
    by = defaultdict(dict)
    print("| strategy | seed | AULC | acc@40 | acc@100 | acc@200 | acc@300 | L→95 | L→97 | L→98 |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for (v, s), r in sorted(data.items()):
        aulc, at, to = figures(r)
        by[v][s] = aulc
        f = lambda t, to=to: ">300" if to[t] is None else str(to[t])  # noqa: E731
        print(
            f"| {v} | {s} | {aulc:.2f} | {at[40]:.1f} | {at[100]:.1f} | {at[200]:.1f} | {at[300]:.1f} | {f(95)} | {f(97)} | {f(98)} |"
        )
        if trace:
            print("   m/mp:", " ".join(f"{x['m']}/{'-' if x['mp'] is None else round(x['mp'], 2)}" for x in r["rounds"]))
    print()
    for v, seeds in sorted(by.items(), key=lambda kv: -np.mean(list(kv[1].values()))):
        line = f"{v}: mean AULC {np.mean(list(seeds.values())):.2f} over seeds {sorted(seeds)}"
        common = sorted(set(seeds) & set(by.get(ref, {})))
        if v != ref and common:
            d = [seeds[s] - by[ref][s] for s in common]
            line += f"; vs {ref} per seed {', '.join(f'{x:+.2f}' for x in d)} (mean {np.mean(d):+.2f})"
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
