"""The latency benchmark: its figures, and one tiny replay through the real app."""

from dataclasses import replace

import pytest

from aeep_core.bench.latency import LatencySettings, accuracy_at, format_table, summarise
from aeep_tui.latency_replay import run, run_one
from tests.conftest import make_idx_folder


def test_accuracy_at_takes_the_last_model_within_tolerance():
    acc = [[20, 0.5], [40, 0.6], [58, 0.7], [78, 0.8]]
    assert accuracy_at(acc, 60, 20) == 0.7
    assert accuracy_at(acc, 100, 20) is None  # the run never got close to 100 labels
    assert accuracy_at(acc, 10, 20) is None


def test_summary_pools_seeds_and_reports_percentiles():
    runs = [
        {"wait_s": [0.1, 0.2, 5.0], "keystroke_ms": [10.0] * 99 + [90.0], "acc_at": [[100, 0.8]], "rss_mib": 500.0},
        {"wait_s": [0.3], "keystroke_ms": [12.0], "acc_at": [[100, 0.9]], "rss_mib": 700.0},
    ]
    s = summarise(runs)
    assert s["wait_s"]["median"] == pytest.approx(0.25) and s["wait_s"]["n"] == 4
    assert 10.0 < s["keystroke_ms"]["p99"] <= 90.0
    assert s["rss_mib"] == 700.0
    assert s["acc_at"]["100"]["mean"] == pytest.approx(0.85)
    table = format_table({"modes": {"plain": s}})
    assert "plain" in table and "85.0%" in table


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["plain", "pipelined"])
def test_replay_through_the_app_measures_every_batch(tmp_path, mode):
    data = make_idx_folder(tmp_path / "idx")  # with a test set, so every new model is scored
    settings = LatencySettings(
        str(data),
        seconds_per_label=0.01,
        batch_size=4,
        budget=12,
        candidates=50,
        device="cpu",
        lookahead=1,
        steps_per_label=2,
        train={"min_steps": 10, "max_steps": 10},
    )
    result = run_one(settings, mode, seed=0)
    assert len(result["wait_s"]) == 3  # two waits for new batches, one for the final screen
    assert all(w >= 0 for w in result["wait_s"])
    assert result["labelled"] == 12  # every label reached the store through the keys
    assert result["rss_mib"] > 50
    # accuracy is filed under the labels its model was trained on: after each batch in
    # plain; in pipelined up to k - 1 answers short (the lookahead follows the pace: here
    # choosing is slow against 0.01 s a label); none trained on the last batch
    counts = [n for n, _ in result["acc_at"]]
    if mode == "plain":
        assert counts == [4, 8]
    else:
        assert len(counts) == 2 and all(b - 3 <= n <= b for n, b in zip(counts, (4, 8), strict=True)), counts
    assert all(0 <= a <= 1 for _, a in result["acc_at"])
    if mode == "pipelined":
        assert len(result["keystroke_ms"]) == 12


@pytest.mark.slow
def test_a_finished_replay_is_reused_by_a_later_run(image_folder, tmp_path):
    settings = LatencySettings(
        str(image_folder),
        seconds_per_label=0.01,
        batch_size=4,
        budget=8,
        candidates=50,
        device="cpu",
        lookahead=1,
        steps_per_label=2,
        modes=("pipelined",),
        train={"min_steps": 10, "max_steps": 10},
    )
    partial = tmp_path / "latency.json.partial"
    lines: list[str] = []
    first = run(settings, progress=lines.append, partial=partial)
    assert lines == ["latency: pipelined, seed 0 …"] and partial.exists()
    again = run(settings, progress=lines.append, partial=partial)
    assert lines[-1] == "latency: pipelined, seed 0: done before, reused"
    assert again["runs"] == first["runs"]
    machine = first["machine"]  # where it ran and how fast that machine trains the app's network
    assert machine["model"] and machine["training_threads"] >= 1 and machine["training_steps_per_s"] > 0
    lines.clear()
    run(replace(settings, seconds_per_label=0.02), progress=lines.append, partial=partial)  # other settings: run again
    assert lines == ["latency: pipelined, seed 0 …"]


def test_accuracy_of_a_model_that_chose_ahead_is_filed_under_the_batch_it_chose():
    """With the lookahead following the pace, a pipelined batch may be chosen up to k - 1
    answers early: acc@300 is the model that chose the batch after 300 labels, whatever it
    was trained on, and the summary says on how many."""
    run = {"wait_s": [1.0], "keystroke_ms": [10.0], "acc_at": [[271, 0.97], [291, 0.975], [311, 0.98]], "rss_mib": 1.0}
    s = summarise([run], tolerance=19)
    assert s["acc_at"]["300"] == {"mean": 0.975, "std": 0.0, "n": 1, "labels": [291]}
    assert "300" not in summarise([run], tolerance=3)["acc_at"]  # the old tolerance lost it
