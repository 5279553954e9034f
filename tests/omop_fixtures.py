"""Small generated OMOP CDM folders for the OMOP and cohort tests (no real data needed)."""

from __future__ import annotations

from pathlib import Path

# CDM 5.4 column lists, trimmed to a realistic subset (real extracts carry more; we ignore them).
COLUMNS = {
    "person": "person_id,gender_concept_id,year_of_birth,month_of_birth,day_of_birth,birth_datetime,race_concept_id,"
    "ethnicity_concept_id,person_source_value",
    "condition_occurrence": "condition_occurrence_id,person_id,condition_concept_id,condition_start_date,"
    "condition_start_datetime,condition_end_date,condition_type_concept_id,visit_occurrence_id,condition_source_value,"
    "condition_source_concept_id",
    "drug_exposure": "drug_exposure_id,person_id,drug_concept_id,drug_exposure_start_date,drug_exposure_start_datetime,"
    "drug_exposure_end_date,drug_type_concept_id,drug_source_value",
    "measurement": "measurement_id,person_id,measurement_concept_id,measurement_date,measurement_datetime,"
    "value_as_number,unit_source_value,measurement_source_value",
    "visit_occurrence": "visit_occurrence_id,person_id,visit_concept_id,visit_start_date,visit_start_datetime,"
    "visit_end_date,visit_source_value",
    "concept": "concept_id,concept_name,domain_id,vocabulary_id,concept_class_id,standard_concept,concept_code,"
    "valid_start_date,valid_end_date,invalid_reason",
}

CONCEPTS = {
    "316139": ("Heart failure", "Condition", "SNOMED", "84114007"),
    "320128": ("Essential hypertension", "Condition", "SNOMED", "59621000"),
    "40481087": ("Viral sinusitis", "Condition", "SNOMED", "444814009"),
    "1308216": ("lisinopril", "Drug", "RxNorm", "29046"),
    "3025315": ("Body weight", "Measurement", "LOINC", "29463-7"),
    "9202": ("Outpatient Visit", "Visit", "Visit", "OP"),
}


def person_row(pid: int, birth: str) -> str:
    y, m, d = birth.split("-")
    return f"{pid},8507,{int(y)},{int(m)},{int(d)},{birth} 00:00:00,8527,38003564,src-{pid}"


def event_row(table: str, i: int, pid: int, day: str, concept: str, source: str, value: str = "") -> str:
    """One row of ``table`` in the column order of :data:`COLUMNS`."""
    if table == "condition_occurrence":
        return f"{i},{pid},{concept},{day},{day} 00:00:00,,32020,{i},{source},0"
    if table == "drug_exposure":
        return f"{i},{pid},{concept},{day},{day} 08:30:00,{day},38000177,{source}"
    if table == "measurement":
        return f"{i},{pid},{concept},{day},{day} 09:00:00,{value},kg,{source}"
    if table == "visit_occurrence":
        return f"{i},{pid},{concept},{day},{day} 07:00:00,{day},{source}"
    raise ValueError(table)


def default_events() -> dict[str, list[str]]:
    """Two persons: 1 has hypertension then heart failure; 2 has sinusitis; 3 is unknown to person."""
    return {
        "visit_occurrence": [
            event_row("visit_occurrence", 1, 1, "2010-01-01", "9202", "OP"),
            event_row("visit_occurrence", 2, 2, "2011-05-05", "9202", "OP"),
        ],
        "condition_occurrence": [
            event_row("condition_occurrence", 1, 1, "2010-01-01", "320128", "59621000"),
            event_row("condition_occurrence", 2, 1, "2015-06-01", "316139", "84114007"),
            event_row("condition_occurrence", 3, 2, "2011-05-05", "40481087", "444814009"),
            event_row("condition_occurrence", 4, 2, "2012-01-01", "0", "I50.9"),  # unmapped: source value
            event_row("condition_occurrence", 5, 3, "2012-01-01", "320128", "59621000"),  # person 3 unknown
        ],
        "drug_exposure": [event_row("drug_exposure", 1, 1, "2010-01-02", "1308216", "29046")],
        "measurement": [event_row("measurement", 1, 2, "2011-05-05", "3025315", "29463-7", "70.5")],
    }


def write_omop(
    folder: Path,
    upper: bool = False,
    concept: bool = True,
    events: dict[str, list[str]] | None = None,
    persons: list[str] | None = None,
    parquet: bool = False,
) -> Path:
    """Write an OMOP folder: ``person`` + the tables in ``events`` (+ ``concept``), CSV or Parquet."""
    folder.mkdir(parents=True, exist_ok=True)
    events = default_events() if events is None else events
    contents = {"person": persons if persons is not None else [person_row(1, "1950-03-04"), person_row(2, "1990-07-08")]}
    contents.update(events)
    if concept:
        contents["concept"] = [
            f"{cid},{name},{dom},{voc},x,S,{code},1970-01-01,2099-12-31," for cid, (name, dom, voc, code) in CONCEPTS.items()
        ]
    for table, rows in contents.items():
        name = table.upper() if upper else table
        path = folder / f"{name}.csv"
        path.write_text(COLUMNS[table] + "\n" + "".join(r + "\n" for r in rows))
        if parquet:
            import duckdb

            con = duckdb.connect()
            con.execute(
                f"COPY (SELECT * FROM read_csv('{path}', header = true, all_varchar = true)) "
                f"TO '{folder / (name + '.parquet')}' (FORMAT parquet)"
            )
            con.close()
            path.unlink()
    return folder
