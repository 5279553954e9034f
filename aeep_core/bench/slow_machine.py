"""An honest slower machine: a process tree run with AVX2-only kernels and a CPU quota
on every one of its threads, calibrated so the MNIST network trains at a target rate.

Issue 27: extra work inside training steps (the old ``--slowdown``) slowed training only,
not the UI's own Python or the fight for the GIL, and did not predict a machine that
trains 3× slower. Here everything the tree does is slowed:

- torch's and oneDNN's kernels are held to AVX2 (``ATEN_CPU_CAPABILITY=avx2``,
  ``DNNL_MAX_CPU_ISA=AVX2``), the vector unit of the target kind (AVX2 and FMA, no AVX-512);
- each thread of the tree gets its own CFS bandwidth quota of 1/``factor`` of a CPU (a
  sub-cgroup per thread, which a watcher thread outside the tree keeps up to date, so a
  new thread or child process runs at most ~10 ms on its creator's share), and the tree
  as a whole gets ``cpus``/``factor``: a machine with as many cores as this one, each
  ``factor`` times slower, rather than one slow core shared by all. Periods are short
  (a thread runs 5 ms, then waits (factor - 1) * 5 ms), not the default 100 ms.
- a thread's priority still counts: its sub-cgroup's CPU weight is the kernel's weight
  for the thread's nice value. Without it every sub-cgroup weighed the same, so the
  background embedder (nice 10: a tenth of the UI's weight on a real machine) took as
  much of a contended core as the UI's thread.

``factor`` is found by measuring :func:`training_steps_per_second` inside the emulation
(the threads the app trains with) until it is within 3% of the target. Membership is
inherited, so a child process the app starts (a training process) is slowed too.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

#: the kernels of an AVX2-only machine (torch, and oneDNN's convolutions)
AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "DNNL_MAX_CPU_ISA": "AVX2"}
#: set inside an emulation: its description as JSON (what the bench's ``machine`` records)
DESCRIPTION_ENV = "AEEP_SLOW_MACHINE"
# Each thread runs this long, then waits out the rest of its period ((factor - 1) times as
# long). Measured here at factor 2: 1 ms quotas gave 57-59% of the free rate (the
# throttling itself costs, and varied with the machine's load), 2 ms 70-76%, 5 ms 92%
# steadily; 5 ms keeps calibration stable, at waits of (factor - 1) * 5 ms.
_QUOTA_US = 5000


def nice_weight(nice: int) -> int:
    """The CFS weight of a thread at ``nice`` (the kernel's sched_prio_to_weight table is
    1024 / 1.25**nice, rounded: nice 0 -> 1024, 10 -> 110, 19 -> 15)."""
    return max(2, round(1024 / 1.25 ** max(-20, min(19, nice))))


class NoCgroup(RuntimeError):
    """No writable cgroup with a cpu controller: the emulation cannot run here."""


def default_threads() -> int:
    """The torch threads the app trains with (``aeep_tui.app.training_threads``: every core but one)."""
    return max(1, (os.cpu_count() or 2) - 1)


def _writable_cgroup(mounts_text: str | None = None) -> tuple[int, Path]:
    """(version, directory) under which a new cgroup with the cpu controller can be made,
    from ``mounts_text`` (default: this machine's /proc/mounts)."""
    if mounts_text is None:
        mounts_text = Path("/proc/mounts").read_text() if Path("/proc/mounts").exists() else ""
    mounts = mounts_text.splitlines()
    for line in mounts:
        _, point, kind, options, *_ = line.split()
        if kind == "cgroup" and "cpu" in options.split(",") and os.access(point, os.W_OK):
            return 1, Path(point)
    for line in mounts:
        _, point, kind, *_ = line.split()
        if kind == "cgroup2" and os.access(point, os.W_OK):
            base = Path(point)
            if "cpu" in (base / "cgroup.controllers").read_text().split():
                return 2, base
    raise NoCgroup(
        "no writable cgroup with a cpu controller here (cgroup v1 'cpu' mount or cgroup v2 with 'cpu' "
        "in cgroup.controllers): run as root or in a container with a delegated cgroup "
        "(e.g. docker --privileged, or systemd-run --user -p Delegate=yes), or benchmark on the slow machine itself"
    )


class ThreadQuotas:
    """A cgroup in which every thread has a sub-cgroup of its own with a quota of
    1/``factor`` CPU, under a cap of ``cpus``/``factor`` for all. :meth:`rebalance` gives
    each new thread its own sub-cgroup (a thread or process starts in its creator's)."""

    def __init__(self, cpus: int | None = None) -> None:
        self.version, base = _writable_cgroup()
        self.cpus = cpus or os.cpu_count() or 1
        self.path = base / f"aeep-slow-{os.getpid()}-{time.monotonic_ns()}"
        self.path.mkdir()
        if self.version == 2:
            _write(self.path / "cgroup.subtree_control", "+cpu")
        # the most weight against other work on this machine: within its quota the emulated
        # machine has its cores to itself, as a real one would (the quota caps what it takes)
        _write(self.path / ("cpu.shares" if self.version == 1 else "cpu.weight"), "262144" if self.version == 1 else "10000")
        self._subs: list[Path] = []
        self._weights: dict[Path, int] = {}  # the weight last written to each sub-cgroup
        self._count = 0
        self.factor = 1.0
        self.period_us = 0

    # the files each version names the same things by
    def _threads_file(self, d: Path) -> Path:
        return d / ("tasks" if self.version == 1 else "cgroup.threads")

    def _set_quota(self, d: Path, quota_us: int | None, period_us: int) -> None:
        if self.version == 1:
            _write(d / "cpu.cfs_quota_us", "-1")
            if quota_us is not None:
                _write(d / "cpu.cfs_period_us", str(period_us))
                _write(d / "cpu.cfs_quota_us", str(quota_us))
        else:
            _write(d / "cpu.max", f"{'max' if quota_us is None else quota_us} {period_us}")

    def set_factor(self, factor: float) -> None:
        """Every thread ``factor`` times slower than a free core (1: no quota at all)."""
        self.factor = max(1.0, factor)
        self.period_us = math.ceil(_QUOTA_US * self.factor)
        limited = self.factor > 1
        for sub in self._subs:  # loosen the children before the parent: v1 refuses a child above its parent
            self._set_quota(sub, None, self.period_us)
        self._set_quota(self.path, round(self.cpus * self.period_us / self.factor) if limited else None, self.period_us)
        for sub in self._subs:
            self._set_quota(sub, self._thread_quota(), self.period_us)

    def _thread_quota(self) -> int | None:
        return round(self.period_us / self.factor) if self.factor > 1 else None

    def add_process(self, pid: int) -> None:
        """Put process ``pid`` (all its threads) into the emulation."""
        _write(self.path / "cgroup.procs", str(pid))

    def _set_weight(self, d: Path, nice: int) -> None:
        weight = nice_weight(nice)
        if self._weights.get(d) != weight:
            if self.version == 1:
                _write(d / "cpu.shares", str(weight))
            else:  # cpu.weight: 100 is the default share of 1024
                _write(d / "cpu.weight", str(max(1, min(10_000, round(weight * 100 / 1024)))))
            self._weights[d] = weight

    def rebalance(self) -> None:
        """Give every thread that shares a sub-cgroup, or sits in the top one, its own,
        weighted by the thread's nice value (which it may change at any time)."""
        loose = _read_ids(self._threads_file(self.path))
        for sub in list(self._subs):
            tids = _read_ids(self._threads_file(sub))
            if not tids:
                if _rmdir(sub):
                    self._subs.remove(sub)
                    self._weights.pop(sub, None)
                continue
            try:
                self._set_weight(sub, os.getpriority(os.PRIO_PROCESS, tids[0]))  # a thread id: that thread's nice
            except ProcessLookupError:
                pass
            loose.extend(tids[1:])
        for tid in loose:
            sub = self.path / f"t{self._count}"
            self._count += 1
            sub.mkdir()
            if self.version == 2:
                _write(sub / "cgroup.type", "threaded")
            self._set_quota(sub, self._thread_quota(), self.period_us or 100_000)
            self._subs.append(sub)
            try:
                _write(self._threads_file(sub), str(tid))
            except ProcessLookupError:
                pass  # the thread ended meanwhile; its empty sub-cgroup goes next time

    def threads(self) -> int:
        """Threads in the emulation now."""
        return len(_read_ids(self._threads_file(self.path))) + sum(len(_read_ids(self._threads_file(s))) for s in self._subs)

    def close(self) -> None:
        """Move whatever still runs back to the parent cgroup and remove the cgroups."""
        parent = self.path.parent
        for d in [*self._subs, self.path]:
            for tid in _read_ids(self._threads_file(d)):
                try:
                    _write(self._threads_file(parent) if self.version == 1 else parent / "cgroup.procs", str(tid))
                except OSError:
                    pass
        for d in [*self._subs, self.path]:
            _rmdir(d)


def enter(procs_file: str) -> None:
    """Put this process into an emulation (its ``cgroup.procs``); for a process started by
    other means than :meth:`SlowMachine.popen`, e.g. a pool's initializer."""
    _write(Path(procs_file), str(os.getpid()))


def _write(path: Path, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)


def _read_ids(path: Path) -> list[int]:
    try:
        return [int(x) for x in path.read_text().split()]
    except FileNotFoundError:
        return []


def _rmdir(path: Path) -> bool:
    try:
        path.rmdir()
        return True
    except OSError:
        return False


@dataclass
class Emulation:
    """What an emulation is: its kernels, its per-thread factor, and the rates measured."""

    isa: str  # "avx2" or "native"
    factor: float  # every thread's CPU time is 1/factor of a core
    period_us: int
    cpus: int
    cgroup: str  # "v1" or "v2"
    threads: int  # torch threads of the measurement (the app's training threads)
    target_steps_per_s: float
    measured_steps_per_s: float  # inside the emulation, after calibration
    unthrottled_steps_per_s: float  # with the kernels of `isa`, no quota
    native_steps_per_s: float | None = None  # this machine's own kernels, no quota (when measured)

    def env(self) -> dict[str, str]:
        """Environment of a process inside: the kernels, and this description."""
        return {**(AVX2_ENV if self.isa == "avx2" else {}), DESCRIPTION_ENV: json.dumps(asdict(self))}


class SlowMachine:
    """The running emulation: quotas kept on every thread by a watcher thread of this
    process (which stays outside). Use as a context manager."""

    def __init__(self, cpus: int | None = None) -> None:
        self.quotas = ThreadQuotas(cpus)
        self.emulation: Emulation | None = None
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="slow-machine", daemon=True)
        self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            try:
                self.quotas.rebalance()
            except OSError:
                pass  # a thread that came and went between reads; the next pass sees the truth

    def popen(self, command: list[str], env: dict[str, str], **kwargs: Any) -> subprocess.Popen:
        """Start ``command`` inside the emulation, with ``env`` added to this environment.
        (It is moved in microseconds after the fork; it has not started threads by then.)"""
        proc = subprocess.Popen(command, env={**os.environ, **env}, **kwargs)
        self.quotas.add_process(proc.pid)
        return proc

    def close(self) -> None:
        self._stop.set()
        self._watcher.join()
        self.quotas.close()

    def __enter__(self) -> SlowMachine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def calibrate(
    machine: SlowMachine,
    data: str,
    target: float | None = None,
    slowdown: float | None = None,
    isa: str = "avx2",
    threads: int | None = None,
    tolerance: float = 0.03,
    progress=print,
) -> Emulation:
    """Find the factor at which the network trains at ``target`` steps/s inside the
    emulation (or at this machine's native rate / ``slowdown``), set it, and describe it."""
    if (target is None) == (slowdown is None):
        raise ValueError("give a target rate or a slowdown, not both")
    threads = threads or default_threads()
    env = AVX2_ENV if isa == "avx2" else {}
    native = None
    if slowdown is not None and isa == "avx2":
        with _meter(machine, data, threads, {}) as measure:
            native = measure(1.0)
    with _meter(machine, data, threads, env) as measure:
        free = measure(1.0)
        native = free if isa == "native" else native
        if slowdown is not None:
            assert native is not None
            target = native / slowdown
        assert target is not None
        if free < target:
            progress(f"slow machine: {free:.1f} steps/s unthrottled, below the target {target:.1f}: no quota")
        factor, rate = max(1.0, free / target), free
        too_slow, too_fast = math.inf, 1.0  # factors known to give less / more than the target
        for attempt in range(8):
            rate = measure(factor)
            progress(f"slow machine: factor {factor:.2f} -> {rate:.1f} steps/s (target {target:.1f})")
            if abs(rate / target - 1) <= tolerance or (factor == 1.0 and rate < target) or attempt == 7:
                break  # the quota stays at the factor just measured
            # the rate is not proportional to 1/factor (throttling costs, more at higher
            # factors) and is noisy: scale, but stay inside the bracket found so far
            if rate < target:
                too_slow = min(too_slow, factor)
            else:
                too_fast = max(too_fast, factor)
            factor = max(1.0, factor * rate / target)
            if not too_fast < factor < too_slow:
                factor = math.sqrt(too_fast * too_slow)
    q = machine.quotas
    machine.emulation = Emulation(
        isa,
        round(factor, 3),
        q.period_us,
        q.cpus,
        f"v{q.version}",
        threads,
        round(target, 2),
        round(rate, 2),
        round(free, 2),
        native,
    )
    return machine.emulation


