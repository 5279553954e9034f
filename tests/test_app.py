"""The labelling app driven with Textual's Pilot on generated images.

Real session, real SQLite store, real (tiny) training and real textual-image cards: only
the training length is cut (10 steps) so a round takes well under a second.
"""

from __future__ import annotations

import gc
import time
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image as PILImage
from textual.content import Content
from textual_image.widget import Image as TerminalImage

from aeep_core.session import SKIPPED, LabellingSession, ProjectSettings
from aeep_tui.app import LabellingApp
from aeep_tui.gc_schedule import NEVER
from aeep_tui.screens.help import HelpScreen
from aeep_tui.screens.labelling import COLLECT_AFTER_S, LabellingScreen
from aeep_tui.screens.setup import SetupScreen
from aeep_tui.widgets.item_card import ItemCard
from aeep_tui.widgets.retrain_status import RetrainStatus
from aeep_tui.widgets.stats_panel import StatsPanel

SIZE = (120, 40)
CLASSES = ["class0", "class1", "class2"]


def quick_settings(**changes) -> ProjectSettings:
    base = ProjectSettings(
        classes=CLASSES,
        keys=["1", "2", "3"],
        batch_size=4,
        device="cpu",
        train={"min_steps": 10, "max_steps": 10},
        candidates=200,
    )
    return replace(base, **changes)


async def until(pilot, condition, timeout: float = 30.0, what: str = "condition") -> None:
    """Let the app run until ``condition()`` holds (workers finish in their own threads)."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


def labelling_screen(app) -> LabellingScreen | None:
    return next((s for s in app.screen_stack if isinstance(s, LabellingScreen)), None)


def batch_ready(app, round_: int):
    def ready() -> bool:
        screen = labelling_screen(app)
        return (
            screen is not None
            and not screen.busy
            and app.session is not None
            and app.session.batch is not None
            and app.session.batch.round == round_
            and len(screen.cards) == len(app.session.batch.items)
            and all(card.is_mounted for card in screen.cards)
        )

    return ready


def cursor_on(screen: LabellingScreen, position: int) -> bool:
    """The keys act on card ``position`` and it alone is drawn as the cursor."""
    marked = [i for i, card in enumerate(screen.cards) if card.has_class("-cursor")]
    return screen.cursor == position and marked == [position]


def title(card: ItemCard) -> str:
    """The text of a card's border title, as drawn (its style aside)."""
    return Content.from_markup(card.border_title or "").plain


def subtitle(card: ItemCard) -> str:
    """The text of a card's border subtitle (the answer), as drawn."""
    return Content.from_markup(card.border_subtitle or "").plain


def panel_text(app, widget_id: str) -> str:
    return str(app.screen.query_one(StatsPanel).query_one(widget_id).render())


