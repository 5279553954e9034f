"""The case-control cut (heart failure as the outcome): labels, index-date cuts, merging
exports; the real Synthea data when present."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from aeep_core.sequences import cohort
from aeep_core.sequences.cohort import read_exports
from aeep_core.sequences.outcomes import HEART_FAILURE, outcome_dataset
from aeep_core.sequences.readers import PatientRecord
from tests.sequences_fixtures import patient_events, write_synthea_export

EHR = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "ehr"


CLASS_NAMES = HEART_FAILURE.class_names
is_heart_failure = HEART_FAILURE.matches


def build_cohort(records: list[PatientRecord], seed: int) -> list[PatientRecord]:
    return cohort.build_cohort(records, seed, is_case=is_heart_failure, class_names=CLASS_NAMES)


def _ev(day: str, code: str, text: str = "", etype: str = "condition") -> dict:
    return {"time": f"{day}T00:00:00", "code": code, "text": text, "type": etype}


def test_heart_failure_definition():
    assert is_heart_failure(_ev("2020-01-01", "88805009"))
    assert is_heart_failure(_ev("2020-01-01", "84114007"))
    assert is_heart_failure(_ev("2020-01-01", "316139"))  # the OMOP concept
    assert is_heart_failure(_ev("2020-01-01", "999", "Acute Heart Failure due to X"))
    assert not is_heart_failure(_ev("2020-01-01", "88805009", etype="medication"))
    assert not is_heart_failure(_ev("2020-01-01", "38341003", "Hypertension"))


def test_case_keeps_only_events_strictly_before_the_first_diagnosis_day():
    events = [
        _ev("2010-01-01", "A"),
        _ev("2015-03-02", "B"),
        {"time": "2015-03-03T08:00:00", "code": "E", "text": "", "type": "encounter"},  # same day: cut
        _ev("2015-03-03", "88805009", "Chronic congestive heart failure"),
        _ev("2016-01-01", "84114007"),
    ]
    (case,) = build_cohort([PatientRecord("c", events, birthdate="1950-01-01")], seed=0)
    assert case.label == CLASS_NAMES[1] and [e["code"] for e in case.events] == ["A", "B"]
    assert not any(is_heart_failure(e) for e in case.events)


def test_controls_are_cut_at_a_case_age_their_record_covers():
    case = PatientRecord("c", [_ev("1990-01-01", "A"), _ev("2020-01-01", "88805009")], birthdate="1950-01-01")  # age 70
    old = PatientRecord("o", [_ev(f"{y}-06-01", "X") for y in range(1980, 2024)], birthdate="1940-01-01")
    young = PatientRecord("y", [_ev("2010-01-01", "Y"), _ev("2020-01-01", "Z")], birthdate="2005-01-01")
    out = {r.id: r for r in build_cohort([case, old, young], seed=0)}
    assert out["o"].label == CLASS_NAMES[0] and out["o"].events[-1]["time"] < "2010-01-02"  # cut near age 70
    assert len(out["o"].events) < len(old.events)
    assert len(out["y"].events) == 2  # never reaches a case's age: whole history


def test_empty_history_before_index_is_dropped():
    rec = PatientRecord("c", [_ev("2020-01-01", "88805009")], birthdate="1950-01-01")
    assert build_cohort([rec], seed=0) == []


def _hf_patients(rng, n, start, hf_every=3):
    pats = {}
    for i in range(start, start + n):
        events = patient_events("sick" if i % hf_every == 0 else "well", rng, n=10)
        if i % hf_every == 0:
            events.append(
                {
                    "time": "2030-01-01",
                    "code": "88805009",
                    "text": "Chronic congestive heart failure (disorder)",
                    "type": "condition",
                }
            )
        pats[f"p{i}"] = {"birth": "1960-01-01", "events": events}
    return pats


def test_dataset_from_several_exports_with_a_duplicate(tmp_path):
    rng = np.random.default_rng(0)
    write_synthea_export(tmp_path / "a", _hf_patients(rng, 12, 0))
    write_synthea_export(tmp_path / "b", _hf_patients(rng, 12, 10), old_layout=True)  # p10, p11 in both
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "patients.csv").write_text("nothing useful\n")
    (tmp_path / "broken" / "conditions.csv").write_text("START\n")
    records, stats = read_exports(tmp_path)
    assert stats.patients == 22 and stats.duplicates_merged == 2 and stats.exports == 3
    assert any("broken" in s for s in stats.skipped)
    ds = outcome_dataset(tmp_path, HEART_FAILURE, seed=0, test_fraction=0.3)
    assert ds.pool.class_names == CLASS_NAMES and ds.pool.modality == "sequence"
    assert set(ds.pool.names).isdisjoint(ds.test.names) and len(ds.pool) + len(ds.test) == 22
    assert ds.test.labels.sum() >= 1 and ds.pool.labels.sum() >= 1
    assert ds.pool.meta["cohort"]["cases"] == 8
    for events in ds.pool.meta["events"] + ds.test.meta["events"]:
        assert not any(is_heart_failure(e) for e in events)


@pytest.mark.integration
@pytest.mark.skipif(not EHR.is_dir(), reason=f"real Synthea exports not present at {EHR} (../shared/data/ehr)")
def test_real_synthea_heart_failure_cohort():
    ds = outcome_dataset(EHR, HEART_FAILURE, seed=0)
    stats = ds.pool.meta["cohort"]
    # README: 190 patients with heart failure; one has it at their first recorded event.
    assert 185 <= stats["cases"] <= 190 and stats["patients_read"] >= 5600
    assert int(ds.pool.labels.sum() + ds.test.labels.sum()) == stats["cases"]
    assert ds.pool.inputs.shape[1] == ds.pool.meta["length"] and ds.pool.inputs.shape[2] == 34
