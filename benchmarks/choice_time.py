"""Time to choose a batch on MNIST: scoring the candidates, then the strategy (issue 27).

    python benchmarks/choice_time.py --data ../shared/data/mnist --label HEAD

The pipelined trainer chooses the next batch while the person labels, a few answers
ahead; how many depends on this time. For each size of L, a learner is trained on a
seeded random L (300 steps) and then chooses ``--k`` of ``--candidates`` candidates
``--repeats`` times (AEEP's first choice of the next round each time: same model, same
draws). Reported, as medians: the whole choice (``propose``), scoring the candidates
(the CNN's forward pass over them) and the rest (L's embeddings, the strategy: AEEP's
k-means over |L| + n clusters). Torch runs on one thread, as the trainer does on two
cores. Run it from a ``git archive`` of each commit to compare (it imports the code
beside it). Writes a table and ``benchmarks/results/latency/choice-time-LABEL.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "latency"


def measure(data: Path, labelled: int, candidates: int, k: int, repeats: int, strategy: str) -> dict:
    import numpy as np
    import torch

    from aeep_core.data import load_dataset
    from aeep_core.learning.learner import ActiveLearner
    from aeep_core.learning.training import TrainConfig, score
    from aeep_core.strategies import make_strategy

    dataset = load_dataset(data)
    config = TrainConfig(min_steps=300, max_steps=300)
    learner = ActiveLearner(dataset.pool, make_strategy(strategy), config=config, device="cpu", seed=0, candidates=candidates)
    ids = learner.initial_ids(labelled)
    learner.add_labels(ids, dataset.pool.labels[ids])
    learner.train()
    state = learner.strategy.state_dict()
    picked = np.random.default_rng(0).choice(learner.unlabelled_ids(), candidates, replace=False)
    inputs = dataset.pool.inputs[torch.from_numpy(np.sort(picked))]
    choose, scoring = [], []
    for _ in range(repeats + 1):  # the first warms torch and the caches up, and is dropped
        learner.strategy.load_state_dict(state)
        start = time.perf_counter()
        learner.propose(k)
        choose.append(time.perf_counter() - start)
        start = time.perf_counter()
        score(learner.model, inputs, "cpu")
        scoring.append(time.perf_counter() - start)
    total, scored = statistics.median(choose[1:]), statistics.median(scoring[1:])
    return {"labelled": labelled, "choose_s": total, "score_s": scored, "rest_s": total - scored, "choose_all_s": choose[1:]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist")
    parser.add_argument("--label", required=True, help="names the code measured (a commit), and the JSON file")
    parser.add_argument("--labelled", type=int, nargs="+", default=[100, 300])
    parser.add_argument("--candidates", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--strategy", default="aeep")
    args = parser.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data}: no MNIST folder here; pass --data (../shared/data/mnist)")

    import torch

    from aeep_core.bench.report import cpu_description
    from aeep_core.data import load_dataset
    from aeep_core.learning.training import training_steps_per_second

    torch.set_num_threads(1)
    rows = [measure(args.data, n, args.candidates, args.k, args.repeats, args.strategy) for n in args.labelled]
    steps = training_steps_per_second(load_dataset(args.data).pool)
    cpu = cpu_description()
    print(f"{args.label} on {cpu['model']} ({' '.join(cpu['simd'])}; {cpu['cores']} cores), 1 thread: {steps:.1f} steps/s")
    print(f"{'|L|':>5} {'choose':>8} {'score':>8} {'rest':>8}   ({args.strategy}, {args.candidates:,} candidates, k = {args.k})")
    for row in rows:
        print(f"{row['labelled']:>5} {row['choose_s']:>7.2f}s {row['score_s']:>7.2f}s {row['rest_s']:>7.2f}s")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"choice-time-{args.label}.json"
    settings = vars(args) | {"data": str(args.data)}
    report = {"settings": settings, "machine": cpu | {"training_steps_per_s": steps, "threads": 1}, "rows": rows}
    out.write_text(json.dumps(report, separators=(",", ":")))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
