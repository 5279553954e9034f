"""The zero-wait session: answers reach the trainer at once, batches are chosen ahead,
and a crash still resumes to the very batch an uninterrupted session would choose."""

import torch

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_core.session.pipelined import PipelinedEngine

SETTINGS = ProjectSettings(
    classes=["class0", "class1", "class2"],
    keys=["1", "2", "3"],
    batch_size=5,
    seed=1,
    device="cpu",
    train={"min_steps": 10, "max_steps": 10},
    pipelined=True,
    steps_per_label=3,
    candidates=60,
    # The crash tests compare with an uninterrupted run, answer for answer: the choice
    # waits for every owed step (the app's default lets a lagging machine choose early).
    choose_within=None,
)


def _truth(session, pos):
    return int(session.pool.labels[session.batch.items[pos].item_id])


def _answer_all(session, skip_last=False):
    n = len(session.batch.items)
    for pos in range(n):
        if session.batch.items[pos].answer is None:
            session.label(pos, SKIPPED if skip_last and pos == n - 1 else _truth(session, pos))
    session.confirm_batch()


def test_pipelined_session_labels_batches_without_repeats(image_folder, tmp_path):
    with LabellingSession.open(image_folder, SETTINGS, project_dir=tmp_path / "p") as session:
        assert isinstance(session.engine, PipelinedEngine)
        seen = set()
        for round_ in range(4):
            batch = session.prepare_next_batch()
            ids = {it.item_id for it in batch.items}
            assert not ids & seen and len(ids) == 5
            seen |= ids
            if round_ > 0:
                assert all(it.predicted is not None for it in batch.items)
                assert session.stats.m is not None and 1 <= session.stats.m <= 5
            _answer_all(session, skip_last=round_ == 2)
        stats = session.stats
        assert stats.labelled == 19 and stats.skipped == 1
        assert stats.mp_history[1] is not None


def test_pipelined_session_respects_the_budget(image_folder, tmp_path):
    settings = ProjectSettings(**{**SETTINGS.__dict__, "budget": 12})
    with LabellingSession.open(image_folder, settings, project_dir=tmp_path / "p") as session:
        sizes = []
        while (batch := session.prepare_next_batch()) is not None:
            sizes.append(len(batch.items))
            _answer_all(session)
        assert sizes == [5, 5, 2] and session.finished


def _crash(session) -> None:
    """What SIGKILL leaves: the trainer gone, the database closed without any goodbye."""
    session.engine.close()
    session._store.close()


def _first_answers(session) -> None:
    """The start of batch 3, with a slip taken back: the trainer sees all of it."""
    session.label(0, (_truth(session, 0) + 1) % 3)
    session.undo()
    session.label(0, _truth(session, 0))
    session.label(1, _truth(session, 1))


def test_crash_mid_batch_resumes_to_the_same_next_batch(image_folder, tmp_path):
    torch.set_num_threads(1)
    with LabellingSession.open(image_folder, SETTINGS, project_dir=tmp_path / "ref") as ref:
        for _ in range(2):
            ref.prepare_next_batch()
            _answer_all(ref)
        ref.prepare_next_batch()
        _first_answers(ref)
        _answer_all(ref)
        expected = [it.name for it in ref.prepare_next_batch().items]

    session = LabellingSession.open(image_folder, SETTINGS, project_dir=tmp_path / "run")
    for _ in range(2):
        session.prepare_next_batch()
        _answer_all(session)
    session.prepare_next_batch()
    shown = [it.name for it in session.batch.items]
    _first_answers(session)
    _crash(session)

    with LabellingSession.open(image_folder, project_dir=tmp_path / "run") as again:
        assert [it.name for it in again.batch.items] == shown
        assert [it.answer is not None for it in again.batch.items] == [True, True, False, False, False]
        _answer_all(again)
        assert [it.name for it in again.prepare_next_batch().items] == expected


def test_steps_per_answer_follow_the_machine_and_resume_as_recorded(image_folder, tmp_path, monkeypatch):
    import threading

    from aeep_core.learning import pipelined
    from aeep_core.learning.training import steps_for_pace

    assert [steps_for_pace(s) for s in (2.0, 30.0, 74.0, 1000.0)] == [3, 15, 25, 25]
    measured = []

    def measure(pool):
        measured.append(threading.current_thread().name)
        return 16.0

    monkeypatch.setattr(pipelined, "training_steps_per_second", measure)
    settings = ProjectSettings(**{**SETTINGS.__dict__, "steps_per_label": 0})  # 0: measure this machine
    session = LabellingSession.open(image_folder, settings, project_dir=tmp_path / "p")
    for _ in range(2):
        session.prepare_next_batch()
        _answer_all(session)
    session.prepare_next_batch()
    # 16 steps/s x 0.5 s, measured by the trainer's own thread: the first batch did not wait for it
    assert session.engine._pipe.steps_per_label == 8 and measured == ["aeep-pipeline"]
    _crash(session)
    with LabellingSession.open(image_folder, project_dir=tmp_path / "p") as again:
        assert again.engine._pipe.steps_per_label == 8 and len(measured) == 1  # from the snapshot, not re-measured


def test_a_batch_is_shown_before_its_model_is_tested_and_the_test_is_filed_with_it(tmp_path):
    """The trainer tests the choosing model after sending the batch; the session records
    that test with the batch's own round when it comes (accuracy and confusion agree)."""
    import numpy as np

    from tests.conftest import make_idx_folder

    folder = make_idx_folder(tmp_path / "idx", n_train=60, n_test=30)
    settings = ProjectSettings(**{**SETTINGS.__dict__, "classes": ["0", "1", "2"]})
    with LabellingSession.open(folder, settings, project_dir=tmp_path / "p") as session:
        for _ in range(2):
            session.prepare_next_batch()
            _answer_all(session)
        batch = session.prepare_next_batch()
        pending = session.evaluation_pending
        late = session.record_late_evaluation()  # None if the test was in before the batch
        assert (late is not None) == pending and not session.evaluation_pending
        stats = session.stats
        assert stats.round == batch.round and stats.accuracy_history[-1] is not None
        assert late is None or late == stats.accuracy_history[-1]
        confusion = np.array(dict((r, c) for r, _, c in session._store.round_predictions())[batch.round])
        assert confusion.sum() == 30 and np.trace(confusion) / 30 == stats.accuracy_history[-1]
        assert session.record_late_evaluation() is None  # nothing awaited any more
