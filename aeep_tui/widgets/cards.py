"""Which card shows an item: one place to plug in a new modality.

Image items get a terminal image (:func:`aeep_tui.widgets.terminal_image.terminal_image`:
Kitty TGP, Sixel or unicode blocks, whichever the terminal supports); sequence items get
the ``TimelineCard`` from :mod:`aeep_tui.widgets.timeline`, imported only when such a pool
is open.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TypeVar

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


Picture = PILImage.Image | Path  # what a card's image widget is given
T = TypeVar("T")


def card_pictures(session, items) -> list[Picture] | None:
    """:func:`card_picture` for every item, or None for a pool without pictures (sequences).

    Called in the worker that prepares the next batch, not on the UI's thread, so that
    showing the batch only hands each card its picture: twelve camera JPEGs took 0.6 s to
    decode on the fast machine (``benchmarks/card_pictures.py``). Pillow releases the GIL
    while it decodes and resizes, so the pictures are decoded side by side."""
    if session.pool.modality == "sequence":
        return None
    return side_by_side(lambda item: card_picture(session, item.item_id), items)


def side_by_side(decode: Callable[[T], Picture], values: Sequence[T]) -> list[Picture]:
    """``decode`` of each value, in order, on up to one thread per core (at most four)."""
    threads = min(len(values), os.cpu_count() or 1, 4)
    if threads < 2:
        return [decode(v) for v in values]
    with ThreadPoolExecutor(max_workers=threads, thread_name_prefix="card-pictures") as pool:
        return list(pool.map(decode, values))


def body_for(session, item, picture: Picture | None = None) -> Widget:
    """The modality-specific inside of a card (``picture``: the item's
    :func:`card_picture`, when it was decoded ahead)."""
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
    if picture is None:
        picture = card_picture(session, item.item_id)
    return terminal_image(picture, classes="card-image")


def card_for(session, item, picture: Picture | None = None) -> ItemCard:
    """A card for one batch item, with the body its modality needs."""
    classes = session.classes.current
    return ItemCard(item, body_for(session, item, picture), classes.names, classes.keys)


def reuse_cards(session, cards: list[ItemCard], items: list, pictures: list[Picture] | None = None) -> bool:
    """Show ``items`` in the ``cards`` already on screen, one each, when every card's body can
    take its new item (a picture, in place); False, changing nothing, when any cannot.
    Mounting a batch of new cards (a card, its frame, picture and guess line each) cost a
    slow machine about a quarter of a second of the wait between batches."""
    if len(cards) != len(items) or not all(takes_new_pictures(card.body) for card in cards):
        return False
    if pictures is None:
        pictures = [card_picture(session, item.item_id) for item in items]
    for card, item, picture in zip(cards, items, pictures):
        show_picture(card.body, picture)
        card.show_item(item)
    return True
