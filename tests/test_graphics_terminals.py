"""End to end in a real Sixel terminal: ``aeep-tui demo`` in ``xterm -ti vt340`` on a
virtual X display (Xvfb), driven with xdotool, checked from the screen's own pixels.

What it shows: xterm answers textual-image's query as a Sixel terminal; the demo's cards
are drawn as real pixels (not half-blocks: colour changes fall anywhere in a cell, not
only on cell edges), each digit a square of its own black (the colour-register fault of
``aeep_tui.widgets.terminal_image`` drew bars over it: not square); no digit goes blank
while ``g`` repaints every card (screens read mid-repaint); Space shows one image,
square and far larger; keys typed into the terminal reach the app (the labels are in the
project, read back with ``aeep-tui export``). Xvfb keeps its screen in a file (``-fbdir``),
so no screenshot tool is needed. It skips, saying why, without Xvfb, xterm or xdotool
(Debian: ``apt-get install xvfb xterm xdotool``; ``.ci/run`` installs them).

Where kitty is installed (it runs under Xvfb with Mesa's software OpenGL) the demo runs
in it too: its digits must appear, which a kitty older than 0.28 could not show until
``terminal_image`` gave it half-blocks (``docs/graphics-terminals.md``). CI installs only
what the xterm test needs.

``AEEP_SCREENSHOTS=DIR`` keeps the screens it checked as PNG files.
"""

from __future__ import annotations

import csv
import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

REPO = Path(__file__).resolve().parents[1]
MISSING = [tool for tool in ("Xvfb", "xdotool") if shutil.which(tool) is None]
pytestmark = [
    pytest.mark.skipif(bool(MISSING), reason=f"{', '.join(MISSING)} not installed (apt-get install xvfb xdotool; .ci/run does)"),
    pytest.mark.skipif(sys.platform != "linux", reason="Xvfb: Linux only"),
]

COLUMNS, ROWS = 120, 38
XTERM_SIXEL = [
    "-ti", "vt340",  # a VT340 answers the device-attributes query with 4: Sixel graphics
    "-xrm", "XTerm*decTerminalID: vt340",
    "-xrm", "XTerm*numColorRegisters: 256",
    "-xrm", "XTerm*sixelScrolling: true",  # images at the cursor (not the screen's corner)
    "-xrm", "XTerm*maxGraphicSize: 4096x4096",
    "-fa", "Monospace", "-fs", "11",
    "-bg", "gray20", "-fg", "white", "-bw", "0",  # no black frame: only the digits are pure black
    "-geometry", f"{COLUMNS}x{ROWS}+0+0",
]  # fmt: skip


KITTY = [
    "--config", "NONE", "-o", "font_size=11", "-o", "remember_window_size=no",
    "-o", f"initial_window_width={COLUMNS}c", "-o", f"initial_window_height={ROWS}c",
    "-o", "background=#333333",  # not black: only the digits are pure black
]  # fmt: skip


def read_xwd(path: Path) -> np.ndarray:
    """The RGB pixels of an XWD file (what Xvfb -fbdir keeps current): ZPixmap, 32 bits."""
    data = path.read_bytes()
    header = struct.unpack(">25I", data[:100])
    header_size, _, _, _, width, height, _, byte_order, _, _, _, bits, bytes_per_line = header[:13]
    colours = header[19]
    assert bits == 32, f"{path}: {bits} bits per pixel (expected a 24-bit Xvfb screen)"
    offset = header_size + colours * 12
    rows = np.frombuffer(data, np.uint8, count=bytes_per_line * height, offset=offset).reshape(height, bytes_per_line)
    pixels = rows[:, : width * 4].reshape(height, width, 4)
    return pixels[..., 2::-1].copy() if byte_order == 0 else pixels[..., 1:].copy()  # BGRX or XRGB