@contextmanager
def _meter(machine: SlowMachine, data: str, threads: int, env: dict[str, str]) -> Iterator[Any]:
    """A measuring process inside the emulation: each call sets the factor and returns
    the median of three measurements of training steps/s."""
    cmd = [sys.executable, "-m", "aeep_core.bench.slow_machine", "--measure", data, "--threads", str(threads)]
    proc = machine.popen(cmd, env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise RuntimeError(f"the measuring process could not load {data}")

    def measure(factor: float) -> float:
        machine.quotas.set_factor(factor)
        time.sleep(0.05)  # the watcher has given each thread its own quota
        proc.stdin.write("go\n")  # type: ignore[union-attr]
        proc.stdin.flush()  # type: ignore[union-attr]
        return float(proc.stdout.readline())  # type: ignore[union-attr]

    try:
        yield measure
    finally:
        proc.stdin.close()
        proc.wait()


def _measure_loop(data: str, threads: int) -> None:
    """The measuring process: load the pool, then one rate per line of input."""
    import numpy as np
    import torch

    from aeep_core.data import load_dataset
    from aeep_core.learning.training import training_steps_per_second

    torch.set_num_threads(threads)
    pool = load_dataset(data).pool
    training_steps_per_second(pool, steps=5)  # warm up: first-call costs are no part of the rate
    print("ready", flush=True)
    for _ in sys.stdin:
        rates = [training_steps_per_second(pool, steps=40) for _ in range(3)]
        print(float(np.median(rates)), flush=True)


def main(argv: list[str] | None = None) -> int:
    """``python -m aeep_core.bench.slow_machine --emulate-steps 24.6 -- CMD ARGS...``"""
    p = argparse.ArgumentParser(prog="python -m aeep_core.bench.slow_machine", description=__doc__.split("\n\n")[0])
    speed = p.add_mutually_exclusive_group()
    speed.add_argument("--emulate-steps", type=float, metavar="R", help="training steps/s of the machine to emulate (e.g. 24.6)")
    speed.add_argument("--slowdown", type=float, metavar="F", help="F times slower than this machine's own steps/s")
    p.add_argument("--isa", choices=["avx2", "native"], default="avx2", help="kernels inside (default avx2: no AVX-512)")
    p.add_argument("--data", default=str(Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"))
    p.add_argument("--threads", type=int, help="torch threads of the measurement (default: the app's training threads)")
    p.add_argument("--measure", metavar="DATA", help=argparse.SUPPRESS)
    p.add_argument("command", nargs=argparse.REMAINDER, help="-- CMD ARGS...: what to run inside")
    args = p.parse_args(argv)
    if args.measure:
        _measure_loop(args.measure, args.threads or default_threads())
        return 0
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command or (args.emulate_steps is None and args.slowdown is None):
        p.error("give --emulate-steps R or --slowdown F, then -- CMD ARGS...")
    if (args.slowdown is not None and args.slowdown < 1) or (args.emulate_steps is not None and args.emulate_steps <= 0):
        p.error("--slowdown is a factor of at least 1; --emulate-steps a positive rate")
    try:
        machine = SlowMachine()
    except NoCgroup as e:
        print(f"slow_machine: error: {e}", file=sys.stderr)
        return 2
    with machine:
        say = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        emulation = calibrate(machine, args.data, args.emulate_steps, args.slowdown, args.isa, args.threads, progress=say)
        say(f"slow machine: {json.dumps(asdict(emulation))}")
        return machine.popen(command, emulation.env()).wait()


if __name__ == "__main__":
    sys.exit(main())
