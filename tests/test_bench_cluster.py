"""``bench --ray`` on a real local Ray cluster (2 CPUs): the same JSON as ``--jobs 2``,
a worker killed mid-run is retried (or reported, past its retries) and the ``.partial``
keeps every finished run. Skipped where ray is not installed (the ``cluster`` extra)."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from aeep_core.bench import settings as bench
from aeep_core.bench.run import ProgressLine, RunsLost, run_bench
from aeep_core.bench.settings import BenchSettings
from aeep_core.learning.training import TrainConfig
from aeep_tui.cli import main
from tests.conftest import make_idx_folder

TRAIN = TrainConfig(min_steps=20, max_steps=20)
#: a tiny bench: 2 strategies, 1 seed, k=10, 10 -> 40 labels (4 rounds a run)
ARGV = [
    "--strategies",
    "aeep,random",
    "--seeds",
    "1",
    "--batch-sizes",
    "10",
    "--budget",
    "40",
    "--initial",
    "10",
    "--candidates",
    "100",
    "--test-subset",
    "50",
    "--device",
    "cpu",
]
TIMINGS = {"wall_s", "cpu_s", "s_per_round", "cpu_s_per_round", "train_s", "select_s"}


def _numbers(report: dict) -> dict:
    """The report without what depends on where and when it ran (timings, environment)."""

    def strip(x):
        if isinstance(x, dict):
            return {k: strip(v) for k, v in x.items() if k not in TIMINGS}
        return [strip(v) for v in x] if isinstance(x, list) else x

    return strip({k: v for k, v in report.items() if k not in ("started", "environment")})


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    ray = pytest.importorskip("ray", reason="ray is not installed: pip install 'aeep-tui[cluster]'")
    from aeep_core.bench.cluster import local_runtime_env

    env = local_runtime_env()
    home = str(tmp_path_factory.mktemp("ray-home"))
    env["env_vars"]["AEEP_TUI_HOME"] = home  # workers' caches stay in the test; marks this cluster's workers
    # small and quiet: 2 CPUs, no dashboard, a 150 MB object store (the data is a few kB)
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=150 * 2**20,
        log_to_driver=False,
        runtime_env=env,
    )
    yield SimpleNamespace(ray=ray, home=home)
    ray.shutdown()


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return make_idx_folder(tmp_path_factory.mktemp("bench") / "idx", n_train=200, n_test=60)


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """The tiny bench with ``--jobs 2`` (local worker processes), through the CLI."""
    out = tmp_path_factory.mktemp("jobs") / "b.json"
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(bench.PRESETS, "quick", {**bench.PRESETS["quick"], "train": TRAIN})
        assert main(["bench", "--data", str(data), *ARGV, "--json", str(out), "--jobs", "2"]) == 0
    return json.loads(out.read_text())


def _settings(data: Path) -> BenchSettings:
    """The settings ARGV gives the CLI."""
    return BenchSettings(
        data=data,
        strategies=["aeep", "random"],
        seeds=[0],
        batch_sizes=[10],
        budget=40,
        initial=10,
        candidates=100,
        test_subset=50,
        device="cpu",
        train=TRAIN,
    )


def test_ray_bench_gives_the_json_of_jobs_2(ray_cluster, data, reference, tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench.PRESETS, "quick", {**bench.PRESETS["quick"], "train": TRAIN})
    out = tmp_path / "ray.json"
    assert main(["bench", "--data", str(data), *ARGV, "--json", str(out), "--ray"]) == 0
    printed = capsys.readouterr()
    assert "Ray local cluster; a run: 1 CPU, 0 GPU, 1 thread" in printed.err
    assert "aeep seed 0 k=10: accuracy" in printed.err  # the same progress notes
    assert "aeep" in printed.out and "AULC" in printed.out  # the same table
    report = json.loads(out.read_text())
    assert _numbers(report) == _numbers(reference)
    assert report["strategies"]["aeep"]["runs"][0]["rounds"][1]["m"] is not None  # real runs, not empty ones
    runner = report["environment"]["runner"]
    assert runner["kind"] == "ray" and runner["cpus"] == 2 and runner["threads_per_run"] == 1
    assert reference["environment"]["runner"] == {"kind": "processes", "jobs": 2, "threads_per_run": 1}
    # streamed into the same resumable .partial: a second start computes nothing
    assert len((tmp_path / "ray.json.partial").read_text().splitlines()) == 2
    assert main(["bench", "--data", str(data), *ARGV, "--json", str(out), "--ray"]) == 0
    assert "accuracy" not in capsys.readouterr().err  # no run was computed again


def _pid_running(what: str, home: str) -> int | None:
    """The worker process running the run ``what`` on this test's cluster: Ray titles it
    ``ray::bench_run <run>`` while it runs, and only this cluster's workers have ``home``
    in their environment (the machine may run other Ray clusters: leave them alone)."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                title = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")[0].decode()
                if (
                    title == f"ray::bench_run {what}"
                    and f"AEEP_TUI_HOME={home}".encode() in Path(f"/proc/{entry}/environ").read_bytes()
                ):
                    return int(entry)
            except OSError:
                continue
    return None