async def test_label_a_batch_and_the_next_arrives(image_folder):
    app = LabellingApp(image_folder, quick_settings(budget=40), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = app.screen
        assert isinstance(screen, LabellingScreen)
        assert len(screen.cards) == 4
        # Every card shows its image through textual-image, and the item's name.
        for card, item in zip(screen.cards, app.session.batch.items):
            assert card.query_one(TerminalImage).image is not None
            assert title(card) == item.name
            assert not card.show_guess and not card.query_one(".card-guess").render().plain  # guesses are hidden by default
        assert "Round 1" in panel_text(app, "#stat-round")

        for key in "1231":
            await pilot.press(key)
        assert [it.answer for it in app.session.batch.items] == [0, 1, 2, 0]
        assert subtitle(screen.cards[2]) == "3 ▸ class2"
        first_cards = list(screen.cards)

        await pilot.press("enter")
        await until(pilot, batch_ready(app, 2), what="the batch after retraining")
        # The same cards (nothing mounted again) frame the new items, unanswered, undimmed.
        assert screen.cards == first_cards
        for card, item in zip(screen.cards, app.session.batch.items):
            assert card.item is item and title(card) == item.name and subtitle(card) == "·"
            with PILImage.open(app.session.source_path(item.item_id)) as photo:  # the item's own pixels
                assert np.array_equal(np.asarray(card.query_one(TerminalImage).image), np.asarray(photo))
            assert not card.has_class("-done") and not card.has_class("-labelled")
        assert [c.has_class("-cursor") for c in screen.cards] == [True, False, False, False]
        assert app.session.stats.labelled == 4
        assert "Round 2" in panel_text(app, "#stat-round")
        assert "Labelled 4 / 90" in panel_text(app, "#stat-labelled")
        assert "Budget 4 / 40" in str(app.screen.query_one("#stat-budget-label").render())
        assert "retrain" in panel_text(app, "#stat-model") and "—" not in panel_text(app, "#stat-model").split("·")[0]
        # The second batch comes from the trained model, so it has guesses to show.
        assert all(it.predicted is not None for it in app.session.batch.items)
        await pilot.pause()
        assert "explo" not in app.export_screenshot()  # hidden guesses draw nothing
        await pilot.press("g")
        assert all(card.show_guess for card in app.screen.cards)
        await pilot.pause()
        assert "explo" in app.export_screenshot()  # "… · explore" or "… · exploit"
        await pilot.press("q")
    assert app.session is None  # closed on quit


async def test_the_next_batch_s_pictures_are_decoded_off_the_ui_thread(image_folder, monkeypatch):
    """The worker that prepares a batch also decodes its photos: showing it only hands each
    card its picture (twelve camera JPEGs held the UI's thread for 0.6 s)."""
    import threading

    from aeep_tui.widgets import cards

    decoded_on: list[tuple[int, bool]] = []  # (item, on the UI's thread)
    real = cards.card_picture

    def recording(session, item_id):
        decoded_on.append((item_id, threading.current_thread() is threading.main_thread()))
        return real(session, item_id)

    monkeypatch.setattr(cards, "card_picture", recording)
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        for key in "1231":
            await pilot.press(key)
        decoded_on.clear()
        await pilot.press("enter")
        await until(pilot, batch_ready(app, 2), what="the second batch")
        shown = [item.item_id for item in app.session.batch.items]
        assert sorted(item for item, _ in decoded_on) == sorted(shown)  # each once
        assert not any(on_ui for _, on_ui in decoded_on)
        for card, item in zip(app.screen.cards, app.session.batch.items):
            with PILImage.open(app.session.source_path(item.item_id)) as photo:
                assert np.array_equal(np.asarray(card.query_one(TerminalImage).image), np.asarray(photo))
        await pilot.press("q")


async def test_full_collections_wait_for_the_end_of_a_batch(image_folder):
    """A full GC pass stalls every key for hundreds of ms on a big pool: the app runs it
    itself once a new batch is painted (while the person reads it, never among the keys),
    and gives CPython its own schedule back on quit."""
    before = gc.get_threshold()
    passes: list[int] = []

    def count_full_passes(phase: str, info: dict) -> None:
        if phase == "stop" and info["generation"] == 2:
            passes.append(1)

    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        assert gc.get_threshold()[2] == NEVER and gc.get_freeze_count() > 0
        await pilot.pause(COLLECT_AFTER_S + 0.5)  # the first batch's pass is done
        gc.callbacks.append(count_full_passes)
        try:
            await pilot.press("1", "2", "3")
            assert not passes
            await pilot.press("1", "enter")
            await until(pilot, batch_ready(app, 2), what="the second batch")
            await until(pilot, lambda: bool(passes), what="a full collection once the next batch is shown")
        finally:
            gc.callbacks.remove(count_full_passes)
        await pilot.press("q")
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


async def test_opening_a_project_uses_every_core_and_training_leaves_one_to_the_ui(image_folder, monkeypatch):
    """Decoding and embedding run while the person only watches a progress bar: every core;
    afterwards training runs beside the UI with the count ``label`` set."""
    import os

    import torch

    threads_while_opening: list[int] = []
    real_open = LabellingSession.open

    def recording_open(*args, **kwargs):
        threads_while_opening.append(torch.get_num_threads())
        return real_open(*args, **kwargs)

    monkeypatch.setattr(LabellingSession, "open", recording_open)
    before = torch.get_num_threads()
    torch.set_num_threads(1)  # what `label` sets on a 2-core machine (training_threads)
    try:
        app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, batch_ready(app, 1), what="the first batch")
            assert threads_while_opening == [os.cpu_count()]
            assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


