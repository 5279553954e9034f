"""Time to the first batch of a new photo project, by folder size (issue 28).

    python benchmarks/first_batch.py --sizes 1000 10000 100000

For each size, a folder of real JPEG files (``--distinct`` different 96x96 photos, the
rest hard links to them, so a 10^5-10^6 folder costs little disk; listing, stat and
hashing are per file all the same) is opened as a new labelling project, in its own
process with a fresh cache and project (the ONNX export of the backbone, a once-per-machine
cost, is done before the clock starts; the trainer's forkserver starts beside the opening,
as in the app). Measured:

- ``open``: ``LabellingSession.open`` (list the files, order them, embed the first slice,
  identify the pool's items, start the background embedder);
- ``first batch``: open + ``prepare_next_batch`` (the cold batch, drawn from that slice);
- ``reopen``: closing and opening the project again while embedding is unfinished;
- peak RSS of the process.

Writes a table and ``benchmarks/results/scale/first_batch.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

RESULTS = Path(__file__).resolve().parent / "results" / "scale"
BACKBONE = "efficientnet-lite0"


def make_folder(root: Path, n: int, distinct: int) -> Path:
    """``n`` photos in two class folders; ``distinct`` real files, the rest hard links."""
    import numpy as np
    from PIL import Image

    marker = root / f".complete-{n}"
    if marker.exists():
        return root
    rng = np.random.default_rng(0)
    originals = []
    for c in ("red", "blue"):
        (root / c).mkdir(parents=True, exist_ok=True)
    for i in range(n):
        c = ("red", "blue")[i % 2]
        path = root / c / f"{i:07d}.jpg"
        if path.exists():
            continue
        if len(originals) < distinct:
            pixels = rng.integers(0, 60, (96, 96, 3), dtype=np.uint8)
            pixels[..., 0 if c == "red" else 2] += np.uint8(150)
            Image.fromarray(pixels).save(path, quality=85)
            originals.append(path)
        else:
            os.link(originals[i % len(originals)], path)
    marker.touch()
    return root


def measure(folder: Path, work: Path) -> dict:
    os.environ["AEEP_TUI_HOME"] = str(work / "home")
    import torch

    from aeep_core.data.onnx_backend import export_onnx
    from aeep_core.processes import warm_up
    from aeep_core.session import LabellingSession, ProjectSettings

    torch.set_num_threads(os.cpu_count() or 1)
    export_onnx(BACKBONE)
    warm_up()  # as the app does when it starts, beside the opening (the trainer's forkserver)
    settings = ProjectSettings(["red", "blue"], ["1", "2"], batch_size=10, device="cpu", backbone=BACKBONE)
    start = time.perf_counter()
    session = LabellingSession.open(folder, settings, project_dir=work / "project", separate_process=True)
    opened = time.perf_counter() - start
    batch = session.prepare_next_batch()
    first = time.perf_counter() - start
    assert batch is not None and len(batch.items) == 10
    in_pool = len(session.pool)
    session.close()
    start = time.perf_counter()
    with LabellingSession.open(folder, project_dir=work / "project", separate_process=True) as again:
        reopened = time.perf_counter() - start
        progress = again.embedding_progress()
    return {
        "open_s": opened,
        "first_batch_s": first,
        "reopen_s": reopened,
        "pool_at_first_batch": in_pool,
        "embedded_at_reopen": None if progress is None else progress.embedded,
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000])
    parser.add_argument("--distinct", type=int, default=2000, help="different photos; the rest are hard links")
    parser.add_argument("--folders", type=Path, default=Path(tempfile.gettempdir()) / "aeep-first-batch")
    parser.add_argument("--json", type=Path, default=RESULTS / "first_batch.json")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(Path(args.child[0]), Path(args.child[1]))))
        return 0
    rows = []
    for n in args.sizes:
        folder = make_folder(args.folders / f"photos-{n}", n, args.distinct)
        with tempfile.TemporaryDirectory() as work:
            out = subprocess.run(
                [sys.executable, __file__, "--child", str(folder), work], check=True, capture_output=True, text=True
            ).stdout
        rows.append({"photos": n, **json.loads(out.strip().splitlines()[-1])})
        r = rows[-1]
        print(
            f"{n:>9,} photos  open {r['open_s']:6.1f} s  first batch {r['first_batch_s']:6.1f} s  "
            f"reopen {r['reopen_s']:6.1f} s  pool {r['pool_at_first_batch']:>5}  RSS {r['peak_rss_mib']:7.0f} MiB"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    from aeep_core.bench.report import cpu_description

    args.json.write_text(json.dumps({"machine": cpu_description(), "backbone": BACKBONE, "rows": rows}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
