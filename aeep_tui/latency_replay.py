"""``aeep-tui bench --task latency``: a simulated person labels through the real app, headless.

Each (mode, seed) runs in a fresh process: the real :class:`LabellingApp` under Textual's
``run_test`` on the real MNIST pool, a person who presses the right class key every
``seconds_per_label`` and Enter at the end of each batch. Measured:

- wait: from Enter to the next batch's cards on screen;
- keystroke: from a key press to the screen having processed and repainted it, for the
  keys pressed while the model trains (label keys in the pipelined mode, where training
  never stops; `g`, which shows or hides the guesses, pressed during the plain wait);
- peak resident memory of the process, and the test accuracy of each model that chose a
  batch, filed under the number of labels it was trained on.
"""

from __future__ import annotations

import asyncio
import functools
import json
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from aeep_core.bench.latency import LatencySettings, peak_rss_mib, summarise


def _settings(s: LatencySettings, pipelined: bool, seed: int):
    from aeep_core.data import load_dataset
    from aeep_core.session import ProjectSettings
    from aeep_tui.keys import assign_keys

    classes = load_dataset(s.data).pool.class_names  # the ground truth's classes, keyed as a person would
    return ProjectSettings(
        classes=classes,
        keys=assign_keys(classes),
        strategy=s.strategy,
        batch_size=s.batch_size,
        budget=s.budget,
        seed=seed,
        device=s.device,
        candidates=s.candidates,
        pipelined=pipelined,
        lookahead=s.lookahead,
        steps_per_label=s.steps_per_label,
        train=dict(s.train),
        follow_pace=True,  # as the app's new projects (aeep-tui label, demo)
    )


async def _send_key(app, key: str, effect) -> float:
    """Deliver ``key`` as the terminal driver would; return milliseconds until ``effect()``
    holds and the screen has repainted after it. (Pilot's ``press`` waits for the whole
    process to go idle, which never happens while a model trains in the background.)"""
    from textual import events

    start = time.perf_counter()
    event = events.Key(key, key if len(key) == 1 else None)
    event.set_sender(app)
    app._driver.send_message(event)
    while not effect():
        await asyncio.sleep(0.001)
    await repainted(app)
    return 1000 * (time.perf_counter() - start)


async def _replay(s: LatencySettings, mode: str, seed: int, project: Path) -> dict[str, Any]:
    from aeep_tui.app import LabellingApp
    from aeep_tui.screens.labelling import LabellingScreen

    app = LabellingApp(Path(s.data), _settings(s, mode == "pipelined", seed), confirm_setup=False, project_dir=project)
    waits, keys_ms, acc_at = [], [], []
    async with app.run_test(size=(160, 48)):
        while not (isinstance(app.screen, LabellingScreen) and app.screen.cards and not app.screen.busy):
            await asyncio.sleep(0.05)
        screen = app.screen
        session = screen.session
        while True:
            batch = session.batch
            for position, item in enumerate(batch.items):
                await asyncio.sleep(s.seconds_per_label)
                key = session.classes.current.keys[int(session.pool.labels[item.item_id])]
                took = await _send_key(app, key, lambda b=batch, p=position: b.items[p].answer is not None)
                if mode == "pipelined":
                    keys_ms.append(took)  # the trainer runs all the while
            start, number = time.perf_counter(), batch.round
            last_key = start
            await _send_key(app, "enter", lambda n=number: screen.busy or session.batch is None or session.batch.round > n)
            while not (session.finished and not screen.busy) and not (
                not screen.busy and session.batch is not None and session.batch.round > number and screen.cards
            ):
                if mode == "plain" and time.perf_counter() - last_key >= 0.5:
                    # a person toggling the guesses, twice a second, while the model retrains
                    shown = screen.show_guesses
                    keys_ms.append(await _send_key(app, "g", lambda was=shown: screen.show_guesses != was))
                    last_key = time.perf_counter()
                await asyncio.sleep(0.05)
            await repainted(app)
            waits.append(time.perf_counter() - start)
            if mode == "plain" and not session.finished:
                stats = session.stats  # the new batch was chosen by a model trained on every label so far
                acc_at.append([stats.labelled, stats.test_accuracy])
            if session.finished:
                break
        if mode == "pipelined":
            acc_at = [list(e) for e in session.evaluations]
        labelled = session.stats.labelled
        await app.action_save_and_quit()
    return {
        "mode": mode,
        "seed": seed,
        "wait_s": waits,
        "keystroke_ms": keys_ms,
        "acc_at": acc_at,
        "labelled": labelled,
        "rss_mib": peak_rss_mib(),
    }