def _kill_the_second_run(partial: Path, home: str, killed: list[int]) -> None:
    """Once the first run is in the .partial, end the worker process running the other."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if partial.exists() and partial.read_text().count("\n") >= 1:
            first = json.loads(partial.read_text().splitlines()[0])["run"]["variant"]
            pid = _pid_running(f"{'random' if first == 'aeep' else 'aeep'} seed 0 k=10", home)
            if pid is not None:
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
                return
        time.sleep(0.01)


def _bench_with_a_kill(data: Path, partial: Path, home: str, retries: int) -> tuple[list[int], dict | Exception]:
    """The tiny bench, one run at a time (a run holds both CPUs, one torch thread as with
    --jobs 2), its second run's worker killed from here."""
    from aeep_core.bench.cluster import RayExecutor

    killed: list[int] = []
    killer = threading.Thread(target=_kill_the_second_run, args=(partial, home, killed))
    killer.start()
    try:
        outcome: dict | Exception = run_bench(
            _settings(data),
            partial=partial,
            progress=ProgressLine(0),
            executor=RayExecutor(task_cpus=2, threads=1, max_retries=retries),
        )
    except RunsLost as exc:
        outcome = exc
    killer.join()
    return killed, outcome


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc (Linux)")
def test_a_killed_worker_is_retried_and_finished_runs_stay(ray_cluster, data, reference, tmp_path):
    partial = tmp_path / "b.json.partial"
    killed, report = _bench_with_a_kill(data, partial, ray_cluster.home, retries=1)
    assert len(killed) == 1, "the second run was not found running after the first finished"
    assert isinstance(report, dict), report
    assert _numbers(report)["strategies"] == _numbers(reference)["strategies"]  # the retried run is the same run
    lines = partial.read_text().splitlines()
    assert len(lines) == 2 and len({json.loads(line)["key"] for line in lines}) == 2


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="finds Ray's worker processes through /proc (Linux)")
def test_a_run_lost_past_its_retries_is_reported_and_the_rest_kept(ray_cluster, data, reference, tmp_path):
    partial = tmp_path / "b.json.partial"
    killed, outcome = _bench_with_a_kill(data, partial, ray_cluster.home, retries=0)
    assert len(killed) == 1
    assert isinstance(outcome, RunsLost)
    message = str(outcome)
    assert message.startswith("1 of 2 runs were lost (") and "WorkerCrashedError" in message
    assert f"the finished runs (1) are kept in {partial}" in message and "run the same command again" in message
    (first,) = partial.read_text().splitlines()  # the finished run, and only it
    lost = "random" if json.loads(first)["run"]["variant"] == "aeep" else "aeep"
    assert f"{lost} seed 0 k=10: WorkerCrashedError" in message

    # the same command again computes only the lost run
    from aeep_core.bench.cluster import RayExecutor

    report = run_bench(_settings(data), partial=partial, executor=RayExecutor())
    lines = partial.read_text().splitlines()
    assert len(lines) == 2 and lines[0] == first and json.loads(lines[1])["run"]["variant"] == lost
    assert _numbers(report)["strategies"] == _numbers(reference)["strategies"]


def test_without_ray_the_flag_says_how_to_install_it(data, monkeypatch, capsys):
    monkeypatch.setitem(__import__("sys").modules, "ray", None)  # importing ray now fails, as when absent
    assert main(["bench", "--data", str(data), *ARGV, "--ray"]) == 2
    err = capsys.readouterr().err.strip()
    assert (
        err == "aeep-tui: error: bench --ray needs ray, which is not installed; install it with: pip install 'aeep-tui[cluster]'"
    )


def test_cluster_flags_are_checked_before_anything_runs(data, capsys):
    assert main(["bench", "--data", str(data), *ARGV, "--task-gpus", "0.25"]) == 2
    assert "--task-cpus and --task-gpus go with --ray" in capsys.readouterr().err
    assert main(["bench", "--data", str(data), *ARGV, "--ray", "--jobs", "2"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["bench", "--task", "latency", "--ray"]) == 2
    assert "--task latency" in capsys.readouterr().err


def test_a_run_no_node_can_hold_is_warned_about(ray_cluster):
    """Ray would leave such tasks waiting for a node that may never join: say so at once."""
    import io

    from aeep_core.bench.cluster import RayExecutor

    out = io.StringIO()
    assert list(RayExecutor(task_gpus=0.25).results([], ProgressLine(0, stream=out))) == []
    assert "warning: no node of this Ray cluster has 1 CPU and 0.25 GPU for one run" in out.getvalue()
    fits, out = RayExecutor(), io.StringIO()
    assert list(fits.results([], ProgressLine(0, stream=out))) == [] and out.getvalue() == ""
    assert fits.describe()["cpus"] == 2 and fits.describe()["nodes"] == 1
