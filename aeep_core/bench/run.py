"""The benchmark behind ``aeep-tui bench``: strategies × seeds × batch sizes, resumable.

Every run of one seed starts from the same random labelled set (the learner seeds it
from ``seed`` only), trains the same network with the same :class:`TrainConfig`, and is
tested on the same held-out images, which never enter selection. Finished runs are
appended, one JSON line each, to a ``.partial`` file so that an interrupted bench skips
them when started again with the same settings.

A run is a :class:`Job`; an *executor* computes jobs and hands each back as it finishes:
in this process, in local worker processes (``--jobs``), or as Ray tasks (``--ray``,
:mod:`aeep_core.bench.cluster`). The loop of :func:`run_bench` is the same for all three.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TextIO

import numpy as np

from aeep_core.bench.imbalance import kept_line, long_tailed
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


@dataclass(frozen=True)
class Job:
    """One run to compute: a variant of a benchmark at one seed and batch size.

    ``loader`` replaces the task's data loader (tests: generated data). It is only called
    where the data is loaded: in each worker process for ``--jobs``, once in this process
    for ``--ray`` (which ships the data to the tasks).
    """

    settings: BenchSettings
    variant: Variant
    seed: int
    k: int
    key: str
    data_path: Path
    loader: Callable[[Path, int], Dataset] | None = None

    @property
    def what(self) -> str:
        return f"{self.variant.name} seed {self.seed} k={self.k}"

    def data_key(self) -> tuple[Any, ...]:
        """What decides the data this run sees: runs with one key share one loaded copy."""
        s = self.settings
        # The loader itself, not its id(): the key keeps it alive, so a later loader can
        # never be built at the same address and be handed this one's data.
        return (
            s.task,
            str(self.data_path),
            s.test_subset,
            # a long tail draws its rare classes from the seed, whatever the task
            self.seed if TASKS[s.task].seeded_data or s.imbalance != 1 else None,
            self.loader,
            s.backbone,
            s.test_split,
            s.test,
            s.imbalance,
            s.imbalance_profile,
        )

    def load(self) -> Dataset:
        """This run's data (long-tail cut and test subset applied), loaded once per process
        and data key."""
        key = self.data_key()
        if key not in _WORKER_DATA:
            _WORKER_DATA.clear()  # one data set at a time: MNIST is 50 MB, no need to hoard
            load = self.loader
            data = (
                load(self.data_path, self.seed)
                if load is not None
                else TASKS[self.settings.task].load(self.data_path, self.seed, self.settings)
            )
            data = long_tailed(data, self.settings.imbalance, self.settings.imbalance_profile, self.seed)
            _WORKER_DATA[key] = _test_subset(data, self.settings.test_subset)
        return _WORKER_DATA[key]

    def run(self, data: Dataset | None = None, tick: Callable[[Any], None] | None = None) -> dict[str, Any]:
        """The run, in the ``simulate`` format plus ``variant``, ``wall_s``, ``cpu_s``: the one
        definition of a run, whichever executor calls it (``data``: already loaded)."""
        s = self.settings
        sim = SimulationSettings(
            strategy=self.variant.strategy,
            batch_size=self.k,
            budget=s.budget,
            initial=s.initial,
            seed=self.seed,
            device=s.device,
            candidates=s.candidates,
            train=self.variant.config(s.train),
            strategy_options=dict(self.variant.options),
            late=self.variant.late,
        )
        data = self.load() if data is None else data
        t0, c0 = time.perf_counter(), time.process_time()
        result = simulate(data, sim, on_round=tick)
        wall = time.perf_counter() - t0
        # CPU seconds as well as wall seconds: on shared cores the wall clock says more
        # about the neighbours than about the strategy.
        result.update(
            variant=self.variant.name, wall_s=wall, cpu_s=time.process_time() - c0, s_per_round=wall / len(result["rounds"])
        )
        return result


_WORKER_DATA: dict[Any, Dataset] = {}  # per process: data loaded once, reused by later runs


# --- executors: where runs are computed -------------------------------------------------
@dataclass
class Finished:
    """A run that an executor is done with: its ``result``, or None and ``why`` when it was
    lost (a worker or node died past its retries). ``ticked``: the progress bar has already
    moved for each of its rounds."""

    job: Job
    result: dict[str, Any] | None
    why: str = ""
    ticked: bool = False


class Executor(Protocol):
    """Computes runs and yields each as it finishes, in any order (see :func:`run_bench`)."""

    def describe(self) -> dict[str, Any]:
        """Where the runs ran, for the report's ``environment.runner``."""
        ...

    def results(self, jobs: list[Job], progress: ProgressLine | None) -> Generator[Finished, None, None]: ...


class SerialExecutor:
    """One run after the other in this process; the progress bar moves every round."""

    def describe(self) -> dict[str, Any]:
        import torch

        return {"kind": "serial", "threads": torch.get_num_threads()}

    def results(self, jobs: list[Job], progress: ProgressLine | None) -> Generator[Finished, None, None]:
        for job in jobs:
            tick = (lambda r, what=job.what: progress.advance(1, f"{what}: {r.labelled} labels")) if progress else None
            yield Finished(job, job.run(tick=tick), ticked=True)


def _worker_init(threads: int) -> None:
    import torch

    torch.set_num_threads(threads)


