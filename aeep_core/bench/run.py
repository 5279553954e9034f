"""The benchmark behind ``aeep-tui bench``: strategies × seeds × batch sizes, resumable.

Every run of one seed starts from the same random labelled set (the learner seeds it
from ``seed`` only), trains the same network with the same :class:`TrainConfig`, and is
tested on the same held-out images, which never enter selection. Finished runs are
appended, one JSON line each, to a ``.partial`` file so that an interrupted bench skips
them when started again with the same settings.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aeep_core.bench.report import build_report
from aeep_core.bench.settings import TASKS, BenchSettings, Variant, parse_variant, run_key
from aeep_core.bench.simulate import SimulationSettings, simulate
from aeep_core.pool import Dataset


# --- progress ---------------------------------------------------------------------------
class ProgressLine:
    """A one-line progress bar on stderr: redrawn in place on a terminal; in a log file,
    one line per finished run plus the bar at most every ``every`` seconds, so logs of
    long runs stay readable but still show life."""

    def __init__(self, total: int, stream: TextIO | None = None, width: int = 24, every: float = 60.0):
        self.total, self.done, self.width, self.every = max(total, 1), 0, width, every
        self.stream = stream if stream is not None else sys.stderr
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last = time.perf_counter()
        self.counted = 0  # rounds actually computed (not skipped), for the ETA

    def advance(self, n: int = 1, what: str = "", computed: bool = True) -> None:
        self.done = min(self.total, self.done + n)
        self.counted += n if computed else 0
        if self.tty:
            self.stream.write("\r" + self.line(what) + "\033[K")
            self.stream.flush()
        elif computed and time.perf_counter() - self.last >= self.every:
            self.last = time.perf_counter()
            self.stream.write(self.line(what) + "\n")
            self.stream.flush()

    def note(self, text: str) -> None:
        """A line that stays (a finished run), printed above the bar."""
        self.stream.write(("\r\033[K" if self.tty else "") + text + "\n")
        if self.tty:
            self.stream.write(self.line(""))
        self.stream.flush()

    def line(self, what: str) -> str:
        frac = self.done / self.total
        bar = "#" * int(frac * self.width) + "-" * (self.width - int(frac * self.width))
        spent = time.perf_counter() - self.start
        left = spent / self.counted * (self.total - self.done) if self.counted else float("nan")
        eta = "?" if left != left else _clock(left)
        return f"[{bar}] {self.done}/{self.total} rounds {_clock(spent)} elapsed, ~{eta} left {what}"

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def _clock(seconds: float) -> str:
    m, s = divmod(int(seconds), 60)
    return f"{m // 60}:{m % 60:02d}:{s:02d}" if m >= 60 else f"{m}:{s:02d}"


# --- running ----------------------------------------------------------------------------
def read_partial(path: Path) -> dict[str, dict[str, Any]]:
    """Finished runs by key; a torn last line (the run was killed mid-write) is ignored."""
    done: dict[str, dict[str, Any]] = {}
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                item = json.loads(line)
                done[item["key"]] = item["run"]
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    return done


def append_partial(path: Path, key: str, run: dict[str, Any]) -> None:
    """Add one finished run to a ``.partial`` file (read back by :func:`read_partial`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as fh:
        fh.write(json.dumps({"key": key, "run": run}) + "\n")
        fh.flush()
        os.fsync(fh.fileno())  # a finished run must survive a kill right after it


def _test_subset(data: Dataset, n: int | None) -> Dataset:
    """A fixed random subset of the test set (the same for every run and seed)."""
    if n is None or data.test is None or n >= len(data.test):
        return data
    keep = np.sort(np.random.default_rng(2**16).choice(len(data.test), size=n, replace=False))
    return Dataset(data.pool, data.test.subset(keep))


_WORKER_DATA: dict[Any, Dataset] = {}  # per process: data loaded once, reused by later runs


def _one_run(
    settings: BenchSettings,
    variant: Variant,
    seed: int,
    k: int,
    data_path: Path,
    loader: Callable[[Path, int], Dataset] | None = None,
    tick: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """One simulated run, in the ``simulate`` format plus ``variant``, ``wall_s``, ``cpu_s``."""
    task = TASKS[settings.task]
    # The loader itself, not its id(): the key keeps it alive, so a later loader can never
    # be built at the same address and be handed this one's data.
    data_key = (
        settings.task,
        str(data_path),
        settings.test_subset,
        seed if task.seeded_data else None,
        loader,
        settings.backbone,
        settings.test_split,
        settings.test,
    )
    if data_key not in _WORKER_DATA:
        _WORKER_DATA.clear()  # one data set at a time: MNIST is 50 MB, no need to hoard
        data = loader(data_path, seed) if loader is not None else task.load(data_path, seed, settings)
        _WORKER_DATA[data_key] = _test_subset(data, settings.test_subset)
    sim = SimulationSettings(
        strategy=variant.strategy,
        batch_size=k,
        budget=settings.budget,
        initial=settings.initial,
        seed=seed,
        device=settings.device,
        candidates=settings.candidates,
        train=variant.config(settings.train),
        strategy_options=dict(variant.options),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(_WORKER_DATA[data_key], sim, on_round=tick)
    wall = time.perf_counter() - t0
    # CPU seconds as well as wall seconds: on shared cores the wall clock says more
    # about the neighbours than about the strategy.
    result.update(variant=variant.name, wall_s=wall, cpu_s=time.process_time() - c0, s_per_round=wall / len(result["rounds"]))
    return result


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def run_bench(
    settings: BenchSettings,
    partial: Path | None = None,
    progress: ProgressLine | None = None,
    loader: Callable[[Path, int], Dataset] | None = None,
    jobs: int = 1,
) -> dict[str, Any]:
    """Run (or resume) every variant × seed × batch size; return the report (see
    :func:`aeep_core.bench.report.build_report`). ``loader`` replaces the task's data loader
    (tests use it for generated data; it must be picklable when ``jobs`` > 1).

    ``jobs`` > 1 runs that many runs at once in worker processes with one torch thread
    each: a small CNN scales poorly over threads, so on a few cores parallel runs finish
    sooner than parallel threads. The progress bar then moves once per finished run.
    """
    import torch

    task = TASKS[settings.task]
    variants = [parse_variant(s) for s in settings.strategies]
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("a strategy is listed twice")
    data_path = Path(settings.data) if settings.data is not None else task.default_data()
    done = read_partial(partial) if partial is not None else {}
    plan = [
        (seed, k, v, run_key(settings, v, seed, k)) for seed in settings.seeds for k in settings.batch_sizes for v in variants
    ]
    if progress is not None:
        progress.total = max(1, sum(settings.rounds_per_run(k) for _, k, _, _ in plan))
    results: dict[str, dict[str, Any]] = {}
    started = time.time()

    def finished(key: str, what: str, result: dict[str, Any], computed_rounds: int) -> None:
        results[key] = result
        if partial is not None:
            append_partial(partial, key, result)
        if progress is not None:
            if computed_rounds:
                progress.advance(computed_rounds, what)
            last = result["rounds"][-1]
            figure = last.get(task.curve)
            shown = "-" if figure is None else (f"{100 * figure:.1f}%" if task.curve == "accuracy" else f"{figure:.3f}")
            progress.note(f"{what}: {task.curve} {shown} at {last['labelled']} labels, {result['wall_s']:.0f} s")

    todo = []
    for seed, k, variant, key in plan:
        if key in done:
            results[key] = done[key]
            if progress is not None:
                progress.advance(settings.rounds_per_run(k), computed=False)
        else:
            todo.append((seed, k, variant, key))
    if jobs > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        threads = max(1, torch.get_num_threads() // jobs)
        ctx = multiprocessing.get_context("spawn")  # fork after torch threads started is unsafe
        with ProcessPoolExecutor(min(jobs, len(todo)), mp_context=ctx, initializer=_worker_init, initargs=(threads,)) as ex:
            futures = {
                ex.submit(_one_run, settings, v, seed, k, data_path, loader): (key, f"{v.name} seed {seed} k={k}", k)
                for seed, k, v, key in todo
            }
            for fut in as_completed(futures):
                key, what, k = futures[fut]
                finished(key, what, fut.result(), settings.rounds_per_run(k))
    else:
        for seed, k, variant, key in todo:
            what = f"{variant.name} seed {seed} k={k}"
            tick = (lambda r, what=what: progress.advance(1, f"{what}: {r.labelled} labels")) if progress else None
            finished(key, what, _one_run(settings, variant, seed, k, data_path, loader, tick), 0)
    if progress is not None:
        progress.close()
    runs = [results[key] for *_, key in plan]
    return build_report(settings, task, variants, runs, started=started)
