"""The benchmark end to end on tiny generated data: runs, resumes, reports, plots."""

import gc
import json

import numpy as np
import pytest

from aeep_core.bench import settings as bench
from aeep_core.bench.plots import plot_report
from aeep_core.bench.report import format_markdown, format_table
from aeep_core.bench.run import ProgressLine, run_bench
from aeep_core.bench.settings import BenchSettings, parse_variant, preset, split_list
from aeep_core.data import load_dataset
from aeep_core.learning.training import TrainConfig
from aeep_tui.cli import main
from tests.conftest import make_idx_folder, make_image_folder

FAST = TrainConfig(min_steps=10, max_steps=10)


def _settings(**kw) -> BenchSettings:
    base = dict(
        strategies=["aeep", "random"],
        seeds=[0, 1],
        batch_sizes=[5],
        budget=10,
        initial=5,
        candidates=60,
        device="cpu",
        train=FAST,
    )
    return BenchSettings(**{**base, **kw})


@pytest.fixture
def loader(image_folder):
    calls = []

    def load(path, seed):
        calls.append(seed)
        return load_dataset(image_folder, test_split=0.3, seed=0)

    load.calls = calls
    return load


def test_variants_and_lists_parse():
    assert split_list("aeep,ee[m_fraction=0.25,beta=2],random") == ["aeep", "ee[m_fraction=0.25,beta=2]", "random"]
    v = parse_variant("aeep-nopair")
    assert (v.strategy, v.train) == ("aeep", {"pair_weight": 0.0})
    v = parse_variant("aeep[beta=0.5,rate=0.3,warm_start=true]")
    assert v.options == {"beta": 0.5, "rate": 0.3} and v.train == {"warm_start": True}
    assert parse_variant("aeep-pixels").options == {"space": "pixels"}
    v = parse_variant("aeep[late=3,rate=0.2]")
    assert (v.late, v.options) == (3, {"rate": 0.2})
    for bad in ("nope", "aeep[beta]", "aeep[beta=1", "aeep[late=-1]", "aeep[late=x]"):
        with pytest.raises(ValueError):
            parse_variant(bad)


def test_presets_meet_the_protocol():
    quick, paper = preset("quick"), preset("paper")
    assert set(bench.BASELINES) <= set(quick.strategies)
    # issue 12's paper preset: every strategy (aeep-paper too), seeds 0-2, k 10/20/50, to 500
    # labels, at quick's candidate and test settings
    assert paper.seeds == [0, 1, 2] and paper.batch_sizes == [10, 20, 50] and paper.budget == 500
    assert set(bench.BASELINES) <= set(paper.strategies) and "aeep-paper" in paper.strategies
    assert (paper.candidates, paper.test_subset) == (quick.candidates, quick.test_subset)
    assert preset("quick", budget=100, seeds=None).budget == 100
    assert quick.rounds_per_run(20) == 15  # 20, 40, ..., 300


