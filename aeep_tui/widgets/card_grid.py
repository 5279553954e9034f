"""A grid of cards, shared by the labelling and review screens: its size in the terminal
and the keys that move the selection on it."""

from __future__ import annotations

import math

from textual.binding import Binding
from textual.widget import Widget

# Arrows and hjkl move the selected card (each screen defines ``action_move(dx, dy)``).
GRID_MOVES = [
    Binding("left", "move(-1, 0)", "move", key_display="←↓↑→/hjkl"),
    Binding("right", "move(1, 0)", "move", show=False),
    Binding("up", "move(0, -1)", "move", show=False),
    Binding("down", "move(0, 1)", "move", show=False),
    Binding("h", "move(-1, 0)", "move", show=False),
    Binding("l", "move(1, 0)", "move", show=False),
    Binding("k", "move(0, -1)", "move", show=False),
    Binding("j", "move(0, 1)", "move", show=False),
]

# Cards smaller than this stop being readable; past it the grid scrolls instead.
MIN_CARD_WIDTH, MIN_CARD_HEIGHT = 18, 7


def fit_grid(grid: Widget, n: int) -> int | None:
    """Lay ``grid`` out for ``n`` cards so they all fit when they can; return the column
    count (None before the grid has a size)."""
    n = max(n, 1)
    width, height = grid.size.width, grid.size.height
    if width <= 0 or height <= 0:
        return None

    # A square image needs about twice as many columns as rows of cells; pick the
    # column count that gives the largest such image.
    def image_side(cols: int) -> float:
        rows = math.ceil(n / cols)
        return min(width // cols / 2, height // rows)

    columns = max(range(1, n + 1), key=image_side)
    if width // columns < MIN_CARD_WIDTH:
        columns = max(1, width // MIN_CARD_WIDTH)
    rows = math.ceil(n / columns)
    grid.styles.grid_size_columns = columns
    grid.styles.grid_rows = str(max(MIN_CARD_HEIGHT, height // rows))
    return columns