def _run_job(job: Job) -> dict[str, Any]:
    return job.run()


class ProcessExecutor:
    """``jobs`` runs at once in local worker processes of ``torch threads // jobs`` threads."""

    def __init__(self, jobs: int):
        import torch

        self.jobs = jobs
        self.threads = max(1, torch.get_num_threads() // jobs)

    def describe(self) -> dict[str, Any]:
        return {"kind": "processes", "jobs": self.jobs, "threads_per_run": self.threads}

    def results(self, jobs: list[Job], progress: ProgressLine | None) -> Generator[Finished, None, None]:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor, as_completed

        ctx = multiprocessing.get_context("spawn")  # fork after torch threads started is unsafe
        workers = max(1, min(self.jobs, len(jobs)))
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init, initargs=(self.threads,)) as ex:
            futures = {ex.submit(_run_job, job): job for job in jobs}
            try:
                for fut in as_completed(futures):
                    yield Finished(futures[fut], fut.result())
            finally:
                for fut in futures:
                    fut.cancel()  # an interrupted bench does not start the runs still queued


class RunsLost(RuntimeError):
    """Some runs were lost past their retries; the finished ones are in the ``.partial`` file."""


# --- the bench ----------------------------------------------------------------------------
def run_bench(
    settings: BenchSettings,
    partial: Path | None = None,
    progress: ProgressLine | None = None,
    loader: Callable[[Path, int], Dataset] | None = None,
    jobs: int = 1,
    executor: Executor | None = None,
) -> dict[str, Any]:
    """Run (or resume) every variant × seed × batch size; return the report (see
    :func:`aeep_core.bench.report.build_report`). ``loader`` replaces the task's data loader
    (tests use it for generated data; it must be picklable when ``jobs`` > 1).

    ``executor`` says where runs are computed (:class:`SerialExecutor`,
    :class:`ProcessExecutor`, or :class:`aeep_core.bench.cluster.RayExecutor`); by default
    ``jobs`` > 1 runs that many at once in worker processes with one torch thread each: a
    small CNN scales poorly over threads, so on a few cores parallel runs finish sooner
    than parallel threads. Whatever the executor, each run is appended to ``partial`` as it
    finishes, and the progress bar moves once per finished run (every round when serial).
    Raises :class:`RunsLost` when an executor lost runs, after every other run finished.
    """
    task = TASKS[settings.task]
    variants = [parse_variant(s) for s in settings.strategies]
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("a strategy is listed twice")
    data_path = Path(settings.data) if settings.data is not None else task.default_data()
    done = read_partial(partial) if partial is not None else {}
    plan = [
        Job(settings, v, seed, k, run_key(settings, v, seed, k), data_path, loader)
        for seed in settings.seeds
        for k in settings.batch_sizes
        for v in variants
    ]
    if progress is not None:
        progress.total = max(1, sum(settings.rounds_per_run(job.k) for job in plan))
    results: dict[str, dict[str, Any]] = {}
    lost: list[Finished] = []
    started = time.time()
    todo = []
    noted: list[int] = []

    def note_long_tail(result: dict[str, Any]) -> None:
        # once per bench: every seed keeps the same counts per rank, only the classes differ
        if progress is not None and settings.imbalance != 1 and not noted and result.get("pool_counts"):
            noted.append(result["seed"])
            progress.note(kept_line(result["pool_counts"], settings.imbalance, settings.imbalance_profile, result["seed"]))

    for job in plan:
        if job.key in done:
            results[job.key] = done[job.key]
            note_long_tail(done[job.key])
            if progress is not None:
                progress.advance(settings.rounds_per_run(job.k), computed=False)
        else:
            todo.append(job)
    if executor is None:
        executor = ProcessExecutor(jobs) if jobs > 1 and len(todo) > 1 else SerialExecutor()

    def record(end: Finished) -> None:
        job, result = end.job, end.result
        if result is None:
            lost.append(end)
            if progress is not None:
                progress.note(f"{job.what}: lost ({end.why})")
            return
        results[job.key] = result
        note_long_tail(result)
        if partial is not None:
            append_partial(partial, job.key, result)
        if progress is not None:
            if not end.ticked:
                progress.advance(settings.rounds_per_run(job.k), job.what)
            last = result["rounds"][-1]
            figure = last.get(task.curve)
            shown = "-" if figure is None else (f"{100 * figure:.1f}%" if task.curve == "accuracy" else f"{figure:.3f}")
            progress.note(f"{job.what}: {task.curve} {shown} at {last['labelled']} labels, {result['wall_s']:.0f} s")

    if todo:  # all resumed: no executor starts (no cluster is joined for nothing)
        # closing: an interrupted bench stops the executor's runs in flight at once
        with contextlib.closing(executor.results(todo, progress)) as finishing:
            for end in finishing:
                record(end)
    if progress is not None:
        progress.close()
    if lost:
        kept = (
            f"the finished runs ({len(results)}) are kept in {partial}: run the same command again to compute the rest"
            if partial is not None
            else "no .partial file keeps the finished runs"
        )
        raise RunsLost(f"{len(lost)} of {len(plan)} runs were lost ({'; '.join(f'{e.job.what}: {e.why}' for e in lost)}); {kept}")
    report = build_report(settings, task, variants, [results[job.key] for job in plan], started=started)
    report["environment"]["runner"] = executor.describe()
    return report
