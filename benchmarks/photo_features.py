"""Feature extraction throughput of the photo backbone, and the head's round time.

    python benchmarks/photo_features.py [--data ../shared/data/photos/flowers] [--backbone NAME] [--json F]

Embeds every photo of the folder from a cold cache (decode + the backbone, EfficientNet-Lite0
by default), then
times one round of the pairwise head (train on 100 labels + score the pool) as the app
runs it. Prints a table and writes JSON with the machine it ran on.
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
from aeep_core.data.features import embed_photos
from aeep_core.data.images import list_image_files
from aeep_core.learning.model import build_model
from aeep_core.learning.training import TrainConfig, score, train


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos/flowers"))
    parser.add_argument("--backbone", default="efficientnet-lite0", help="a shipped backbone or a cached torchvision model")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/photo-features.json"))
    args = parser.parse_args()
    paths = list_image_files(args.data)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        features, kept, skipped = embed_photos(paths, args.backbone, Path(tmp) / "features")
        extract_s = time.perf_counter() - start
    x = torch.from_numpy(features)
    rng = np.random.default_rng(0)
    labelled = rng.choice(len(x), size=100, replace=False)
    y = rng.integers(0, 5, size=100)
    model = build_model(x, "features", 5)
    train(model, x[:20], y[:20], TrainConfig(min_steps=5, max_steps=5), "cpu", seed=0, modality="features")  # warm-up
    start = time.perf_counter()
    train(model, x[torch.from_numpy(labelled)], y, TrainConfig(), "cpu", seed=0, modality="features")
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    score(model, x, "cpu")
    score_s = time.perf_counter() - start
    result = {
        "machine": {**cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "backbone": args.backbone,
        "images": len(paths),
        "embedded": len(kept),
        "skipped": len(skipped),
        "extract_s": extract_s,
        "images_per_s": len(kept) / extract_s,
        "round_train_s": train_s,
        "round_score_s": score_s,
    }
    print(
        f"{'images':>8} {'extract s':>10} {'images/s':>9} {'train s':>8} {'score s':>8}   on {result['machine']['model']} ({' '.join(result['machine']['simd'])}), "
        f"{result['machine']['threads']} threads"
    )
    print(f"{len(kept):>8} {extract_s:>10.1f} {result['images_per_s']:>9.1f} {train_s:>8.2f} {score_s:>8.3f}")
    args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
