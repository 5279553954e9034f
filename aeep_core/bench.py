"""The benchmark behind ``aeep-tui bench``: strategies × seeds × batch sizes, resumable.

Every run of one seed starts from the same random labelled set (the learner seeds it
from ``seed`` only), trains the same network with the same :class:`TrainConfig`, and is
tested on the same held-out images, which never enter selection. A *task* bundles a data
loader and the figures to report; a *variant* is a strategy plus options (the ablations).
Finished runs are appended, one JSON line each, to a ``.partial`` file so that an
interrupted bench skips them when started again with the same settings.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from aeep_core.data.loading import Dataset, load_dataset
from aeep_core.data.pool import DataError
from aeep_core.strategies import STRATEGIES
from aeep_core.training import TrainConfig

FORMAT = "aeep-bench/1"
REPO_SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


# --- tasks ------------------------------------------------------------------------
@dataclass(frozen=True)
class Task:
    """What a benchmark runs on: where the data is, how to load it, what to report.

    ``curve`` is the figure the learning curve, its area and ``labels_to`` are taken on;
    ``thresholds`` the levels for ``labels_to``; ``at`` the label counts for ``acc_at``.
    ``seeded_data``: the loader's split depends on the seed (loaded once per seed).
    """

    name: str
    data_folder: str  # under ../shared/data
    load: Callable[[Path, int], Dataset]
    curve: str = "accuracy"
    thresholds: tuple[float, ...] = (0.90, 0.95, 0.97, 0.98)
    at: tuple[int, ...] = (100, 200, 300, 500, 1000)
    seeded_data: bool = False

    def default_data(self) -> Path:
        """``../shared/data/<folder>`` from the working directory, else beside this checkout."""
        here = Path("..") / "shared" / "data" / self.data_folder
        return here if here.exists() else REPO_SHARED / self.data_folder


def _load_mnist(path: Path, seed: int) -> Dataset:
    data = load_dataset(path)
    if data.test is None:
        raise DataError(f"{path}: no t10k test files; the benchmark tests on MNIST's 10,000 test images")
    return data


def _load_heart_failure(path: Path, seed: int) -> Dataset:
    try:  # imported lazily: the sequence modality is optional and may be absent
        from aeep_core.sequences.cohort import heart_failure_dataset
    except ImportError as exc:
        raise DataError(f"the heart-failure task needs aeep_core.sequences.cohort, which is not available ({exc})") from exc
    return heart_failure_dataset(path, seed)


TASKS: dict[str, Task] = {
    "mnist": Task("mnist", "mnist", _load_mnist),
    # AUROC is the usual figure for a rare binary outcome; the thresholds are a first guess.
    "heart-failure": Task(
        "heart-failure", "ehr", _load_heart_failure, curve="auroc", thresholds=(0.70, 0.75, 0.80, 0.85),
        at=(50, 100, 200, 300, 500), seeded_data=True,
    ),
}


# --- variants (strategies and ablations) --------------------------------------------
TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}

#: named variants: (strategy, strategy options, TrainConfig overrides)
VARIANTS: dict[str, tuple[str, dict[str, Any], dict[str, Any]]] = {
    "aeep-nopair": ("aeep", {}, {"pair_weight": 0.0}),  # ablation: no pair loss
    "aeep-pixels": ("aeep", {"space": "pixels"}, {}),  # ablation: similarity on raw pixels
    "aeep-fresh": ("aeep", {}, {"warm_start": False}),  # engine choice: a fresh network per round vs warm
}
BASELINES = ["aeep", "aeep-paper", "ee", "random", "em", "kff", "bmal", "coreset", "badge"]
ABLATIONS = ["aeep-nopair", "aeep-pixels", "aeep-fresh"]  # "fixed m" is ee


@dataclass(frozen=True)
class Variant:
    """A named way of running one strategy: ``aeep``, ``aeep-nopair`` or ``aeep[beta=0.5]``."""

    name: str
    strategy: str
    options: dict[str, Any] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)

    def config(self, base: TrainConfig) -> TrainConfig:
        return dataclasses.replace(base, **self.train)


def _value(text: str) -> Any:
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_variant(spec: str) -> Variant:
    """``name`` or ``name[key=value,...]``: a strategy or named variant, with options.

    Keys that are :class:`TrainConfig` fields change training; the others are passed to
    the strategy (e.g. ``aeep[beta=0.5,rate=0.3]``, ``ee[m_fraction=0.25]``).
    """
    spec = spec.strip()
    base, _, rest = spec.partition("[")
    if rest and not rest.endswith("]"):
        raise ValueError(f"{spec!r}: options go in brackets, e.g. aeep[beta=0.5]")
    if base in VARIANTS:
        strategy, options, train = VARIANTS[base]
        options, train = dict(options), dict(train)
    elif base in STRATEGIES:
        strategy, options, train = base, {}, {}
    else:
        raise ValueError(f"unknown strategy {base!r}; choose from {', '.join([*STRATEGIES, *VARIANTS])}")
    for item in filter(None, rest[:-1].split(",")) if rest else []:
        key, eq, val = item.partition("=")
        if not eq:
            raise ValueError(f"{spec!r}: option {item!r} needs key=value")
        (train if key.strip() in TRAIN_FIELDS else options)[key.strip()] = _value(val.strip())
    return Variant(spec, strategy, options, train)


def split_list(text: str) -> list[str]:
    """Split ``a,b[x=1,y=2],c`` on the commas outside brackets."""
    out, depth, cur = [], 0, ""
    for ch in text:
        depth += (ch == "[") - (ch == "]")
        if ch == "," and depth == 0:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return [s.strip() for s in out if s.strip()]


# --- settings and presets -------------------------------------------------------------
@dataclass
class BenchSettings:
    """One benchmark: every variant × seed × batch size."""

    task: str = "mnist"
    data: Path | None = None
    strategies: list[str] = field(default_factory=lambda: list(BASELINES))
    seeds: list[int] = field(default_factory=lambda: [0])
    batch_sizes: list[int] = field(default_factory=lambda: [20])
    budget: int = 300
    initial: int = 20
    candidates: int = 10_000
    test_subset: int | None = None  # test on a fixed random subset of the test set (quick preset)
    device: str = "auto"
    train: TrainConfig = field(default_factory=TrainConfig)

    def rounds_per_run(self, k: int) -> int:
        return -(-max(self.budget - self.initial, 0) // k) + 1


#: quick: one seed, k=20, 300 labels, 2,000 candidates, 5,000 test images, the seven
#: baselines + AEEP: 8 runs x 15 rounds at ~6 s a round on 2 idle cores ≈ 12 min.
PRESETS: dict[str, dict[str, Any]] = {
    "quick": dict(strategies=BASELINES, seeds=[0], batch_sizes=[20], budget=300, candidates=2000, test_subset=5000),
    "ablations": dict(strategies=["aeep", "ee", *ABLATIONS], seeds=[0], batch_sizes=[20], budget=300,
                      candidates=2000, test_subset=5000),
    "paper": dict(strategies=[*BASELINES, *ABLATIONS], seeds=[0, 1, 2, 3, 4], batch_sizes=[10, 20, 50], budget=1000,
                  candidates=10_000, test_subset=None),
}


def preset(name: str, **overrides: Any) -> BenchSettings:
    """Settings of a preset (``quick``, ``ablations``, ``paper``) with ``overrides`` applied
    (None values leave the preset's choice)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    values = {**PRESETS[name], **{k: v for k, v in overrides.items() if v is not None}}
    return BenchSettings(**values)


def run_key(settings: BenchSettings, variant: Variant, seed: int, k: int) -> str:
    """What makes two runs the same run: a restart reuses a finished run only on a match."""
    return json.dumps({
        "task": settings.task, "variant": variant.name, "seed": seed, "k": k, "budget": settings.budget,
        "initial": settings.initial, "candidates": settings.candidates, "test_subset": settings.test_subset,
        "train": dataclasses.asdict(variant.config(settings.train)),
    }, sort_keys=True)


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
    settings: BenchSettings, variant: Variant, seed: int, k: int, data_path: Path,
    loader: Callable[[Path, int], Dataset] | None = None, tick: Callable[[Any], None] | None = None,
) -> dict[str, Any]:
    """One simulated run, in the ``simulate`` format plus ``variant``, ``wall_s``, ``cpu_s``."""
    from aeep_core.simulate import SimulationSettings, simulate

    task = TASKS[settings.task]
    # The loader itself, not its id(): the key keeps it alive, so a later loader can never
    # be built at the same address and be handed this one's data.
    data_key = (settings.task, str(data_path), settings.test_subset, seed if task.seeded_data else None, loader)
    if data_key not in _WORKER_DATA:
        _WORKER_DATA.clear()  # one data set at a time: MNIST is 50 MB, no need to hoard
        _WORKER_DATA[data_key] = _test_subset((loader or task.load)(data_path, seed), settings.test_subset)
    sim = SimulationSettings(
        strategy=variant.strategy, batch_size=k, budget=settings.budget, initial=settings.initial, seed=seed,
        device=settings.device, candidates=settings.candidates, train=variant.config(settings.train),
        strategy_options=dict(variant.options),
    )
    t0, c0 = time.perf_counter(), time.process_time()
    result = simulate(_WORKER_DATA[data_key], sim, on_round=tick)
    wall = time.perf_counter() - t0
    # CPU seconds as well as wall seconds: on shared cores the wall clock says more
    # about the neighbours than about the strategy.
    result.update(variant=variant.name, wall_s=wall, cpu_s=time.process_time() - c0,
                  s_per_round=wall / len(result["rounds"]))
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
    :func:`aeep_core.report.build_report`). ``loader`` replaces the task's data loader
    (tests use it for generated data; it must be picklable when ``jobs`` > 1).

    ``jobs`` > 1 runs that many runs at once in worker processes with one torch thread
    each: a small CNN scales poorly over threads, so on a few cores parallel runs finish
    sooner than parallel threads. The progress bar then moves once per finished run.
    """
    import torch

    from aeep_core.report import build_report

    task = TASKS[settings.task]
    variants = [parse_variant(s) for s in settings.strategies]
    if len({v.name for v in variants}) != len(variants):
        raise ValueError("a strategy is listed twice")
    data_path = Path(settings.data) if settings.data is not None else task.default_data()
    done = read_partial(partial) if partial is not None else {}
    plan = [(seed, k, v, run_key(settings, v, seed, k)) for seed in settings.seeds for k in settings.batch_sizes for v in variants]
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
            futures = {ex.submit(_one_run, settings, v, seed, k, data_path, loader): (key, f"{v.name} seed {seed} k={k}", k)
                       for seed, k, v, key in todo}
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