async def test_undo_skip_and_incomplete_confirm(image_folder):
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = app.screen
        await pilot.press("2", "s")
        items = app.session.batch.items
        assert [it.answer for it in items] == [1, SKIPPED, None, None]
        assert screen.cards[1].has_class("-skipped")
        assert cursor_on(screen, 2)  # moved on to the next open card
        # the panel counts answers without reading the store on each key: the same figures
        await pilot.pause()
        assert "Labelled 1 / 90 · 1 skipped" in panel_text(app, "#stat-labelled")
        assert (app.session.stats.labelled, app.session.stats.skipped) == (1, 1)
        assert "2 of 4 to label" in str(screen.query_one("#batch-title").render())

        await pilot.press("backspace")  # takes back the skip, the cursor returns to that card
        assert items[1].answer is None and cursor_on(screen, 1)
        assert not screen.cards[1].has_class("-skipped")
        await pilot.pause()
        assert "Labelled 1 / 90" in panel_text(app, "#stat-labelled") and "skipped" not in panel_text(app, "#stat-labelled")

        await pilot.press("enter")  # incomplete: nothing happens but a notice
        assert not screen.busy and app.session.batch.round == 1

        await pilot.press("right", "3", "left", "left", "h")  # arrows and hjkl move
        assert cursor_on(screen, 0)
        assert [it.answer for it in items] == [1, None, 2, None]
        await pilot.press("down")  # one row holds all four cards at this size
        assert cursor_on(screen, min(screen.columns, 3))
        await pilot.click(screen.cards[1])  # a click moves the cursor too
        assert cursor_on(screen, 1)
        await pilot.press("1")
        assert items[1].answer == 0
        assert screen.focused is None  # nothing takes the keys away from the screen
        await pilot.press("q")


async def test_footer_rebuilds_only_when_its_keys_change(image_folder):
    """Rebuilding the footer lays out the whole screen, and restyling one of its keys
    costs the key that did it a second frame: answers, the last one included, keep the
    same key widgets in the same state. ⏎ is lit all along; an early ⏎ says what is left
    and confirms nothing."""
    from textual.widgets._footer import FooterKey

    def confirm_key():
        return next(k for k in app.screen.query(FooterKey) if k.action == "confirm")

    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.pause()
        screen = app.screen
        keys_before = list(screen.query(FooterKey))
        assert not confirm_key().has_class("-disabled")
        await pilot.press("1", "2", "right", "s")
        await pilot.pause()
        assert list(screen.query(FooterKey)) == keys_before  # the very same widgets
        await pilot.press("enter")  # one card left: nothing is confirmed
        await pilot.pause()
        assert not screen.busy and screen.session.batch.round == 1 and not screen.session.batch.complete
        assert any("1 card still to label" in n.message for n in app._notifications)
        await pilot.press("1")  # the batch is complete
        await pilot.pause()
        assert list(screen.query(FooterKey)) == keys_before
        assert not confirm_key().has_class("-disabled") and not confirm_key()._disabled
        await pilot.press("q")


async def test_quit_and_reopen_to_the_same_state(image_folder):
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        ids = [it.item_id for it in app.session.batch.items]
        await pilot.press("3", "s")
        await pilot.press("q")
    assert LabellingSession.find(image_folder) is not None

    # Reopening needs no settings and no setup screen: it resumes silently.
    again = LabellingApp(image_folder)
    async with again.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(again, 1), what="the restored batch")
        items = again.session.batch.items
        assert [it.item_id for it in items] == ids
        assert [it.answer for it in items] == [2, SKIPPED, None, None]
        screen = again.screen
        assert subtitle(screen.cards[0]) == "3 ▸ class2"
        # Keys go to the first card still open.
        await until(pilot, lambda: cursor_on(screen, 2), what="the cursor on the first open card")
        await pilot.press("q")


async def test_keys_answer_while_training_runs(image_folder):
    # Long enough that training is certainly still running while keys are pressed.
    settings = quick_settings(train={"min_steps": 100_000, "max_steps": 100_000})
    app = LabellingApp(image_folder, settings, confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "1", "enter")
        screen = app.screen
        status = screen.query_one(RetrainStatus)
        await until(pilot, lambda: "Retraining" in status.text, what="training progress")
        assert screen.busy

        await pilot.press("question_mark")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert app.screen is screen and screen.busy
        await pilot.press("right", "1")  # moving still works; labelling waits for the next batch
        assert app.session.batch is None

        started = time.monotonic()
        await pilot.press("q")  # stops training at its next step and quits
        await until(pilot, lambda: app.session is None, timeout=20, what="quit during training")
    assert time.monotonic() - started < 20


