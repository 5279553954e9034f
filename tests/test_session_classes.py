"""Classes in a running project (issue 26), through the session: add one mid-batch and use
it at once, rename one, merge one into another with every answer re-pointed and the
history kept; plain and pipelined engines, reopening, and a crash that resumes exactly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_core.store.checkpoints import read_checkpoint
from aeep_core.store.classes import class_changes
from tests.conftest import make_image_folder

FAST = {"min_steps": 10, "max_steps": 10}


def settings(**kw) -> ProjectSettings:
    base = dict(
        classes=["class0", "class1", "class2"], keys=["1", "2", "3"], batch_size=6, device="cpu", train=FAST, candidates=60
    )
    return ProjectSettings(**{**base, **kw})


@pytest.fixture
def four_classes(tmp_path):
    """Shapes of four classes; the projects below start knowing three."""
    return make_image_folder(tmp_path / "images", per_class=8, n_classes=4)


def truth(s: LabellingSession, position: int) -> int:
    """The class a person would give: the item's folder, by the project's current names
    (a class the project does not know yet is skipped)."""
    folder = s.batch.items[position].name.split("/")[0]
    known = {c.name: c.index for c in s.classes.current.live}
    return known.get(folder, SKIPPED)


def answer_rest(s: LabellingSession) -> None:
    for pos, it in enumerate(s.batch.items):
        if it.answer is None:
            s.label(pos, truth(s, pos))
    s.confirm_batch()


def test_add_a_class_mid_batch_rename_it_then_merge_another_keeping_every_answer(four_classes, tmp_path):
    project = tmp_path / "p"
    with LabellingSession.open(four_classes, settings(), project_dir=project) as s:
        s.prepare_next_batch()
        s.label(0, truth(s, 0))
        added = s.classes.add("diagonal", "4")  # met mid-batch: used at once
        assert (added.index, s.classes.current.names, s.pool.class_names) == (
            3,
            [*settings().classes, "diagonal"],
            s.classes.current.names,
        )
        s.label(1, 3)
        s.label(2, 3)
        answer_rest(s)
        s.prepare_next_batch()  # the next round trains with four outputs
        assert s.learner.model.head.out_features == 4
        row = s._store.last_checkpoint()
        assert read_checkpoint(project, row["file"], row["sha256"])["model"]["head.weight"].shape[0] == 4
        s.classes.rename(3, "slash")
        assert s.classes.current[3].name == "slash" and s.pool.class_names[3] == "slash"
        assert s.report().labels_per_class[3] == 2 and s.report().classes[3] == "slash"  # answers stay on it

        # class1 merged into class0: answers of confirmed batches and of the open one
        s.label(0, 1)
        confirmed = [i for i, y in s.learner.labels.items() if y == 1]
        assert confirmed
        moved = s.classes.merge(1, 0)
        assert moved == len(confirmed) + 1
        assert 1 not in s.learner.labels.values() and all(s.learner.labels[i] == 0 for i in confirmed)
        assert s.batch.items[0].answer == 0 and s.learner.merged_classes == {1}
        assert [h.label for h in s.review.history(confirmed[0])] == [1, 0]  # the old answer is kept
        with pytest.raises(ValueError, match="not a class"):
            s.label(1, 1)
        assert [c.name for c in s.classes.current.live] == ["class0", "class2", "slash"]
        report = s.report()
        assert report.classes == ["class0", "class2", "slash"] and report.guess_confusion.shape == (3, 3)
        answer_rest(s)
        proposal_predictions = [it.predicted for it in s.prepare_next_batch().items]
        assert 1 not in proposal_predictions  # a merged class is never guessed
        labels, answers = dict(s.learner.labels), [it.answer for it in s.batch.items]
        s.label(0, 0)
        s.undo()  # undo still works after a merge

    with LabellingSession.open(four_classes, project_dir=project) as again:  # reopening keeps all of it
        assert again.classes.current.names == ["class0", "class1", "class2", "slash"]
        assert again.classes.current.merged == {1} and again.learner.merged_classes == {1}
        assert again.pool.class_names == again.classes.current.names
        assert again.learner.labels == labels and [it.answer for it in again.batch.items] == answers


PIPELINED = dict(pipelined=True, steps_per_label=3, seed=1, choose_within=None)


def _crash(session: LabellingSession) -> None:
    """What SIGKILL leaves: the trainer gone, the database closed without any goodbye."""
    session.engine.close()
    session._store.close()


def _third_batch_with_class_changes(s: LabellingSession) -> None:
    s.label(0, truth(s, 0))
    s.classes.add("class3", "4")
    for pos in range(1, 4):
        s.label(pos, truth(s, pos))
    s.label(4, 3)  # one answer of the new class, whatever the card
    s.classes.merge(2, 1)


def test_a_pipelined_session_picks_up_class_changes_and_resumes_them_exactly(four_classes, tmp_path):
    torch.set_num_threads(1)
    with LabellingSession.open(four_classes, settings(**PIPELINED), project_dir=tmp_path / "ref") as ref:
        for _ in range(2):
            ref.prepare_next_batch()
            answer_rest(ref)
        ref.prepare_next_batch()
        trainer = ref.engine._pipe
        _third_batch_with_class_changes(ref)
        assert ref.engine._pipe is trainer  # the same trainer took every change: no restart
        answer_rest(ref)
        expected = [it.name for it in ref.prepare_next_batch().items]
        assert ref.engine._pipe.wait_idle(60)  # the trainer takes answers into L in its own time
        assert ref.learner.model.head.out_features == 4 and 2 not in ref.learner.labels.values()
        assert not {it.predicted for it in ref.batch.items} & {2}

    session = LabellingSession.open(four_classes, settings(**PIPELINED), project_dir=tmp_path / "run")
    for _ in range(2):
        session.prepare_next_batch()
        answer_rest(session)
    session.prepare_next_batch()
    _third_batch_with_class_changes(session)
    _crash(session)
    with LabellingSession.open(four_classes, project_dir=tmp_path / "run") as again:
        assert again.classes.current.names[3] == "class3" and again.classes.current.merged == {2}
        answer_rest(again)
        assert [it.name for it in again.prepare_next_batch().items] == expected


def test_class_changes_are_refused_cleanly(four_classes, tmp_path):
    with LabellingSession.open(four_classes, settings(), project_dir=tmp_path / "p") as s:
        with pytest.raises(ValueError, match="exists"):
            s.classes.add("class0", "9")
        with pytest.raises(ValueError, match="taken"):
            s.classes.add("new", "1")
        with pytest.raises(ValueError, match="itself"):
            s.classes.merge(0, 0)
        assert len(s.classes.current) == 3 and s.pool.n_classes == 3  # nothing half-done
    with LabellingSession.open(four_classes, project_dir=tmp_path / "p", read_only=True) as viewer:
        with pytest.raises(Exception, match="read-only"):
            viewer.classes.add("new", "9")
        assert np.array_equal(viewer.pool.class_names, ["class0", "class1", "class2"])


_ADD_THEN_WAIT = """
import json, sys, time
from aeep_core.session import LabellingSession, ProjectSettings
settings = ProjectSettings(classes=["class0", "class1", "class2"], keys=["1", "2", "3"], batch_size=6, device="cpu",
                           train={"min_steps": 10, "max_steps": 10})
