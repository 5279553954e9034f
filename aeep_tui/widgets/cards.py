"""Which card shows an item: one place to plug in a new modality.

Image items get a terminal image (:func:`aeep_tui.widgets.terminal_image.terminal_image`:
Kitty TGP, Sixel or unicode blocks, whichever the terminal supports); sequence items get
the ``TimelineCard`` from :mod:`aeep_tui.widgets.timeline`, imported only when such a pool
is open.
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image as PILImage
from PIL import ImageOps, UnidentifiedImageError
from textual.widget import Widget

from aeep_tui.widgets.item_card import ItemCard
from aeep_tui.widgets.terminal_image import show_picture, takes_new_pictures, terminal_image


def item_image(session, item_id: int) -> PILImage.Image | Path:
    """The original file when there is one (full resolution), else the pool's tensor."""
    path = session.source_path(item_id)
    if path is not None and Path(path).is_file():
        return Path(path)
    pixels = session.pool.inputs[item_id].numpy()  # uint8 [C, H, W]
    return PILImage.fromarray(pixels[0] if pixels.shape[0] == 1 else pixels.transpose(1, 2, 0))


#: the longest side of a card's picture, in pixels: more than a card spans on a large
#: screen of Kitty or Sixel graphics (half-blocks need a few dozen)
CARD_PIXELS = 640


def card_picture(session, item_id: int) -> PILImage.Image | Path:
    """:func:`item_image` at a card's size (:func:`shrunk_photo`)."""
    image = item_image(session, item_id)
    return shrunk_photo(image) if isinstance(image, Path) else image


def shrunk_photo(path: Path, longest: int = CARD_PIXELS) -> PILImage.Image | Path:
    """The photo at ``path`` decoded at reduced scale (JPEG's draft mode), shrunk to
    ``longest`` pixels and turned upright by its EXIF orientation; ``path`` itself when
    it cannot be read (textual-image then shows what it can, as before).

    textual-image decodes a file whole each time it shows it, then scales it down to the
    card: a camera's 12-megapixel JPEG took ~0.1 s to decode on the fast machine, so a
    batch of twelve held the UI's thread for over a second on Enter. The full view
    (``v``) still shows the original."""
    try:
        with PILImage.open(path) as opened:
            opened.draft("RGB", (longest, longest))  # JPEG only: decodes at 1/2, 1/4 or 1/8 scale
            picture = ImageOps.exif_transpose(opened)
            picture.thumbnail((longest, longest))
            return picture
    except (OSError, UnidentifiedImageError, ValueError):
        return path


def body_for(session, item) -> Widget:
    """The modality-specific inside of a card."""
    if session.pool.modality == "sequence":
        from aeep_tui.widgets.timeline import TimelineCard

        events = session.pool.meta.get("events", [])
        item_events = events[item.item_id] if item.item_id < len(events) else []
        timeline = TimelineCard(item_events, summary="")  # "" = its own date-span summary
        # The screen pages the cursor's timeline itself (PageUp/PageDown), so no timeline
        # takes focus: a click on one should move the cursor, not capture the keys.
        timeline.can_focus = False
        return timeline
    # styled by class (app.tcss: auto width and height keep the aspect ratio)
    return terminal_image(card_picture(session, item.item_id), classes="card-image")


def card_for(session, item) -> ItemCard:
    """A card for one batch item, with the body its modality needs."""
    classes = session.classes.current
    return ItemCard(item, body_for(session, item), classes.names, classes.keys)


def reuse_cards(session, cards: list[ItemCard], items: list) -> bool:
    """Show ``items`` in the ``cards`` already on screen, one each, when every card's body can
    take its new item (a picture, in place); False, changing nothing, when any cannot.
    Mounting a batch of new cards (a card, its frame, picture and guess line each) cost a
    slow machine about a quarter of a second of the wait between batches."""
    if len(cards) != len(items) or not all(takes_new_pictures(card.body) for card in cards):
        return False
    for card, item in zip(cards, items):
        show_picture(card.body, card_picture(session, item.item_id))
        card.show_item(item)
    return True
