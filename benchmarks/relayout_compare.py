"""Issue 11's check: the re-layout changed no behaviour. Compares the ``simulate --json``
files written before and after it (timings aside), for aeep, bmal and random; they are in
``benchmarks/results/simulate/relayout/`` as ``before-S.json`` and ``after-S.json``:

    aeep-tui simulate --data ../shared/data/mnist --strategy S -k 20 --budget 100 --initial 20 --seed 0 --json F
"""

import json
import sys
from pathlib import Path

TIMINGS = {"train_s", "select_s"}
here = Path(__file__).parent / "results" / "simulate" / "relayout"


def without_timings(run: dict) -> dict:
    return {**run, "rounds": [{k: v for k, v in r.items() if k not in TIMINGS} for r in run["rounds"]]}


same = True
for strategy in ("aeep", "bmal", "random"):
    before, after = (json.loads((here / f"{when}-{strategy}.json").read_text()) for when in ("before", "after"))
    equal = without_timings(before) == without_timings(after)
    same &= equal
    print(f"{strategy}: {'identical' if equal else 'DIFFERENT'} ({len(before['rounds'])} rounds)")
sys.exit(0 if same else 1)
