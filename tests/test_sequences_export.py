"""A model for new patients: ``model export`` of a sequence project, and ``predict`` on new
JSONL, Synthea and OMOP folders, events the model never saw included."""

from __future__ import annotations

import csv
import io
import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from aeep_core.learning.portable import load_model, model_events
from aeep_core.pool import DataError
from aeep_core.sequences.embedding import EventEmbedding
from aeep_core.session import LabellingSession, ProjectSettings
from aeep_tui.cli import main
from tests.conftest import SHARED_DATA
from tests.sequences_fixtures import patient_events, write_jsonl_folder, write_synthea_export

CLASSES = ["sick", "well"]
TINY = {"min_steps": 5, "max_steps": 5}
OMOP = SHARED_DATA / "omop" / "synthea27nj"
SUMMARY = re.compile(r"(\d+) events of (\d+) unknown to the model")


def _label_rounds(data: Path, rounds: int, truth: bool = True) -> dict[str, tuple[str, float]]:
    """Confirm ``rounds`` batches (the true class, or alternate classes for unlabelled
    data), then open the next batch and return its guesses, as the app shows them."""
    settings = ProjectSettings(classes=CLASSES, keys=["1", "2"], batch_size=6, device="cpu", train=TINY)
    with LabellingSession.open(data, settings) as s:
        for _ in range(rounds):
            b = s.prepare_next_batch()
            assert b is not None
            for pos, it in enumerate(b.items):
                s.label(pos, int(s.pool.labels[it.item_id]) if truth else pos % 2)
            s.confirm_batch()
        b = s.prepare_next_batch()
        assert b is not None
        return {it.name: (CLASSES[it.predicted], it.confidence) for it in b.items}


def _shown(data: Path) -> dict[str, tuple[str, float]]:
    """Person id -> (class, confidence) the app stored with its open batch."""
    with LabellingSession.open(data, read_only=True) as s:
        assert s.batch is not None
        return {it.name: (CLASSES[it.predicted], it.confidence) for it in s.batch.items}


def _predict(capsys, model: Path, *inputs: Path) -> tuple[dict[str, tuple[str, float]], tuple[int, int]]:
    """person -> (class, confidence) from ``aeep-tui predict``, and its (unknown, read) events."""
    assert main(["predict", str(model), *map(str, inputs)]) == 0
    out = capsys.readouterr()
    rows = list(csv.DictReader(io.StringIO(out.out)))
    found = SUMMARY.search(out.err)
    assert found is not None, out.err
    return {r["person"]: (r["class"], float(r["confidence"])) for r in rows}, (int(found[1]), int(found[2]))


@dataclass
class Exported:
    data: Path
    model: Path
    shown: dict[str, tuple[str, float]]  # the app's stored guesses for its open batch
    embedding: EventEmbedding  # what the project's pool was built with
    length: int


@pytest.fixture(scope="module")
def exported(tmp_path_factory) -> Exported:
    """A labelled JSONL project and its exported model (trained once for the module)."""
    data = write_jsonl_folder(tmp_path_factory.mktemp("seq") / "patients", per_class=10)
    with pytest.MonkeyPatch.context() as mp:  # the per-test home comes after a module fixture
        mp.setenv("AEEP_TUI_HOME", str(tmp_path_factory.mktemp("home")))
        _label_rounds(data, 2)
        shown = _shown(data)  # read back from the store, not from the session that chose them
        with LabellingSession.open(data, read_only=True) as s:
            embedding, length = s.pool.meta["embedding"], int(s.pool.meta["length"])
        model = tmp_path_factory.mktemp("away") / "model.pt"
        assert main(["model", "export", str(data), "--out", str(model)]) == 0
    return Exported(data, model, shown, embedding, length)


