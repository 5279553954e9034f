"""The wait on a photo project, measured in a real terminal (issue 27).

A person labels a photo folder (default: the flowers) with the real ``aeep-tui label`` in
tmux: one key a second, the right class for each card (read from the card's name, whose
folder is its class), and Enter one second after the last card. The wait is the time from
sending Enter to the next batch on screen ("Round N+1 · k of k to label" and k card names,
read with capture-pane every 20 ms). With ``--emulate-steps R`` or ``--slowdown F`` the app
runs inside the slow-machine emulation (``aeep_core.bench.slow_machine``; tmux itself stays
outside). Backbone features are computed once, before and outside any timing, and cached
in ``--home``; the project starts fresh each run.

    python benchmarks/photo_wait.py --rounds 6 --json benchmarks/results/latency/photo-wait.json
    python benchmarks/photo_wait.py --emulate-steps 24.6 --json ...
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WIDTH, HEIGHT = 160, 48


class Terminal:
    """One tmux session on a private server socket."""

    def __init__(self) -> None:
        self.socket = f"aeep-photo-wait-{os.getpid()}"

    def tmux(self, *args: str) -> str:
        return subprocess.run(["tmux", "-u", "-L", self.socket, *args], check=True, capture_output=True, text=True).stdout

    def start(self, command: list[str], env: dict[str, str], cwd: Path) -> None:
        exports = " ".join(f"{k}={v}" for k, v in env.items())
        shell = f"cd {cwd} && env -u COLUMNS -u LINES {exports} {' '.join(command)}; echo EXIT=$?; sleep 600"
        self.tmux("new-session", "-d", "-s", "w", "-x", str(WIDTH), "-y", str(HEIGHT), shell)

    def key(self, key: str) -> float:
        """Send ``key``; the time just before it left."""
        sent = time.perf_counter()
        self.tmux("send-keys", "-t", "w", key)
        return sent

    def screen(self) -> str:
        return self.tmux("capture-pane", "-p", "-t", "w")

    def wait_for(self, test, timeout: float, every: float = 0.02) -> tuple[str, float]:
        """The first screen that passes ``test``, and when it was read."""
        deadline = time.perf_counter() + timeout
        while True:
            text = self.screen()
            seen = time.perf_counter()
            if test(text):
                return text, seen
            if seen > deadline:
                raise TimeoutError(f"timed out after {timeout:.0f} s; last screen:\n{text}")
            time.sleep(every)

    def close(self) -> None:
        subprocess.run(["tmux", "-L", self.socket, "kill-server"], capture_output=True)


def card_names(text: str, classes: list[str]) -> list[str]:
    """The cards' item names on the screen, in reading order (``class/file``)."""
    pattern = r"\b(" + "|".join(map(re.escape, classes)) + r")/[\w.-]+"
    return [m.group(0) for m in re.finditer(pattern, text)]


def batch_on_screen(round_: int, k: int, classes: list[str]):
    def test(text: str) -> bool:
        return bool(re.search(rf"Round {round_} · {k} of {k} to label", text)) and len(card_names(text, classes)) >= k

    return test


