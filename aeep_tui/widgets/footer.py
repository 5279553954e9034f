"""A footer that rebuilds itself only when the keys it shows change.

Textual's ``Footer`` recomposes (removes and mounts every key widget, then lays out the
screen again) whenever its screen publishes ``bindings_updated``. The labelling screen
refreshes its bindings after every answer (the last one enables ⏎), so the stock footer
cost a layout pass per keystroke for a footer that almost always looked the same.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer


def shown_bindings(screen: Screen) -> tuple:
    """What the footer would draw: every shown binding with whether it is enabled."""
    return tuple(
        (key, binding.action, binding.description, binding.key_display, enabled, tooltip)
        for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show
    )


class QuietFooter(Footer):
    """``Footer`` that skips the rebuild when the shown keys and their state are unchanged."""

    _shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        shown = shown_bindings(screen)
        if shown == self._shown and self._bindings_ready:
            return
        super().bindings_changed(screen)
        if screen.app.app_focus:  # else the stock footer skipped the rebuild: keep no record
            self._shown = shown
