"""User-defined outcome cohorts: outcome matching, gap, summary, the cohort command on OMOP and Synthea."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("duckdb", reason="OMOP import needs the duckdb package (pip install 'duckdb>=1.1')")

from aeep_core.data import load_dataset  # noqa: E402
from aeep_core.pool import DataError  # noqa: E402
from aeep_core.sequences.cohort import build_cohort  # noqa: E402
from aeep_core.sequences.outcomes import (  # noqa: E402
    HEART_FAILURE,
    CohortSource,
    build_outcome_cohort,
    make_outcome,
    outcome_dataset,
    read_source,
)
from aeep_core.sequences.readers import PatientRecord  # noqa: E402
from aeep_tui.cli import main as cli  # noqa: E402
from tests.omop_fixtures import event_row, person_row, write_omop  # noqa: E402
from tests.sequences_fixtures import patient_events, write_synthea_export  # noqa: E402

OMOP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omop" / "synthea27nj"


def _ev(day: str, code: str, text: str = "", etype: str = "condition") -> dict:
    return {"time": f"{day}T00:00:00", "code": code, "text": text, "type": etype}


def test_outcome_matching_by_code_text_and_type():
    by_code = make_outcome(codes="316139, 319835")
    assert by_code.matches(_ev("2020-01-01", "319835")) and not by_code.matches(_ev("2020-01-01", "1"))
    assert not by_code.matches(_ev("2020-01-01", "316139", etype="measurement"))
    assert make_outcome(codes="316139", types="any").matches(_ev("2020-01-01", "316139", etype="measurement"))
    by_text = make_outcome("Type 2 Diabetes")
    assert by_text.name == "type_2_diabetes" and by_text.matches(_ev("2020-01-01", "x", "Type 2 diabetes mellitus"))
    assert make_outcome() is HEART_FAILURE and HEART_FAILURE.matches(_ev("2020-01-01", "316139"))
    with pytest.raises(DataError, match="control"):
        make_outcome("x", name="control")


def test_gap_ends_histories_before_the_index():
    case = PatientRecord("c", [_ev("2019-01-01", "A"), _ev("2019-12-20", "B"), _ev("2020-01-01", "OUT")], birthdate="1950-01-01")
    control = PatientRecord("k", [_ev(f"{y}-06-01", "X") for y in range(1990, 2024)], birthdate="1950-01-01")
    out = {
        r.id: r
        for r in build_cohort(
            [case, control], 0, is_case=lambda e: e["code"] == "OUT", gap_days=30, class_names=["control", "out"]
        )
    }
    assert [e["code"] for e in out["c"].events] == ["A"] and out["c"].label == "out"
    assert out["c"].extra["index"] == "2020-01-01T00:00:00"
    assert out["k"].events[-1]["time"] < "2019-12-03"  # index at age 70 = 2020-01-01, minus 30 days


def test_no_case_is_a_clear_error(tmp_path):
    source = CohortSource([PatientRecord("a", [_ev("2020-01-01", "1")], birthdate="1990-01-01")], "sequences")
    with pytest.raises(DataError, match="no patient has the outcome .*codes 999"):
        build_outcome_cohort(source, make_outcome(codes="999"))


def _omop_cohort_folder(root: Path, n: int = 12) -> Path:
    """Persons 1..n; every third has heart failure (concept 316139) after a few other events."""
    persons, cond, drugs = [], [], []
    rng = np.random.default_rng(0)
    for p in range(1, n + 1):
        persons.append(person_row(p, f"{1940 + p}-01-01"))
        for j in range(6):
            cond.append(
                event_row(
                    "condition_occurrence",
                    len(cond) + 1,
                    p,
                    f"{2000 + j + int(rng.integers(3))}-0{1 + j % 9}-15",
                    "320128" if p % 3 == 0 else "40481087",
                    "x",
                )
            )
        drugs.append(event_row("drug_exposure", len(drugs) + 1, p, "2001-02-03", "1308216", "y"))
        if p % 3 == 0:
            cond.append(event_row("condition_occurrence", len(cond) + 1, p, "2012-03-04", "316139", "84114007"))
    return write_omop(root, events={"condition_occurrence": cond, "drug_exposure": drugs}, persons=persons, upper=True)


def test_cohort_command_on_omop_writes_labelled_jsonl_and_summary(tmp_path, capsys):
    data = _omop_cohort_folder(tmp_path / "omop")
    assert cli(["cohort", str(data), "--outcome-codes", "316139,319835", "--out", str(tmp_path / "c")]) == 0
    printed = capsys.readouterr().out
    assert "cases 4, controls 8" in printed and "heart_failure" in printed  # named after the concept
    summary = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert summary["cases"] == 4 and summary["outcome"]["codes"] == ["316139", "319835"]
    assert summary["case_histories"]["median_events"] > 0
    ds = load_dataset(tmp_path / "c")
    assert ds.test is not None and ds.pool.class_names == ["control", "heart_failure"]
    for events in ds.pool.meta["events"] + ds.test.meta["events"]:
        assert all(e["code"] != "316139" for e in events)


def test_cohort_command_on_synthea_by_name_with_gap(tmp_path, capsys):
    rng = np.random.default_rng(2)
    pats = {}
    for i in range(12):
        events = patient_events("sick" if i % 3 == 0 else "well", rng, n=8)
        if i % 3 == 0:
            events.append(
                {"time": "2030-01-01", "code": "44054006", "text": "Diabetes mellitus type 2 (disorder)", "type": "condition"}
            )
        pats[f"p{i}"] = {"birth": "1970-01-01", "events": events}
    write_synthea_export(tmp_path / "syn", pats)
    out = tmp_path / "c"
    assert (
        cli(
            [
                "cohort",
                str(tmp_path / "syn"),
                "--outcome",
                "diabetes",
                "--gap-days",
                "365",
                "--out",
                str(out),
                "--test-fraction",
                "0",
            ]
        )
        == 0
    )
    summary = json.loads((out / "cohort.json").read_text())
    assert summary["cases"] == 4 and summary["gap_days"] == 365 and not (out / "test.jsonl").exists()
    recs = [json.loads(line) for line in (out / "patients.jsonl").read_text().splitlines()]
    assert {r["label"] for r in recs} == {"control", "diabetes"}
    assert all(e["time"] < "2029-01-02" for r in recs if r["label"] == "diabetes" for e in r["events"])


def test_cohort_command_bad_input_is_one_line(tmp_path, capsys):
    data = write_omop(tmp_path / "o", events={"condition_occurrence": ["1,1,320128,2010-99-01,,,1,1,x,0"]})
    assert cli(["cohort", str(data), "--outcome-codes", "320128", "--out", str(tmp_path / "c")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("aeep-tui: error: condition_occurrence.csv line 2, column condition_start_date")


def test_outcome_dataset_for_simulate_and_bench(tmp_path):
    ds = outcome_dataset(_omop_cohort_folder(tmp_path / "omop"), make_outcome(codes="316139"), seed=0)
    assert ds.pool.class_names == ["control", "outcome"] and ds.test is not None and ds.test.labels.sum() >= 1


def test_read_source_ignores_old_labels_of_jsonl(tmp_path):
    from tests.sequences_fixtures import write_jsonl_folder

    source = read_source(write_jsonl_folder(tmp_path / "j", per_class=3))
    assert source.kind == "sequences" and all(r.label is None for r in source.records)


@pytest.mark.integration
@pytest.mark.skipif(not (OMOP / "PERSON.csv").is_file(), reason=f"OMOP sample not present at {OMOP} (../shared/data/omop)")
def test_real_omop_sample_cohort(tmp_path, capsys):
    # 320128 Essential hypertension: five of the 28 persons have it.
    assert cli(["cohort", str(OMOP), "--outcome-codes", "320128", "--out", str(tmp_path / "c")]) == 0
    summary = json.loads((tmp_path / "c" / "cohort.json").read_text())
    assert summary["cases"] >= 2 and summary["cases"] + summary["controls"] + summary["dropped_empty_history"] == 28
    assert load_dataset(tmp_path / "c").pool.class_names == ["control", "essential_hypertension"]


def test_bench_outcome_task_runs_any_outcome_of_an_omop_folder(tmp_path, capsys):
    folder = _omop_cohort_folder(tmp_path / "omop", n=30)
    out = tmp_path / "bench.json"
    args = ["bench", "--task", "outcome", "--data", str(folder), "--outcome-codes", "316139", "--strategies", "random,aeep",
            "--budget", "12", "--initial", "6", "--batch-sizes", "6", "--candidates", "50", "--json", str(out)]  # fmt: skip
    assert cli(args) == 0
    report = json.loads(out.read_text())
    assert report["task"] == "outcome" and report["curve"] == "auroc"
    assert set(report["strategies"]) == {"random", "aeep"}
    last = report["strategies"]["aeep"]["runs"][0]["rounds"][-1]
    assert last["labelled"] == 12 and 0.0 <= last["auroc"] <= 1.0  # both classes in the seeded test split
