"""Space: one item's image over the whole screen, for a photo too detailed for its card."""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Container
from textual.screen import ModalScreen
from textual.widgets import Footer, Static

from aeep_tui.widgets.terminal_image import terminal_image


class ImageViewScreen(ModalScreen[None]):
    """The image of one card, as large as the terminal allows; any of the keys closes it."""

    BINDINGS = [
        Binding("escape", "app.pop_screen", "close"),
        Binding("space", "app.pop_screen", "close", show=False),
        Binding("q", "app.pop_screen", "close", show=False),
    ]

    def __init__(self, image: PILImage.Image | Path, caption: str) -> None:
        super().__init__()
        self.image, self.caption = image, caption

    def compose(self) -> ComposeResult:
        yield Static(self.caption, id="image-view-title")
        # centred at its own aspect ratio (app.tcss), not stretched over the whole screen
        with Container(id="image-view-body"):
            yield terminal_image(self.image, id="image-view")
        yield Footer()
