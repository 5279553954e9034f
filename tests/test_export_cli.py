"""``aeep-tui projects``, ``export`` and ``forget`` on real projects."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest

from aeep_core import locations
from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_tui.cli import main
from tests.conftest import make_image_folder

CLASSES = ["class0", "class1", "class2"]


@pytest.fixture
def project(tmp_path) -> tuple[Path, dict[str, tuple[str, int, bool]]]:
    """A project with two confirmed rounds (a skip, a relabel) and an open batch with one
    answer; returns the data folder and the expected labels: path -> (class, round, exploration)."""
    data = make_image_folder(tmp_path / "images", per_class=8)
    settings = ProjectSettings(
        classes=CLASSES, keys=["1", "2", "3"], batch_size=4, device="cpu", train={"min_steps": 5, "max_steps": 5}
    )
    expected = {}
    with LabellingSession.open(data, settings) as s:
        for _ in range(2):
            b = s.prepare_next_batch()
            for pos, it in enumerate(b.items):
                s.label(pos, 0)
                answer = SKIPPED if pos == 3 else int(s.pool.labels[it.item_id])
                s.label(pos, answer)  # a relabel: the later answer is the label
                if answer != SKIPPED:
                    expected[str(data.resolve() / it.name)] = (CLASSES[answer], b.round, it.exploration)
            s.confirm_batch()
        b = s.prepare_next_batch()
        s.label(2, 1)
        expected[str(data.resolve() / b.items[2].name)] = ("class1", 3, b.items[2].exploration)
    return data, expected


def test_export_round_trips_in_csv_and_jsonl(project, tmp_path, capsys):
    data, expected = project
    out = tmp_path / "out" / "labels.csv"
    assert main(["export", str(data), "--format", "csv", "--out", str(out)]) == 0
    assert f"wrote {len(expected)} labels" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert list(rows[0]) == ["path", "label", "labelled_at", "round", "exploration", "missing"]
    assert {r["path"]: (r["label"], int(r["round"]), r["exploration"] == "true") for r in rows} == expected
    assert all(r["missing"] == "false" and r["labelled_at"].endswith("+00:00") for r in rows)

    assert main(["export", str(data), "--format", "jsonl"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert {r["path"]: (r["label"], r["round"], r["exploration"]) for r in lines} == expected
    as_text = [{k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in r.items()} for r in lines]
    assert as_text == rows  # the two formats say the same thing


def test_vanished_files_keep_their_labels_and_are_exported_missing(project, capsys):
    data, expected = project
    gone = next(iter(expected))
    Path(gone).unlink()
    with LabellingSession.open(data) as s:
        assert s.drift.vanished == 1
    assert main(["export", str(data), "--format", "jsonl"]) == 0
    rows = {r["path"]: r for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(rows) == set(expected) and rows[gone]["missing"] is True
    assert sum(r["missing"] for r in rows.values()) == 1


def test_export_finds_the_project_by_folder_or_name_and_refuses_unknown(project, capsys):
    data, expected = project
    folder = LabellingSession.find(data)
    for target in (str(folder), "images", folder.name):
        assert main(["export", target]) == 0
        assert len(capsys.readouterr().out.splitlines()) == 1 + len(expected)
    assert main(["export", "no-such-project"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("aeep-tui: error: no-such-project: no project found") and "\n" not in err


def test_projects_lists_name_data_progress_and_rounds(project, capsys):
    data, expected = project
    assert main(["projects"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:4] == ["NAME", "LABELLED/TOTAL", "ROUNDS", "LAST"]
    name, progress, rounds, *_ = out[1].split()
    assert (name, progress, rounds) == ("images", f"{len(expected)}/24", "2")
    assert out[1].endswith(str(data.resolve()))


def test_forget_asks_first_and_refuses_an_open_project(project, monkeypatch, capsys):
    data, _ = project
    folder = LabellingSession.find(data)
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["forget", "images"]) == 0 and folder.exists()
    assert "This deletes" in capsys.readouterr().out
    with LabellingSession.open(data):  # the app has it open
        assert main(["forget", "images", "--yes"]) == 2
        assert "open in another aeep-tui process" in capsys.readouterr().err
    assert locations.image_caches(data)  # the decoded images are cached...
    monkeypatch.setattr("sys.stdin", io.StringIO("y\n"))
    assert main(["forget", "images"]) == 0
    assert not folder.exists() and LabellingSession.find(data) is None and data.exists()
    assert not locations.image_caches(data)  # ...and forgotten with the project


def test_a_file_name_that_is_not_utf8_is_stored_labelled_and_exported(tmp_path, capfdbinary):
    import os

    from PIL import Image

    data = make_image_folder(tmp_path / "odd", per_class=2)
    odd = os.fsdecode(b"class1/caf\xe9.png")  # Latin-1 bytes: not valid UTF-8, still a file name
    Image.new("L", (28, 28), 200).save(data / odd)
    settings = ProjectSettings(
        classes=CLASSES, keys=["1", "2", "3"], batch_size=7, device="cpu", train={"min_steps": 5, "max_steps": 5}
    )
    with LabellingSession.open(data, settings) as s:
        batch = s.prepare_next_batch()  # the whole folder: 7 items
        for pos, it in enumerate(batch.items):
            s.label(pos, 1 if it.name == odd else int(s.pool.labels[it.item_id]))
        s.confirm_batch()
    with LabellingSession.open(data) as s:  # reopened: the odd name is the same item, not a new one
        assert not s.drift.any and s.stats.labelled == 7
    capfdbinary.readouterr()
    assert main(["export", str(data), "--format", "jsonl"]) == 0
    out = capfdbinary.readouterr().out.decode("utf-8", "surrogateescape")  # names are written as their bytes
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 7 and sum(r["path"].endswith(odd.split("/")[1]) for r in rows) == 1
