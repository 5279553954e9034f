"""OMOP CDM reader: name cases, CSV and Parquet, optional and missing tables, malformed rows."""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="OMOP import needs the duckdb package (pip install 'duckdb>=1.1')")

from aeep_core.data import load_dataset  # noqa: E402
from aeep_core.pool import DataError  # noqa: E402
from aeep_core.sequences import looks_like_sequences  # noqa: E402
from aeep_core.sequences.omop import is_omop_folder, read_omop  # noqa: E402
from aeep_core.sequences.readers import sort_events  # noqa: E402
from tests.omop_fixtures import COLUMNS, event_row, person_row, write_omop  # noqa: E402

OMOP = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "omop" / "synthea27nj"


def _by_id(folder: Path) -> dict:
    recs, _ = read_omop(folder)
    return {r.id: r for r in recs}


@pytest.mark.parametrize("upper", [False, True])
def test_reads_both_name_cases_with_concept_names(tmp_path, upper):
    recs = _by_id(write_omop(tmp_path / "o", upper=upper))
    assert set(recs) == {"1", "2"}
    one = recs["1"]
    assert one.birthdate == "1950-03-04"
    assert [(e["type"], e["code"]) for e in one.events] == [
        ("condition", "320128"),
        ("encounter", "9202"),
        ("medication", "1308216"),
        ("condition", "316139"),
    ]
    assert one.events[-1] == {"time": "2015-06-01T00:00:00", "code": "316139", "text": "Heart failure", "type": "condition"}
    assert one.events[2]["time"] == "2010-01-02T08:30:00"  # the datetime wins over the date
    two = recs["2"]
    assert {"code": "I50.9", "text": "I50.9"}.items() <= two.events[-1].items()  # concept 0: the source value
    weight = next(e for e in two.events if e["type"] == "measurement")
    assert weight["text"] == "Body weight = 70.5 kg"
    for r in recs.values():
        assert r.events == sort_events(r.events)


def test_parquet_reads_like_csv(tmp_path):
    csv = _by_id(write_omop(tmp_path / "csv"))
    pq = _by_id(write_omop(tmp_path / "pq", parquet=True, upper=True))
    assert not list((tmp_path / "pq").glob("*.csv"))
    assert {k: (r.birthdate, r.events) for k, r in csv.items()} == {k: (r.birthdate, r.events) for k, r in pq.items()}


def test_missing_optional_tables_and_unknown_persons_are_reported(tmp_path):
    events = {
        "condition_occurrence": [
            event_row("condition_occurrence", 1, 1, "2010-01-01", "320128", "x"),
            event_row("condition_occurrence", 2, 9, "2010-01-01", "320128", "x"),
        ]
    }
    recs, skipped = read_omop(write_omop(tmp_path / "o", events=events))
    assert [r.id for r in recs] == ["1"] and len(recs[0].events) == 1
    text = "\n".join(str(s) for s in skipped)
    assert "1 rows name persons not in person" in text and "1 persons have no events" in text


def test_missing_concept_table_falls_back_to_source_values(tmp_path):
    recs, skipped = read_omop(write_omop(tmp_path / "o", concept=False))
    one = next(r for r in recs if r.id == "1")
    hf = next(e for e in one.events if e["code"] == "316139")
    assert hf["text"] == "84114007"  # no name without concept: the source value shows instead
    assert any("no concept table" in s.reason for s in skipped)


def test_aware_datetimes_become_utc(tmp_path):
    events = {"drug_exposure": ["1,1,1308216,2010-01-02,2010-01-02T10:00:00+02:00,,1,x"]}
    recs, _ = read_omop(write_omop(tmp_path / "o", events=events))
    assert recs[0].events[0]["time"] == "2010-01-02T08:00:00"


