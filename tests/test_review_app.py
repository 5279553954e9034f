"""The review screen through the real app (Pilot): a correction changes the next training
set and the export, the old answer stays in the history; un-skip; corrections while a
retrain runs (plain and pipelined); ``aeep-tui review``; the orderings."""

from __future__ import annotations

import csv
import io

from aeep_core.session import SKIPPED, LabellingSession, ReviewItem
from aeep_core.session.review import by_round, disagreements_first, of_class
from aeep_core.store import Store
from aeep_tui.app import LabellingApp
from aeep_tui.cli import main
from aeep_tui.keys import CLASS_KEYS
from aeep_tui.screens.labelling import LabellingScreen
from aeep_tui.screens.review import ReviewScreen
from aeep_tui.widgets.review_card import ReviewCard
from tests.test_app import SIZE, batch_ready, labelling_screen, quick_settings, subtitle, until

KEYS = ["1", "2", "3"]


async def label_first_batch(pilot, app, skip_last: bool = True) -> list[int]:
    """Answer batch 1 with the true classes (the last card skipped) and confirm it; return
    the answers given."""
    await until(pilot, batch_ready(app, 1), what="the first batch")
    session = app.session
    answers = []
    for position, item in enumerate(session.batch.items):
        last = position == len(session.batch.items) - 1
        answer = SKIPPED if skip_last and last else int(session.pool.labels[item.item_id])
        await pilot.press("s" if answer == SKIPPED else KEYS[answer])
        answers.append(answer)
    await pilot.press("enter")
    return answers


async def open_review(pilot, app) -> ReviewScreen:
    await pilot.press("R")
    await until(pilot, lambda: isinstance(app.screen, ReviewScreen), what="the review screen")
    screen = app.screen
    await until(pilot, lambda: "computing" not in screen.model_note, what="the model's predictions")
    await pilot.press("R")  # batch by batch: a known order
    await until(pilot, lambda: screen.cards and all(c.is_mounted for c in screen.cards), what="the cards")
    return screen


def export_csv(data, out) -> dict[str, str]:
    """``aeep-tui export DATA`` (read-only: the app keeps the project open): path -> label."""
    assert main(["export", str(data), "--format", "csv", "--out", str(out)]) == 0
    return {r["path"]: r["label"] for r in csv.DictReader(io.StringIO(out.read_text()))}


