"""A confusion matrix as a Rich table: rows are the true classes (the person's answers,
or the test folder's), columns what the model guessed; the diagonal is right."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from rich.table import Table
from rich.text import Text

# Wide enough for the common case (digits, a dozen short names); longer names are cut
# so a 10-class matrix still fits beside the plot in a 140-column terminal.
NAME_WIDTH = 8


def short(name: str, width: int = NAME_WIDTH) -> str:
    return name if len(name) <= width else name[: width - 1] + "…"


def confusion_table(matrix: np.ndarray, classes: Sequence[str], title: str, rows: str = "answer") -> Table:
    """``matrix[true, guessed]`` with row and column totals; zeros dimmed, hits bold."""
    table = Table(
        title=title,
        title_justify="left",
        title_style="bold",
        caption=f"rows: {rows} · columns: guess",
        caption_justify="left",
        box=None,
        pad_edge=False,
        padding=(0, 1),
    )
    table.add_column("", style="bold", no_wrap=True)
    for name in classes:
        table.add_column(short(name), justify="right", no_wrap=True)
    table.add_column("n", justify="right", style="dim", no_wrap=True)
    for t, name in enumerate(classes):
        cells = []
        for g in range(len(classes)):
            count = int(matrix[t, g])
            style = "bold green" if t == g and count else "red" if count else "dim"
            cells.append(Text(str(count), style=style))
        table.add_row(short(name), *cells, Text(str(int(matrix[t].sum()))))
    table.add_row("n", *(Text(str(int(c)), style="dim") for c in matrix.sum(0)), Text(str(int(matrix.sum())), style="dim"))
    return table