@pytest.mark.parametrize(
    "row, match",
    [
        (
            "2,1,320128,2010-13-45,,,1,1,x,0",
            r"condition_occurrence\.csv line 3, column condition_start_date: '2010-13-45' is not a date",
        ),
        ("2,1,320128,2010-01-01,,,1,1,x", r"condition_occurrence\.csv line 3: 9 fields for 10 columns"),
        (
            "2,1,heart,2010-01-01,,,1,1,x,0",
            r"condition_occurrence\.csv line 3, column condition_concept_id: 'heart' is not a whole number",
        ),
        ("2,1,320128,,,,1,1,x,0", r"condition_occurrence\.csv line 3, column condition_start_date: no date"),
    ],
)
def test_malformed_row_is_one_line_naming_table_line_column(tmp_path, row, match):
    good = event_row("condition_occurrence", 1, 1, "2010-01-01", "320128", "x")
    folder = write_omop(tmp_path / "o", upper=False, events={"condition_occurrence": [good, row]})
    with pytest.raises(DataError, match=match) as err:
        read_omop(folder)
    assert "\n" not in str(err.value) and "remove" in str(err.value)


def test_malformed_parquet_value_names_row_and_column(tmp_path):
    good = event_row("condition_occurrence", 1, 1, "2010-01-01", "320128", "x")
    bad = event_row("condition_occurrence", 2, 1, "someday", "320128", "x")
    folder = write_omop(tmp_path / "o", parquet=True, events={"condition_occurrence": [good, bad]})
    with pytest.raises(DataError, match=r"condition_occurrence\.parquet row 2, column condition_start_date: 'someday'"):
        read_omop(folder)


def test_missing_person_table_is_a_clear_error(tmp_path):
    folder = write_omop(tmp_path / "o")
    (folder / "person.csv").unlink()
    assert is_omop_folder(folder)
    with pytest.raises(DataError, match="no person table"):
        read_omop(folder)


def test_missing_required_column_names_it(tmp_path):
    folder = write_omop(tmp_path / "o", events={})
    (folder / "visit_occurrence.csv").write_text("visit_occurrence_id,person_id,visit_concept_id\n1,1,9202\n")
    with pytest.raises(DataError, match=r"visit_occurrence\.csv line 1: no column visit_start_date"):
        read_omop(folder)


def test_tab_separated_concept_and_birth_year_only(tmp_path):
    folder = write_omop(tmp_path / "o", concept=False, persons=["1,8507,1950,,,,0,0,a", "2,8507,1990,,,,0,0,b"])
    (folder / "CONCEPT.csv").write_text(
        COLUMNS["concept"].replace(",", "\t") + "\n316139\tHeart failure\tCondition\tSNOMED\t"
        "x\tS\t84114007\t1970-01-01\t2099-12-31\t\n"
    )
    recs = _by_id(folder)
    assert recs["1"].birthdate == "1950-01-01"
    assert any(e["text"] == "Heart failure" for e in recs["1"].events)


def test_detected_and_loaded_like_other_sequence_folders(tmp_path):
    folder = write_omop(tmp_path / "o", upper=True)
    assert looks_like_sequences(folder)
    ds = load_dataset(folder)
    assert ds.pool.modality == "sequence" and sorted(ds.pool.names) == ["1", "2"]
    assert not is_omop_folder(tmp_path / "nothing")


def test_person_row_fixture_is_consistent():
    assert person_row(3, "2000-01-02").startswith("3,8507,2000,1,2,2000-01-02")


@pytest.mark.integration
@pytest.mark.skipif(not (OMOP / "PERSON.csv").is_file(), reason=f"OMOP sample not present at {OMOP} (../shared/data/omop)")
def test_real_omop_sample_reads_every_person():
    recs, skipped = read_omop(OMOP)
    assert len(recs) == 28 and sum(len(r.events) for r in recs) > 20_000
    assert {e["type"] for r in recs for e in r.events} >= {
        "condition",
        "medication",
        "procedure",
        "measurement",
        "observation",
        "encounter",
    }
    assert all(r.birthdate for r in recs)
