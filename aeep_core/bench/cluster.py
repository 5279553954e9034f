"""``bench --ray``: every run a Ray task, on a local or an existing Ray cluster.

An executor for :func:`aeep_core.bench.run.run_bench`, beside the serial and the
process-pool ones: the bench loop, the ``.partial`` file and the progress line stay
theirs, this module only decides where a :class:`~aeep_core.bench.run.Job` runs.

- **Data** is loaded once here, in the driver (the machine that runs ``aeep-tui bench``),
  and shipped once per data set through Ray's object store; nodes need no copy of the
  data folder, only aeep-tui and its dependencies installed (the same version, or the
  numbers may differ). A worker process keeps the last data set it fetched, so its later
  runs do not fetch it again.
- **Resources**: each task asks for ``task_cpus`` CPUs and ``task_gpus`` GPUs (fractions
  share a GPU) and sets torch to ``threads`` threads (default: its CPUs), the thread
  setting that ``--jobs`` gives each worker, so a table does not depend on where it ran.
- **Failures**: a task whose worker process or node dies is retried up to
  ``max_retries`` times by Ray; past that the run is reported lost and the others go on
  (:class:`~aeep_core.bench.run.RunsLost` at the end). An exception inside a run is a
  bug, not bad luck: it stops the bench, as with ``--jobs``. When the bench stops
  (Ctrl-C, an error), the tasks still queued or running are cancelled.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import aeep_core
from aeep_core.bench.run import Finished, Job, ProgressLine
from aeep_core.extras import require
from aeep_core.pool import Dataset

_RAY_DATA: dict[str, Dataset] = {}  # per Ray worker process: the data set of its last task


def bench_run(job: Job, data: tuple[Any], threads: int) -> dict[str, Any]:
    """The body of one Ray task (its process is titled ``ray::bench_run <run>`` while it runs).

    ``data`` holds the data set's object reference inside a tuple, so that Ray passes the
    reference rather than the data and a worker fetches each data set only once.
    """
    import ray
    import torch

    torch.set_num_threads(threads)
    (ref,) = data
    if ref.hex() not in _RAY_DATA:
        _RAY_DATA.clear()  # one data set at a time, as the process-pool workers do
        _RAY_DATA[ref.hex()] = ray.get(ref)
    return job.run(data=_RAY_DATA[ref.hex()])


class ClusterUnavailable(RuntimeError):
    """The Ray cluster named by the address could not be joined (the message says why)."""


def local_runtime_env() -> dict[str, Any]:
    """For a cluster on this machine: workers import aeep_core from where this process did,
    not from whatever another checkout or install puts first on their path."""
    here = str(Path(aeep_core.__file__).resolve().parents[1])
    path = os.environ.get("PYTHONPATH")
    return {"env_vars": {"PYTHONPATH": here + (os.pathsep + path if path else "")}}


class RayExecutor:
    """Runs every job as a Ray task on the cluster at ``address`` (``"auto"``: the cluster
    this machine belongs to; ``"ray://head:10001"``: a remote one through Ray Client; None:
    start a local cluster of this machine's cores, shut down afterwards). When Ray is
    already initialised in this process (tests), that cluster is used and left running.
    ``init`` adds keyword arguments to ``ray.init``."""

    def __init__(
        self,
        address: str | None = None,
        task_cpus: float = 1.0,
        task_gpus: float = 0.0,
        threads: int | None = None,
        max_retries: int = 3,
        init: dict[str, Any] | None = None,
    ):
        if task_cpus < 0 or task_gpus < 0 or (task_cpus == 0 and task_gpus == 0):
            raise ValueError("--task-cpus and --task-gpus must not be negative, and a run needs some of either")
        if max_retries < 0:
            raise ValueError("--retries must be 0 or more")
        self.ray = require("ray", "cluster", "bench --ray")
        self.address, self.task_cpus, self.task_gpus = address, task_cpus, task_gpus
        self.threads = threads if threads else max(1, int(task_cpus))
        self.max_retries, self.init = max_retries, dict(init or {})
        self.cluster: dict[str, Any] = {}

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "ray",
            "address": self.address,
            "task_cpus": self.task_cpus,
            "task_gpus": self.task_gpus,
            "threads_per_run": self.threads,
            **self.cluster,
        }

    def _start(self) -> bool:
        """Connect (or start a local cluster); True when this executor must shut it down."""
        ray = self.ray
        if ray.is_initialized():
            return False
        init = dict(self.init)
        if not self.address:
            init.setdefault("runtime_env", local_runtime_env())
        try:
            # "local": a new cluster on this machine, even when RAY_ADDRESS or `ray start`
            # name another one (that is what "auto" is for)
            ray.init(address=self.address or "local", **init)
        except (ConnectionError, ValueError) as exc:  # no cluster there; ray:// without ray[client]
            raise ClusterUnavailable(
                f"--ray {self.address}: {str(exc).splitlines()[0]} (start one with Ray's own `ray start` command, "
                "or give --ray alone for a local cluster)"
            ) from exc
        return True

    def _check(self, progress: ProgressLine | None) -> None:
        """Record the cluster's size, and warn when no node can hold one task: Ray would
        leave such tasks waiting for a node that may never join."""
        nodes = [n for n in self.ray.nodes() if n.get("Alive")]
        self.cluster = {
            "nodes": len(nodes),
            **{k.lower() + "s": v for k, v in self.ray.cluster_resources().items() if k in ("CPU", "GPU")},
        }
        need = {"CPU": self.task_cpus, "GPU": self.task_gpus}
        if not any(all(n.get("Resources", {}).get(r, 0) >= v for r, v in need.items() if v) for n in nodes):
            text = (
                f"warning: no node of this Ray cluster has {self.task_cpus:g} CPU and {self.task_gpus:g} GPU for one run "
                f"(cluster: {self.cluster}); the runs wait until such a node joins"
            )
            if progress is not None:
                progress.note(text)

    def _remote_job(self, job: Job) -> Job:
        """The job as a task gets it: without its loader (it ran here already, and may not
        pickle: a test's lambda), and on the CPU when the task holds no GPU, so that a
        CPU run on a GPU node does not take a GPU that Ray gave to another task."""
        settings = job.settings
        if not self.task_gpus and settings.device == "auto":
            settings = dataclasses.replace(settings, device="cpu")
        return dataclasses.replace(job, loader=None, settings=settings)

    def results(self, jobs: list[Job], progress: ProgressLine | None) -> Generator[Finished, None, None]:
        ray = self.ray
        shut_down = self._start()
        pending: dict[Any, Job] = {}
        try:
            self._check(progress)
            task = ray.remote(bench_run)
            resources = dict(
                num_cpus=self.task_cpus, num_gpus=self.task_gpus, max_retries=self.max_retries, retry_exceptions=False
            )
            shipped: dict[Any, Any] = {}  # data key -> object reference: each data set goes out once
            for job in jobs:
                key = job.data_key()
                if key not in shipped:
                    shipped[key] = ray.put(job.load())
                # named for the dashboard and `ray list tasks`; the worker's process title
                # while it runs is then "ray::bench_run aeep seed 0 k=20"
                named = task.options(name=f"bench_run {job.what}", **resources)
                pending[named.remote(self._remote_job(job), (shipped[key],), self.threads)] = job
            del shipped  # the tasks hold the references now: a data set is freed after its last run
            while pending:
                ready, _ = ray.wait(list(pending), num_returns=1)
                for ref in ready:
                    job = pending.pop(ref)
                    try:
                        result = ray.get(ref)
                    except ray.exceptions.RayTaskError:
                        raise  # the run itself failed: a bug, stop as --jobs does
                    except ray.exceptions.RayError as exc:  # its worker or node died past the retries
                        yield Finished(job, None, why=f"{type(exc).__name__}: {str(exc).splitlines()[0]}")
                    else:
                        yield Finished(job, result)
        finally:
            for ref in pending:
                ray.cancel(ref, force=True)  # Ctrl-C or an error: stop the runs in flight
            if shut_down:
                ray.shutdown()
