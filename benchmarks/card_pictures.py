"""What a batch of photo cards costs the UI's thread to decode and scale (issue 27).

    python benchmarks/card_pictures.py --flowers ../shared/data/photos/flowers

textual-image opens a card's file and scales the whole decoded image to the card each
time a new picture is shown; ``aeep_tui.widgets.cards.shrunk_photo`` hands it a picture
decoded at reduced scale (JPEG draft mode) and shrunk to 640 pixels instead, and since
``card_pictures`` the worker that prepares a batch decodes them, side by side, so that the
UI's thread only scales them to the card. For a batch of 12 cards, each scaled to a
40 × 20-cell card of 10 × 20-pixel cells (what a Kitty or Sixel terminal draws;
half-blocks scale to fewer pixels, after the same decode), this times each way
(:func:`batch_seconds`), on the real flower photographs (500 × 375) and on generated
camera-sized JPEGs (4000 × 3000, 12 megapixels). Medians of ``--repeats``; writes a table
and ``benchmarks/results/latency/card-pictures.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "latency"
CARD = (400, 400)  # pixels: 40 x 20 cells of 10 x 20


def camera_photos(folder: Path, n: int) -> list[Path]:
    """``n`` 4000 x 3000 JPEGs with smooth content and noise, as a camera's compress."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:3000, 0:4000].astype(np.float32)
    paths = []
    for i in range(n):
        base = 127 + 100 * np.sin(x / (300 + 40 * i)) * np.cos(y / (250 + 30 * i))
        pixels = np.stack([base, base[::-1], 255 - base], axis=-1) + rng.normal(0, 8, (3000, 4000, 3))
        path = folder / f"camera-{i}.jpg"
        Image.fromarray(pixels.clip(0, 255).astype(np.uint8)).save(path, quality=90)
        paths.append(path)
    return paths


def _scale_to_card(picture) -> None:
    from textual_image._pixeldata import PixelData

    pixels = PixelData(picture, mode="rgb")  # what textual-image's renderables do
    scale = min(CARD[0] / pixels.width, CARD[1] / pixels.height)
    pixels.scaled(max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))


def batch_seconds(paths: list[Path], how: str) -> float:
    """Seconds to get ``paths`` onto cards: ``whole`` (textual-image decodes each file),
    ``shrunk`` (each shrunk first, one after another: the UI's thread since 654ad73),
    ``worker`` (shrunk side by side, as the worker preparing the batch does now) or
    ``ui-after-worker`` (what is left to the UI's thread then: scaling to the card)."""
    from aeep_tui.widgets.cards import shrunk_photo, side_by_side

    ready = side_by_side(shrunk_photo, paths) if how == "ui-after-worker" else None
    start = time.perf_counter()
    if how == "worker":
        side_by_side(shrunk_photo, paths)
    for position, path in enumerate(paths):
        if how == "whole":
            _scale_to_card(path)
        elif how == "shrunk":
            _scale_to_card(shrunk_photo(path))
        elif how == "ui-after-worker":
            _scale_to_card(ready[position])
    return time.perf_counter() - start


HOWS = ("whole", "shrunk", "worker", "ui-after-worker")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flowers", type=Path, default=Path(__file__).resolve().parents[2] / "shared/data/photos/flowers")
    parser.add_argument("--cards", type=int, default=12)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from aeep_core.bench.report import cpu_description

    sets: dict[str, list[Path]] = {}
    if args.flowers.is_dir():
        sets["flowers 500x375"] = sorted(args.flowers.rglob("*.jpg"))[: args.cards]
    else:
        print(f"{args.flowers}: no flower photos here, only the generated ones are timed")
    with tempfile.TemporaryDirectory() as tmp:
        sets["camera 4000x3000"] = camera_photos(Path(tmp), args.cards)
        rows = []
        for name, paths in sets.items():
            row: dict[str, object] = {"photos": name, "cards": len(paths)}
            for how in HOWS:
                row[f"{how}_s"] = statistics.median(batch_seconds(paths, how) for _ in range(args.repeats))
            rows.append(row)
    cpu = cpu_description()
    print(f"on {cpu['model']} ({' '.join(cpu['simd'])}; {cpu['cores']} cores)")
    print("UI thread: whole file (textual-image) / shrunk there (654ad73) / after the worker; worker: decoding side by side")
    print(f"{'photos':<18} {'cards':>5} {'whole file':>11} {'shrunk':>9} {'worker':>9} {'UI after':>9}")
    for r in rows:
        print(
            f"{r['photos']:<18} {r['cards']:>5} {r['whole_s']:>10.3f}s {r['shrunk_s']:>8.3f}s"
            f" {r['worker_s']:>8.3f}s {r['ui-after-worker_s']:>8.3f}s"
        )
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "card-pictures.json"
    out.write_text(
        json.dumps({"machine": cpu, "card_pixels": CARD, "repeats": args.repeats, "rows": rows}, separators=(",", ":"))
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
