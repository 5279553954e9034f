"""Readers of patient event files: JSONL, long CSV and Synthea exports, good and malformed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from aeep_core.data import DataError, load_dataset
from aeep_core.sequences import looks_like_sequences
from aeep_core.sequences.readers import (
    merge_records,
    parse_time,
    read_jsonl,
    read_long_csv,
    read_synthea_export,
    write_jsonl,
)
from tests.sequences_fixtures import patient_events, write_jsonl_folder, write_synthea_export


def _jsonl(path: Path, *objs) -> Path:
    path.write_text("".join((o if isinstance(o, str) else json.dumps(o)) + "\n" for o in objs))
    return path


def test_parse_time_normalises_dates_and_utc():
    assert parse_time("2019-03-01") == "2019-03-01T00:00:00"
    assert parse_time("2019-03-01T14:05:00Z") == "2019-03-01T14:05:00"
    assert parse_time("2019-03-01T16:05:00+02:00") == "2019-03-01T14:05:00"
    with pytest.raises(ValueError):
        parse_time("01/03/2019")


def test_jsonl_good_file_sorted_with_labels(tmp_path):
    f = _jsonl(
        tmp_path / "p.jsonl",
        {
            "id": "a",
            "label": "hf",
            "events": [{"time": "2020-05-01", "code": "X"}, {"time": "2019-01-01", "code": "Y", "text": "y", "type": "Drug"}],
        },
        {"id": 7, "events": [{"time": "2020-01-01T10:00:00Z", "code": 123}]},
    )
    recs, skipped = read_jsonl(f)
    assert [r.id for r in recs] == ["a", "7"] and not skipped
    assert [e["code"] for e in recs[0].events] == ["Y", "X"]  # time order
    assert recs[0].events[0] == {"time": "2019-01-01T00:00:00", "code": "Y", "text": "y", "type": "drug"}
    assert recs[0].events[1]["type"] == "event"  # default type
    assert recs[0].label == "hf" and recs[1].label is None


def test_jsonl_round_trip(tmp_path):
    recs, _ = read_jsonl(write_jsonl_folder(tmp_path / "d", per_class=3) / "patients.jsonl")
    write_jsonl(recs, tmp_path / "again.jsonl")
    again, _ = read_jsonl(tmp_path / "again.jsonl")
    assert [(r.id, r.label, r.events) for r in again] == [(r.id, r.label, r.events) for r in recs]


@pytest.mark.parametrize(
    "line, match",
    [
        (
            '{"id": "a", "events": [{"time": "2020-13-45", "code": "X"}]}',
            r"p\.jsonl:2: event 1: time '2020-13-45' is not ISO-8601; use ISO-8601",
        ),
        ('{"id": "a", "events": [{"code": "X"}]}', r'p\.jsonl:2: event 1 has no "time"'),
        ('{"id": "a", "events": [{"time": "2020-01-01"}]}', r'p\.jsonl:2: event 1 has no "code"'),
        ('{"id": "a", "events": [{"time": "2020-01-01", "code": " "}]}', r"p\.jsonl:2: event 1: code is empty"),
        ('{"events": []}', r'p\.jsonl:2: no "id"'),
        ('{"id": "a", "events": [', r"p\.jsonl:2: not valid JSON"),
        ('{"id": "b", "events": "none"}', r'p\.jsonl:2: "events" must be a list'),
    ],
)
def test_jsonl_malformed_line_names_file_and_line(tmp_path, line, match):
    f = _jsonl(tmp_path / "p.jsonl", {"id": "ok", "events": [{"time": "2020-01-01", "code": "X"}]}, line)
    with pytest.raises(DataError, match=match):
        read_jsonl(f)


def test_jsonl_duplicate_id_is_an_error(tmp_path):
    ev = [{"time": "2020-01-01", "code": "X"}]
    f = _jsonl(tmp_path / "p.jsonl", {"id": "a", "events": ev}, {"id": "a", "events": ev})
    with pytest.raises(DataError, match=r"p\.jsonl:2: patient id 'a' already used on line 1"):
        read_jsonl(f)


def test_jsonl_empty_history_is_skipped_and_reported(tmp_path):
    f = _jsonl(tmp_path / "p.jsonl", {"id": "a", "events": []}, {"id": "b", "events": [{"time": "2020-01-01", "code": "X"}]})
    recs, skipped = read_jsonl(f)
    assert [r.id for r in recs] == ["b"]
    assert len(skipped) == 1 and skipped[0].path.endswith("p.jsonl:1") and "no events" in skipped[0].reason


def test_unknown_code_is_accepted_and_becomes_unknown_in_matrix(tmp_path):
    # Codes are opaque tokens: a code no vocabulary knows is read as is; the matrix marks it
    # "an event is here" with a zero embedding (see test_sequences_matrix).
    f = _jsonl(tmp_path / "p.jsonl", {"id": "a", "events": [{"time": "2020-01-01", "code": "NOT-A-REAL-CODE", "type": "weird"}]})
    recs, _ = read_jsonl(f)
    assert recs[0].events[0]["code"] == "NOT-A-REAL-CODE" and recs[0].events[0]["type"] == "weird"


def test_long_csv_good_any_row_order(tmp_path):
    f = tmp_path / "events.csv"
    f.write_text(
        "patient_id,time,code,text,type,label\np2,2020-02-01,B,bee,drug,0\np1,2020-03-01,A,,,1\np1,2019-03-01,C,see,condition,1\n"
    )
    recs, skipped = read_long_csv(f)
    by_id = {r.id: r for r in recs}
    assert [e["code"] for e in by_id["p1"].events] == ["C", "A"] and by_id["p1"].label == "1"
    assert by_id["p2"].events[0]["type"] == "drug" and not skipped


def test_long_csv_minimal_columns(tmp_path):
    f = tmp_path / "events.csv"
    f.write_text("time,code,patient_id\n2020-02-01,B,p2\n")
    recs, _ = read_long_csv(f)
    assert recs[0].events[0] == {"time": "2020-02-01T00:00:00", "code": "B", "text": "", "type": "event"}


@pytest.mark.parametrize(
    "content, match",
    [
        ("patient_id,code\np1,A\n", r"events\.csv:1: header lacks time"),
        ("patient_id,time,code\np1,yesterday,A\n", r"events\.csv:2: time 'yesterday' is not ISO-8601; use ISO-8601"),
        ("patient_id,time,code\np1,2020-01-01,A\np1,2020-01-02\n", r"events\.csv:3: 2 fields for 3 columns"),
        ("patient_id,time,code\np1,2020-01-01,\n", r"events\.csv:2: code is empty"),
        ("patient_id,time,code\n", r"events\.csv: no event rows"),
        ("patient_id,time,code,label\np1,2020-01-01,A,0\np1,2020-01-02,A,1\n", r"events\.csv:3: patient 'p1' has labels"),
    ],
)
def test_long_csv_malformed(tmp_path, content, match):
    f = tmp_path / "events.csv"
    f.write_text(content)
    with pytest.raises(DataError, match=match):
        read_long_csv(f)


def _synthea_patients(rng, n=3, start=0):
    return {
        f"p{i}": {"birth": "1950-06-01", "events": patient_events("sick" if i % 2 else "well", rng, n=6)}
        for i in range(start, start + n)
    }


@pytest.mark.parametrize("old_layout", [False, True])
def test_synthea_export_both_layouts(tmp_path, old_layout):
    pats = _synthea_patients(np.random.default_rng(0))
    recs, skipped = read_synthea_export(write_synthea_export(tmp_path / "x", pats, old_layout=old_layout))
    assert not skipped
    by_id = {r.id: r for r in recs}
    assert set(by_id) == set(pats) and by_id["p0"].birthdate == "1950-06-01"
    for pid, p in pats.items():
        assert sorted(e["code"] for e in by_id[pid].events) == sorted(e["code"] for e in p["events"])
        times = [e["time"] for e in by_id[pid].events]
        assert times == sorted(times)


def test_synthea_broken_files_and_rows_are_skipped_and_reported(tmp_path):
    folder = write_synthea_export(tmp_path / "x", _synthea_patients(np.random.default_rng(1)))
    (folder / "medications.csv").write_text("START,STOP,ENCOUNTER,DESCRIPTION\n2020-01-01,,e,x\n")  # no PATIENT/CODE
    with (folder / "conditions.csv").open("a") as fh:
        fh.write("2020-99-99,,p0,enc,http://snomed.info/sct,1,bad time\n2020-01-01,,p0,enc\n")  # bad time, truncated
        fh.write("2020-01-01,,ghost,enc,http://snomed.info/sct,1,unknown patient\n")
    (folder / "careplans.csv").write_text("")  # empty file
    recs, skipped = read_synthea_export(folder)
    assert len(recs) == 3
    text = "\n".join(str(s) for s in skipped)
    assert "medications.csv: lacks column PATIENT, CODE" in text
    assert "conditions.csv: 2 rows left out (first at line" in text and "not ISO-8601" in text
    assert "conditions.csv: 1 rows name patients not in patients.csv" in text
    assert "careplans.csv: lacks column" in text


def test_synthea_day_first_dates_read_when_unambiguous(tmp_path):
    folder = write_synthea_export(tmp_path / "x", {"p0": {"birth": "1950-06-01", "events": []}})
    (folder / "conditions.csv").write_text(
        "START,STOP,PATIENT,ENCOUNTER,CODE,DESCRIPTION\n01-05-2001,,p0,e,1,a\n25-12-2003,,p0,e,2,b\n"
    )
    recs, skipped = read_synthea_export(folder)
    assert [e["time"][:10] for e in recs[0].events] == ["2001-05-01", "2003-12-25"]
    assert any("read as %d-%m-%Y" in s.reason for s in skipped)


def test_synthea_without_patients_csv_is_an_error(tmp_path):
    folder = write_synthea_export(tmp_path / "x", _synthea_patients(np.random.default_rng(0)))
    (folder / "patients.csv").write_text("NAME\nz\n")
    with pytest.raises(DataError, match=r"patients\.csv: lacks column ID, BIRTHDATE"):
        read_synthea_export(folder)


def test_merge_records_unions_duplicate_patients(tmp_path):
    rng = np.random.default_rng(2)
    a, _ = read_synthea_export(write_synthea_export(tmp_path / "a", _synthea_patients(rng, 3)))
    b, _ = read_synthea_export(write_synthea_export(tmp_path / "b", _synthea_patients(rng, 3, start=2)))
    merged, dups = merge_records([a, b])
    assert dups == 1 and sorted(r.id for r in merged) == ["p0", "p1", "p2", "p3", "p4"]
    p2 = next(r for r in merged if r.id == "p2")
    assert len(p2.events) == len({(e["time"], e["type"], e["code"]) for e in p2.events}) > 6  # union, no repeats


def test_folder_detection_and_load_dataset_dispatch(tmp_path):
    folder = write_jsonl_folder(tmp_path / "seq", per_class=6, test_per_class=3)
    assert looks_like_sequences(folder) and not looks_like_sequences(tmp_path / "missing")
    (tmp_path / "img").mkdir()
    assert not looks_like_sequences(tmp_path / "img")
    ds = load_dataset(folder)
    assert ds.pool.modality == "sequence" and ds.pool.class_names == ["sick", "well"]
    assert len(ds.pool) == 12 and len(ds.test) == 6 and ds.pool.has_labels and ds.test.has_labels
    assert ds.pool.inputs.shape[1:] == ds.test.inputs.shape[1:] and ds.pool.inputs.dtype.is_floating_point
    assert len(ds.pool.meta["events"]) == 12 and ds.pool.meta["events"][0][0]["time"].startswith("20")


def test_load_dataset_test_split_and_synthea_parent_folder(tmp_path):
    ds = load_dataset(write_jsonl_folder(tmp_path / "seq", per_class=10), test_split=0.3, seed=1)
    assert len(ds.pool) == 14 and len(ds.test) == 6
    rng = np.random.default_rng(3)
    write_synthea_export(tmp_path / "exports" / "one", _synthea_patients(rng, 3))
    write_synthea_export(tmp_path / "exports" / "two", _synthea_patients(rng, 3, start=3), old_layout=True)
    assert looks_like_sequences(tmp_path / "exports")
    pool = load_dataset(tmp_path / "exports").pool
    assert sorted(pool.names) == [f"p{i}" for i in range(6)] and pool.labels is None
