"""Feature extraction throughput of the photo backbones, and the head's round time.

    python benchmarks/photo_features.py [--data ../shared/data/photos/flowers] [--backbones A,B] [--json F]

For each backbone (the shipped EfficientNet-Lites by default): embeds every photo of the
folder from a cold cache (decode + the backbone, as the app does), times one forward pass
of a batch of 32 prepared for extraction (batch norm folded, channels-last) against the
network as trained (median of 5), and times a round as the app runs it: the learner trains
the pairwise head on 100 labels (with its pseudo-label refit) and AEEP chooses a batch of 10
from the pool (median of 3). Prints a table and writes JSON with the
machine it ran on.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from aeep_core.bench.report import cpu_description
from aeep_core.data.backbones import BACKBONES, load_backbone
from aeep_core.data.efficientnet_lite import VARIANTS, EfficientNetLite, shipped_state_dict
from aeep_core.data.features import embed_photos
from aeep_core.data.images import list_image_files
from aeep_core.learning.learner import ActiveLearner
from aeep_core.pool import Pool
from aeep_core.strategies import make_strategy


def forward_seconds(model: torch.nn.Module, size: int, repeats: int = 5) -> float:
    """Median seconds of one feature pass over a batch of 32 random images."""
    x = torch.randn(32, 3, size, size, generator=torch.Generator().manual_seed(0))
    times = []
    with torch.inference_mode():
        model.features(x)  # type: ignore[operator]  # the first pass pays for lazy set-up
        for _ in range(repeats):
            start = time.perf_counter()
            model.features(x)  # type: ignore[operator]
            times.append(time.perf_counter() - start)
    return float(np.median(times))


def as_trained(name: str) -> EfficientNetLite:
    """The shipped network without the extraction preparation (batch norm kept)."""
    return EfficientNetLite.from_state_dict(shipped_state_dict(name), VARIANTS[name][2])


def measure(paths: list[Path], backbone: str) -> dict[str, object]:
    """Cold-cache extraction, forward-pass speed-up and the head's round on ``backbone``."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        features, kept, _ = embed_photos(paths, backbone, Path(tmp) / "features")
        extract_s = time.perf_counter() - start
    prepared = load_backbone(backbone)
    size = prepared.preprocessing.size
    forward_s = forward_seconds(prepared, size)  # type: ignore[arg-type]
    unprepared_s = forward_seconds(as_trained(backbone), size) if backbone in VARIANTS else None
    pool = Pool(torch.from_numpy(features), [str(p) for p in kept], [f"c{i}" for i in range(5)], modality="features")
    rng = np.random.default_rng(0)
    learner = ActiveLearner(pool, make_strategy("aeep"), device="cpu", candidates=2000)
    learner.add_labels(rng.choice(len(pool), size=100, replace=False), rng.integers(0, 5, size=100))
    train_times, select_times = [], []
    for _ in range(3):
        train_times.append(learner.train())
        select_times.append(learner.propose(10).select_s)
    train_s, select_s = float(np.median(train_times)), float(np.median(select_times))
    return {
        "backbone": backbone,
        "input_size": size,
        "embedded": len(kept),
        "extract_s": extract_s,
        "images_per_s": len(kept) / extract_s,
        "forward32_s": forward_s,
        "forward32_as_trained_s": unprepared_s,
        "round_train_s": train_s,
        "round_select_s": select_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos/flowers"))
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="shipped backbones or cached torchvision models")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/photos/photo-features.json"))
    args = parser.parse_args()
    paths = list_image_files(args.data)
    machine = {**cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    rows = [measure(paths, name) for name in args.backbones.split(",")]
    print(f"{len(paths)} images on {machine['model']} ({' '.join(machine['simd'])}), {machine['threads']} threads")
    print(
        f"{'backbone':<20} {'size':>4} {'extract s':>9} {'images/s':>8} {'fwd32 s':>8} {'as trained':>10} {'train s':>8} {'select s':>8}"
    )
    for r in rows:
        trained = "" if r["forward32_as_trained_s"] is None else f"{r['forward32_as_trained_s']:.3f}"
        print(
            f"{r['backbone']:<20} {r['input_size']:>4} {r['extract_s']:>9.1f} {r['images_per_s']:>8.1f} "
            f"{r['forward32_s']:>8.3f} {trained:>10} {r['round_train_s']:>8.2f} {r['round_select_s']:>8.3f}"
        )
    args.json.write_text(json.dumps({"machine": machine, "images": len(paths), "backbones": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
