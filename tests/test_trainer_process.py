"""Training out of the UI's process (aeep_core.session.trainer_process): the same choices
as in the app's own process, answers and corrections in order across the boundary, and a
trainer process killed mid-batch replaced from the store with nothing lost."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import pytest
import torch

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_core.store.checkpoints import read_checkpoint
from tests.conftest import make_image_folder


def settings(**kw) -> ProjectSettings:
    base = dict(
        classes=["class0", "class1", "class2"],
        keys=["1", "2", "3"],
        batch_size=5,
        device="cpu",
        seed=4,
        train={"min_steps": 20, "max_steps": 20},
        steps_per_label=4,
        lookahead=2,
        choose_within=None,  # the choice waits for every step owed: replays are exact
    )
    return ProjectSettings(**{**base, **kw})


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    return make_image_folder(tmp_path_factory.mktemp("images") / "img", per_class=16)


def truth(s: LabellingSession, position: int) -> int:
    return int(s.pool.labels[s.batch.items[position].item_id])


def truth_of(s: LabellingSession, item: int) -> int:
    return int(s.pool.labels[item])


def last_weights(s: LabellingSession) -> dict[str, torch.Tensor]:
    row = s._store.last_checkpoint()
    state = read_checkpoint(s.project_path, row["file"], row["sha256"])
    return state.get("average") or state["model"]


def label_with_slips(s: LabellingSession, correct_item: int | None = None) -> None:
    """Answer the batch on screen with a slip taken back, a skip, and (optionally) a
    correction of an earlier item between two answers: everything that must keep its order."""
    s.label(0, (truth(s, 0) + 1) % 3)
    s.undo()
    for pos in range(len(s.batch.items)):
        s.label(pos, SKIPPED if pos == 3 else truth(s, pos))
        if pos == 1 and correct_item is not None:
            s.review.correct(correct_item, SKIPPED)


def run(folder: Path, project: Path, separate_process: bool, pipelined: bool, rounds: int = 4, kill_at: int | None = None):
    """Label ``rounds`` batches; return every batch's items and the last model's weights.
    ``kill_at``: SIGKILL the trainer process after the first answer of that round."""
    batches = []
    with LabellingSession.open(
        folder, settings(pipelined=pipelined), project_dir=project, separate_process=separate_process, trainer_threads=1
    ) as s:
        first_item = None
        for r in range(rounds):
            batch = s.prepare_next_batch()
            batches.append([it.item_id for it in batch.items])
            first_item = first_item if first_item is not None else batch.items[0].item_id
            if r == 2:
                s.label(0, truth(s, 0))
            if r == kill_at:
                os.kill(s.engine.trainer_pid, signal.SIGKILL)
                deadline = time.monotonic() + 30
                while s.engine.restarts == 0 and time.monotonic() < deadline:
                    s.check_trainer()  # what the app's timer does
                    time.sleep(0.05)
                assert s.engine.restarts == 1 and "killed by signal 9" in (s.engine.last_failure or "")
            label_with_slips(s, correct_item=first_item if r == 2 else None)
            if r == 1:  # changed after the last card: the batch being chosen ahead is stale
                s.label(2, (truth(s, 2) + 1) % 3)
                s.label(2, truth(s, 2))
            if r == 3:  # a correction between the last card and Enter: stale too
                s.review.correct(first_item, truth_of(s, first_item))
            s.confirm_batch()
        return batches, last_weights(s), s.stats


@pytest.mark.parametrize("pipelined", [False, True], ids=["plain", "pipelined"])
def test_a_trainer_process_chooses_exactly_what_this_process_would(folder, tmp_path, pipelined):
    here, weights_here, _ = run(folder, tmp_path / "here", separate_process=False, pipelined=pipelined)
    there, weights_there, _ = run(folder, tmp_path / "there", separate_process=True, pipelined=pipelined)
    # Answers, a slip and its undo, skips and a review correction crossed the process
    # boundary in the order given: the same batches, and the same weights bit for bit.
    assert there == here
    assert weights_there.keys() == weights_here.keys()
    assert all(torch.equal(weights_there[k], weights_here[k]) for k in weights_here)


def test_a_trainer_killed_mid_batch_is_restarted_from_the_store_and_loses_nothing(folder, tmp_path):
    reference, weights_ref, _ = run(folder, tmp_path / "ref", separate_process=True, pipelined=True)
    killed, weights_killed, stats = run(folder, tmp_path / "killed", separate_process=True, pipelined=True, kill_at=2)
    # The new trainer resumed from round 2's checkpoint and replayed every stored answer:
    # it chose what the trainer never killed chose.
    assert killed == reference
    assert all(torch.equal(weights_killed[k], weights_ref[k]) for k in weights_ref)
    assert stats.trainer_restarts == 1 and stats.labelled == len(reference) * 5 - len(reference)  # one skip a batch


def test_a_plain_retrainer_killed_between_batches_retrains_in_a_new_process(folder, tmp_path):
    reference, weights_ref, _ = run(folder, tmp_path / "ref", separate_process=True, pipelined=False, rounds=3)
    with LabellingSession.open(
        folder, settings(pipelined=False), project_dir=tmp_path / "killed", separate_process=True, trainer_threads=1
    ) as s:
        batches = []
        for r in range(3):
            if r == 2:
                os.kill(s.engine.trainer_pid, signal.SIGKILL)
            batches.append([it.item_id for it in s.prepare_next_batch().items])
            label_with_slips(s, correct_item=batches[0][0] if r == 2 else None)
            s.confirm_batch()
        assert batches == reference and s.engine.restarts == 1
        assert all(torch.equal(last_weights(s)[k], weights_ref[k]) for k in weights_ref)


def test_the_plain_retrainer_starts_on_the_next_batch_from_the_guess_for_the_last_card(folder, tmp_path):
    with LabellingSession.open(
        folder, settings(pipelined=False), project_dir=tmp_path / "p", separate_process=True, trainer_threads=1
    ) as s:
        retrainer = s.engine.retrainer
        for r in range(4):
            batch = s.prepare_next_batch()
            sent, last = retrainer.retrains_sent, len(batch.items) - 1
            for position in range(last):
                s.label(position, truth(s, position))
            if r == 0:  # a cold batch has no guesses: nothing starts before the last answer
                assert retrainer.retrains_sent == sent
                s.label(last, truth(s, last))
                assert retrainer.retrains_sent == sent + 1
            elif r in (1, 3):  # the last answer is the model's guess: the retrain started then stands
                assert retrainer.retrains_sent == sent + 1
                s.label(last, batch.items[last].predicted)
                assert retrainer.retrains_sent == sent + 1
            else:  # another answer: that retrain is cancelled, and one starts on the real batch
                assert retrainer.retrains_sent == sent + 1
                s.label(last, (batch.items[last].predicted + 1) % 3)
                assert retrainer.retrains_sent == sent + 2
            before_enter = retrainer.retrains_sent
            s.confirm_batch()
            assert s.prepare_next_batch() is not None
            assert retrainer.retrains_sent == before_enter  # Enter took the batch chosen ahead


@pytest.mark.parametrize("follow_pace", [False, True], ids=["exact", "follow-pace"])
def test_a_correction_between_confirming_and_choosing_is_not_lost_to_work_started_ahead(folder, tmp_path, follow_pace):
    with LabellingSession.open(
        folder,
        settings(pipelined=False, follow_pace=follow_pace),
        project_dir=tmp_path / "p",
        separate_process=True,
        trainer_threads=1,
    ) as s:
        retrainer = s.engine.retrainer
        first = s.prepare_next_batch()
        for position in range(len(first.items)):
            s.label(position, truth(s, position))
        s.confirm_batch()
        s.prepare_next_batch()
        for position in range(len(s.batch.items)):
            s.label(position, truth(s, position))
        sent = retrainer.retrains_sent  # work started ahead on this batch
        item = first.items[0].item_id
        s.confirm_batch()
        s.review.correct(item, (truth_of(s, item) + 1) % 3)
        s.prepare_next_batch()
        assert retrainer.retrains_sent == sent + 1  # a new retrain, on L with the correction
        assert s.learner.labels[item] == (truth_of(s, item) + 1) % 3


def test_following_the_pace_the_plain_retrainer_trains_ahead_and_the_late_answers_join_l(folder, tmp_path):
    """follow_pace: training starts as many cards before the last as the measured training
    time and pace need; Enter only chooses, on L with every answer; a changed early
    answer starts it again; the round stores the pace; reopening resumes exactly."""
    project = tmp_path / "ahead"
    with LabellingSession.open(
        folder, settings(pipelined=False, follow_pace=True), project_dir=project, separate_process=True, trainer_threads=1
    ) as s:
        engine, retrainer = s.engine, s.engine.retrainer
        assert engine.lookahead == s.settings.lookahead == 2  # nothing measured yet: the least
        for r in range(3):
            batch = s.prepare_next_batch()
            k, sent, ahead = len(batch.items), retrainer.retrains_sent, engine.lookahead
            for position in range(k):
                s.label(position, truth(s, position))
                left = k - position - 1
                # training starts once `lookahead` cards are left, on the answers so far
                assert retrainer.retrains_sent == sent + (left <= engine.lookahead)
                if r == 2 and left == engine.lookahead:  # an early answer changes: it starts again
                    s.label(0, (truth(s, 0) + 1) % 3)
                    assert retrainer.retrains_sent == sent + 2
                    sent += 1
            s.confirm_batch()
            if r > 0:  # the confirmed round still says how its batch was chosen
                assert "late_answers" in json.loads(s._store.rounds()[-1]["engine"])
            chosen = s.prepare_next_batch()
            assert retrainer.retrains_sent == sent + 2  # Enter only chose, with the weights trained ahead
            assert len(s.learner.labels) == (r + 1) * k  # the late answers are in L for the next round
            assert not set(it.item_id for it in chosen.items) & set(s.learner.labels)
            # A person answering in milliseconds against a training of a fraction of a
            # second: train as early as allowed, half a batch ahead.
            assert engine.lookahead == max(1, s.settings.batch_size // 2)
            stored = json.loads(s._store.rounds()[-1]["engine"])
            assert stored["late_answers"] == ahead  # the model that chose had not seen them
            assert stored["lookahead"] == engine.lookahead and stored["pace"]["seconds_per_answer"] > 0
        items, weights = [it.item_id for it in chosen.items], last_weights(s)
    with LabellingSession.open(folder, None, project_dir=project, separate_process=True, trainer_threads=1) as again:
        assert [it.item_id for it in again.batch.items] == items
        # the pace measured before: training starts as far ahead from the first batch
        assert again.engine.pace.state_dict() == engine.pace.state_dict() and again.engine.lookahead == engine.lookahead
        assert len(again.learner.labels) == 3 * k
        model = again.learner.model.state_dict()
        assert all(torch.equal(model[name], weights[name]) for name in weights)


async def test_the_app_carries_on_when_its_trainer_process_is_killed(image_folder):
    from aeep_tui.app import LabellingApp
    from tests.test_app import SIZE, batch_ready, panel_text, quick_settings, until

    app = LabellingApp(image_folder, quick_settings(pipelined=True, steps_per_label=2), confirm_setup=False)
    assert app.separate_process  # what the app does by default
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        session = app.session
        trainer = session.engine.trainer_pid
        assert trainer is not None and trainer != os.getpid()
        await pilot.press("1", "2")
        os.kill(trainer, signal.SIGKILL)  # mid-batch
        await pilot.press("3", "1")  # keys keep answering; each answer is stored at once
        assert [it.answer for it in session.batch.items] == [0, 1, 2, 0]
        await until(pilot, lambda: session.engine.restarts == 1, what="the trainer's restart")
        await until(pilot, lambda: "trainer restarted 1×" in panel_text(app, "#stat-model"), what="the panel saying so")
        assert session.engine.trainer_pid not in (None, trainer)
        await pilot.press("enter")
        await until(pilot, batch_ready(app, 2), what="the batch the new trainer chose")
        assert session.stats.labelled == 4 and all(it.predicted is not None for it in session.batch.items)
        await pilot.press("q")


def test_the_lookahead_follows_the_time_to_choose_and_the_persons_pace():
    from aeep_core.learning.pipelined import Pace

    pace = Pace()
    assert pace.lookahead(None, 0.0, least=2, k=12) == 2  # nothing measured yet: the least
    for t in (0.0, 1.0, 2.0, 3.0, 100.0, 101.0):  # one answer a second; a pause of 97 s is no pace
        pace.answered(generation=0, arrived=t)
    pace.answered(generation=-1, arrived=float("inf"))  # replayed history is not the pace
    assert pace.seconds_per_answer == pytest.approx(1.0)
    # a choice that took 2.5 s from the lookahead point: 3 answers' time, plus one to spare
    assert pace.lookahead(due=10.0, chosen=12.5, least=2, k=12) == 4
    # a slower machine (choosing takes 9 s) chooses further ahead, never past the batch
    assert pace.lookahead(due=0.0, chosen=30.0, least=2, k=12) == 11
    restored = Pace()
    restored.load_state_dict(pace.state_dict())
    assert restored.state_dict() == pace.state_dict()


def test_the_pipelined_trainer_believes_a_slower_choice_at_once():
    """Its choice grows with L: a smoothed time lagged the growth, and Enter waited."""
    from aeep_core.learning.pipelined import Pace

    smoothed, at_once = Pace(), Pace(slower_at_once=True)
    for pace in (smoothed, at_once):
        for t in (0.0, 1.0, 2.0):
            pace.answered(generation=0, arrived=t)
        pace.lookahead(due=0.0, chosen=4.0, least=2, k=20)
    # the next choice took 8 s: 8 answers' time, plus one to spare
    assert at_once.lookahead(due=0.0, chosen=8.0, least=2, k=20) == 9
    assert smoothed.lookahead(due=0.0, chosen=8.0, least=2, k=20) == 7  # 0.7 * 4 + 0.3 * 8 = 5.2 s
    # a faster one is believed slowly by both
    assert at_once.lookahead(due=0.0, chosen=2.0, least=2, k=20) == 8  # 0.7 * 8 + 0.3 * 2 = 6.2 s