class Display:
    """A private Xvfb (its own display number) and the commands run on it."""

    def __init__(self, tmp: Path) -> None:
        self.fbdir = tmp / "fb"
        self.fbdir.mkdir()
        read, write = os.pipe()
        self.xvfb = subprocess.Popen(
            [
                "Xvfb",
                "-displayfd",
                str(write),
                "-screen",
                "0",
                "1280x800x24",
                "-fbdir",
                str(self.fbdir),
                "-wr",
                "-nolisten",
                "tcp",
            ],
            pass_fds=(write,),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(write)
        with os.fdopen(read) as pipe:
            number = pipe.readline().strip()
        if not number:
            raise RuntimeError("Xvfb did not start")
        self.env = {**os.environ, "DISPLAY": f":{number}"}
        self.children: list[subprocess.Popen] = []

    def xterm(self, script: Path, name: str, focus: bool = True) -> subprocess.Popen:
        """xterm running ``script``; with ``focus`` it takes the keyboard (see :meth:`start`)."""
        return self.start(["xterm", *XTERM_SIXEL, "-name", name, "-e", str(script)], name, focus)

    def kitty(self, script: Path, name: str, log: Path, focus: bool = True) -> subprocess.Popen:
        """kitty running ``script`` on Mesa's software OpenGL (Xvfb has no GPU)."""
        command = ["kitty", *KITTY, "--class", name, str(script)]
        return self.start(command, name, focus, env={"LIBGL_ALWAYS_SOFTWARE": "1"}, log=log)

    def start(self, command, name, focus, env=None, log: Path | None = None) -> subprocess.Popen:
        """A terminal window of class ``name``; with ``focus`` it takes the keyboard and the
        pointer moves off it (to the screen's corner) so screenshots do not show it."""
        err = log.open("w") if log else subprocess.DEVNULL
        proc = subprocess.Popen(command, env={**self.env, **(env or {})}, stderr=err)
        self.children.append(proc)
        if focus:
            # the window exists before it is shown, and X refuses the focus until it is
            # generous: a fresh checkout's first start (bytecode, fonts) on a loaded machine
            wait_for(f"the {name} window", lambda: self.try_xdotool("search", "--onlyvisible", "--classname", name), 90)
            wait_for(
                f"the focus on {name}",
                lambda: self.try_xdotool("search", "--onlyvisible", "--classname", name, "windowfocus", "--sync"),
                30,
            )
            self.xdotool("mousemove", "1279", "799")
        return proc

    def try_xdotool(self, *args: str) -> bool:
        return subprocess.run(["xdotool", *args], env=self.env, capture_output=True, timeout=30).returncode == 0

    def xdotool(self, *args: str) -> None:
        subprocess.run(["xdotool", *args], env=self.env, check=True, capture_output=True, timeout=30)

    def keys(self, *keys: str) -> None:
        for key in keys:
            self.xdotool("key", key)
            time.sleep(0.3)  # a person's pace; each key's repaint lands

    def screen(self) -> np.ndarray:
        return read_xwd(self.fbdir / "Xvfb_screen0")

    def close(self) -> None:
        for proc in [*self.children, self.xvfb]:
            proc.terminate()
        for proc in [*self.children, self.xvfb]:
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                proc.kill()


def script(path: Path, command: str, env: dict[str, str], hold: int = 0) -> Path:
    """A shell script for xterm -e: the environment, the command, its exit status to a
    file, then ``hold`` seconds (the window stays for a look)."""
    exports = "".join(f"export {k}='{v}'\n" for k, v in env.items())
    path.write_text(f"#!/bin/sh\n{exports}unset COLUMNS LINES\n{command}\necho $? > {path}.exit\nsleep {hold}\n")
    path.chmod(0o755)
    return path


def wait_for(what: str, condition, timeout: float):
    deadline = time.monotonic() + timeout
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.5)


def black_squares(pixels: np.ndarray, min_side: int = 60) -> list[tuple[int, int, int, int]]:
    """Bounding boxes (x, y, width, height) of large areas of pure black: the digits'
    backgrounds (Textual's theme has no pure black; xterm's own border is cut off)."""
    from scipy import ndimage

    black = (pixels[4:-4, 4:-4] == 0).all(axis=2)
    labels, _ = ndimage.label(black)
    boxes = []
    for found in ndimage.find_objects(labels):
        y, x = found
        w, h = x.stop - x.start, y.stop - y.start
        if w >= min_side and h >= min_side:
            boxes.append((x.start + 4, y.start + 4, w, h))
    return boxes


