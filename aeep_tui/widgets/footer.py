"""A footer that rebuilds itself only when the keys it shows change.

Textual's ``Footer`` recomposes (removes and mounts every key widget, then lays out the
screen again) whenever its screen publishes ``bindings_updated``. The labelling screen
refreshes its bindings after every answer, so the stock footer cost a layout pass per
keystroke for a footer that almost always looked the same; and when only a key's enabled
state changed (a retrain starts or ends), the widgets it has are marked in place.
"""

from __future__ import annotations

from textual.screen import Screen
from textual.widgets import Footer
from textual.widgets._footer import FooterKey


def shown_bindings(screen: Screen) -> tuple:
    """What the footer would draw: every shown binding with whether it is enabled."""
    return tuple(
        (key, binding.action, binding.description, binding.key_display, enabled, tooltip)
        for key, (_node, binding, enabled, tooltip) in screen.active_bindings.items()
        if binding.show
    )


def _without_state(shown: tuple) -> tuple:
    return tuple(entry[:4] + entry[5:] for entry in shown)


class QuietFooter(Footer):
    """``Footer`` that skips the rebuild when the shown keys and their state are unchanged,
    and when only whether keys are enabled changed, sets that on its key widgets in place
    (a rebuild costs a layout pass and a second frame)."""

    _shown: tuple | None = None

    def bindings_changed(self, screen: Screen) -> None:
        shown = shown_bindings(screen)
        if shown == self._shown and self._bindings_ready:
            return
        if self._bindings_ready and self._shown is not None and _without_state(shown) == _without_state(self._shown):
            if self._enable_in_place(screen):
                self._shown = shown
                return
        super().bindings_changed(screen)
        if screen.app.app_focus:  # else the stock footer skipped the rebuild: keep no record
            self._shown = shown

    def _enable_in_place(self, screen: Screen) -> bool:
        """Mark each key widget enabled or not as the screen's bindings say; False (nothing
        changed) when a widget's binding is not there, so the caller rebuilds instead."""
        enabled = {(binding.key, binding.action): on for _node, binding, on, _tooltip in screen.active_bindings.values()}
        keys = list(self.query(FooterKey))
        if not keys or any((k.key, k.action) not in enabled for k in keys):
            return False
        for k in keys:
            disabled = not enabled[(k.key, k.action)]
            if k._disabled != disabled:
                k._disabled = disabled  # what FooterKey reads when clicked
                k.set_class(disabled, "-disabled")
        return True