async def test_a_correction_changes_training_and_export_and_keeps_the_history(image_folder, tmp_path):
    app = LabellingApp(image_folder, quick_settings(budget=40), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        answers = await label_first_batch(pilot, app)
        await until(pilot, batch_ready(app, 2), what="the batch after retraining")
        session = app.session
        screen = await open_review(pilot, app)
        # R is no class key (those are 1-9, 0 and lower-case letters): nothing was answered
        assert all(it.answer is None for it in session.batch.items) and "R" not in CLASS_KEYS
        assert [it.round for it in screen.view] == [1, 1, 1, 1] and len(screen.cards) == 4
        assert all(isinstance(c, ReviewCard) and c.show_guess for c in screen.cards)
        assert all(it.model_predicted is not None for it in screen.items)  # the trained model's view
        first = screen.view[0]
        assert subtitle(screen.cards[0]) == f"{KEYS[answers[0]]} ▸ class{answers[0]}"
        new = (answers[0] + 1) % 3
        await pilot.press(KEYS[new])
        # (a) the next training set holds the new answer
        assert session.learner.labels[first.item_id] == new
        assert subtitle(screen.cards[0]).startswith("✎")
        assert screen.cursor == 1  # on to the next item
        # (b) the export says the new label
        path = str(image_folder.resolve() / first.name)
        assert export_csv(image_folder, tmp_path / "labels.csv")[path] == f"class{new}"
        # (c) the store keeps both answers, with their times
        store = Store.open(session.project_path, read_only=True)
        try:
            rows = store.query(
                "SELECT l.label, l.at, l.corrected_after FROM labels l JOIN items i ON i.id = l.item_id "
                "WHERE i.path = ? ORDER BY l.id",
                (first.name,),
            )
        finally:
            store.close()
        assert [(r["label"], r["corrected_after"] is not None) for r in rows] == [(answers[0], False), (new, True)]
        assert 0 < rows[0]["at"] <= rows[1]["at"]
        await pilot.press("left")
        history = str(screen.query_one("#review-history").render())
        lines = history.splitlines()
        assert len(lines) == 3 and lines[1].endswith(f"class{answers[0]}") and lines[2].endswith(f"class{new} ✎")

        # un-skip: the skipped card gets a class and joins the training set
        skipped = screen.view[3]
        assert skipped.answer == SKIPPED and skipped.item_id not in session.learner.labels
        await pilot.press("right", "right", "right", "3")
        assert session.learner.labels[skipped.item_id] == 2 and skipped.item_id not in session.learner.skipped
        # s skips a label; on a skip it sends the item back to the pool
        await pilot.press("left", "s")
        assert screen.view[2].item_id in session.learner.skipped
        await pilot.press("left", "s")
        assert screen.view[2].answer is None and screen.view[2].item_id in session.learner.unlabelled_ids()

        await pilot.press("escape")
        assert isinstance(app.screen, LabellingScreen)
        assert app.session.stats.labelled == 3 and app.session.stats.skipped == 0
        await pilot.press("q")
    with LabellingSession.open(image_folder) as again:  # reopening: the same L
        assert again.learner.labels[first.item_id] == new and again.learner.labels[skipped.item_id] == 2


async def test_undo_in_review_gives_back_the_answer_before_and_keeps_every_answer(image_folder):
    app = LabellingApp(image_folder, quick_settings(budget=40), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await label_first_batch(pilot, app)
        await until(pilot, batch_ready(app, 2), what="the batch after retraining")
        session = app.session
        screen = await open_review(pilot, app)
        first, second = screen.view[0], screen.view[1]
        before_first, before_second = first.answer, second.answer
        await pilot.press(KEYS[(before_first + 1) % 3], KEYS[(before_second + 1) % 3])
        assert screen.cursor == 2 and len(screen.undoable) == 2

        await pilot.press("backspace")  # the newest correction first, and the cursor goes to it
        assert second.answer == before_second and session.learner.labels[second.item_id] == before_second
        assert screen.cursor == 1 and first.answer == (before_first + 1) % 3
        assert subtitle(screen.cards[1]).endswith(f"class{before_second}")
        await pilot.press("backspace", "backspace")  # the second press has nothing left to undo
        assert first.answer == before_first and session.learner.labels[first.item_id] == before_first
        assert screen.cursor == 0 and screen.undoable == []
        history = [h.label for h in session.review.history(first.item_id)]
        assert history == [before_first, (before_first + 1) % 3, before_first]  # nothing erased
        await pilot.press("q")
    with LabellingSession.open(image_folder) as again:
        assert again.learner.labels[first.item_id] == before_first
        assert again.learner.labels[second.item_id] == before_second


async def test_a_correction_during_a_retrain_is_queued_not_lost(image_folder):
    app = LabellingApp(image_folder, quick_settings(train={"min_steps": 100_000, "max_steps": 100_000}), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        answers = await label_first_batch(pilot, app, skip_last=False)
        labelling = labelling_screen(app)
        await until(pilot, lambda: labelling.busy, what="the retrain")
        session = app.session
        screen = await open_review(pilot, app)
        item = screen.view[0].item_id
        await pilot.press(KEYS[(answers[0] + 1) % 3])
        assert labelling.busy  # still training: L waits for it
        assert session.learner.labels[item] == answers[0]
        assert session.review.history(item)[-1].label == (answers[0] + 1) % 3  # saved already
        await pilot.press("q")  # stops the retrain; the queued correction is taken then
        await until(pilot, lambda: app.session is None, timeout=30, what="quit during training")
    assert session.learner.labels[item] == (answers[0] + 1) % 3


async def test_pipelined_trainer_takes_a_correction(image_folder):
    settings = quick_settings(pipelined=True, steps_per_label=2, budget=40)
    app = LabellingApp(image_folder, settings, confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        answers = await label_first_batch(pilot, app)
        await until(pilot, batch_ready(app, 2), what="the batch chosen ahead")
        screen = await open_review(pilot, app)
        item = screen.view[1].item_id
        await pilot.press("right", KEYS[(answers[1] + 2) % 3])
        pipe = app.session.engine._pipe
        assert pipe is not None and pipe.wait_idle(30)
        assert app.session.learner.labels[item] == (answers[1] + 2) % 3
        await pilot.press("escape", "q")


async def test_review_command_opens_on_the_review_screen_and_refuses_without_a_project(image_folder, tmp_path, capsys):
    empty = tmp_path / "nothing-here"
    empty.mkdir()
    assert main(["review", str(empty)]) == 2
    err = capsys.readouterr().err
    assert "no project for this folder yet" in err and "aeep-tui label" in err and err.count("\n") == 1

    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await label_first_batch(pilot, app)
        await until(pilot, batch_ready(app, 2), what="the second batch")
        await pilot.press("q")
    again = LabellingApp(image_folder, review=True)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: isinstance(again.screen, ReviewScreen) and again.screen.cards, what="the review screen")
        screen = again.screen
        assert len(screen.items) == 4 and isinstance(again.screen_stack[-2], LabellingScreen)
        await until(pilot, lambda: "computing" not in screen.model_note, what="the model's predictions")
        assert [it.item_id for it in screen.view] == [it.item_id for it in disagreements_first(screen.items)]
        # C shows one class at a time, then the skipped items, then around again
        held = sorted({it.answer for it in screen.items if it.answer != SKIPPED}) + [SKIPPED]
        seen = []
        for _ in held:
            await pilot.press("C")
            seen.append(screen.shown_class)
            assert screen.view and all(it.answer == screen.shown_class for it in screen.view)
            assert ("skipped" if screen.shown_class == SKIPPED else f"class{screen.shown_class}") in str(
                screen.query_one("#review-title").render()
            )
        assert seen == held
        await pilot.press("C")
        assert screen.shown_class == held[0]
        # a second instance is refused, as for label
        second = LabellingApp(image_folder, review=True)
        async with second.run_test(size=SIZE) as pilot2:
            await until(pilot2, lambda: second.error_message is not None, what="the lock error")
        assert "open in another aeep-tui process" in second.error_message and "\n" not in second.error_message
        await pilot.press("escape")
        assert isinstance(again.screen, LabellingScreen)
        await pilot.press("q")


def _item(n: int, answer: int | None, guess: int | None, confidence: float | None, round_: int = 1) -> ReviewItem:
    return ReviewItem(n, f"i{n}", round_, n, False, None, None, answer, 0.0, False, guess, confidence)


def test_orderings():
    items = [
        _item(0, 0, 0, 0.9),  # agrees, sure
        _item(1, 0, 1, 0.6),  # disputed
        _item(2, SKIPPED, 1, 0.7),  # skipped
        _item(3, 1, 0, 0.95),  # disputed, surer
        _item(4, 2, 2, 0.4, round_=2),  # agrees, unsure
        _item(5, None, None, None, round_=2),  # back in the pool, no guess
        _item(6, 1, None, None),  # no guess at all
    ]
    assert [it.item_id for it in disagreements_first(items)] == [3, 1, 2, 5, 4, 0, 6]
    assert [it.item_id for it in by_round(items)] == [0, 1, 2, 3, 6, 4, 5]
    assert [it.item_id for it in of_class(items, 0)] == [0, 1]
    assert [it.item_id for it in of_class(items, SKIPPED)] == [2, 5]
    assert items[1].disagrees and not items[2].disagrees and not items[6].disagrees


async def test_a_correction_that_frees_budget_brings_a_new_batch(image_folder):
    app = LabellingApp(image_folder, quick_settings(budget=4), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await label_first_batch(pilot, app, skip_last=False)
        labelling = labelling_screen(app)
        await until(pilot, lambda: not labelling.busy and app.session.finished, what="the budget reached")
        screen = await open_review(pilot, app)
        await pilot.press("s")  # one label fewer: the budget has room for one more
        assert screen.view[0].answer == SKIPPED and not app.session.finished
        await pilot.press("escape")
        await until(pilot, batch_ready(app, 2), what="a batch for the freed budget")
        assert len(app.session.batch.items) == 1
        await pilot.press("q")


async def test_patients_are_reviewed_as_timelines(tmp_path):
    from aeep_core.session import ProjectSettings
    from aeep_tui.widgets.timeline import TimelineCard
    from tests.sequences_fixtures import write_jsonl_folder

    folder = write_jsonl_folder(tmp_path / "patients", per_class=8, seed=1)
    settings = ProjectSettings(
        classes=["sick", "well"],
        keys=["1", "2"],
        modality="sequence",
        batch_size=4,
        device="cpu",
        train={"min_steps": 10, "max_steps": 10},
    )
    app = LabellingApp(folder, settings, confirm_setup=False)
    async with app.run_test(size=(140, 44)) as pilot:
        await until(pilot, batch_ready(app, 1), timeout=60, what="the first batch of patients")
        await pilot.press("1", "2", "1", "2", "enter")
        await until(pilot, batch_ready(app, 2), timeout=60, what="the second batch")
        screen = await open_review(pilot, app)
        assert all(isinstance(card.body, TimelineCard) for card in screen.cards)
        assert all(it.model_predicted is not None for it in screen.items)  # the sequence model's view
        await pilot.press("2")  # relabel the first patient
        assert app.session.learner.labels[screen.view[0].item_id] == 1
        await pilot.press("q")
