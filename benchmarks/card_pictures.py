"""What a batch of photo cards costs the UI's thread to decode and scale (issue 27).

    python benchmarks/card_pictures.py --flowers ../shared/data/photos/flowers

textual-image opens a card's file and scales the whole decoded image to the card each
time a new picture is shown; ``aeep_tui.widgets.cards.shrunk_photo`` hands it a picture
decoded at reduced scale (JPEG draft mode) and shrunk to 640 pixels instead. For a batch
of 12 cards, each scaled to a 40 × 20-cell card of 10 × 20-pixel cells (what a Kitty or
Sixel terminal draws; half-blocks scale to fewer pixels, after the same decode), this
times both, on the real flower photographs (500 × 375) and on generated camera-sized
JPEGs (4000 × 3000, 12 megapixels). Medians of ``--repeats``; writes a table and
``benchmarks/results/latency/card-pictures.json``.
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


def batch_seconds(paths: list[Path], shrink: bool) -> float:
    from textual_image._pixeldata import PixelData

    from aeep_tui.widgets.cards import shrunk_photo

    start = time.perf_counter()
    for path in paths:
        picture = shrunk_photo(path) if shrink else path
        pixels = PixelData(picture, mode="rgb")  # what textual-image's renderables do
        scale = min(CARD[0] / pixels.width, CARD[1] / pixels.height)
        pixels.scaled(max(1, round(pixels.width * scale)), max(1, round(pixels.height * scale)))
    return time.perf_counter() - start


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
            times = {shrink: [batch_seconds(paths, shrink) for _ in range(args.repeats)] for shrink in (False, True)}
            whole, shrunk = statistics.median(times[False]), statistics.median(times[True])
            rows.append({"photos": name, "cards": len(paths), "whole_s": whole, "shrunk_s": shrunk, "ratio": whole / shrunk})
    cpu = cpu_description()
    print(f"on {cpu['model']} ({' '.join(cpu['simd'])}; {cpu['cores']} cores)")
    print(f"{'photos':<18} {'cards':>5} {'whole file':>11} {'shrunk':>9} {'ratio':>6}")
    for row in rows:
        print(f"{row['photos']:<18} {row['cards']:>5} {row['whole_s']:>10.3f}s {row['shrunk_s']:>8.3f}s {row['ratio']:>5.1f}x")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "card-pictures.json"
    out.write_text(
        json.dumps({"machine": cpu, "card_pixels": CARD, "repeats": args.repeats, "rows": rows}, separators=(",", ":"))
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
