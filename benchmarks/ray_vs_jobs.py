"""Issue 18's check: ``bench --ray`` gives the numbers of ``bench --jobs 2``. Compares two
bench reports without what depends on where and when they ran (timings, environment),
run by run, and prints each one's wall time, summed run CPU seconds and runner:

    aeep-tui bench --preset quick --jobs 2 --json benchmarks/results/ray/quick-jobs2.json
    aeep-tui bench --preset quick --ray --json benchmarks/results/ray/quick-ray.json
    python benchmarks/ray_vs_jobs.py benchmarks/results/ray/quick-jobs2.json benchmarks/results/ray/quick-ray.json
"""

import json
import sys
from pathlib import Path

TIMINGS = {"wall_s", "cpu_s", "s_per_round", "cpu_s_per_round", "train_s", "select_s"}


def numbers(x):
    if isinstance(x, dict):
        return {k: numbers(v) for k, v in x.items() if k not in TIMINGS}
    return [numbers(v) for v in x] if isinstance(x, list) else x


a, b = (json.loads(Path(p).read_text()) for p in sys.argv[1:3])
same = numbers(a["settings"]) == numbers(b["settings"])
print(f"settings: {'identical' if same else 'DIFFERENT'}")
for name in a["strategies"]:
    equal = numbers(a["strategies"][name]) == numbers(b["strategies"].get(name))
    same &= equal
    rounds = sum(len(r["rounds"]) for r in a["strategies"][name]["runs"])
    print(f"{name}: {'identical' if equal else 'DIFFERENT'} ({rounds} rounds)")
for path, report in zip(sys.argv[1:3], (a, b)):
    cpu = sum(r["cpu_s"] for e in report["strategies"].values() for r in e["runs"])
    print(f"{path}: {report['wall_s']:.0f} s wall, {cpu:.0f} CPU s in the runs, runner {report['environment'].get('runner')}")
sys.exit(0 if same else 1)