def run_one(s: LatencySettings, mode: str, seed: int) -> dict[str, Any]:
    """One replay in this process, with the torch threads ``aeep-tui label`` sets."""
    import torch

    from aeep_tui.app import training_threads

    torch.set_num_threads(training_threads())
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(_replay(s, mode, seed, Path(tmp) / "project"))
    # the kernels torch used (AVX2 inside an emulation) and how busy the machine was
    result["cpu_capability"] = torch.backends.cpu.get_cpu_capability()
    result["loadavg_1min"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    result["cpu_cgroup"] = next((line for line in Path("/proc/self/cgroup").read_text().splitlines() if ":cpu:" in line), None)
    return result


def run_key(settings: LatencySettings, mode: str, seed: int) -> str:
    """What makes two replays the same: every setting but the seed count, the mode, the seed."""
    same = {k: v for k, v in asdict(settings).items() if k not in ("seeds", "modes")}
    return json.dumps({**same, "mode": mode, "seed": seed}, sort_keys=True)


def run(settings: LatencySettings, progress=print, partial: Path | None = None) -> dict[str, Any]:
    """Every (seed, mode) in a fresh process; the per-mode summary and every run.

    With ``partial``, each finished replay is appended there and a later call with the same
    settings reuses it, so ``--seeds 3`` after ``--seeds 1`` only runs seeds 1 and 2. With
    ``emulate_steps`` or ``slowdown``, each replay's process (and any it starts) runs in a
    slow machine calibrated first (``aeep_core.bench.slow_machine``).
    """
    from aeep_core.bench.run import append_partial, read_partial
    from aeep_core.bench.slow_machine import SlowMachine, calibrate
    from aeep_tui.app import training_threads

    done = read_partial(partial) if partial is not None else {}
    runs = []
    ctx = multiprocessing.get_context("spawn")
    emulated = settings.emulate_steps is not None or settings.slowdown is not None
    slow = SlowMachine() if emulated else None
    try:
        if slow is not None:
            isa = "avx2" if settings.emulate_steps is not None else "native"
            calibrate(slow, settings.data, settings.emulate_steps, settings.slowdown, isa, training_threads(), progress=progress)
        for seed in range(settings.seeds):
            for mode in settings.modes:
                key = run_key(settings, mode, seed)
                if key in done:
                    progress(f"latency: {mode}, seed {seed}: done before, reused")
                    runs.append(done[key])
                    continue
                progress(f"latency: {mode}, seed {seed} …")
                start = time.perf_counter()
                result = _in_fresh_process(ctx, slow, run_one, settings, mode, seed)
                result["wall_s"] = time.perf_counter() - start
                runs.append(result)
                if partial is not None:
                    append_partial(partial, key, result)
        described = machine(settings, slow)
    finally:
        if slow is not None:
            slow.close()
    # a pipelined batch is chosen some answers before the last one (follow_pace: up to k - 1),
    # so acc@n is the model that chose the batch after n labels, trained on n - k + 1 to n
    modes = {m: summarise([r for r in runs if r["mode"] == m], settings.batch_size - 1) for m in settings.modes}
    return {"task": "latency", "settings": asdict(settings), "machine": described, "modes": modes, "runs": runs}


def _in_fresh_process(ctx, slow, fn, *args):
    """``fn(*args)`` in a new spawned process: inside ``slow`` (its kernels in the
    environment the process starts with, its quotas from the first thing it does) if given."""
    from aeep_core.bench.slow_machine import enter

    env = slow.emulation.env() if slow is not None and slow.emulation is not None else {}
    initializer = functools.partial(enter, str(slow.quotas.path / "cgroup.procs")) if slow is not None else None
    before = {k: os.environ.get(k) for k in env}
    os.environ.update(env)  # a spawned process takes this environment when it starts
    try:
        with ProcessPoolExecutor(1, mp_context=ctx, initializer=initializer) as pool:
            return pool.submit(fn, *args).result()
    finally:
        for k, v in before.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def measure_steps(data: str) -> dict[str, Any]:
    """Training steps/s of the app's network on ``data`` in this process, with the
    threads the app gives training, and the kernels torch chose."""
    import torch

    from aeep_core.data import load_dataset
    from aeep_core.learning.training import training_steps_per_second
    from aeep_tui.app import training_threads

    threads = torch.get_num_threads()
    torch.set_num_threads(training_threads())
    try:
        steps = training_steps_per_second(load_dataset(data).pool, steps=60)
    finally:
        torch.set_num_threads(threads)
    return {"training_steps_per_s": round(steps, 1), "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def machine(settings: LatencySettings, slow=None) -> dict[str, Any]:
    """The CPU the latency was measured on and how fast it trains the app's network, with
    the threads the app gives training (the same figures make two runs comparable); in an
    emulation, measured inside it, with the emulation's description."""
    from aeep_core.bench.report import cpu_description
    from aeep_core.bench.slow_machine import DESCRIPTION_ENV
    from aeep_tui.app import training_threads

    if slow is not None:
        measured = _in_fresh_process(multiprocessing.get_context("spawn"), slow, measure_steps, settings.data)
        emulation = asdict(slow.emulation) if slow.emulation is not None else None
    else:
        measured = measure_steps(settings.data)  # inside an outer emulation if run in one
        emulation = json.loads(os.environ[DESCRIPTION_ENV]) if DESCRIPTION_ENV in os.environ else None
    return {**cpu_description(), "training_threads": training_threads(), **measured, "emulation": emulation}


def preset(name: str, data: Path, **overrides: Any) -> LatencySettings:
    """quick: 1 seed, 1 s a label, to 320 labels; paper: 3 seeds, 2 s a
    label, to 1,020. Each runs one batch past its last accuracy point (300, 1,000): no model
    is trained on the final batch's answers, so the one trained on 300 is the one that
    chose the batch after them."""
    base = {
        "quick": LatencySettings(str(data), seconds_per_label=1.0, budget=320, seeds=1),
        "paper": LatencySettings(str(data), seconds_per_label=2.0, budget=1020, seeds=3),
    }[name if name in ("quick", "paper") else "quick"]
    return replace(base, **{k: v for k, v in overrides.items() if v is not None})


async def repainted(app) -> None:
    """Return once the screen has been repainted after what the app has processed so far."""
    painted = asyncio.get_running_loop().create_future()
    app.call_after_refresh(_resolve, painted)
    await painted


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)
