"""The review screen: confirmed batches, likely mistakes first; relabel, skip or un-skip.

Opened with ``R`` from the labelling screen (``aeep-tui review DATA`` opens straight
here). Items show as the labelling screen's cards, a page at a time, each with its
current answer and what the newest model says of it now; the side panel holds the
selected item's every answer with its time. A class key relabels, ``s`` skips or
un-skips: each is a new answer row (``session.review.correct``) that the engine takes into
the next training, even while a retrain runs.

Orderings: ``D`` disagreements first (the default), ``R`` batch by batch, ``C`` one class
at a time (again: the next class). The model's view of every item is computed in a
thread worker; until it arrives the guesses stored with each batch stand in.
"""

from __future__ import annotations

import sqlite3
import time
from datetime import datetime
from typing import cast

import numpy as np
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState

from aeep_core.session import SKIPPED, ReviewItem, StoreError
from aeep_core.session.review import by_round, disagreements_first, of_class
from aeep_tui.screens.class_keys import with_class_keys
from aeep_tui.screens.image_view import ImageViewScreen
from aeep_tui.widgets.card_grid import GRID_MOVES, fit_grid
from aeep_tui.widgets.cards import body_for, item_image
from aeep_tui.widgets.footer import QuietFooter
from aeep_tui.widgets.item_card import ItemCard
from aeep_tui.widgets.review_card import ReviewCard

PREDICT_GROUP = "review-predict"
ORDERS = {"disagree": "disagreements first", "round": "by round", "class": "by class"}


def page_size(batch_size: int) -> int:
    """Cards per page: a batch when it fits on a screen (by round, a page is then a batch)."""
    return max(4, min(batch_size, 16))


def describe_answer(label: int | None, classes: list[str], correction: bool) -> str:
    if label is None:
        return "back in the pool" if correction else "taken back"
    return "skipped" if label == SKIPPED else classes[label]


