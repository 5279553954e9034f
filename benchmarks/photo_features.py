"""Feature extraction throughput of the photo backbones, and the head's round time.

    python benchmarks/photo_features.py [--data ../shared/data/photos/flowers] [--backbones A,B] [--json F]

For each backbone (the shipped EfficientNet-Lites by default): embeds every photo of the
folder from a cold cache (decode + the backbone, as the app does), times one forward pass
of a batch of 32 prepared for extraction (batch norm folded, channels-last) against the
network as trained (median of 5), and times one round of the pairwise head (train on 100
labels + score the pool) as the app runs it. Prints a table and writes JSON with the
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
from aeep_core.learning.model import build_model
from aeep_core.learning.training import TrainConfig, score, train


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
    return {
        "backbone": backbone,
        "input_size": size,
        "embedded": len(kept),
        "extract_s": extract_s,
        "images_per_s": len(kept) / extract_s,
        "forward32_s": forward_s,
        "forward32_as_trained_s": unprepared_s,
        "round_train_s": train_s,
        "round_score_s": score_s,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data/photos/flowers"))
    parser.add_argument("--backbones", default=",".join(BACKBONES), help="shipped backbones or cached torchvision models")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/photo-features.json"))
    args = parser.parse_args()
    paths = list_image_files(args.data)
    machine = {**cpu_description(), "threads": torch.get_num_threads(), "torch": torch.__version__}
    rows = [measure(paths, name) for name in args.backbones.split(",")]
    print(f"{len(paths)} images on {machine['model']} ({' '.join(machine['simd'])}), {machine['threads']} threads")
    print(
        f"{'backbone':<20} {'size':>4} {'extract s':>9} {'images/s':>8} {'fwd32 s':>8} {'as trained':>10} {'train s':>8} {'score s':>8}"
    )
    for r in rows:
        trained = "" if r["forward32_as_trained_s"] is None else f"{r['forward32_as_trained_s']:.3f}"
        print(
            f"{r['backbone']:<20} {r['input_size']:>4} {r['extract_s']:>9.1f} {r['images_per_s']:>8.1f} "
            f"{r['forward32_s']:>8.3f} {trained:>10} {r['round_train_s']:>8.2f} {r['round_score_s']:>8.3f}"
        )
    args.json.write_text(json.dumps({"machine": machine, "images": len(paths), "backbones": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
