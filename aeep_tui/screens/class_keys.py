"""Binding a project's class keys on a screen: which keys exist depends on the project (and
changes when a class is added or merged), so each screen binds them itself."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from textual.binding import Binding, BindingsMap

from aeep_core.store.classes import ProjectClass
from aeep_tui.keys import describe_keys


def with_class_keys(
    own: Mapping[str, list[Binding]], classes: Iterable[ProjectClass], action: str, description: str
) -> BindingsMap:
    """A screen's bindings with each keyed class's key first, calling ``action(index)``. The
    footer shows one entry for all of them ("1-9 0 label") instead of a key per class, first,
    so a narrow terminal that cuts the footer's end keeps it."""
    keyed = [(c.index, c.key) for c in classes if c.key]
    display = describe_keys([key for _, key in keyed])
    bindings = BindingsMap()
    for n, (index, key) in enumerate(keyed):
        bindings.bind(key, f"{action}({index})", description, show=n == 0, key_display=display)
    bindings.key_to_bindings.update(own)
    return bindings