def test_bench_runs_reports_and_resumes(tmp_path, loader, capsys):
    partial = tmp_path / "b.json.partial"
    settings = _settings()
    report = run_bench(settings, partial=partial, progress=ProgressLine(0), loader=loader)
    assert loader.calls == [0]  # MNIST-like data is loaded once, not per run
    assert list(report["strategies"]) == ["aeep", "random"]
    aeep = report["strategies"]["aeep"]
    assert len(aeep["runs"]) == 2
    rounds = aeep["runs"][0]["rounds"]
    assert [r["labelled"] for r in rounds] == [5, 10]
    assert {"accuracy", "m", "mp", "train_s", "select_s", "auroc"} <= set(rounds[0])
    # the same initial labelled set per seed for every strategy: the first model is the same
    for seed in (0, 1):
        firsts = {e["runs"][seed]["rounds"][0]["accuracy"] for e in report["strategies"].values()}
        assert len(firsts) == 1
    summary = aeep["summary"]["5"]
    assert summary["aulc"]["n"] == 2 and 0 <= summary["aulc"]["mean"] <= 1
    assert set(summary["labels_to"]) == {"0.9", "0.95", "0.97", "0.98"}
    assert set(summary["acc_at"]) == set()  # 100.. labels are beyond this budget
    assert "auroc_at" not in summary  # three classes: AUROC does not apply
    assert len(partial.read_text().splitlines()) == 4

    # a restart with the same settings recomputes nothing; a torn last line is ignored
    with partial.open("a") as fh:
        fh.write('{"key": "half a li')

    def no_data(path, seed):
        raise AssertionError("a finished run was recomputed")

    again = run_bench(settings, partial=partial, loader=no_data)
    assert again["strategies"]["aeep"]["runs"] == aeep["runs"]

    # changed settings do not reuse old runs
    more = run_bench(_settings(strategies=["random"], seeds=[0], budget=8, batch_sizes=[3]), partial=partial, loader=loader)
    assert [r["labelled"] for r in more["strategies"]["random"]["runs"][0]["rounds"]] == [5, 8]

    table = format_table(report)
    assert "random" in table and "L→95%" in table and "AULC" in table and ">10" in table
    assert "| strategy |" in format_markdown(report)
    png = plot_report(report, tmp_path / "curves.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    json.dumps(report)  # the whole report is plain JSON


def test_binary_task_reports_auroc(tmp_path):
    folder = make_image_folder(tmp_path / "two", per_class=20, n_classes=2)
    report = run_bench(
        _settings(strategies=["random"], seeds=[0], budget=8, batch_sizes=[3]),
        loader=lambda p, s: load_dataset(folder, test_split=0.3, seed=0),
    )
    run = report["strategies"]["random"]["runs"][0]
    assert all(0 <= r["auroc"] <= 1 for r in run["rounds"])
    assert "auroc_at" in report["strategies"]["random"]["summary"]["3"]


def test_cli_bench_writes_json_png_and_table(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(bench.PRESETS, "quick", {**bench.PRESETS["quick"], "train": FAST})
    data = make_idx_folder(tmp_path / "idx")
    out = tmp_path / "out" / "b.json"
    argv = [
        "bench",
        "--data",
        str(data),
        "--strategies",
        "aeep-pixels,kff",
        "--batch-sizes",
        "4",
        "--budget",
        "10",
        "--initial",
        "6",
        "--candidates",
        "40",
        "--test-subset",
        "30",
        "--device",
        "cpu",
        "--json",
        str(out),
        "--jobs",
        "2",
    ]
    assert main(argv) == 0
    printed = capsys.readouterr()
    assert "k=4, 1 seed" in printed.out and "kff" in printed.out
    report = json.loads(out.read_text())
    assert report["settings"]["test_subset"] == 30
    assert out.with_suffix(".png").exists() and (tmp_path / "out" / "b.json.partial").exists()
    assert main([*argv, "--strategies", "nope"]) == 2


def test_heart_failure_task_reports_auroc(tmp_path):
    """The heart-failure task is wired to the cohort builder and reports AUROC (tiny Synthea-like export)."""
    pytest.importorskip("aeep_core.sequences.cohort", reason="the sequence modality is not installed")
    from tests.sequences_fixtures import patient_events, write_synthea_export

    rng = np.random.default_rng(0)
    patients = {}
    for i in range(30):
        sick = i % 3 == 0
        events = patient_events("sick" if sick else "well", rng, n=10)
        if sick:
            events.append(
                {
                    "time": "2030-01-01",
                    "code": "88805009",
                    "text": "Chronic congestive heart failure (disorder)",
                    "type": "condition",
                }
            )
        patients[f"p{i}"] = {"birth": "1960-01-01", "events": events}
    write_synthea_export(tmp_path / "ehr" / "a", patients)
    report = run_bench(
        _settings(
            task="heart-failure", data=tmp_path / "ehr", strategies=["random"], seeds=[0], budget=12, initial=6, batch_sizes=[6]
        )
    )
    assert report["curve"] == "auroc"
    summary = report["strategies"]["random"]["summary"]["6"]
    assert set(summary["labels_to"]) == {"0.7", "0.75", "0.8", "0.85"}
    run = report["strategies"]["random"]["runs"][0]
    assert all(r["auroc"] is not None for r in run["rounds"])
    assert "auroc@" in format_table(report) or not summary.get("auroc_at")
    # how many cases the labelled set holds, per round and in the table
    assert [sum(r["per_class"]) for r in run["rounds"]] == [r["labelled"] for r in run["rounds"]]
    assert all(r["per_class"][1] <= 10 for r in run["rounds"])  # the pool holds at most 10 cases
    assert "class 1@12" in format_table(report)


def test_progress_line_in_a_log_file():
    import io

    out = io.StringIO()
    bar = ProgressLine(4, stream=out, every=0.0)
    bar.advance(1, "aeep seed 0 k=20: 40 labels")
    bar.advance(2, computed=False)  # resumed runs move the bar without printing
    bar.note("aeep seed 0 k=20: accuracy 95.0% at 300 labels, 10 s")
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("[######") and "1/4 rounds" in lines[0] and "40 labels" in lines[0]
    assert lines[1].startswith("aeep seed 0") and len(lines) == 2


@pytest.mark.integration
@pytest.mark.slow
def test_bench_on_real_mnist(shared_mnist, tmp_path):
    """Two rounds of two strategies on the real files (skipped without ../shared/data/mnist);
    50 steps a round: this checks the plumbing, the accuracy bar is only "well above chance"."""
    settings = BenchSettings(
        data=shared_mnist,
        strategies=["aeep", "random"],
        budget=40,
        candidates=500,
        test_subset=1000,
        device="cpu",
        train=TrainConfig(min_steps=50, max_steps=50),
    )
    report = run_bench(settings, partial=tmp_path / "r.partial")
    for entry in report["strategies"].values():
        (run,) = entry["runs"]
        assert [r["labelled"] for r in run["rounds"]] == [20, 40]
        assert run["rounds"][-1]["accuracy"] > 0.25 and run["rounds"][0]["auroc"] is None


def test_each_loader_gets_its_own_data(tmp_path):
    """The per-process data cache must never hand one loader's data to another, even
    when the first loader is gone and a new one is allocated where it lived."""
    three = make_image_folder(tmp_path / "three", per_class=10, n_classes=3)
    two = make_image_folder(tmp_path / "two", per_class=10, n_classes=2)
    fast = _settings(strategies=["random"], seeds=[0], budget=6, batch_sizes=[3], initial=3)
    for folder, n_classes in [(three, 3), (two, 2)] * 4:
        # a fresh function each time, collected once the run ends: CPython then tends to
        # build the next one at the same address, so an id()-keyed cache would mix them
        report = run_bench(fast, loader=lambda p, s, folder=folder: load_dataset(folder, test_split=0.3, seed=0))
        assert len(report["strategies"]["random"]["runs"][0]["rounds"][0]["per_class"]) == n_classes
        gc.collect()
