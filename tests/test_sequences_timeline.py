"""The TimelineCard widget: summary, colour-coded lines, scrolling, keys left to the screen."""

from __future__ import annotations

import numpy as np
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.widget import Widget
from textual.widgets import Static

from aeep_tui.widgets.timeline import TYPE_STYLES, TimelineCard, summarise_events, timeline_text, type_counts
from tests.sequences_fixtures import patient_events


def _history(n: int) -> list[dict]:
    return patient_events("sick", np.random.default_rng(0), n=n)


class _Host(App):
    """A stand-in screen: binds a class key and the arrows like the labelling screen does."""

    BINDINGS = [Binding("1", "label", "label"), Binding("down", "move", "move")]

    def __init__(self, events: list[dict]) -> None:
        super().__init__()
        self.events, self.pressed = events, []

    def compose(self) -> ComposeResult:
        yield TimelineCard(self.events, summary="")

    def action_label(self) -> None:
        self.pressed.append("label")

    def action_move(self) -> None:
        self.pressed.append("move")


def test_text_helpers():
    events = [
        {"time": "2020-01-01T00:00:00", "code": "1", "text": "a", "type": "condition"},
        {"time": "2020-01-01T05:00:00", "code": "2", "text": "", "type": "medication"},
        {"time": "2021-02-03T00:00:00", "code": "3", "text": "c", "type": "condition"},
    ]
    assert summarise_events(events) == "3 events, 2020-01-01 → 2021-02-03" and summarise_events([]) == "no events"
    assert type_counts(events) == "2 condition · 1 medication"
    text = timeline_text(events)
    lines = text.plain.split("\n")
    assert lines[0].startswith("2020-01-01") and lines[1].startswith(" " * 10) and "medication" in lines[1]
    assert any(span.style == TYPE_STYLES["condition"] for span in text.spans)


async def test_long_history_summarised_and_scrollable():
    events = _history(120)
    app = _Host(events)
    async with app.run_test(size=(100, 20)) as pilot:
        card = app.query_one(TimelineCard)
        summary = str(app.query_one(".timeline-summary", Static).render())
        assert "120 events" in summary and "condition" in summary  # counts by type above the scroll
        await pilot.pause()
        scroll = card.scroller
        assert scroll.max_scroll_y > 0 and scroll.scroll_y == scroll.max_scroll_y  # opens at the newest
        card.focus()
        await pilot.press("home")
        await pilot.pause()
        assert scroll.scroll_y == 0
        await pilot.press("pagedown")
        await pilot.pause()
        assert 0 < scroll.scroll_y
        await pilot.press("1", "down")  # labelling keys reach the screen, not the timeline
        assert app.pressed == ["label", "move"] and app.focused is card


async def test_short_and_empty_histories():
    app = _Host(_history(3))
    async with app.run_test(size=(100, 20)):
        summary = str(app.query_one(".timeline-summary", Static).render())
        assert summary.startswith("3 events") and "·" not in summary  # no type counts for short ones
    app = _Host([])
    async with app.run_test(size=(100, 20)):
        assert "no events" in str(app.query_one(".timeline-summary", Static).render())


class _Frame(Widget, can_focus=True):
    """Like the app's ItemCard: a focusable frame around the timeline."""

    def compose(self) -> ComposeResult:
        yield TimelineCard(_history(40))


class _FramedHost(App):
    def compose(self) -> ComposeResult:
        yield _Frame()


async def test_inside_a_focusable_card_focus_goes_to_the_card():
    app = _FramedHost()
    async with app.run_test(size=(100, 20)) as pilot:
        card = app.query_one(TimelineCard)
        await pilot.click(TimelineCard)
        await pilot.pause()
        assert app.focused is app.query_one(_Frame)  # the screen's keys keep finding the card
        card.page(-1)
        await pilot.pause()
        assert card.scroller.scroll_y < card.scroller.max_scroll_y  # paging still works, called by the host
