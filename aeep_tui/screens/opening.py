"""Shown while a project opens: the first open of a big folder decodes every image."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Center, Middle
from textual.screen import Screen
from textual.widgets import Footer, Header, Label, ProgressBar

STAGE_TEXT = {"load": "Reading the data", "hash": "Matching items with the project"}


class OpeningScreen(Screen[None]):
    """A progress bar fed by ``LabellingSession.open(progress=...)``."""

    BINDINGS = [Binding("q", "app.quit", "quit")]

    def __init__(self, data: Path) -> None:
        super().__init__()
        self.data = data

    def compose(self) -> ComposeResult:
        yield Header()
        with Middle():
            with Center():
                yield Label(f"Opening [b]{self.data}[/b]…", id="opening-label")
            with Center():
                yield ProgressBar(id="opening-bar", show_eta=False)
        yield Footer()

    def stage(self, stage: str, done: int, total: int) -> None:
        text = STAGE_TEXT.get(stage, stage.capitalize())
        self.query_one("#opening-label", Label).update(f"{text}…  {done:,}/{total:,}")
        self.query_one("#opening-bar", ProgressBar).update(total=max(total, 1), progress=done)
