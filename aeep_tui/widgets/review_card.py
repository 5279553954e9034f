"""A card of the review screen: the labelling screen's card (same body, same frame) whose
bottom line always shows what the model says now, marked when it disagrees with the answer.

In review the guess is the point, not a bias to hide: the answer was given already.
"""

from __future__ import annotations

from aeep_core.session import SKIPPED, ReviewItem
from aeep_tui.widgets.item_card import ItemCard


def describe_model(item: ReviewItem, class_names: list[str]) -> str:
    """``model: dog 93% ✗`` (✗: it disagrees with the answer), ``before: dog 60%`` while only
    the guess made before the answer is known, ``no guess`` for a random first batch."""
    guess, confidence = item.guess
    if guess is None:
        return "no guess (random start)"
    source = "model" if item.model_predicted is not None else "before"
    mark = " ✗" if item.disagrees else ""
    return f"{source}: {class_names[guess]} {confidence or 0:.0%}{mark}"


class ReviewCard(ItemCard):
    """One reviewed item; the review screen owns every key binding."""

    item: ReviewItem

    def describe(self) -> str:
        """The model's view of the item, always shown: the answer was given already."""
        return describe_model(self.item, self.class_names)

    def on_mount(self) -> None:
        self.show_guess = True
        super().on_mount()

    def refresh_answer(self, *, restyle: bool = True) -> None:
        """Show the item's current answer, whether it was corrected, and the model's view."""
        super().refresh_answer(restyle=restyle)
        item = self.item
        mark = "✎ " if item.corrected else ""
        if item.answer is None:
            self.border_subtitle = f"{mark}back in the pool"
        elif item.answer != SKIPPED:
            self.border_subtitle = f"{mark}{self.keys[item.answer]} ▸ {self.class_names[item.answer]}"
        else:
            self.border_subtitle = f"{mark}skipped"
        self.set_class(item.disagrees, "-disagrees", update=restyle)
        self._show_guess_line()