async def test_each_key_pauses_training_until_it_is_painted(image_folder, monkeypatch):
    from aeep_core.learning.training import foreground

    calls: list[str] = []
    hold, release = foreground.hold, foreground.release
    monkeypatch.setattr(foreground, "hold", lambda seconds: (calls.append("hold"), hold(seconds))[1])
    monkeypatch.setattr(foreground, "release", lambda: (calls.append("release"), release())[1])
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        calls.clear()
        await pilot.press("1")
        assert calls == ["hold", "release"]  # held while handled, let go once painted
        assert app.session.batch.items[0].answer == 0
        start = time.monotonic()
        foreground.wait()  # nothing is left holding training back
        assert time.monotonic() - start < 0.05


async def test_training_failure_is_shown_not_a_crash(image_folder):
    # A negative learning rate makes the optimiser itself refuse: a real failure in training.
    app = LabellingApp(image_folder, quick_settings(train={"min_steps": 10, "max_steps": 10, "lr": -1.0}), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "1", "enter")
        screen = app.screen
        await until(pilot, lambda: screen.failed, what="the failure")
        label = screen.query_one(RetrainStatus).text
        assert "Retraining failed" in label and "learning rate" in label
        assert app.is_running and screen.check_action("retry", ()) is True
        await pilot.press("r")  # retry fails the same way, still without a crash
        await until(pilot, lambda: screen.failed and not screen.busy, what="the second failure")
        await pilot.press("q")


async def test_setup_screen_on_first_open(image_folder):
    (image_folder / "classes.txt").write_text("class0\nclass1\nclass2\n")
    app = LabellingApp(image_folder, quick_settings(classes=[], keys=[]))
    async with app.run_test(size=SIZE) as pilot:
        await pilot.pause()
        assert isinstance(app.screen, SetupScreen)
        assert app.screen.query_one("#setup-classes").value == "class0, class1, class2"
        assert "1→class0" in str(app.screen.query_one("#setup-keys").render())

        classes = app.screen.query_one("#setup-classes")
        classes.value = "only-one"
        await pilot.click("#setup-start")
        assert isinstance(app.screen, SetupScreen)  # refused, with a reason
        assert "at least two" in str(app.screen.query_one("#setup-error").render())

        classes.value = "cat, dog, bird"
        batch = app.screen.query_one("#setup-batch-size")
        batch.value = "3"
        await pilot.press("ctrl+s")
        await until(pilot, batch_ready(app, 1), what="the first batch")
        assert app.session.settings.classes == ["cat", "dog", "bird"]
        assert app.session.settings.keys == ["1", "2", "3"]
        assert len(app.screen.cards) == 3
        await pilot.press("q")


