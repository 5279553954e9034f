"""A card of the review screen: the labelling screen's card (same body, same frame) whose
bottom line always shows what the model says now, marked when it disagrees with the answer.

In review the guess is the point, not a bias to hide: the answer was given already.
"""

from __future__ import annotations

from aeep_core.session import ReviewItem
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
        self.set_class(self.item.disagrees, "-disagrees", update=restyle)
        super().refresh_answer(restyle=restyle)
        self._show_guess_line()

    def answer_text(self) -> str:
        """The answer, marked ✎ when corrected; ``back in the pool`` when taken back."""
        mark = "✎ " if self.item.corrected else ""
        return f"{mark}back in the pool" if self.item.answer is None else mark + super().answer_text()

    def answer_style(self) -> str:
        return "$error" if self.item.disagrees else super().answer_style()
