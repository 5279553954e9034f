"""The pipelined trainer's learning rate and weight averaging, on real MNIST.

Drives :class:`PipelinedLearner` directly (no app, answers given at once: the pipeline is
deterministic in its answers, not the clock) with the app's settings: AEEP, k = 20,
lookahead 3, 25 steps per label, 10,000 candidates. Prints test accuracy of the model
that chose each batch at 97 / 197 / 297 labels and appends every run to a JSON-lines file.

    python benchmarks/pipeline_averaging.py --configs 1e-3:0,2e-3:0,2e-3:0.995 --seeds 0,1,2
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

MNIST = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "mnist"


def run(lr: float, average: float, seed: int, budget: int = 320, k: int = 20) -> dict:
    import torch

    from aeep_core.data import load_dataset
    from aeep_core.learning.learner import ActiveLearner
    from aeep_core.learning.pipelined import PipelinedLearner
    from aeep_core.learning.training import TrainConfig
    from aeep_core.strategies import make_strategy

    torch.set_num_threads(1)
    ds = load_dataset(MNIST)
    learner = ActiveLearner(
        ds.pool, make_strategy("aeep"), config=TrainConfig(), device="cpu", seed=seed, candidates=10_000, test=ds.test
    )
    pipe = PipelinedLearner(
        learner, batch_size=k, lookahead=3, steps_per_label=25, evaluate=True, budget=budget, lr=lr, average=average
    )
    start, given, batch = time.perf_counter(), 0, pipe.start()
    while True:
        for position, y in enumerate(ds.pool.labels[batch.ids]):
            pipe.answer(position, int(y))
        given += len(batch.ids)
        if given >= budget:
            break
        batch = pipe.next_batch(timeout=600)
    pipe.close()
    return {"lr": lr, "average": average, "seed": seed, "acc": pipe.stats.accuracy, "wall_s": time.perf_counter() - start}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--configs", default="1e-3:0,2e-3:0,2e-3:0.995", help="LR:AVERAGE pairs")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--out", type=Path, default=Path("benchmarks/results/latency/pipeline-averaging.jsonl"))
    args = ap.parse_args()
    jobs = [
        (float(c.split(":")[0]), float(c.split(":")[1]), int(s)) for c in args.configs.split(",") for s in args.seeds.split(",")
    ]
    print(f"{'lr':>6} {'average':>8} {'seed':>5} {'@97':>7} {'@197':>7} {'@297':>7}")
    with ProcessPoolExecutor(2, mp_context=multiprocessing.get_context("spawn")) as ex:
        for r in ex.map(run, *zip(*jobs)):
            at = dict(r["acc"])
            print(
                f"{r['lr']:>6g} {r['average']:>8g} {r['seed']:>5} "
                + " ".join(f"{100 * at.get(n, float('nan')):>6.2f}%" for n in (97, 197, 297))
            )
            with args.out.open("a") as f:
                f.write(json.dumps(r) + "\n")


if __name__ == "__main__":
    main()