class ReviewScreen(Screen):
    """Browse and correct the confirmed items of ``session``; Esc returns."""

    BINDINGS = [
        *GRID_MOVES,
        Binding("s", "skip", "skip/un-skip"),
        Binding("backspace", "undo", "undo", key_display="⌫"),
        Binding("D", "order('disagree')", "disagreements"),
        Binding("R", "order('round')", "by round"),
        Binding("C", "order('class')", "by class"),
        # terminals that report Shift themselves (kitty's keyboard protocol)
        Binding("shift+d", "order('disagree')", "disagreements", show=False),
        Binding("shift+r", "order('round')", "by round", show=False),
        Binding("shift+c", "order('class')", "by class", show=False),
        Binding("pagedown", "page(1)", "page", key_display="PgUp/PgDn"),
        Binding("pageup", "page(-1)", "page", show=False),
        Binding("space", "view", "view", key_display="␣"),
        Binding("escape", "back", "back", key_display="esc"),
        Binding("q", "app.save_and_quit", "quit"),
    ]
    AUTO_FOCUS = ""

    def __init__(self, session) -> None:
        super().__init__()
        self.session = session
        classes = session.classes.current  # read once: class changes are made from the labelling screen
        self.class_names: list[str] = classes.names
        self.items: list[ReviewItem] = []
        self.view: list[ReviewItem] = []  # the items in the current order (and class)
        self.order, self.shown_class = "disagree", 0  # C shows one answer: a class index or SKIPPED
        self.cursor, self.page_size, self.columns = 0, page_size(session.settings.batch_size), 1
        self.cards: list[ReviewCard] = []
        self.model_note = "model: computing…"
        self.touched = False  # the person moved or answered: arriving predictions do not re-sort
        # (item, its answer before) per correction made here, newest last
        self.undoable: list[tuple[ReviewItem, int | None]] = []
        self.class_keys = classes.keys
        self._bindings = with_class_keys(self._bindings.key_to_bindings, classes.live, "relabel", "relabel")

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="review-main"):
            with Vertical(id="review-area"):
                yield Static(id="review-title")
                yield Container(id="review-grid")
            with VerticalScroll(id="review-side"):
                yield Static(id="review-detail")
                yield Static(id="review-history")
        yield QuietFooter(compact=True)

    def on_mount(self) -> None:
        self.query_one("#review-side").border_title = "Selected item"
        self.items = self.session.review.items()
        self._sort()
        self.show_page()
        if self.items:
            ids = [it.item_id for it in self.items]
            self.run_worker(lambda: self._predict(ids), thread=True, group=PREDICT_GROUP, exit_on_error=False)
        else:
            self.model_note = ""

    def on_resize(self, event) -> None:
        self.set_class(event.size.width < 110, "-narrow")  # as the labelling screen's side panel
        self.call_after_refresh(self._fit)

    def _fit(self) -> None:
        self.columns = fit_grid(self.query_one("#review-grid"), len(self.cards)) or self.columns

    # --- the model's view, in a worker --------------------------------------------------
    def _predict(self, ids: list[int]):
        start = time.perf_counter()
        return self.session.review.model_predictions(ids), time.perf_counter() - start

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group != PREDICT_GROUP or event.state not in (WorkerState.SUCCESS, WorkerState.ERROR):
            return
        result: tuple[np.ndarray, np.ndarray] | None = None
        if event.state == WorkerState.ERROR:
            self.model_note = "model: unavailable (guesses before your answers)"
            self.notify(f"The model's predictions failed: {event.worker.error}", severity="warning")
        else:
            result, seconds = cast(tuple[tuple[np.ndarray, np.ndarray] | None, float], event.worker.result)
            if result is None:
                self.model_note = "no trained model yet: guesses before your answers"
            else:
                for item, predicted, confidence in zip(self.items, result[0], result[1]):
                    item.model_predicted, item.model_confidence = int(predicted), float(confidence)
                self.model_note = f"newest model ({seconds:.1f} s)"
        if self.touched:  # the person is at work here: keep the order, refresh what the cards say
            for card in self.cards:
                card.refresh_answer()
            if self.order == "disagree" and result is not None:
                self.notify("The model's predictions are in: D sorts by them.")
        else:
            self._sort()
            self.cursor = 0
        self.show_page()

    # --- what is shown -------------------------------------------------------------------
    def _sort(self) -> None:
        if self.order == "disagree":
            self.view = disagreements_first(self.items)
        elif self.order == "round":
            self.view = by_round(self.items)
        else:
            self.view = of_class(self.items, self.shown_class)
        self.cursor = min(self.cursor, max(len(self.view) - 1, 0))

    def _class_answers(self) -> list[int]:
        """The classes to cycle through with C: those with items, then skipped if any."""
        present = {SKIPPED if it.answer is None else it.answer for it in self.items}
        return [c for c in range(len(self.class_names)) if c in present] + ([SKIPPED] if SKIPPED in present else []) or [0]

    def selected(self) -> ReviewItem | None:
        return self.view[self.cursor] if self.view else None

    def show_page(self) -> None:
        """Mount the cards of the cursor's page and mark the cursor."""
        grid = self.query_one("#review-grid")
        grid.remove_children()
        first = self.cursor // self.page_size * self.page_size
        page = self.view[first : first + self.page_size]
        self.cards = [ReviewCard(it, body_for(self.session, it), self.class_names, self.class_keys) for it in page]
        grid.mount_all(self.cards)
        self._mark_cursor()
        self.call_after_refresh(self._fit)

    def _mark_cursor(self) -> None:
        first = self.cursor // self.page_size * self.page_size
        for i, card in enumerate(self.cards):
            if card.set_cursor(first + i == self.cursor) and card.is_mounted:
                card.restyle_frame()
        self._refresh_title()
        self._refresh_detail()

    def _refresh_title(self) -> None:
        title = self.query_one("#review-title", Static)
        if not self.items:
            title.update("Nothing to review yet: confirm a batch first. Esc goes back.")
            return
        how = ORDERS[self.order]
        if self.order == "class":
            shown = self.shown_class
            how += f": {'skipped' if shown == SKIPPED else self.class_names[shown]}"
        disputed = sum(it.disagrees for it in self.items)
        pages = max(1, -(-len(self.view) // self.page_size))
        where = f"{self.cursor + 1}/{len(self.view)} · page {self.cursor // self.page_size + 1}/{pages}" if self.view else "none"
        title.update(f"Review · {how} · {where} · {disputed} disputed · {self.model_note}")

    def _refresh_detail(self) -> None:
        item = self.selected()
        detail, history = self.query_one("#review-detail", Static), self.query_one("#review-history", Static)
        if item is None:
            detail.update("")
            history.update("")
            return
        answer = describe_answer(item.answer, self.class_names, item.corrected)
        lines = [
            f"[b]{item.name}[/b]",
            f"round {item.round}, card {item.position + 1} · {'explore' if item.exploration else 'exploit'}",
            f"answer: [b]{answer}[/b]" + (" ✎ corrected" if item.corrected else ""),
        ]
        if item.model_predicted is not None:
            verdict = " — [b]disagrees[/b]" if item.disagrees else ""
            lines.append(f"model now: {self.class_names[item.model_predicted]} {item.model_confidence or 0:.0%}{verdict}")
        if item.predicted is not None:
            lines.append(f"guess before your answer: {self.class_names[item.predicted]} {item.confidence or 0:.0%}")
        detail.update("\n".join(lines))
        rows = ["[b]Every answer[/b] (✎ given in review)"]
        for h in self.session.review.history(item.item_id):
            when = datetime.fromtimestamp(h.at).strftime("%Y-%m-%d %H:%M:%S")
            rows.append(f"{when}  {describe_answer(h.label, self.class_names, h.correction)}" + (" ✎" if h.correction else ""))
        history.update("\n".join(rows))

    def move_to(self, index: int) -> None:
        if not self.view:
            return
        index = min(max(index, 0), len(self.view) - 1)
        page_changed = index // self.page_size != self.cursor // self.page_size
        self.cursor = index
        if page_changed:
            self.show_page()
        else:
            self._mark_cursor()
        card = self.cards[self.cursor % self.page_size] if self.cards else None
        if card is not None and card.is_mounted:
            card.scroll_visible(animate=False)

    def on_item_card_picked(self, event: ItemCard.Picked) -> None:
        if event.card in self.cards:
            self.touched = True
            self.move_to(self.cursor // self.page_size * self.page_size + self.cards.index(event.card))

    # --- actions -------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("relabel", "skip", "view"):
            return True if self.view and not self.session.read_only else None
        if action == "undo":
            return True if self.undoable and not self.session.read_only else None
        return True

    def action_move(self, dx: int, dy: int) -> None:
        self.touched = True
        self.move_to(self.cursor + dx + dy * self.columns)

    def action_page(self, direction: int) -> None:
        self.touched = True
        self.move_to((self.cursor // self.page_size + direction) * self.page_size)

    def action_order(self, order: str) -> None:
        """Sort again (predictions that arrived since count); C again: the next class."""
        if order == "class" and self.order == "class":
            # The next answer after this one that some item holds (corrections change which)
            cycle, present = [*range(len(self.class_names)), SKIPPED], set(self._class_answers())
            at = cycle.index(self.shown_class)
            self.shown_class = next(c for step in range(1, len(cycle) + 1) if (c := cycle[(at + step) % len(cycle)]) in present)
        elif order == "class":
            self.shown_class = self._class_answers()[0]
        self.order, self.cursor = order, 0
        self._sort()
        self.show_page()

    def action_relabel(self, answer: int) -> None:
        self._correct(answer)

    def action_skip(self) -> None:
        """A label becomes a skip; a skip goes back to the pool (asked again later); an item
        back in the pool is skipped again."""
        item = self.selected()
        if item is not None:
            self._correct(None if item.answer == SKIPPED else SKIPPED)

    def _correct(self, answer: int | None) -> None:
        item = self.selected()
        if item is None:
            return
        self.touched = True
        if answer == item.answer:
            self.move_to(self.cursor + 1)
            return
        before = (item, item.answer)
        if not self._save(item, answer):
            return
        self.undoable.append(before)
        self.refresh_bindings()
        if self.cursor + 1 < len(self.view):
            self.move_to(self.cursor + 1)  # on to the next item, as after an answer in a batch
        else:
            self._mark_cursor()

    def action_undo(self) -> None:
        """Give the item of the last correction made here its answer before it, and go there.
        The store keeps both (an undo is one more answer in the item's history, so the item
        counts as corrected, as it will when the review is opened again)."""
        if not self.undoable:
            return
        item, answer = self.undoable[-1]
        if not self._save(item, answer):
            return
        self.undoable.pop()
        self.refresh_bindings()
        if item in self.view:
            self.move_to(self.view.index(item))
        else:  # sorted out of this view (by class): the card is elsewhere
            self.notify(f"{item.name}: back to {describe_answer(answer, self.class_names, True)}.")

    def _save(self, item: ReviewItem, answer: int | None) -> bool:
        """Store ``answer`` for ``item`` as a correction and show it; False (and a notice) when
        the store refused it."""
        try:
            self.session.review.correct(item.item_id, answer)
        except (StoreError, OSError, sqlite3.Error, ValueError) as exc:
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return False
        item.answer, item.corrected, item.answered_at = answer, True, time.time()
        for card in self.cards:
            if card.item is item:
                card.refresh_answer()
        self._refresh_detail()
        return True

    def action_view(self) -> None:
        item = self.selected()
        if item is None or self.session.pool.modality == "sequence":
            return
        self.app.push_screen(ImageViewScreen(item_image(self.session, item.item_id), item.name))

    def action_back(self) -> None:
        self.dismiss(None)