async def test_open_error_ends_with_a_message(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    app = LabellingApp(empty, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: not app.is_running or app.error_message is not None, what="the error")
    assert app.error_message and "no images found" in app.error_message


@pytest.mark.parametrize(
    "classes, keys, footer",
    [
        (["cat", "dog"], ["1", "2"], "1-2"),
        ([f"c{i}" for i in range(13)], list("1234567890abc"), "1-9 0 a-c"),
        ([str(d) for d in range(10)], list("0123456789"), "0-9"),  # digits are typed as themselves
        (["x", "h", "y"], ["x", "1", "y"], "x 1 y"),  # h moves the cursor, so it is never a class key
    ],
)
def test_class_keys(classes, keys, footer):
    from aeep_tui.keys import assign_keys, describe_keys

    assert assign_keys(classes) == keys
    assert describe_keys(keys) == footer


def test_sequence_items_get_a_timeline_card():
    """The card factory is where a modality plugs in: sequence items get a timeline."""
    from types import SimpleNamespace

    import torch

    from aeep_core.pool import Pool
    from aeep_core.session import BatchItem
    from aeep_core.store.classes import ClassList, ProjectClass
    from aeep_tui.widgets.cards import card_for
    from aeep_tui.widgets.timeline import TimelineCard

    events = [[{"time": "2001-03-04", "type": "condition", "code": "J11", "text": "influenza"}]]
    pool = Pool(torch.zeros(1, 4, 3), ["patient-1"], ["a", "b"], modality="sequence", meta={"events": events})
    classes = ClassList((ProjectClass(0, "a", "1"), ProjectClass(1, "b", "2")))
    session = SimpleNamespace(pool=pool, classes=SimpleNamespace(current=classes))
    card = card_for(session, BatchItem(0, "patient-1", False, None, None, None))
    assert isinstance(card, ItemCard) and isinstance(card.body, TimelineCard)
    assert card.body.events == events[0]


async def test_budget_reached_shows_done(image_folder):
    app = LabellingApp(image_folder, quick_settings(budget=4), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("1", "2", "3", "1", "enter")
        screen = app.screen
        await until(pilot, lambda: not screen.busy and app.session.finished, what="the finished state")
        assert "Done:" in str(screen.query_one("#batch-title").render())
        assert "the budget is reached" in str(screen.query_one("#batch-title").render())
        assert not screen.cards and screen.check_action("label", (0,)) is None
        await pilot.press("q")


async def test_help_lists_digit_classes():
    """Class names become table rows, never CSS identifiers (a digit is not one)."""
    from textual.app import App

    async with App().run_test(size=SIZE) as pilot:
        pilot.app.push_screen(HelpScreen([str(d) for d in range(10)], [str(d) for d in range(10)]))
        await pilot.pause()
        assert isinstance(pilot.app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(pilot.app.screen, HelpScreen)


async def test_second_writer_gets_a_one_line_error(image_folder):
    first = LabellingSession.open(image_folder, quick_settings())
    try:
        app = LabellingApp(image_folder)
        async with app.run_test(size=SIZE) as pilot:
            await until(pilot, lambda: app.error_message is not None, what="the lock error")
        assert "open in another aeep-tui process" in app.error_message and "\n" not in app.error_message
    finally:
        first.close()


async def test_a_write_that_fails_is_shown_and_not_applied(image_folder):
    app = LabellingApp(image_folder, quick_settings(), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        app.session._store.close()  # a real failure of the real database (as a yanked disk would give)
        await pilot.press("1")
        assert app.is_running and app.session.batch.items[0].answer is None
        assert any("Not saved" in str(n.message) for n in app._notifications)
        assert subtitle(app.screen.cards[0]) == "·"
        await pilot.press("q")


def test_items_without_a_file_are_drawn_from_the_pool_tensor():
    """IDX pools have no image files: the card renders the uint8 tensor itself."""
    from types import SimpleNamespace

    import torch

    from aeep_tui.widgets.cards import item_image

    grey = SimpleNamespace(
        pool=SimpleNamespace(inputs=torch.full((2, 1, 28, 28), 200, dtype=torch.uint8)), source_path=lambda i: None
    )
    colour = SimpleNamespace(
        pool=SimpleNamespace(inputs=torch.zeros((1, 3, 32, 24), dtype=torch.uint8)), source_path=lambda i: None
    )
    assert item_image(grey, 1).size == (28, 28) and item_image(grey, 1).mode == "L"
    assert item_image(colour, 0).size == (24, 32) and item_image(colour, 0).mode == "RGB"


async def test_space_shows_the_cursors_image_over_the_whole_screen(image_folder):
    from aeep_tui.screens.image_view import ImageViewScreen

    app = LabellingApp(image_folder, quick_settings(budget=40), confirm_setup=False)
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.press("right")  # the second card
        await pilot.press("space")
        view = app.screen
        assert isinstance(view, ImageViewScreen)
        item = app.session.batch.items[1]
        assert view.caption == item.name and view.image == app.session.source_path(item.item_id)
        image = view.query_one("#image-view", TerminalImage)
        assert image.size.width > SIZE[0] // 2  # far larger than a card
        await pilot.press("escape")
        assert isinstance(app.screen, LabellingScreen)
        await pilot.press("1")  # keys reach the batch again
        assert app.session.batch.items[1].answer == 0
        await pilot.press("q")
