"""How good each backbone's features are for the pairwise head with few labels.

    python benchmarks/backbone_accuracy.py [--data ../shared/data/photos/flowers] [--backbones A,B] [--draws 10] [--json F]

For each backbone: the head (the engine's training, fresh per fit) on n random labels of
the pool, tested on a seeded stratified 25% split, for ``--draws`` draws (draw d uses the
split of seed d mod 5, the bench's splits). No active learning: this isolates what the
features allow, the ceiling any strategy works under. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import functools
import json
from pathlib import Path

import numpy as np
import torch

from aeep_core.bench.report import cpu_description
from aeep_core.data import Dataset, load_dataset
from aeep_core.data.backbones import BACKBONES
from aeep_core.learning.model import build_model
from aeep_core.learning.training import TrainConfig, score, train


@functools.cache
def split(data: Path, backbone: str, seed: int) -> Dataset:
    """The bench's seeded 25% test split of ``data`` on ``backbone``'s features (loaded once)."""
    return load_dataset(data, test_split=0.25, seed=seed, backbone=backbone)


def head_accuracy(data: Path, backbone: str, n: int, draw: int) -> float:
    """Test accuracy of the head trained on ``n`` random labels (draw ``draw``)."""
    ds = split(data, backbone, draw % 5)
    pool, test = ds.pool, ds.test
    assert test is not None and pool.labels is not None and test.labels is not None
    ids = np.random.default_rng(100 + draw).choice(len(pool), min(n, len(pool)), replace=False)
    torch.manual_seed(draw)
    model = build_model(pool.inputs, pool.modality, pool.n_classes)
    train(model, pool.inputs[torch.from_numpy(ids)], pool.labels[ids], TrainConfig(), "cpu", seed=draw, modality=pool.modality)
    probs, _ = score(model, test.inputs, "cpu")
    return float((probs.argmax(1) == test.labels).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos/flowers"))
    parser.add_argument("--backbones", default=",".join(BACKBONES))
    parser.add_argument("--labels", default="50,100,200", help="label counts n")
    parser.add_argument("--draws", type=int, default=10)
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/photos/backbone-accuracy.json"))
    args = parser.parse_args()
    torch.set_num_threads(1)  # the head trains on one thread in the app too
    counts = [int(n) for n in args.labels.split(",")]
    rows = []
    for backbone in args.backbones.split(","):
        for n in counts:
            accs = [head_accuracy(args.data, backbone, n, d) for d in range(args.draws)]
            rows.append({"backbone": backbone, "labels": n, "accuracy": accs})
            print(f"{backbone:<20} n={n:<4} mean {100 * np.mean(accs):5.1f}  median {100 * np.median(accs):5.1f}", flush=True)
    machine = {**cpu_description(), "torch": torch.__version__}
    args.json.write_text(
        json.dumps({"machine": machine, "data": str(args.data), "draws": args.draws, "rows": rows}, indent=1) + "\n"
    )


if __name__ == "__main__":
    main()
