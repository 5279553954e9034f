"""First open of a folder: confirm the classes, their keys, the batch size and strategy.

Classes come pre-filled from ``--classes`` or the folder's ``classes.txt``; otherwise the
person types them. The key of each class is shown live as they type, so the mapping is
never a surprise on the labelling screen.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, Select, Static

from aeep_tui.config import key_map_for
from aeep_tui.keys import assign_keys, parse_classes

STRATEGY_NOTES = {
    "aeep": "AEEP: adaptive exploration–exploitation with the pairwise network (recommended)",
    "ee": "fixed split of exploration and exploitation",
    "random": "random picks (a baseline)",
    "em": "most uncertain items (entropy)",
    "kff": "k-farthest-first: cover the pool",
    "bmal": "batch-mode: uncertain and diverse",
    "coreset": "core-set: cover the embedding space",
    "badge": "BADGE: gradient embeddings, k-means++",
}
MAX_BATCH = 100


@dataclass(frozen=True)
class SetupChoice:
    """What the person confirmed; the app turns it into project settings."""

    classes: list[str]
    keys: list[str]
    batch_size: int
    strategy: str


def classes_from_folder(data: Path) -> list[str]:
    """Class names from ``classes.txt`` in the data folder, one per line (or commas)."""
    path = Path(data) / "classes.txt"
    try:
        return parse_classes(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError):
        return []


class SetupScreen(Screen[SetupChoice]):
    """Dismissed with the confirmed :class:`SetupChoice`; ``escape`` quits the app."""

    BINDINGS = [
        Binding("ctrl+s", "start", "start labelling"),
        Binding("escape", "app.quit", "quit"),
    ]

    def __init__(
        self,
        data: Path,
        classes: list[str],
        batch_size: int,
        strategy: str,
        strategies: list[str],
        key_map: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.data = data
        self.key_map = dict(key_map or {})  # the config file's [keys]: class name or index -> key
        self.initial_classes = classes
        self.initial_batch_size = batch_size
        self.initial_strategy = strategy if strategy in strategies else strategies[0]
        self.strategies = strategies

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="setup-form"):
            yield Static(f"New labelling project for [b]{self.data}[/b]", id="setup-title")
            yield Label("Classes, separated by commas", classes="field-label")
            yield Input(", ".join(self.initial_classes), placeholder="cat, dog, bird", id="setup-classes")
            yield Static(id="setup-keys")
            with Horizontal(id="setup-row"):
                with Vertical():
                    yield Label("Batch size", classes="field-label")
                    yield Input(str(self.initial_batch_size), type="integer", id="setup-batch-size")
                with Vertical():
                    yield Label("Strategy", classes="field-label")
                    yield Select(
                        [(name, name) for name in self.strategies],
                        value=self.initial_strategy,
                        allow_blank=False,
                        id="setup-strategy",
                    )
            yield Static(id="setup-strategy-note", classes="stat-dim")
            yield Static(id="setup-error")
            yield Button("Start labelling", variant="primary", id="setup-start")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#setup-form").border_title = "Set up"
        self._show_keys()
        self._show_strategy_note()
        self.query_one("#setup-classes" if not self.initial_classes else "#setup-start").focus()

    @on(Input.Changed, "#setup-classes")
    def _show_keys(self) -> None:
        classes = parse_classes(self.query_one("#setup-classes", Input).value)
        try:
            keys = assign_keys(classes, key_map_for(classes, self.key_map))
        except ValueError as exc:
            self.query_one("#setup-keys", Static).update(f"[red]{exc}[/red]")
            return
        pairs = "  ".join(f"[b]{k}[/b]→{name}" for k, name in zip(keys, classes))
        self.query_one("#setup-keys", Static).update(pairs or "[dim]each class gets a key: 1–9, 0, then letters[/dim]")

    @on(Select.Changed, "#setup-strategy")
    def _show_strategy_note(self) -> None:
        strategy = self.query_one("#setup-strategy", Select).value
        self.query_one("#setup-strategy-note", Static).update(STRATEGY_NOTES.get(str(strategy), ""))

    @on(Input.Submitted)
    @on(Button.Pressed, "#setup-start")
    def action_start(self) -> None:
        choice, problem = self._read_form()
        self.query_one("#setup-error", Static).update(f"[red]{problem}[/red]" if problem else "")
        if choice is not None:
            self.dismiss(choice)

    def _read_form(self) -> tuple[SetupChoice | None, str | None]:
        classes = parse_classes(self.query_one("#setup-classes", Input).value)
        if len(classes) < 2:
            return None, "Type at least two classes, separated by commas."
        try:
            keys = assign_keys(classes, key_map_for(classes, self.key_map))
        except ValueError as exc:
            return None, str(exc)
        text = self.query_one("#setup-batch-size", Input).value.strip()
        if not text.isdigit() or not 1 <= int(text) <= MAX_BATCH:
            return None, f"Batch size must be a whole number from 1 to {MAX_BATCH}."
        strategy = str(self.query_one("#setup-strategy", Select).value)
        return SetupChoice(classes, keys, int(text), strategy), None
