"""Keys while a big photo folder is still being embedded (issue 28).

    python benchmarks/photo_keys.py --photos 5000 --batches 6
    python -m aeep_core.bench.slow_machine --emulate-steps 24.6 -- python benchmarks/photo_keys.py

A new project on a folder of ``--photos`` generated JPEG photos opens in the real app
(Textual's ``run_test``, headless; training in its trainer process, the rest of the folder
embedded by the background embedder all the while). A simulated person answers every card
with the right class key every ``--seconds-per-label`` and presses Enter at the end of each
batch. Measured, as ``bench --task latency`` measures them:

- keystroke: from a class key to the screen having processed and repainted it, for every
  answer (each one given while photos are embedded, and, after the batch's last card,
  while the next batch is trained ahead);
- wait: from Enter to the next batch's cards on screen;
- how many photos were embedded meanwhile.

Then the rest of the folder is embedded (``aeep-tui embed``) and the same person labels a
new project on it, for the same figures without background embedding, in the same run.
Writes a table and ``benchmarks/results/scale/photo_keys.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

RESULTS = Path(__file__).resolve().parent / "results" / "scale"


async def replay(folder: Path, project: Path, batches: int, pace: float, batch_size: int) -> dict:
    from aeep_core.session import ProjectSettings
    from aeep_tui.app import LabellingApp
    from aeep_tui.latency_replay import _send_key, repainted
    from aeep_tui.screens.labelling import LabellingScreen

    settings = ProjectSettings(["red", "blue"], ["1", "2"], batch_size=batch_size)
    app = LabellingApp(folder, settings, confirm_setup=False, project_dir=project)
    keys_ms, waits, embedded = [], [], []
    start = time.perf_counter()
    async with app.run_test(size=(160, 48)):
        while not (isinstance(app.screen, LabellingScreen) and app.screen.cards and not app.screen.busy):
            await asyncio.sleep(0.05)
        first_batch_s = time.perf_counter() - start
        screen = app.screen
        session = screen.session
        for _ in range(batches):
            batch = session.batch
            for position, item in enumerate(batch.items):
                await asyncio.sleep(pace)
                key = "12"[int(session.pool.labels[item.item_id])]
                keys_ms.append(await _send_key(app, key, lambda b=batch, p=position: b.items[p].answer is not None))
            began, number = time.perf_counter(), batch.round
            await _send_key(app, "enter", lambda n=number: screen.busy or session.batch is None or session.batch.round > n)
            while not (not screen.busy and session.batch is not None and session.batch.round > number and screen.cards):
                await asyncio.sleep(0.02)
            await repainted(app)
            waits.append(time.perf_counter() - began)
            progress = session.embedding_progress()
            embedded.append(None if progress is None else progress.embedded)
        pool = len(session.pool)
        await app.action_save_and_quit()
    return {
        "first_batch_s": first_batch_s,
        "keystroke_ms": keys_ms,
        "wait_s": waits,
        "embedded_after_batch": embedded,
        "pool": pool,
    }


def percentile(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(np.asarray(values), q))


def main(argv: list[str] | None = None) -> int:
    from first_batch import make_folder

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=5000)
    parser.add_argument("--batches", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=10)
    parser.add_argument("--seconds-per-label", type=float, default=1.0)
    parser.add_argument("--folders", type=Path, default=Path(tempfile.gettempdir()) / "aeep-first-batch")
    parser.add_argument("--json", type=Path, default=RESULTS / "photo_keys.json")
    args = parser.parse_args(argv)

    import torch

    from aeep_core.bench.report import cpu_description
    from aeep_core.data.onnx_backend import export_onnx
    from aeep_core.learning.training import training_steps_per_second
    from aeep_core.pool import Pool
    from aeep_tui.app import training_threads

    folder = make_folder(args.folders / f"photos-{args.photos}", args.photos, min(args.photos, 2000))
    results = {}
    with tempfile.TemporaryDirectory() as work:
        os.environ["AEEP_TUI_HOME"] = str(Path(work) / "home")
        export_onnx("efficientnet-lite1")  # once per machine: not part of what is timed
        torch.set_num_threads(training_threads())
        digits = Pool(torch.zeros(64, 1, 28, 28, dtype=torch.uint8), [str(i) for i in range(64)], [str(c) for c in range(10)])
        steps = training_steps_per_second(digits, steps=60)  # the machine, as the latency bench names it
        results["while embedding"] = asyncio.run(
            replay(folder, Path(work) / "project-1", args.batches, args.seconds_per_label, args.batch_size)
        )
        # The same person on a folder whose photos are all embedded (aeep-tui embed first).
        from aeep_tui.cli import main as cli

        cli(["embed", str(folder), "--backbone", "efficientnet-lite1"])
        results["all embedded"] = asyncio.run(
            replay(folder, Path(work) / "project-2", args.batches, args.seconds_per_label, args.batch_size)
        )
    machine = {**cpu_description(), "training_threads": training_threads(), "cnn_training_steps_per_s": round(steps, 1)}
    machine["emulation"] = os.environ.get("AEEP_SLOW_MACHINE")
    print(f"machine: {machine['model']} ({' '.join(machine['simd'])}); CNN {steps:.1f} steps/s; {args.photos:,} photos")
    print("| folder | first batch | keys | key median | p95 | p99 | max | wait median | wait p95 | embedded after each batch |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, result in results.items():
        keys, waits = result["keystroke_ms"], result["wait_s"]
        result["summary"] = {
            "key_median_ms": percentile(keys, 50),
            "key_p95_ms": percentile(keys, 95),
            "key_p99_ms": percentile(keys, 99),
            "key_max_ms": max(keys),
            "wait_median_s": percentile(waits, 50),
            "wait_p95_s": percentile(waits, 95),
        }
        m = result["summary"]
        print(
            f"| {name} | {result['first_batch_s']:.1f} s | {len(keys)} | {m['key_median_ms']:.0f} ms | {m['key_p95_ms']:.0f} | "
            f"{m['key_p99_ms']:.0f} | {m['key_max_ms']:.0f} | {m['wait_median_s']:.2f} s | {m['wait_p95_s']:.2f} s | "
            f"{result['embedded_after_batch']} |"
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    settings = vars(args) | {"folders": str(args.folders), "json": str(args.json)}
    args.json.write_text(json.dumps({"settings": settings, "machine": machine, "runs": results}, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
