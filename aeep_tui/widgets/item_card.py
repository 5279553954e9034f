"""One item of the batch as a card: a modality-specific body in a frame.

The frame is the same for every modality: the item's name as the border title, the
answer given so far as the border subtitle, and (toggled by the screen, hidden by
default so it cannot bias the person labelling) the model's guess and whether the item
is an exploration pick. What sits inside (an image, a timeline…) comes from
:func:`aeep_tui.widgets.cards.card_for`.

The card the keys act on carries the ``-cursor`` class rather than Textual's focus: moving
focus repaints the whole screen (``Screen.focused`` is a repainting reactive), which with
twenty images on screen cost tens of milliseconds per answer. A click posts
:class:`ItemCard.Picked` so the screen can move its cursor there.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Container
from textual.content import Content
from textual.message import Message
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Static

from aeep_core.session import SKIPPED


def describe_guess(item, class_names: list[str]) -> str:
    """``7 83% · explore`` (``no guess yet`` in the cold-start batch, which is random)."""
    if item.predicted is None:
        return "no guess yet · random start"
    confidence = f" {item.confidence:.0%}" if item.confidence is not None else ""
    return f"{class_names[item.predicted]}{confidence} · {'explore' if item.exploration else 'exploit'}"


class ItemCard(Widget):
    """A card of the batch grid; the labelling screen owns every key binding."""

    # Shown by writing the guess into its line (empty while hidden): a one-line repaint,
    # no style pass and no layout (a card's repaint would re-render its picture).
    show_guess: reactive[bool] = reactive(False, repaint=False)

    class Picked(Message):
        """The person clicked this card."""

        def __init__(self, card: ItemCard) -> None:
            super().__init__()
            self.card = card

    def __init__(self, item, body: Widget, class_names: list[str], keys: list[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.item = item
        self.body = body
        self.class_names = class_names
        self.keys = keys

    def compose(self) -> ComposeResult:
        with Container(classes="card-body"):
            yield self.body
        yield Static(self._guess_line(), classes="card-guess")

    def on_mount(self) -> None:
        self._show_title()
        self.refresh_answer()

    def show_item(self, item) -> None:
        """Frame another item (the next batch, shown in the cards already on screen; the
        caller has put its picture in the body): its name, guess and answer, undimmed."""
        self.item = item
        self._show_title()
        self._show_guess_line()
        self.remove_class("-done", update=False)
        self.refresh_answer(restyle=False)
        self.restyle_frame()

    def show_classes(self, class_names: list[str], keys: list[str]) -> None:
        """The project's classes changed (added, renamed, merged): name the answer and the
        guess by the new list (indices keep their meaning)."""
        self.class_names, self.keys = class_names, keys
        self._show_guess_line()
        self.refresh_answer()

    def refresh_answer(self, *, restyle: bool = True) -> None:
        """Show the item's current answer (called after label, skip and undo).

        ``restyle=False`` leaves the style pass to the caller, who restyles the card once
        after its other changes (the cursor leaving it): each pass restyles the card and
        everything inside it."""
        answer = self.item.answer
        self.set_class(answer is not None and answer != SKIPPED, "-labelled", update=restyle)
        self.set_class(answer == SKIPPED, "-skipped", update=restyle)
        self.border_subtitle = Content.styled(self.answer_text(), self.answer_style())

    def answer_text(self) -> str:
        """The border's subtitle: the answer given, ``skipped``, or ``·`` for none yet."""
        answer = self.item.answer
        if answer is None:
            return "·"
        return "skipped" if answer == SKIPPED else f"{self.keys[answer]} ▸ {self.class_names[answer]}"

    # The frame's titles are styled in their text, not by the state classes' CSS rules: a
    # rule that colours or emboldens a border title restyles and repaints everything inside
    # the card (Textual refreshes the children of a node whose colour or text style
    # changes), and each class key changed two cards' rules. The state rules now change
    # the border alone: a key's work on the fast machine went from 17.4 to 14.7 ms.
    def answer_style(self) -> str:
        """The subtitle's style: the colour of the card's state."""
        answer = self.item.answer
        if answer is None:
            return ""
        return "$warning" if answer == SKIPPED else "bold $success"

    def set_cursor(self, on: bool) -> bool:
        """Make this card the one the keys act on, or not (its frame restyled by the caller,
        :meth:`restyle_frame`); whether anything changed."""
        if self.has_class("-cursor") == on:
            return False
        self.set_class(on, "-cursor", update=False)
        self._show_title()
        return True

    def _show_title(self) -> None:
        self.border_title = Content.styled(self.item.name, "bold" if self.has_class("-cursor") else "")

    def restyle_frame(self) -> None:
        """Apply the stylesheet to the card after its state classes changed (``-cursor``,
        ``-labelled``, ``-skipped``, ``-done``), to the card alone.

        Those classes style only the frame: border, titles, opacity (whose change repaints
        the card's children itself). Textual's ``update_node_styles`` would also restyle the
        body, the picture and the guess line, which no rule selects by those classes
        (``tests/test_card_styles.py`` checks the stylesheet): three quarters of a class
        key's style work, on the UI's thread, for nothing. Without animation, as no card
        style has a transition."""
        self.app.stylesheet.update_nodes([self], animate=False)

    def describe(self) -> str:
        """What the guess line says when shown."""
        return describe_guess(self.item, self.class_names)

    def _guess_line(self) -> str:
        return self.describe() if self.show_guess else ""

    def _show_guess_line(self) -> None:
        for line in self.query(".card-guess").results(Static):  # none before compose
            line.update(self._guess_line(), layout=False)

    def watch_show_guess(self) -> None:
        self._show_guess_line()

    def on_click(self) -> None:
        self.post_message(self.Picked(self))
