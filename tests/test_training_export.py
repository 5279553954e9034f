"""Closing the loop: export for training (class folders), model export + predict, and
starting a project from labels one already has (``label --labels``)."""

from __future__ import annotations

import csv
import io
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_tui.cli import main
from tests.conftest import make_image_folder

CLASSES = ["class0", "class1", "class2"]
TINY = {"min_steps": 5, "max_steps": 5}


def _settings(**kw) -> ProjectSettings:
    return ProjectSettings(classes=CLASSES, keys=["1", "2", "3"], batch_size=6, device="cpu", train=TINY, **kw)


def _label_rounds(data: Path, rounds: int, **kw) -> tuple[dict[str, str], int]:
    """Label ``rounds`` batches with the truth (the last card of each skipped), confirm each,
    and open the next; return path -> class of the labels and the number of skips."""
    labels, skips = {}, 0
    with LabellingSession.open(data, _settings(**kw)) as s:
        for _ in range(rounds):
            b = s.prepare_next_batch()
            assert b is not None
            for pos, it in enumerate(b.items):
                answer = SKIPPED if pos == len(b.items) - 1 else int(s.pool.labels[it.item_id])
                s.label(pos, answer)
                if answer == SKIPPED:
                    skips += 1
                else:
                    labels[it.name] = CLASSES[answer]
            s.confirm_batch()
        s.prepare_next_batch()  # the batch the model chose, as the app shows it
    return labels, skips


def _image_folder_counts(root: Path) -> Counter:
    tv = pytest.importorskip("torchvision")
    ds = tv.datasets.ImageFolder(str(root))
    return Counter(ds.classes[t] for t in ds.targets)


def test_imagefolder_export_loads_in_torchvision_with_the_right_counts(tmp_path, capsys):
    pytest.importorskip("torchvision")
    data = make_image_folder(tmp_path / "images", per_class=8)
    labels, skips = _label_rounds(data, 2)
    want = Counter(labels.values())

    out = tmp_path / "train-me"
    assert main(["export", str(data), "--format", "imagefolder", "--out", str(out)]) == 0
    assert f"wrote {len(labels)} labelled items" in capsys.readouterr().err
    assert _image_folder_counts(out) == want
    assert all(p.is_symlink() for p in out.glob("*/*.png"))
    manifest = json.loads((out / "aeep-export.json").read_text())
    assert manifest["classes"] == CLASSES and manifest["counts"][""] == dict(want)

    split = tmp_path / "split"
    args = ["export", str(data), "--format", "imagefolder", "--out", str(split), "--link", "copy"]
    assert main([*args, "--split", "val=0.25", "--include-skipped"]) == 0
    train, val = _image_folder_counts(split / "train"), _image_folder_counts(split / "val")
    assert train + val == want and sum(val.values()) >= 1
    names = {p.name for p in (split / "train").rglob("*.png")}
    assert not names & {p.name for p in (split / "val").rglob("*.png")}  # no item in both
    assert len(list((split / "_skipped").iterdir())) == skips
    assert not any(p.is_symlink() for p in split.rglob("*.png"))
    assert "(train: 7, val: 3, 2 skipped in _skipped/)" in capsys.readouterr().err

    # A folder that already holds something is refused in one line, and left as it was.
    assert main(["export", str(data), "--format", "imagefolder", "--out", str(split)]) == 2
    err = capsys.readouterr().err.strip()
    assert "already exists and is not empty" in err and "\n" not in err
    assert main([*args[:-2], "--split", "val=2"]) == 2
    assert "--split val=2: give NAME=FRACTION" in capsys.readouterr().err