def test_the_exported_model_reproduces_the_apps_guesses_for_the_projects_patients(exported, capsys):
    model = exported.model
    got, (unknown, read) = _predict(capsys, model, exported.data)
    assert len(got) == 20 and len(exported.shown) == 6
    for person, (cls, conf) in exported.shown.items():
        assert got[person][0] == cls and got[person][1] == pytest.approx(conf, abs=1e-5)
    assert unknown == 0 and read > 0  # the pool's own events all have a vector

    # The file carries the CNN's inputs' recipe: vocabulary, vectors bit for bit, and T.
    pool_embedding, length = exported.embedding, exported.length
    _, meta = load_model(model)
    embedding, t = model_events(meta)
    assert t == length and embedding.tokens == pool_embedding.tokens
    assert np.array_equal(embedding.vectors, pool_embedding.vectors)
    beside = json.loads(Path(f"{model}.json").read_text())
    assert beside["modality"] == "sequence" and beside["classes"] == CLASSES
    assert beside["events"]["tokens"] == pool_embedding.tokens and beside["input"]["length"] == length


def test_new_patients_with_unseen_events_are_classified_and_the_unseen_counted(exported, tmp_path, capsys):
    model, length = exported.model, exported.length
    rng = np.random.default_rng(5)
    known = patient_events("sick", rng, n=6)
    unseen = [{"time": f"2031-0{m}-01", "code": f"X{m}", "text": "never seen", "type": "condition"} for m in (1, 2, 3)]
    # Long ago, before the last T events: the model never reads it, so it is not counted.
    ancient = {"time": "1901-01-01", "code": "OLD", "text": "never seen", "type": "condition"}
    recent = patient_events("well", rng, n=length)
    people = {
        "known": known,
        "mixed": known + unseen,
        "strange": unseen,
        "other strange": [{**e, "code": "Y" + e["code"]} for e in unseen],
        "ancient": [ancient, *recent],
        "recent": recent,
    }
    new = tmp_path / "new.jsonl"
    new.write_text("".join(json.dumps({"id": pid, "events": ev}) + "\n" for pid, ev in people.items()))
    got, (unknown, read) = _predict(capsys, model, new)
    assert set(got) == set(people) and {c for c, _ in got.values()} <= set(CLASSES)
    assert unknown == 9 and read == 6 + 9 + 3 + 3 + 2 * length
    assert all(0.5 <= conf <= 1 for _, conf in got.values())
    # Every unknown code gets the same (zero) vector; an event beyond the last T changes nothing.
    assert got["strange"] == got["other strange"] and got["ancient"] == got["recent"]

    # A Synthea export of new patients goes through its own reader, to the same columns.
    pats = {f"p{i}": {"birth": "1970-01-01", "events": patient_events("sick", rng)} for i in range(3)}
    got, (unknown, read) = _predict(capsys, model, write_synthea_export(tmp_path / "synthea", pats))
    assert set(got) == set(pats) and read == sum(min(len(p["events"]), length) for p in pats.values())


def test_a_damaged_vocabulary_is_refused_in_one_line(exported):
    _, meta = load_model(exported.model)
    with pytest.raises(DataError, match="event vocabulary is missing or damaged"):
        model_events({**meta, "events": {**meta["events"], "vectors": meta["events"]["vectors"][:-8]}})


@pytest.mark.skipif(not (OMOP / "PERSON.csv").is_file(), reason=f"OMOP sample not present at {OMOP} (../shared/data/omop)")
def test_an_omop_project_exports_a_model_that_predicts_its_own_people(tmp_path, capsys):
    shown = _label_rounds(OMOP, 1, truth=False)
    model = tmp_path / "omop.pt"
    assert main(["model", "export", str(OMOP), "--out", str(model)]) == 0
    assert "known events" in capsys.readouterr().err
    got, (unknown, read) = _predict(capsys, model, OMOP)
    assert len(got) == 28 and unknown == 0 and read > 0
    for person, (cls, conf) in shown.items():
        assert got[person][0] == cls and got[person][1] == pytest.approx(conf, abs=1e-5)
