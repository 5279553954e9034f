"""The dialogs of a class change (issue 26): typing a class's name, picking a class by its key.

Both are modal over the labelling screen, answer with :meth:`dismiss` (None: cancelled)
and leave the change itself to the app (:meth:`aeep_tui.app.LabellingApp.action_new_class`
and its siblings), which commits it through ``session.classes``.
"""

from __future__ import annotations

from rich.table import Table
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Footer, Input, Static

from aeep_core.store.classes import ProjectClass
from aeep_tui.screens.class_keys import with_class_keys


class ClassNameScreen(ModalScreen[str | None]):
    """Type a class's name (a new class's, or a new name for one): Enter saves, Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel", key_display="esc")]

    def __init__(self, prompt: str, name: str = "") -> None:
        super().__init__()
        self.prompt, self.initial = prompt, name

    def compose(self) -> ComposeResult:
        with Vertical(classes="class-dialog"):
            yield Static(self.prompt, classes="class-dialog-title")
            yield Input(value=self.initial, placeholder="the class's name", id="class-name")
            yield Static("⏎ saves · esc cancels", classes="class-dialog-hint")
        yield Footer(compact=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        name = event.value.strip()
        if name:
            self.dismiss(name)
        else:
            self.notify("Type a name first (or esc to cancel).", severity="warning")

    def action_cancel(self) -> None:
        self.dismiss(None)


class PickClassScreen(ModalScreen[int | None]):
    """Pick one of ``classes`` by pressing its key (shown in the footer); Esc cancels."""

    BINDINGS = [Binding("escape", "cancel", "cancel", key_display="esc")]

    def __init__(self, prompt: str, classes: list[ProjectClass]) -> None:
        super().__init__()
        self.prompt, self.choices = prompt, classes
        self._bindings = with_class_keys(self._bindings.key_to_bindings, classes, "pick", "pick")

    def compose(self) -> ComposeResult:
        table = Table(show_header=False, box=None)
        table.add_column(style="bold", no_wrap=True)
        table.add_column()
        for c in self.choices:
            table.add_row(c.key or "", c.name)
        with Vertical(classes="class-dialog"):
            yield Static(self.prompt, classes="class-dialog-title")
            yield Static(table, classes="class-dialog-list")
            yield Static("press a class's key · esc cancels", classes="class-dialog-hint")
        yield Footer(compact=True)

    def action_pick(self, index: int) -> None:
        self.dismiss(index)

    def action_cancel(self) -> None:
        self.dismiss(None)