@pytest.mark.parametrize("pipelined", [False, True], ids=["plain", "pipelined"])
def test_model_export_and_predict_reproduce_the_apps_guesses(tmp_path, capsys, pipelined):
    data = make_image_folder(tmp_path / "images", per_class=8)
    kw = {"pipelined": True, "steps_per_label": 2, "lookahead": 1} if pipelined else {}
    _label_rounds(data, 2, **kw)
    with LabellingSession.open(data, read_only=True) as s:
        shown = {str(data.resolve() / it.name): (CLASSES[it.predicted], it.confidence) for it in s.batch.items}
    assert len(shown) == 6 and all(c is not None for _, c in shown.values())

    model = tmp_path / "take-away" / "model.pt"
    assert main(["model", "export", str(data), "--out", str(model)]) == 0
    assert "3 classes (class0, class1, class2), 1x28x28 input" in capsys.readouterr().err
    assert json.loads(Path(f"{model}.json").read_text())["classes"] == CLASSES

    assert main(["predict", str(model), *shown, "--format", "jsonl"]) == 0
    got = {r["item"]: (r["class"], r["confidence"]) for r in map(json.loads, capsys.readouterr().out.splitlines())}
    assert set(got) == set(shown)
    for item, (cls, conf) in shown.items():
        assert got[item][0] == cls and got[item][1] == pytest.approx(conf, abs=1e-5)

    # Files the project never saw, one of them broken: a row each, one line for the bad one.
    new = make_image_folder(tmp_path / "new", per_class=3, seed=7)
    (new / "broken.png").write_bytes(b"not a png")
    assert main(["predict", str(model), str(new)]) == 0
    captured = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(captured.out)))
    assert len(rows) == 9 and {r["class"] for r in rows} <= set(CLASSES)
    assert all(0 < float(r["confidence"]) <= 1 for r in rows)
    assert captured.err.count("broken.png") == 1 and len(captured.err.strip().splitlines()) == 1

    # --predictions: the unlabelled items, marked as guesses and never as labels.
    assert main(["export", str(data), "--format", "csv", "--predictions"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    guesses = [r for r in rows if r["kind"] == "prediction"]
    assert len(guesses) == 24 - sum(r["kind"] == "label" for r in rows)
    assert all(r["label"] == "" and r["predicted"] in CLASSES for r in guesses)
    for item, (cls, conf) in shown.items():  # the open batch is unlabelled: the same guesses
        row = next(r for r in guesses if r["path"] == item)
        assert row["predicted"] == cls and float(row["confidence"]) == pytest.approx(conf, abs=1e-5)


def test_model_export_refuses_a_project_without_a_model_and_predict_a_foreign_file(tmp_path, capsys):
    data = make_image_folder(tmp_path / "images", per_class=4)
    with LabellingSession.open(data, _settings()) as s:
        s.prepare_next_batch()  # the random cold start: nothing trained yet
    assert main(["model", "export", str(data), "--out", str(tmp_path / "m.pt")]) == 2
    assert "no trained model yet" in capsys.readouterr().err
    bogus = tmp_path / "bogus.pt"
    bogus.write_bytes(b"nope")
    assert main(["predict", str(bogus), str(data)]) == 2
    err = capsys.readouterr().err.strip()
    assert "not a TorchScript model" in err and "\n" not in err


def _write_labels(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_imported_labels_shape_the_first_batch_and_appear_in_export(tmp_path, monkeypatch, capsys):
    data = make_image_folder(tmp_path / "images", per_class=8)
    batches = []

    def app_stand_in(folder, settings, confirm_setup=True, config=None):
        # What the app does on open: resume the project and show the first batch.
        with LabellingSession.open(folder) as s:
            batches.append(s.prepare_next_batch())
        return 0

    monkeypatch.setattr("aeep_tui.cli.label.run_app", app_stand_in)
    good = [b"class0/000.png,class0", b"class0/001.png,class0", b"class1/000.png,class1", b"class1/001.png,class1"]
    csv_file = _write_labels(
        tmp_path / "have.csv",
        [
            b"path,label",
            *good,
            str(data.resolve() / "class2/000.png").encode() + b",class2",  # absolute paths work too
            b"class2/\xff-odd.png,class2",  # not valid UTF-8, and not in the folder
            b"class0/002.png,zebra",  # unknown class
            b"class0/nope.png,class0",  # no such file
            b"class1/002.png,class1",
            b"class1/002.png,class0",  # conflicting answers in the file
            b"class0/003.png",  # no label
        ],
    )
    base = ["label", str(data), "--labels", str(csv_file), "--classes", ",".join(CLASSES), "--no-pipeline", "--device", "cpu"]
    base += ["--train-steps", "5"]
    assert main(base) == 0
    err = capsys.readouterr().err.splitlines()
    problems = [line for line in err if f"{csv_file}:" in line]
    assert [p.split(f"{csv_file}:")[1].split(":")[0] for p in problems] == ["7", "8", "9", "11", "12"]
    assert "-odd.png is not an item of" in problems[0] and "class 'zebra' is not one of" in problems[1]
    assert "not an item of" in problems[2] and "neither is imported" in problems[3] and "expected path" in problems[4]
    assert err[-1].endswith(f"imported 5 labels from {csv_file}, 5 lines left out (above)")

    # The first batch was chosen by a model trained on the imported labels, not at random.
    (batch,) = batches
    assert batch is not None and all(it.predicted is not None for it in batch.items)
    imported = {"class0/000.png", "class0/001.png", "class1/000.png", "class1/001.png", "class2/000.png"}
    assert not imported & {it.name for it in batch.items}
    assert "class1/002.png" not in imported  # the conflict stayed out

    # They are in the store like any answer: export lists them (the odd name's bytes intact).
    assert main(["export", str(data), "--format", "csv"]) == 0
    out = capsys.readouterr().out
    rows = list(csv.DictReader(io.StringIO(out)))
    exported = {os.path.relpath(r["path"], data.resolve()): r["label"] for r in rows}
    assert exported == {n: n.split("/")[0] for n in imported}
    folder = tmp_path / "folders"
    assert main(["export", str(data), "--format", "imagefolder", "--out", str(folder)]) == 0
    assert sorted(p.name for p in folder.glob("*/*.png")) == sorted(n.replace("/", "__") for n in imported)

    # With a batch open, a new import is refused in one line and changes nothing.
    assert main(base) == 2
    assert "a batch is already open" in capsys.readouterr().err


def test_import_never_overwrites_what_the_project_holds(tmp_path, monkeypatch, capsys):
    data = make_image_folder(tmp_path / "images", per_class=4)
    monkeypatch.setattr("aeep_tui.cli.label.run_app", lambda *a, **k: 0)
    first = _write_labels(tmp_path / "a.csv", [b"class0/000.png,class0", b"class1/000.png,class1"])
    base = ["label", str(data), "--classes", ",".join(CLASSES), "--no-pipeline", "--device", "cpu"]
    assert main([*base, "--labels", str(first)]) == 0
    capsys.readouterr()
    second = _write_labels(tmp_path / "b.csv", [b"class0/000.png,class1", b"class1/000.png,class1", b"class2/000.png,class2"])
    assert main([*base, "--labels", str(second)]) == 0
    err = capsys.readouterr().err.splitlines()
    assert err[1] == f"aeep-tui: {second}:1: class0/000.png is already 'class0' in the project; kept that (relabel it in the app)"
    assert err[-1].endswith("imported 1 labels from " + str(second) + ", 1 already labelled the same, 1 lines left out (above)")
    with LabellingSession.open(data, read_only=True) as s:
        got = {s.pool.names[i]: CLASSES[y] for i, y in s.learner.labels.items()}
    assert got == {"class0/000.png": "class0", "class1/000.png": "class1", "class2/000.png": "class2"}
    assert main([*base, "--labels", str(tmp_path / "none.csv")]) == 2
    assert "cannot read the labels file" in capsys.readouterr().err


def test_exports_the_model_predict_and_import_speak_the_classes_as_they_are_now(tmp_path, capsys):
    """Issue 26: a class added (then renamed) and one merged away while labelling."""
    data = make_image_folder(tmp_path / "images", per_class=6, n_classes=4)
    live = ["class0", "class1", "diagonal"]
    with LabellingSession.open(data, _settings()) as s:
        s.prepare_next_batch()
        s.classes.add("class3", "4")
        for pos, it in enumerate(s.batch.items):
            s.label(pos, ["class0", "class1", "class2", "class3"].index(it.name.split("/")[0]))
        s.label(0, 3)  # at least one answer of the new class, whatever the draw
        s.confirm_batch()
        s.classes.rename(3, "diagonal")
        s.classes.merge(2, 1)  # class2's answers go to class1
        s.prepare_next_batch()
    assert main(["export", str(data), "--format", "jsonl"]) == 0
    labels = [json.loads(line)["label"] for line in capsys.readouterr().out.splitlines()]
    assert len(labels) == 6 and set(labels) <= set(live) and "diagonal" in labels

    folders = tmp_path / "folders"
    assert main(["export", str(data), "--format", "imagefolder", "--out", str(folders)]) == 0
    assert json.loads((folders / "aeep-export.json").read_text())["classes"] == live
    assert {p.name for p in folders.iterdir() if p.is_dir()} <= set(live)

    model = tmp_path / "model.pt"
    assert main(["model", "export", str(data), "--out", str(model)]) == 0
    assert json.loads(Path(f"{model}.json").read_text())["classes"] == live  # class2 is gone, its output too
    assert main(["predict", str(model), str(data), "--format", "jsonl"]) == 0
    predicted = {json.loads(line)["class"] for line in capsys.readouterr().out.splitlines()}
    assert predicted <= set(live)
    assert main(["export", str(data), "--format", "csv", "--predictions"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert {r["predicted"] for r in rows if r["kind"] == "prediction"} <= set(live)

    # --labels: a class added before importing is known; a merged class's name means where it went
    from aeep_core.session.label_import import LabelRow, import_label_file

    with LabellingSession.open(data, _settings(), project_dir=tmp_path / "other") as s:
        s.classes.add("diagonal", "4")
        s.classes.merge(2, 1)
        rows_in = [LabelRow(1, "class3/000.png", "diagonal"), LabelRow(2, "class2/000.png", "class2")]
        report = import_label_file(s, tmp_path / "have.csv", rows_in)
        assert report.imported == 2 and not report.problems
        by_name = {s.pool.names[i]: y for i, y in s.learner.labels.items()}
        assert by_name == {"class3/000.png": 3, "class2/000.png": 1}
