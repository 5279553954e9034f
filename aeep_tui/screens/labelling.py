"""The labelling screen: the batch as a grid of cards, the stats panel, the retrain strip.

Every key is declared here and shown in the footer. Retraining and selection run in a
thread worker (``prepare_next_batch`` is heavy), so help, quit and scrolling keep
answering while the model trains; a failure is shown in the retrain strip with a retry
key instead of ending the app.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from dataclasses import replace

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container, Horizontal, Vertical
from textual.reactive import reactive
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Header, Static
from textual.worker import Worker, WorkerState

from aeep_core.session import Batch, SessionStats, StoreError
from aeep_tui.gc_schedule import collect_between_batches
from aeep_tui.partial_repaint import repaint_changes_only
from aeep_tui.screens.class_keys import with_class_keys
from aeep_tui.screens.help import HelpScreen
from aeep_tui.screens.image_view import ImageViewScreen
from aeep_tui.screens.review import ReviewScreen
from aeep_tui.widgets.card_grid import GRID_MOVES, fit_grid
from aeep_tui.widgets.cards import Picture, card_for, card_pictures, item_image, reuse_cards
from aeep_tui.widgets.footer import QuietFooter
from aeep_tui.widgets.item_card import SKIPPED, ItemCard
from aeep_tui.widgets.retrain_status import RetrainStatus
from aeep_tui.widgets.stats_panel import StatsPanel

PROGRESS_INTERVAL_S = 0.1  # at most ten progress repaints a second from the worker
WAIT_SHOWN_AFTER_S = 0.4  # a wait shorter than this is not shown: see start_retraining
ANNOUNCE_AFTER_S = 2.0  # a new batch after a longer wait is announced: the person may have looked away
COLLECT_AFTER_S = 0.3  # the full garbage collection, this long after a new batch is painted
RETRAIN_GROUP = "retrain"
EVALUATION_GROUP = "evaluation"  # waits for the test of the model that chose the batch on screen
FAILED = object()  # what _store_call returns when the session refused a write


class CardGrid(Container):
    """The batch's cards; asks the screen to fit them again whenever its own size changes
    (the retrain strip below it appears and hides, which the screen's resize misses)."""

    def on_resize(self) -> None:
        fit = getattr(self.screen, "fit_cards", None)
        if fit is not None:
            self.call_after_refresh(fit)


class LabellingScreen(Screen):
    """Shows ``session.batch`` and drives a :class:`aeep_core.session.LabellingSession`."""

    BINDINGS = [
        *GRID_MOVES,
        Binding("s", "skip", "skip"),
        Binding("backspace", "undo", "undo", key_display="⌫"),
        Binding("enter", "confirm", "confirm", key_display="⏎"),
        Binding("g", "toggle_guesses", "guesses"),
        Binding("space", "view", "view", key_display="␣"),
        Binding("r", "retry", "retry"),
        # Upper case: every lower-case letter may be a class key (aeep_tui.keys).
        Binding("R", "review", "review"),
        Binding("shift+r", "review", "review", show=False),  # terminals that report Shift themselves
        Binding("A", "app.new_class", "add class"),  # a class nobody listed (upper case: never a class key)
        Binding("shift+a", "app.new_class", "add class", show=False),
        Binding("pagedown", "page(1)", "page", show=False),  # long cards (timelines) scroll
        Binding("pageup", "page(-1)", "page", show=False),
        Binding("question_mark", "help", "help", key_display="?"),
        # Upper case: class keys are digits and lower-case letters, so S never labels.
        Binding("S", "app.stats", "stats"),
        Binding("q", "app.save_and_quit", "quit"),  # every answer is already saved
    ]

    # Focus goes to the first open card once the batch is mounted, not to whichever
    # widget happens to be first (the stats panel).
    AUTO_FOCUS = ""

    # Not repainting reactives: a screen's refresh repaints the whole screen, every card's
    # picture included (108 ms per `g` under load on 2 cores, 2026-12-07); what these
    # change is restyled and refreshed where it shows (the guess lines, the title, the
    # footer's bindings).
    show_guesses: reactive[bool] = reactive(False, repaint=False)
    busy: reactive[bool] = reactive(False, repaint=False)
    failed: reactive[bool] = reactive(False, repaint=False)

    def __init__(self, session) -> None:
        super().__init__()
        repaint_changes_only(self)  # a key's changes span the screen; render only them
        self.session = session
        self.cards: list[ItemCard] = []
        self.columns = 1
        self.cursor = 0  # the card the keys act on (see ItemCard: a class, not focus)
        self._stop = threading.Event()
        # The side panel's figures as last read from the store, and the answers counted
        # then outside the open batch: an answer changes only the batch's own counts.
        self._stats: SessionStats | None = None
        self._counted_outside = (0, 0)
        self._title_shown = ""
        self._wait_timer: Timer | None = None
        self._retrain_started = 0.0
        self._screen_bindings = dict(self._bindings.key_to_bindings)
        self._bind_class_keys()

    def _bind_class_keys(self) -> None:
        """The keys of the classes as they are now (again after a class change)."""
        self._bindings = with_class_keys(self._screen_bindings, self.session.classes.current.live, "label", "label")

    def show_classes(self) -> None:
        """After a class was added, renamed or merged: its keys, the cards' names, the stats."""
        self._bind_class_keys()
        classes = self.session.classes.current
        for card in self.cards:
            card.show_classes(classes.names, classes.keys)
        self.refresh_bindings()
        self.refresh_stats()

    # --- layout -----------------------------------------------------------------
    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="main"):
            with Vertical(id="batch-area"):
                yield Static(id="batch-title")
                yield CardGrid(id="card-grid")
                yield RetrainStatus(id="retrain")
            yield StatsPanel(id="stats")
        yield QuietFooter(compact=True)

    def on_mount(self) -> None:
        self.refresh_stats()
        # A trainer process that died is noticed (and restarted) without waiting for a key.
        self.set_interval(1.0, self._check_trainer)
        if self.session.batch is not None:
            self.show_batch()
        elif self.session.finished:
            self.show_finished()
        else:
            self.start_retraining()

    def on_resize(self, event) -> None:
        # A plain 80-column terminal (SSH, a laptop split) gets a slimmer side panel.
        self.set_class(event.size.width < 110, "-narrow")
        self.call_after_refresh(self.fit_cards)

    def fit_cards(self) -> None:
        """Size the grid so the whole batch fits the terminal when it can."""
        self.columns = fit_grid(self.query_one("#card-grid"), len(self.cards)) or self.columns

    def _check_trainer(self) -> None:
        alive = self.session.check_trainer()
        if not alive or self.session.engine.restarts != self._restarts_shown:
            self.refresh_stats()

    # --- showing state ----------------------------------------------------------
    def refresh_stats(self) -> None:
        """Every figure of the side panel, read from the store: on a new batch, after
        confirming, after a review or a class change, when the trainer restarted."""
        stats = self._stats = self.session.stats
        labelled, skipped = self._batch_counts()
        self._counted_outside = (stats.labelled - labelled, stats.skipped - skipped)
        self._restarts_shown = stats.trainer_restarts
        self.query_one(StatsPanel).update_stats(stats)
        self._refresh_title()

    def _batch_counts(self) -> tuple[int, int]:
        """(labelled, skipped) cards of the open batch."""
        items = self.session.batch.items if self.session.batch is not None else []
        answers = [item.answer for item in items if item.answer is not None]
        return sum(1 for a in answers if a >= 0), sum(1 for a in answers if a == SKIPPED)

    def _answered_stats(self) -> SessionStats | None:
        """The side panel's figures after an answer, without reading the store (several
        queries, a slow machine's tens of milliseconds per key): the stored answers are
        those counted at the last full read plus the open batch's own, and nothing else
        the panel shows changes before the batch is confirmed (the pool may grow, and
        photos being embedded move on: both are read from memory)."""
        stats = self._stats
        if stats is None:
            self.refresh_stats()
            return self._stats
        labelled, skipped = self._batch_counts()
        outside_labelled, outside_skipped = self._counted_outside
        return replace(
            stats,
            labelled=outside_labelled + labelled,
            skipped=outside_skipped + skipped,
            pool_size=len(self.session.pool),
            embedding=self.session.embedding_progress(),
        )

    def _refresh_title(self) -> None:
        batch = self.session.batch
        if batch is None:
            text = self._done_text() if self.session.finished else f"Round {self.session.stats.round} · preparing the next batch…"
        else:
            left = sum(item.answer is None for item in batch.items)
            status = "[b]complete — ⏎ confirms[/b]" if left == 0 else f"{left} of {len(batch.items)} to label"
            text = f"Round {batch.round} · {status}" + (" · guesses shown" if self.show_guesses else "")
        if text != self._title_shown:
            self._title_shown = text
            # one fixed-size line (see app.tcss): a new text is repainted without a layout pass
            self.query_one("#batch-title", Static).update(text, layout=False)

    def show_batch(self, pictures: list[Picture] | None = None) -> None:
        """Replace the cards with those of ``session.batch`` (``pictures``: its items'
        card pictures, decoded ahead by the worker that prepared it)."""
        items = self.session.batch.items
        if not reuse_cards(self.session, self.cards, items, pictures):
            grid = self.query_one("#card-grid")
            grid.remove_children()
            self.cards = [card_for(self.session, item, None if pictures is None else pictures[i]) for i, item in enumerate(items)]
            for card in self.cards:
                card.show_guess = self.show_guesses
            grid.mount_all(self.cards)
        # the cursor moves now, not after the next frame: a key typed in between acts on
        # the new batch's first open card, never on a stale position
        self._cursor_to_first_open()
        self.call_after_refresh(self.fit_cards)
        self.call_after_refresh(self._scroll_to_cursor)
        self._refresh_title()
        self.refresh_bindings()

    def show_finished(self) -> None:
        self.query_one("#card-grid").remove_children()
        self.cards = []
        self._refresh_title()
        self.refresh_bindings()

    def _done_text(self) -> str:
        stats = self.session.stats
        reason = "the budget is reached" if stats.budget is not None and stats.labelled >= stats.budget else "the pool is used up"
        return f"[b]Done:[/b] {stats.labelled:,} labels, {reason}. Every answer is saved; q quits."

    def _cursor_to_first_open(self) -> None:
        open_positions = [i for i, c in enumerate(self.cards) if c.item.answer is None]
        if self.cards:
            self.move_cursor(open_positions[0] if open_positions else 0)

    def move_cursor(self, position: int, restyle: ItemCard | None = None) -> None:
        """Point the keys at the card at ``position`` and bring it into view.

        Each card whose classes change is restyled once (with ``restyle``, a card changed
        by the caller and not restyled yet): a style pass covers the card and everything
        inside it, and a card restyled twice for one key was paid for twice."""
        changed = {restyle} if restyle is not None else set()
        if self.cursor < len(self.cards) and self.cursor != position and self.cards[self.cursor].set_cursor(False):
            changed.add(self.cards[self.cursor])
        self.cursor = position
        if self.cards[position].set_cursor(True):
            changed.add(self.cards[position])
        for each in changed:
            each.restyle_frame()
        self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        card = self.cards[self.cursor] if self.cursor < len(self.cards) else None
        if card is not None and card.is_mounted:
            card.scroll_visible(animate=False)

    def on_item_card_picked(self, event: ItemCard.Picked) -> None:
        if event.card in self.cards:
            self.move_cursor(self.cards.index(event.card))

    def watch_show_guesses(self, visible: bool) -> None:
        for card in self.cards:
            card.show_guess = visible  # its guess line's text, repainted alone
        if self.is_mounted and self.session.batch is not None:  # no batch: no mention of guesses
            self._refresh_title()

    # --- actions ----------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Dim keys that cannot act now (None), hide retry unless a retrain failed."""
        if action == "retry":
            return self.failed
        labelling = not self.busy and self.session.batch is not None and bool(self.cards)
        # ⏎ stays lit while a batch is open (an early ⏎ says how many cards are left; the
        # title says when the batch is complete): lit by the last answer instead, its
        # footer key's repaint reached the screen a frame late, and that key took 35-55 ms
        # (a 20 ms median), the latency bench's slowest keys
        if action in ("label", "skip", "undo", "confirm"):
            return True if labelling else None
        return True

    def cursor_position(self) -> int | None:
        return min(self.cursor, len(self.cards) - 1) if self.cards else None

    def action_move(self, dx: int, dy: int) -> None:
        if not self.cards:
            return
        position = self.cursor_position()
        position = 0 if position is None else position + dx + dy * self.columns
        self.move_cursor(min(max(position, 0), len(self.cards) - 1))

    def action_label(self, answer: int) -> None:
        position = self.cursor_position()
        if position is None:
            return
        if self._store_call(self.session.label, position, answer) is FAILED:
            return
        self._answer_changed(position, self._next_open(position))

    def action_skip(self) -> None:
        self.action_label(SKIPPED)

    def action_undo(self) -> None:
        position = self._store_call(self.session.undo)
        if position is FAILED:
            return
        if position is None:
            self.notify("Nothing to undo in this batch.", severity="warning")
            return
        self._answer_changed(position, position)

    def _store_call(self, method, *args):
        """Run a session call that writes to the project; show a failure (disk full, a
        locked or damaged database) instead of ending the app. The session leaves its
        state unchanged when a write fails, so the screen has nothing to roll back."""
        try:
            return method(*args)
        except (StoreError, OSError, sqlite3.Error, ValueError) as exc:
            self.notify(f"Not saved: {exc}", severity="error", timeout=10)
            return FAILED

    def _answer_changed(self, position: int, cursor: int | None) -> None:
        """Show a new answer on its card and move the cursor to ``cursor`` (None: stays).

        Everything a key changes is painted in one frame: Textual paints a second frame
        one to two frame periods (17-33 ms) after the first, so splitting the card from the
        side panel made the key slower, though each frame re-rendered less."""
        card = self.cards[position]
        card.item = self.session.batch.items[position]
        card.refresh_answer(restyle=False)
        if cursor is None:
            card.restyle_frame()
        else:
            self.move_cursor(cursor, restyle=card)
        self._show_progress()

    def _show_progress(self) -> None:
        """The figures an answer changes: the batch's title and the panel's counts. (No
        key changes state with an answer, :meth:`check_action`: the footer is left alone.)"""
        self._refresh_title()
        self.query_one(StatsPanel).update_stats(self._answered_stats())

    def _next_open(self, position: int) -> int | None:
        """The next card still to answer after ``position`` (None, said, when none is)."""
        n = len(self.cards)
        for step in range(1, n + 1):
            if self.cards[(position + step) % n].item.answer is None:
                return (position + step) % n
        self.notify("Batch complete: ⏎ confirms it, ⌫ undoes the last answer.")
        return None

    def action_confirm(self) -> None:
        batch = self.session.batch
        if batch is None or self.busy:
            return
        if not batch.complete:
            left = sum(item.answer is None for item in batch.items)
            self.notify(f"{left} card{'s' * (left != 1)} still to label or skip (s).", severity="warning")
            return
        if self._store_call(self.session.confirm_batch) is FAILED:
            return
        self.start_retraining()  # the panel follows with the next batch, or when the wait is shown

    def action_page(self, direction: int) -> None:
        position = self.cursor_position()
        body = self.cards[position].body if position is not None else None
        page = getattr(body, "page", None)  # only timelines scroll
        if page is not None:
            page(direction)

    def action_toggle_guesses(self) -> None:
        self.show_guesses = not self.show_guesses

    def action_view(self) -> None:
        """The cursor's image over the whole screen (image items only)."""
        position = self.cursor_position()
        if position is None or self.session.pool.modality == "sequence":
            return
        item = self.cards[position].item
        self.app.push_screen(ImageViewScreen(item_image(self.session, item.item_id), item.name))

    def action_review(self) -> None:
        """The review screen: confirmed batches, corrected in place. Safe at any time, a
        retrain running included: the engine queues a correction behind it (plain) or in
        the trainer's own queue (pipelined), so no training reads L while it changes."""
        if not isinstance(self.app.screen, ReviewScreen):
            self.app.push_screen(ReviewScreen(self.session), self._review_closed)

    def _review_closed(self, _result: object = None) -> None:
        """Corrections change the counts, and may free items of a finished project."""
        self.refresh_stats()
        if self.session.batch is None and not self.busy and not self.failed:
            if self.session.finished:
                self.show_finished()
            else:
                self.start_retraining()

    def action_help(self) -> None:
        live = self.session.classes.current.live
        self.app.push_screen(HelpScreen([c.name for c in live], [c.key or "" for c in live]))

    def action_retry(self) -> None:
        if self.failed and not self.busy:
            self.start_retraining()

    # --- the retrain worker -----------------------------------------------------
    def start_retraining(self) -> None:
        """Prepare the next batch in a worker. The wait is shown (the strip, the title, the
        footer's keys, the answered batch dimmed) only once it has lasted
        :data:`WAIT_SHOWN_AFTER_S`: a batch chosen ahead is usually on screen sooner, and
        showing the wait for it read the store for the side panel and repainted it, the
        strip, the title, the footer and, dimmed, all twenty cards, on the UI's thread
        between Enter and the next batch (the next batch repaints them all again). Keys
        are refused while busy either way (:meth:`check_action` is asked at each key)."""
        self.busy, self.failed = True, False
        self._stop.clear()
        self._wait_timer = self.set_timer(WAIT_SHOWN_AFTER_S, self._show_wait)
        self._retrain_started = time.monotonic()
        self._retrain_status = self.query_one(RetrainStatus)
        self._retrain_status.finish()  # a failure shown, or a report that came after the last worker ended
        self.run_worker(self._prepare_next_batch, thread=True, group=RETRAIN_GROUP, exit_on_error=False)

    def _show_wait(self) -> None:
        """The next batch is still being prepared: say so, and dim the answered batch."""
        if not self.busy:
            return
        self.query_one(RetrainStatus).start()
        self.refresh_stats()  # the answered batch's figures, and the title
        self.refresh_bindings()
        for card in self.cards:
            card.add_class("-done", update=False)
            card.restyle_frame()

    def _prepare_next_batch(self) -> tuple[Batch, list[Picture] | None] | None:
        """Runs in a thread: train, score, select, then decode the chosen items' pictures
        (off the UI's thread); progress goes to the UI thread."""
        last = 0.0
        status = self._retrain_status  # looked up on the UI thread; the DOM is not thread-safe

        def progress(stage: str, done: int, total: int) -> None:
            nonlocal last
            now = time.monotonic()
            if done >= total or now - last >= PROGRESS_INTERVAL_S:
                last = now
                status.post_message(RetrainStatus.Progress(stage, done, total))

        batch = self.session.prepare_next_batch(progress=progress, should_stop=self._stop.is_set)
        if batch is None or self._stop.is_set():
            return None
        return batch, card_pictures(self.session, batch.items)

    def _await_evaluation(self) -> None:
        """The pipelined trainer tests the model that chose this batch after sending it: its
        accuracy is recorded and shown when it comes, without holding the batch back."""
        self.run_worker(self._record_evaluation, thread=True, group=EVALUATION_GROUP, exit_on_error=False)

    def _record_evaluation(self) -> tuple[int, float] | None:
        """Runs in a thread: (round, test accuracy) once recorded; None if nothing came."""
        batch = self.session.batch
        accuracy = self.session.record_late_evaluation(should_stop=self._stop.is_set)
        return None if batch is None or accuracy is None else (batch.round, accuracy)

    def _show_evaluation(self, tested: tuple[int, float] | None) -> None:
        """The panel's test accuracy, from the store's newest figures plus the one just
        recorded (no store read: a key may be on its way)."""
        stats = self._stats
        if tested is None or stats is None or stats.round != tested[0] or not stats.accuracy_history:
            return
        history = [*stats.accuracy_history[:-1], tested[1]]
        self._stats = replace(stats, test_accuracy=tested[1], accuracy_history=history)
        self.query_one(StatsPanel).update_stats(self._answered_stats())

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == EVALUATION_GROUP and event.state == WorkerState.SUCCESS:
            self._show_evaluation(event.worker.result)
            return
        if event.worker.group != RETRAIN_GROUP or event.state not in (
            WorkerState.SUCCESS,
            WorkerState.ERROR,
            WorkerState.CANCELLED,
        ):
            return
        self.busy = False
        if self._wait_timer is not None:
            self._wait_timer.stop()
        self.query_one(RetrainStatus).finish()
        if event.state == WorkerState.ERROR:
            self.failed = True
            error = event.worker.error
            self.query_one(RetrainStatus).failed(f"{type(error).__name__}: {error}")
            self.notify(f"Retraining failed: {error}", severity="error", timeout=10)
        elif self._stop.is_set():
            return  # quitting: the app closes the session next
        elif self.session.batch is not None:
            prepared = event.worker.result if event.state == WorkerState.SUCCESS else None
            self.show_batch(prepared[1] if prepared is not None and prepared[0] is self.session.batch else None)
            if time.monotonic() - self._retrain_started >= ANNOUNCE_AFTER_S:
                self.notify(f"Round {self.session.batch.round}: a new batch of {len(self.cards)} is ready.")
            # The person reads the new batch before the first key: a full pass fits there,
            # once it is painted (after Enter it held a batch chosen ahead back by 0.2 s
            # on a slow machine).
            self.call_after_refresh(self.set_timer, COLLECT_AFTER_S, collect_between_batches)
        elif self.session.finished:
            self.show_finished()
        self.refresh_stats()
        self.refresh_bindings()
        if event.state == WorkerState.SUCCESS and self.session.batch is not None and self.session.evaluation_pending:
            self._await_evaluation()

    async def stop_retraining(self) -> None:
        """Ask a running retrain to stop at its next check and wait for it."""
        self._stop.set()
        for worker in self.workers:
            if worker.group in (RETRAIN_GROUP, EVALUATION_GROUP) and worker.is_running:
                try:
                    await worker.wait()
                except Exception:  # a failure while stopping changes nothing: we are leaving
                    pass