def measure(args: argparse.Namespace) -> dict:
    data = Path(args.data).resolve()
    classes = sorted(p.name for p in data.iterdir() if p.is_dir())
    home = Path(args.home)
    for sub in ("data", "config"):
        shutil.rmtree(home / sub, ignore_errors=True)  # a new project; the feature cache stays
    env = {"AEEP_TUI_HOME": str(home), "PYTHONPATH": str(args.repo), "TERM": "xterm-256color", "LC_ALL": "C.UTF-8"}
    prepare = f"from aeep_core.data import load_dataset; load_dataset({str(data)!r})"
    subprocess.run([sys.executable, "-c", prepare], check=True, env={**os.environ, **env}, cwd=args.repo)
    k = args.batch_size
    label = [sys.executable, "-m", "aeep_tui", "label", str(data), "--classes", ",".join(classes)]
    label += ["--batch-size", str(k), "--device", "cpu", "--budget", str(k * (args.rounds + 1))]
    emulate = []
    if args.emulate_steps is not None:
        emulate = ["--emulate-steps", str(args.emulate_steps)]
    elif args.slowdown is not None:
        emulate = ["--slowdown", str(args.slowdown)]
    if emulate:
        label = [sys.executable, "-m", "aeep_core.bench.slow_machine", *emulate, "--data", args.mnist, "--", *label]
    term = Terminal()
    waits, late = [], []
    load = [os.getloadavg()[0]]
    try:
        term.start(label, env, Path(args.repo))
        setup, _ = term.wait_for(lambda t: "Start labelling" in t, timeout=600)
        keys = dict((name, key) for key, name in re.findall(r"(\S)→(\w+)", setup))
        term.key("Enter")
        text, _ = term.wait_for(batch_on_screen(1, k, classes), timeout=600)
        for round_ in range(1, args.rounds + 1):
            names = card_names(text, classes)[:k]
            for name in names:
                time.sleep(args.pace)
                term.key(keys[name.split("/")[0]])
            time.sleep(args.pace)
            term.wait_for(lambda t: "complete" in t, timeout=60)
            sent = term.key("Enter")
            text, seen = term.wait_for(batch_on_screen(round_ + 1, k, classes), timeout=600)
            waits.append(seen - sent)
            late.append(seen - sent + args.pace)  # from the last card's key
            print(f"round {round_}: wait {waits[-1]:.2f} s", file=sys.stderr, flush=True)
        load.append(os.getloadavg()[0])
        term.key("q")
        term.wait_for(lambda t: "EXIT=" in t, timeout=120)
        # the emulation's calibration lines are on the terminal's main screen, back once the app has left
        history = term.tmux("capture-pane", "-p", "-J", "-t", "w", "-S", "-2000").splitlines()
        calibration = [line for line in history if line.startswith("slow machine:")]
    finally:
        term.close()
    rounds = stored_rounds(home)
    return {
        "data": str(data),
        "batch_size": k,
        "pace_s": args.pace,
        "rounds": args.rounds,
        "wait_s": waits,
        "wait_median_s": statistics.median(waits),
        "wait_p95_s": sorted(waits)[max(0, round(0.95 * len(waits)) - 1)],
        "from_last_card_s": late,
        "emulate": emulate,
        "loadavg_1min": [round(x, 2) for x in load],
        "repo": str(args.repo),
        "emulation_log": calibration,
        # per chosen round, from the project's store: how far ahead training started, how
        # many answers the choosing model had not seen, and its training / choosing seconds
        "rounds_stored": rounds,
    }


def stored_rounds(home: Path) -> list[dict]:
    """What the app recorded of each round it chose (the project just labelled)."""
    import sqlite3

    found = sorted(home.glob("data/**/project.sqlite3"))
    if not found:
        return []
    with sqlite3.connect(found[-1]) as db:
        rows = db.execute("SELECT number, engine, train_s, select_s FROM rounds ORDER BY number").fetchall()
    out = []
    for number, engine, train_s, select_s in rows:
        state = json.loads(engine) if engine else {}
        keep = ("lookahead", "late_answers", "pace")
        out.append({"round": number, "train_s": train_s, "select_s": select_s, **{k: state.get(k) for k in keep}})
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "photos" / "flowers"))
    p.add_argument("--rounds", type=int, default=6, help="batches answered (each gives one wait)")
    p.add_argument("--batch-size", type=int, default=12, help="the app's default")
    p.add_argument("--pace", type=float, default=1.0, help="seconds between keys")
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--emulate-steps", type=float, metavar="R")
    speed.add_argument("--slowdown", type=float, metavar="F")
    p.add_argument("--mnist", default=str(REPO.parent / "shared" / "data" / "mnist"), help="what the emulation calibrates on")
    p.add_argument("--home", default="/tmp/aeep-photo-wait-home", help="AEEP_TUI_HOME (its cache is kept)")
    p.add_argument("--repo", default=str(REPO), help="the code tree to run (e.g. an export of an older commit)")
    p.add_argument("--json", type=Path)
    args = p.parse_args()
    if shutil.which("tmux") is None:
        print("photo_wait: error: tmux is not installed (apt-get install tmux)", file=sys.stderr)
        return 2
    result = measure(args)
    print(
        f"wait from Enter to the next batch: median {result['wait_median_s']:.2f} s, "
        f"p95 {result['wait_p95_s']:.2f} s over {len(result['wait_s'])} batches"
    )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
