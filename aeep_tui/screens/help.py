"""``?``: every key, the class of each class key, and what the side panel's numbers mean.

Built from Rich tables in two Static widgets rather than a Markdown document: it opens
while the model trains, and a few Statics lay out in a fraction of the time.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

KEYS = [
    ("← ↓ ↑ →  h j k l", "move between cards (or click one)"),
    ("a class key", "label the card under the cursor and move to the next open one"),
    ("s", "skip: unsure, the item is not used for training"),
    ("Backspace", "undo the last answer"),
    ("Enter", "confirm the batch (every card labelled or skipped)"),
    ("g", "show or hide the model's guesses (hidden so they cannot bias you)"),
    ("Space", "the card's image over the whole screen; Esc or Space closes it"),
    ("r", "retry after a failed retrain"),
    ("R (Shift+r)", "review confirmed batches: the model's disagreements first; relabel, skip or un-skip, ⌫ undo"),
    ("S", "stats: labels per class, the model's accuracy, when to stop; Esc goes back"),
    ("A", "add a class nobody listed: type its name; it gets a key at once, for this batch too"),
    ("Ctrl+P", "command palette: review, stats, export the labels, add, rename or merge classes, theme"),
    ("PgUp PgDn", "scroll a long card (a patient's timeline)"),
    ("?", "this help; Esc closes it"),
    ("q", "quit; every answer is saved the moment you give it"),
]

PANEL_HELP = """\
[b]The side panel[/b]
[b]m[/b]  how many of the batch are [i]exploration[/i] picks (far from everything labelled); \
the rest are [i]exploitation[/i] picks (uncertain, and not near-duplicates of each other).
[b]mp[/b]  how often the model's guesses on the last exploration picks matched your labels. \
A high mp means the unexplored regions hold few surprises, so AEEP explores less.
[b]Entropy[/b]  how unsure the model is, on the batch shown and across the pool.
[b]Accuracy[/b]  of the model's guesses on the batch you just labelled, made before it saw \
your labels; and on the labelled test folder when --test gave one.
"""


def two_columns(title: str, rows: list[tuple[str, str]]) -> Table:
    table = Table(title=title, title_justify="left", title_style="bold", show_header=False, box=None, expand=True)
    table.add_column(style="bold", no_wrap=True)
    table.add_column(ratio=1)
    for key, text in rows:
        table.add_row(key, text)
    return table


class HelpScreen(ModalScreen[None]):
    """A modal over the labelling screen; training keeps running underneath."""

    BINDINGS = [
        Binding("escape", "close", "close help"),
        Binding("question_mark", "close", "close help", show=False),
        Binding("q", "app.save_and_quit", "quit"),
    ]

    def __init__(self, classes: list[str], keys: list[str]) -> None:
        super().__init__()
        self.class_names = classes  # not ``classes``: that name is the widget's CSS classes
        self.class_keys = keys

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="help-body"):
            yield Static(two_columns("Keys", KEYS))
            yield Static(two_columns("Class keys", list(zip(self.class_keys, self.class_names))), classes="help-part")
            yield Static(PANEL_HELP, classes="help-part")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#help-body").border_title = "Help"
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
