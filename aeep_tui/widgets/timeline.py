"""A patient's history as a card: a summary line above a scrollable, colour-coded timeline.

One line per event: date (shown once per day), event type (coloured), code and text. Events
run oldest to newest and the view opens at the newest end, since the most recent events are
the ones the model reads. Histories longer than :data:`SUMMARY_THRESHOLD` events get counts
by type above the scroll, so the shape of a long record is visible without scrolling.

Keys: the card binds only PageUp/PageDown/Home/End (and the mouse wheel), so every labelling
key of an image card (class keys, arrows/hjkl, s, backspace, enter) reaches the screen
unchanged. Inside a focusable container (the app's ``ItemCard``) a click or Tab passes focus
on to that container, because the labelling screen finds the current card by what is
focused; such a container forwards paging with :meth:`TimelineCard.page`.
"""

from __future__ import annotations

from collections import Counter
from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widget import Widget
from textual.widgets import Static

SUMMARY_THRESHOLD = 12
TYPE_STYLES: dict[str, str] = {
    "condition": "bold red",
    "medication": "bold blue",
    "procedure": "bold magenta",
    "encounter": "bold green",
    "immunization": "bold cyan",
    "careplan": "bold yellow",
    "allergy": "bold dark_orange",
    "observation": "bold white",
}
_OTHER_STYLE = "bold"
_TYPE_WIDTH = 12


def type_counts(events: list[dict]) -> str:
    """``84 encounter · 60 condition · …`` (most frequent first)."""
    counts = Counter(str(e.get("type", "event")) for e in events)
    return " · ".join(f"{n} {t}" for t, n in counts.most_common())


def summarise_events(events: list[dict]) -> str:
    """``231 events, 2001-03-04 → 2016-11-27`` (what the card shows above the scroll)."""
    if not events:
        return "no events"
    span = f"{str(events[0].get('time', ''))[:10]} → {str(events[-1].get('time', ''))[:10]}"
    return f"{len(events)} event{'s' if len(events) != 1 else ''}, {span}"


def timeline_text(events: list[dict]) -> Text:
    """The rich text of the timeline: one line per event, the date only where it changes."""
    text = Text(no_wrap=True, overflow="ellipsis")
    last_day = None
    for i, ev in enumerate(events):
        day = str(ev.get("time", ""))[:10]
        etype = str(ev.get("type", "event"))
        text.append(f"{day if day != last_day else '':<10}  ", style="dim" if day == last_day else "")
        text.append(f"{etype[:_TYPE_WIDTH]:<{_TYPE_WIDTH}} ", style=TYPE_STYLES.get(etype, _OTHER_STYLE))
        text.append(f"{ev.get('code', '')}", style="italic")
        if ev.get("text"):
            text.append(f"  {ev['text']}")
        if i < len(events) - 1:
            text.append("\n")
        last_day = day
    return text


class _EventScroll(VerticalScroll, can_focus=False):
    """The scrolling part; not focusable itself, so focus (and keys) stay on the card."""


class TimelineCard(Vertical, can_focus=True):
    """A scrollable, focusable timeline of one patient's events (dicts with time/code/text/type)."""

    DEFAULT_CSS = """
    TimelineCard { height: 1fr; }
    TimelineCard > .timeline-summary { height: auto; color: $text-muted; }
    TimelineCard > _EventScroll { height: 1fr; }
    TimelineCard:focus > _EventScroll { scrollbar-color: $accent; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("pagedown", "page(1)", "older/newer", show=False),
        Binding("pageup", "page(-1)", "older/newer", show=False),
        Binding("home", "edge(0)", "oldest", show=False),
        Binding("end", "edge(1)", "newest", show=False),
    ]

    def __init__(self, events: list[dict], summary: str = "", *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.events = list(events)
        self.summary = summary

    def summary_text(self) -> str:
        """The caller's summary (or date span) and, for long histories, counts by type."""
        lines = [self.summary or summarise_events(self.events)]
        if len(self.events) > SUMMARY_THRESHOLD:
            lines.append(type_counts(self.events))
        return "\n".join(lines)

    def compose(self) -> ComposeResult:
        yield Static(self.summary_text(), classes="timeline-summary", markup=False)
        with _EventScroll():
            yield Static(timeline_text(self.events) if self.events else Text("no events", style="dim"), classes="timeline-events")

    def on_mount(self) -> None:
        # Open at the newest events: the model reads the last T, and so should the person.
        self.call_after_refresh(self.scroller.scroll_end, animate=False)

    def on_focus(self) -> None:
        host = next((a for a in self.ancestors if isinstance(a, Widget) and a.can_focus), None)
        if host is not None:
            host.focus()

    @property
    def scroller(self) -> VerticalScroll:
        return self.query_one(_EventScroll)

    def page(self, direction: int) -> None:
        """Scroll one page towards newer (``direction`` > 0) or older events."""
        if direction > 0:
            self.scroller.scroll_page_down(animate=False)
        else:
            self.scroller.scroll_page_up(animate=False)

    def action_page(self, direction: int) -> None:
        self.page(direction)

    def action_edge(self, newest: int) -> None:
        if newest:
            self.scroller.scroll_end(animate=False)
        else:
            self.scroller.scroll_home(animate=False)
