"""End to end: the stats view in a real terminal (tmux) after three batches answered with
each card's true class (its folder), and the command palette opening it too."""

from __future__ import annotations

import re
import shutil
import sys

import pytest

from tests.conftest import make_image_folder
from tests.e2e.test_label_tmux import REPO, terminal  # noqa: F401  (the fixture)

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")
CARD = re.compile(r"class(\d)/\d{3}\.png")


def test_stats_view_after_three_batches_in_a_real_terminal(terminal, tmp_path):  # noqa: F811
    images = make_image_folder(tmp_path / "images", per_class=30, n_classes=3)
    test = make_image_folder(tmp_path / "test", per_class=5, n_classes=3, seed=1)
    env = {"AEEP_TUI_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color",
           "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO)}  # fmt: skip
    command = (
        f"{sys.executable} -m aeep_tui label {images} --classes class0,class1,class2 "
        f"--batch-size 4 --train-steps 10 --device cpu --no-pipeline --test {test}"
    )
    terminal.start(command, env)
    terminal.wait_for(r"New labelling project", r"Start labelling")
    terminal.keys("Enter")
    for round_ in (1, 2, 3):
        screen = terminal.wait_for(rf"Round {round_} · 4 of 4 to label", lambda s: len(CARD.findall(s)) == 4)
        terminal.keys(*[str(int(c) + 1) for c in CARD.findall(screen)])  # the true class, in card order
        terminal.wait_for(r"complete")
        terminal.keys("Enter")
    terminal.wait_for(r"Round 4 · 4 of 4 to label", r"S stats")

    terminal.keys("S")
    screen = terminal.wait_for(
        r"Estimated accuracy on the strategy's picks, latest rounds: \d+%  \(95% interval \d+%–\d+%; \d+/8 right, rounds 2–3\)",
        r"Guesses before your answers",
        r"Test folder, model of round 4",
        r"Per class · classes seen: 3 of 3",
        r"labels the model had",
        r"When to stop  too early",
    )
    # the guesses' matrix: one row per class, its counts adding up to the 8 guessed cards
    rows = [re.match(r"│ (class\d)((?:\s+\d+){4})", line) for line in screen.splitlines()]
    counts = [[int(x) for x in m.group(2).split()] for m in rows if m][:3]
    assert len(counts) == 3 and sum(row[3] for row in counts) == 8
    terminal.keys("Escape")
    terminal.wait_for(r"Round 4 · 4 of 4 to label")

    terminal.keys("C-p")  # the command palette has it too
    terminal.wait_for(r"Stats", r"Export labels")
    terminal.keys("s", "t", "a", "t", "s", "Enter")
    terminal.wait_for(r"Guesses before your answers")
    terminal.keys("Escape", "q")
    assert "EXIT=0" in terminal.wait_for(r"EXIT=\d+")
