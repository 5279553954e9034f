"""``?``: every key, the class of each class key, and what the side panel's numbers mean."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Footer, Markdown

KEYS_HELP = """\
| Key | Does |
|---|---|
| ← ↓ ↑ → or h j k l | move between cards |
| a class key | label the focused card, move to the next open one |
| s | skip: unsure, the item is not used for training |
| Backspace | undo the last answer |
| Enter | confirm the batch (every card labelled or skipped) |
| g | show or hide the model's guesses (hidden so they cannot bias you) |
| r | retry after a failed retrain |
| ? | this help |
| q | save and quit (every answer is saved the moment you give it) |
"""

PANEL_HELP = """\
## The side panel

- **m** — how many of the batch are *exploration* picks (far from everything labelled);
  the rest are *exploitation* picks (uncertain, and not near-duplicates of each other).
- **mp** — how often the model's guesses on the last exploration picks matched your
  labels. A high mp means the unexplored regions hold few surprises, so AEEP explores less.
- **Entropy** — how unsure the model is, on the batch shown and across the pool.
- **Accuracy** — of the model's guesses on the batch you just labelled, made before it saw
  your labels; and on the labelled test folder when `--test` gave one.
"""


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
        class_rows = "\n".join(f"| {key} | {name} |" for key, name in zip(self.class_keys, self.class_names))
        text = (
            "# Keys\n\n" + KEYS_HELP + "\n## Class keys\n\n| Key | Class |\n|---|---|\n" + class_rows + "\n\n" + PANEL_HELP
        )
        with VerticalScroll(id="help-body"):
            yield Markdown(text)
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#help-body").border_title = "Help"
        self.query_one("#help-body").focus()

    def action_close(self) -> None:
        self.dismiss(None)
