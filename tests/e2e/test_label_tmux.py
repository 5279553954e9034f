"""End to end: the real ``aeep-tui label`` in a real terminal (tmux), driven by keys.

It types what a person would type (send-keys) and asserts on what they would read
(capture-pane): the setup screen, the cards with their names, answers under the cards,
the side panel's numbers changing after a batch, the help, a clean quit, and a silent
resume. Training is cut to 10 steps (``--train-steps``) so a round is quick.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import make_image_folder

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed (.ci/run installs it)")

REPO = Path(__file__).resolve().parents[2]
WIDTH, HEIGHT = 140, 45


class Terminal:
    """One tmux session on a private server socket, so the test's environment is the one used."""

    def __init__(self, socket: str) -> None:
        self.socket = socket

    def tmux(self, *args: str) -> str:
        return subprocess.run(
            ["tmux", "-u", "-L", self.socket, *args], check=True, capture_output=True, text=True, cwd=REPO
        ).stdout

    def start(self, command: str, env: dict[str, str]) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        # pytest exports COLUMNS=80 LINES=24, which would override the pane's real size.
        shell = f"cd {REPO} && env -u COLUMNS -u LINES {exports} {command}; echo EXIT=$?; sleep 60"
        for attempt in range(20):
            try:
                self.tmux("new-session", "-d", "-s", "e2e", "-x", str(WIDTH), "-y", str(HEIGHT), shell)
                return
            except subprocess.CalledProcessError:
                # A server whose last session was just killed may still be exiting on this
                # socket (seen in a CI run): wait for it, then start a fresh one.
                if attempt == 19:
                    raise
                time.sleep(0.25)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.tmux("send-keys", "-t", "e2e", key)
            time.sleep(0.25)  # a person's pace; also lets each key's repaint land

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "e2e")

    def wait_for(self, *patterns, timeout: float = 90.0) -> str:
        """The screen once every pattern is on it (repaints land in pieces, so wait for all)."""
        deadline = time.monotonic() + timeout
        while True:
            text = self.screen()
            if all(p(text) if callable(p) else re.search(p, text) for p in patterns):
                return text
            if time.monotonic() > deadline:
                size = self.tmux("display", "-p", "-t", "e2e", "#{window_width}x#{window_height}").strip()
                raise AssertionError(f"never saw all of {patterns!r} on the {size} screen; last screen:\n{text}")
            time.sleep(0.3)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


@pytest.fixture
def terminal():
    term = Terminal(f"aeep-e2e-{os.getpid()}-{time.monotonic_ns()}")
    yield term
    term.close()


def test_label_two_batches_in_a_real_terminal(terminal, tmp_path):
    images = make_image_folder(tmp_path / "images", per_class=30, n_classes=3)
    test = make_image_folder(tmp_path / "test", per_class=5, n_classes=3, seed=1)
    env = {
        "AEEP_TUI_HOME": str(tmp_path / "home"),
        "OMP_NUM_THREADS": "1",
        "TERM": "xterm-256color",
        "LC_ALL": "C.UTF-8",
        "PYTHONPATH": str(REPO),
    }
    command = (
        f"{sys.executable} -m aeep_tui label {images} --classes class0,class1,class2 "
        f"--batch-size 4 --budget 40 --train-steps 10 --device cpu --test {test}"
    )
    terminal.start(command, env)

    # First open: the setup screen, classes and their keys pre-filled from --classes.
    terminal.wait_for(r"New labelling project", r"1→class0", r"3→class2", r"Start labelling")
    terminal.keys("Enter")

    # The batch: four cards, each with its item's name; the panel; every key in the footer.
    def four_cards(text: str) -> bool:
        return len(re.findall(r"class\d/\d{3}\.png", text)) == 4

    screen = terminal.wait_for(
        r"Round 1 · 4 of 4 to label",
        four_cards,
        r"Labelled 0 / 90",
        r"Budget 0 / 40",
        r"q quit",
        r"m now —",
        r"test —",
    )
    assert all(k in screen for k in ("1-3 label", "move", "s skip", "undo", "confirm", "g guesses", "? help"))

    terminal.keys("1", "2", "s", "3")
    terminal.wait_for(r"complete", r"1 ▸ class0", r"2 ▸ class1", r"skipped", r"3 ▸ class2")
    terminal.keys("BSpace")  # undo the last answer
    terminal.wait_for(r"1 of 4 to label")
    terminal.keys("3")
    terminal.wait_for(r"complete")

    terminal.keys("Enter")  # retrain, then the next batch arrives and the panel moves on
    terminal.wait_for(
        r"Round 2 · 4 of 4 to label",
        r"Labelled 3 / 90 · 1 skipped",
        r"Budget 3 / 40",
        r"retrain \d+\.\d s",
        r"m now \d",
        r"test \d+%",
        four_cards,
    )

    terminal.keys("g")  # the model's guesses, hidden until asked for
    terminal.wait_for(r"guesses shown", r"class\d \d+% · (explore|exploit)")
    terminal.keys("?")
    terminal.wait_for(r"Class keys", r"close help")
    terminal.keys("Escape")
    terminal.wait_for(r"Round 2 · ")

    terminal.keys("q")
    done = terminal.wait_for(r"EXIT=\d+")
    assert "EXIT=0" in done and "answers saved in" in done

    # Reopening resumes silently: no setup screen, straight back to round 2.
    terminal.tmux("kill-session", "-t", "e2e")
    terminal.start(f"{sys.executable} -m aeep_tui label {images}", env)
    screen = terminal.wait_for(r"Round 2 · ", r"Labelled 3 / 90")
    assert "New labelling project" not in screen
    terminal.keys("q")
    assert "EXIT=0" in terminal.wait_for(r"EXIT=\d+")


def test_label_photos_with_the_pretrained_backbone_in_a_real_terminal(terminal, tmp_path):
    """Colour photos take the pretrained backbone (auto): setup, a batch, labels, the next
    batch chosen by the head trained on the features, with the backbone in the panel."""
    from aeep_core.data.backbones import PHOTO_BACKBONE
    from tests.test_backbones import _photo_folder

    photos = _photo_folder(tmp_path / "photos", per_class=10)
    env = {"AEEP_TUI_HOME": str(tmp_path / "home"), "OMP_NUM_THREADS": "1", "TERM": "xterm-256color",
           "LC_ALL": "C.UTF-8", "PYTHONPATH": str(REPO)}  # fmt: skip
    terminal.start(f"{sys.executable} -m aeep_tui label {photos} --classes kind0,kind1 --batch-size 4 --device cpu", env)
    terminal.wait_for(r"New labelling project", r"1→kind0", r"Start labelling")
    terminal.keys("Enter")
    terminal.wait_for(
        r"Round 1 · 4 of 4 to label", r"Labelled 0 / 20", PHOTO_BACKBONE
    )  # the panel: "head on efficientnet-lite1", wrapped
    terminal.keys("1", "2", "1", "2")
    terminal.wait_for(r"complete")
    terminal.keys("Enter")
    terminal.wait_for(r"Round 2 · 4 of 4 to label", r"Labelled 4 / 20", PHOTO_BACKBONE)
    terminal.keys("g")
    terminal.wait_for(r"kind\d \d+% · (explore|exploit)")  # guesses of the head trained on the features
    terminal.keys("q")
    done = terminal.wait_for(r"EXIT=\d+")
    assert "EXIT=0" in done
