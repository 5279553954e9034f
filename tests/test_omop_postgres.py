"""OMOP straight from a real PostgreSQL server: the same patients as the CSV folder, and one-line errors.

A throwaway cluster (tests/postgres_fixture.py) holds ../shared/data/omop/synthea27nj in
schema ``cdm``. Reading it must give the persons, birth dates and events the CSV folder
gives; a cohort and a simulation must see the same patients; a project on the database
must open again from URL and schema; and the password, given only through PGPASSWORD,
must appear in no output and no file of the project.
"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import pytest

pytest.importorskip("duckdb", reason="OMOP import needs the duckdb package (pip install 'duckdb>=1.1')")
pytest.importorskip("adbc_driver_postgresql", reason="PostgreSQL import needs pip install 'aeep-tui[postgres]'")

from aeep_core.pool import DataError  # noqa: E402
from aeep_core.sequences.dbfolder import data_location, parse_database, read_database_folder  # noqa: E402
from aeep_core.sequences.omop import read_omop  # noqa: E402
from aeep_core.sequences.outcomes import make_outcome, outcome_dataset  # noqa: E402
from aeep_tui.cli import main  # noqa: E402
from tests.postgres_fixture import PASSWORD, READER_PASSWORD, SHARED_OMOP, execute, load_folder  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _password(monkeypatch, tmp_path):
    """The password only in PGPASSWORD (libpq's rule); no ~/.pgpass of the machine interferes."""
    monkeypatch.setenv("PGPASSWORD", PASSWORD)
    monkeypatch.setenv("PGPASSFILE", str(tmp_path / "no-pgpass"))


def _histories(records) -> dict:
    return {r.id: (r.birthdate, r.events) for r in records}


def test_timelines_match_the_csv_folder(omop_database):
    db, _ = read_omop(data_location(omop_database.url(), "cdm"))
    csv, _ = read_omop(SHARED_OMOP)
    assert len(db) == 28 and sum(len(r.events) for r in db) > 20_000
    assert _histories(db) == _histories(csv)


def test_upper_case_tables_and_columns_read_alike(omop_database):
    load_folder(omop_database, SHARED_OMOP, schema="UPPER", tables=("person", "condition_occurrence", "concept"), upper=True)
    db, _ = read_omop(data_location(omop_database.url(), "UPPER"))
    conditions = {r.id: [e for e in r.events if e["type"] == "condition"] for r in read_omop(SHARED_OMOP)[0]}
    assert {r.id: r.events for r in db} == {k: v for k, v in conditions.items() if v}
    assert any(e["text"] == "Essential hypertension" for r in db for e in r.events)  # names from "CONCEPT"


def test_cohort_command_writes_the_csv_folders_cohort(omop_database, tmp_path, capsys):
    url = omop_database.url()
    assert main(["cohort", url, "--schema", "cdm", "--outcome-codes", "320128", "--out", str(tmp_path / "db")]) == 0
    out = capsys.readouterr()
    assert main(["cohort", str(SHARED_OMOP), "--outcome-codes", "320128", "--out", str(tmp_path / "csv")]) == 0
    for name in ("patients.jsonl", "test.jsonl"):
        assert (tmp_path / "db" / name).read_text() == (tmp_path / "csv" / name).read_text()
    summary = json.loads((tmp_path / "db" / "cohort.json").read_text())
    assert summary["cases"] >= 2 and summary["outcome"]["name"] == "essential_hypertension"
    assert url in out.out and "schema cdm" in out.out and PASSWORD not in out.out + out.err


def test_simulate_sees_the_same_patients(omop_database, tmp_path, capsys, monkeypatch):
    from functools import partial

    from aeep_core.learning import training

    # 5 training steps a round: this checks which patients the simulation sees, not how well it learns.
    monkeypatch.setattr(training, "TrainConfig", partial(training.TrainConfig, min_steps=5, max_steps=5))
    outcome = make_outcome(codes="320128")
    folder = data_location(omop_database.url(), "cdm")
    db, csv = outcome_dataset(folder, outcome, seed=0), outcome_dataset(SHARED_OMOP, outcome, seed=0)
    assert db.pool.names == csv.pool.names and db.test is not None and csv.test is not None
    assert db.test.names == csv.test.names and db.pool.meta["events"] == csv.pool.meta["events"]
    assert (db.pool.labels == csv.pool.labels).all() and (db.pool.inputs == csv.pool.inputs).all()
    args = ["--outcome-codes", "320128", "--strategy", "random", "--initial", "4", "--batch-size", "4", "--budget", "8"]
    args += ["--device", "cpu", "--seed", "0"]
    runs = {}
    for name, data in (("db", [omop_database.url(), "--schema", "cdm"]), ("csv", [str(SHARED_OMOP)])):
        assert main(["simulate", "--data", *data, *args, "--json", str(tmp_path / f"{name}.json")]) == 0
        runs[name] = json.loads((tmp_path / f"{name}.json").read_text())
    keys = ("labelled", "per_class", "auroc", "accuracy")
    assert [[r[k] for k in keys] for r in runs["db"]["rounds"]] == [[r[k] for k in keys] for r in runs["csv"]["rounds"]]
    assert PASSWORD not in capsys.readouterr().out


def test_a_project_on_the_database_remembers_url_and_schema(omop_database, tmp_path):
    from aeep_core.session import LabellingSession
    from aeep_core.session.session import ProjectSettings

    url = omop_database.url()
    folder = data_location(url, "cdm")
    assert data_location(url, "cdm") == folder and data_location(url, "public") != folder
    assert read_database_folder(folder) == parse_database(url, "cdm")
    settings = ProjectSettings(
        classes=["yes", "no"], keys=["1", "2"], modality="sequence", batch_size=4, device="cpu", train={"min_steps": 2}
    )
    with LabellingSession.open(folder, settings) as s:
        assert len(s.pool) == 28 and s.pool.modality == "sequence"
    project = LabellingSession.find(data_location(url, "cdm"))
    assert project is not None
    with LabellingSession.open(data_location(url, "cdm")) as again:  # no settings: found from URL and schema
        assert again.pool.names == s.pool.names
    home = folder.parents[2]
    for f in [*home.rglob("*"), *project.rglob("*")]:
        if f.is_file():
            assert PASSWORD.encode() not in f.read_bytes(), f


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed again when this returns: nothing listens there


def _error(data: str, schema: str = "cdm") -> str:
    with pytest.raises(DataError) as err:
        read_omop(data_location(data, schema))
    text = str(err.value)
    assert "\n" not in text and PASSWORD not in text and READER_PASSWORD not in text
    return text


def test_bad_input_gets_one_line_naming_the_url_and_the_fix(omop_database, monkeypatch):
    url = omop_database.url()
    refused = f"postgresql://postgres@127.0.0.1:{_closed_port()}/postgres"
    assert _error(refused).startswith(f"{refused}: connection refused; check that PostgreSQL runs")
    assert "no schema 'nope'" in _error(url, "nope") and "cdm" in _error(url, "nope")
    execute(omop_database, "CREATE SCHEMA IF NOT EXISTS empty")
    assert "no table person in schema empty" in _error(url, "empty")
    missing_db = url.rsplit("/", 1)[0] + "/nodb"
    assert "no database 'nodb'" in _error(missing_db)
    monkeypatch.setenv("PGPASSWORD", "wrong")
    assert _error(url) == (
        f"{url}: password refused for user postgres; set PGPASSWORD, or the ~/.pgpass line "
        "host:port:database:user:password (chmod 600), to this user's password"
    )
    monkeypatch.setenv("PGPASSWORD", READER_PASSWORD)
    reader = omop_database.url(user="reader")
    assert f"{reader}: user reader may not use schema cdm; ask the database owner for GRANT USAGE ON SCHEMA cdm" in _error(reader)
    execute(omop_database, "GRANT USAGE ON SCHEMA cdm TO reader", "GRANT SELECT ON cdm.person TO reader")
    assert "user reader may not read cdm.visit_occurrence; ask the database owner for GRANT" in _error(reader)


def test_a_password_on_the_command_line_is_refused_and_never_shown(tmp_path, capsys):
    with_password = "postgresql://me:s3cret@db.example:5432/cdm"
    code = main(["cohort", with_password, "--schema", "cdm", "--out", str(tmp_path / "c")])
    err = capsys.readouterr().err
    assert code == 2 and "s3cret" not in err and "PGPASSWORD" in err and "me:***@db.example" in err
    assert not (tmp_path / "c").exists()
    with pytest.raises(DataError, match="--schema is for a postgresql:// URL"):
        data_location(Path("folder"), "cdm")


def test_columnar_reader_reads_the_database_like_the_folder(omop_database):
    from aeep_core.sequences.columnar import read_omop_columns

    db, csv = read_omop_columns(data_location(omop_database.url(), "cdm")), read_omop_columns(SHARED_OMOP)
    assert db.persons == csv.persons and db.tokens == csv.tokens and db.rows > 20_000
    assert (db.offsets == csv.offsets).all() and (db.seconds == csv.seconds).all() and (db.token == csv.token).all()