def change_columns(pixels: np.ndarray, box: tuple[int, int, int, int], cell_width: int) -> set[int]:
    """Where (pixel column modulo the cell width) the colour changes inside ``box``: on a
    few residues only for half-blocks (a cell is one colour across), on many for Sixel."""
    x, y, w, h = box
    grey = pixels[y : y + h, x : x + w].astype(int).sum(axis=2)
    changes = np.nonzero(np.diff(grey, axis=1) != 0)[1] + x + 1
    return set((changes % cell_width).tolist())


def keep(pixels: np.ndarray, name: str) -> None:
    folder = os.environ.get("AEEP_SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(Path(folder) / f"{name}.png")


def demo_env(tmp_path: Path, term: str) -> dict[str, str]:
    """A private home for the demo: nothing is written outside ``tmp_path``."""
    return {
        "AEEP_TUI_HOME": str(tmp_path / "home"),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": str(tmp_path / "config"),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),
        "OMP_NUM_THREADS": "1",
        "PYTHONPATH": str(REPO),
        "TERM": term,
        "LC_ALL": "C.UTF-8",
    }


def probe_command(out: Path) -> str:
    """What the app will use in this terminal, asked as the app asks (before Textual)."""
    code = (
        "import json, textual_image.renderable as r, textual_image._terminal as t, "
        "aeep_tui.widgets.terminal_image as ti; "
        f"json.dump([r.Image.__module__, t.get_cell_size(), ti.HALF_BLOCKS_INSTEAD], open('{out}', 'w'))"
    )
    return f'{sys.executable} -c "{code}"'


def read_probe(out: Path) -> tuple[str, int, int, bool]:
    wait_for("textual-image's answer in the terminal", out.exists, 30)
    time.sleep(0.2)
    renderer, (cell_width, cell_height), half_blocks = json.loads(out.read_text())
    assert 5 <= cell_width <= 30 and 8 <= cell_height <= 60, (cell_width, cell_height)
    return renderer, cell_width, cell_height, half_blocks


def first_batch(display: Display, name: str) -> np.ndarray:
    """Through the setup screen (an orange frame) to the first batch: 12 digits on screen."""

    def orange() -> bool:
        pixels = display.screen()
        r, g, b = (pixels[..., i].astype(int) for i in range(3))
        return int(((r > 200) & (g > 120) & (g < 200) & (b < 80)).sum()) > 300

    wait_for("the setup screen", orange, 90)
    display.keys("Return")
    wait_for("the first batch of digits", lambda: len(black_squares(display.screen())) >= 12, 120)
    time.sleep(1.0)  # let the last repaints land
    grid = display.screen()
    keep(grid, name)
    return grid


def quit_and_read_labels(display: Display, tmp_path: Path, env: dict[str, str]) -> list[str]:
    """``q``, then the project's labels as ``aeep-tui export`` writes them."""
    display.keys("q")
    exit_file = tmp_path / "demo.sh.exit"
    wait_for("the demo to quit", exit_file.exists, 30)
    assert exit_file.read_text().strip() == "0"
    out = tmp_path / "labels.csv"
    train = tmp_path / "home" / "data" / "demo" / "train"
    exported = subprocess.run(
        [sys.executable, "-m", "aeep_tui", "export", str(train), "--format", "csv", "--out", str(out)],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert exported.returncode == 0, exported.stderr
    with out.open() as f:
        return sorted(row["label"] for row in csv.DictReader(f) if row["label"])


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("xterm") is None, reason="xterm not installed (apt-get install xterm; .ci/run does)")
def test_demo_in_xterm_sixel(tmp_path):
    display = Display(tmp_path)
    try:
        env = demo_env(tmp_path, "xterm-256color")

        # 1. What textual-image detects in this terminal (it asks before Textual starts).
        probe = tmp_path / "probe.json"
        display.xterm(script(tmp_path / "probe.sh", probe_command(probe), env), "aeep-probe", focus=False)
        renderer, cell_width, _, _ = read_probe(probe)
        assert renderer == "textual_image.renderable.sixel", f"xterm -ti vt340 was not taken for Sixel: {renderer}"

        # 2. The demo's first batch: 12 square digits drawn in real pixels.
        demo_command = f"{sys.executable} -m aeep_tui demo --batch-size 12"
        demo = display.xterm(script(tmp_path / "demo.sh", demo_command, env), "aeep-demo")
        grid = first_batch(display, "xterm-sixel-batch")
        boxes = black_squares(grid)
        assert len(boxes) == 12, boxes
        for box in boxes:
            _, _, w, h = box
            assert abs(w - h) <= 8, f"a digit's black square is {w}×{h} px: bars over it (colour registers)"
            assert w >= 5 * cell_width
            residues = change_columns(grid, box, cell_width)
            assert len(residues) >= cell_width // 2, f"colour changes only at {residues}: half-blocks, not Sixel"

        # 3. Keys reach the app: three labels, then Space shows the cursor's image alone.
        display.keys("1", "2", "3")
        time.sleep(0.5)
        labelled = display.screen()
        keep(labelled, "xterm-sixel-labelled")
        assert len(black_squares(labelled)) == 12  # answering repaints cards, images stay
        # `g` repaints every card; caught mid-repaint, no digit may be missing (textual-image
        # wrote spaces first, which erase Sixel pixels in xterm: cards blinked blank)
        for _ in range(3):
            display.xdotool("key", "g")
            frames = [len(black_squares(display.screen())) for _ in range(6)]
            assert frames == [12] * 6, f"digits on screen while `g` repainted: {frames}"
        display.keys("space")
        view_boxes = wait_for("the full-screen view", lambda: [b for b in black_squares(display.screen()) if b[2] > 400], 30)
        time.sleep(0.5)
        view = display.screen()
        keep(view, "xterm-sixel-view")
        (_, _, w, h), *others = [b for b in black_squares(view) if b[2] > 400]
        assert not others and abs(w - h) <= 8, view_boxes  # one digit, square, not stretched
        display.keys("Escape")
        wait_for("the batch again", lambda: len(black_squares(display.screen())) == 12, 30)

        # 4. The answers typed into xterm are in the project.
        assert quit_and_read_labels(display, tmp_path, env) == ["1", "2", "3"]
        assert demo.poll() is None or demo.returncode == 0
    finally:
        display.close()


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("kitty") is None, reason="kitty not installed (apt-get install kitty libgl1-mesa-dri)")
def test_demo_in_kitty(tmp_path):
    """kitty's graphics protocol when its version can show textual-image's images
    (0.28 and later), half-blocks before: either way the digits must be on screen."""
    display = Display(tmp_path)
    try:
        env = demo_env(tmp_path, "xterm-kitty")
        probe, log = tmp_path / "probe.json", tmp_path / "kitty.log"
        display.kitty(script(tmp_path / "probe.sh", probe_command(probe), env), "aeep-probe", log, focus=False)
        try:
            renderer, _, _, half_blocks = read_probe(probe)
        except AssertionError:
            pytest.skip(f"kitty did not start under Xvfb: {log.read_text()[-300:]!r}")
        assert renderer == "textual_image.renderable.tgp", f"kitty was not taken for its graphics protocol: {renderer}"
        version = subprocess.run(["kitty", "--version"], capture_output=True, text=True).stdout
        found = re.search(r"kitty (\d+)\.(\d+)", version)
        assert found is not None, version
        assert half_blocks == ((int(found.group(1)), int(found.group(2))) < (0, 28)), version

        demo_command = f"{sys.executable} -m aeep_tui demo --batch-size 12"
        display.kitty(script(tmp_path / "demo.sh", demo_command, env), "aeep-demo", log)
        grid = first_batch(display, "kitty-batch")
        assert len(black_squares(grid)) == 12  # placeholder glyphs instead of digits have no black
        display.keys("1")
        assert quit_and_read_labels(display, tmp_path, env) == ["1"]
    finally:
        display.close()
