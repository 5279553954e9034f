"""Repaint only what a frame changed: the labelling screens' compositor.

Textual's partial update re-renders every widget that overlaps the smallest rectangle
around all of a frame's changed regions, then sends the terminal only the changed cells.
A class key changes the answered card, the next card, the batch's title and the side
panel's counts; their bounding rectangle covers most of the screen, so every key
re-rendered about 80 widgets (27–37 ms of a 40–45 ms key on the fast machine; more on
the slow kind, BENCHMARKS.md "Slow machines"). :class:`ChangedRegionsCompositor` renders
a widget only if a changed region overlaps it, and then only on the rows where one does.
The terminal receives the same bytes: what Textual sends is cut to the changed cells,
and each of those is still drawn by its topmost widget (``tests/test_partial_repaint.py``
compares the two on the real screen).

It overrides ``Compositor._get_renders``, a private method of Textual (``textual._compositor``,
unchanged through 8.x): pyproject.toml keeps Textual below 9, and the test fails loudly if
an upgrade changes what the base class paints.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual._compositor import Compositor
from textual.geometry import Region
from textual.screen import Screen
from textual.strip import Strip


def row_bands(regions: Iterable[Region]) -> list[tuple[int, int]]:
    """The rows ``regions`` cover, as sorted, disjoint ``(first, end)`` runs."""
    bands: list[tuple[int, int]] = []
    for first, end in sorted((r.y, r.bottom) for r in regions):
        if bands and first <= bands[-1][1]:
            bands[-1] = (bands[-1][0], max(end, bands[-1][1]))
        else:
            bands.append((first, end))
    return bands


class ChangedRegionsCompositor(Compositor):
    """A compositor whose partial updates render only the widgets the changes touch."""

    def __init__(self) -> None:
        super().__init__()
        self._changed: list[Region] | None = None  # this frame's changed regions, while it renders

    def render_partial_update(self):
        self._changed = list(self._dirty_regions)  # the base class clears them
        try:
            return super().render_partial_update()
        finally:
            self._changed = None

    def _get_renders(self, crop: Region | None = None) -> Iterable[tuple[Region, Region, list[Strip]]]:
        changed = self._changed
        if changed is None:  # a full update (resize, layout), or a screenshot
            yield from super()._get_renders(crop)
            return
        # Front to back, as the base class: the first strip drawn for a cell wins.
        for widget, (region, clip) in self.visible_widgets.items():
            visible = region.intersection(clip)
            touched = [overlap for change in changed if (overlap := visible.intersection(change))]
            # Whole rows of the widget: the compositor cuts each rendered line at the
            # widget's own edges, so a line is rendered across the widget's visible width.
            for first, end in row_bands(touched):
                rows = Region(visible.x, first, visible.width, end - first)
                yield region, rows, widget.render_lines(rows.translate((-region.x, -region.y)))


def repaint_changes_only(screen: Screen) -> None:
    """Give ``screen`` the compositor that renders only what changed (call in its ``__init__``,
    before it is mounted: the compositor holds the screen's layout once mounted)."""
    screen._compositor = ChangedRegionsCompositor()