s = LabellingSession.open(sys.argv[1], settings, project_dir=sys.argv[2])
s.prepare_next_batch()
s.label(0, 2)
added = s.classes.add("class3", "4")
print(json.dumps({"index": added.index, "name": s.batch.items[0].name}), flush=True)
time.sleep(600)
"""


def test_kill_9_right_after_adding_a_class_loses_nothing(four_classes, tmp_path):
    project = tmp_path / "p"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    worker = subprocess.Popen(
        [sys.executable, "-c", _ADD_THEN_WAIT, str(four_classes), str(project)], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        line = worker.stdout.readline()
        os.kill(worker.pid, signal.SIGKILL)  # the moment the add returned: no close, no goodbye
        assert worker.wait(timeout=30) == -signal.SIGKILL
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    told = json.loads(line)
    with LabellingSession.open(four_classes, project_dir=project) as s:  # the lock of the dead writer blocks nobody
        added = s.classes.current[told["index"]]
        assert (added.name, added.key) == ("class3", "4") and s.pool.class_names[3] == "class3"
        assert [r["change"] for r in class_changes(s._store)][-1] == "add"
        assert s.batch.items[0].name == told["name"] and s.batch.items[0].answer == 2  # the answer before it too
        s.label(1, 3)  # and the class is usable at once
        answer_rest(s)
        s.prepare_next_batch()
        assert s.learner.model.head.out_features == 4
