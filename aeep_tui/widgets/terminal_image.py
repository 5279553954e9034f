"""Images in the terminal: textual-image's widgets, with fixes for real Sixel terminals.

textual-image chooses Kitty's graphics protocol, Sixel or unicode half-blocks once, when
it is imported (it asks the terminal; ``aeep_tui.app`` imports it before Textual starts).
Its Sixel widget, run in a real xterm (``xterm -ti vt340``; ``docs/graphics-terminals.md``),
showed four faults that :class:`SixelTerminalImage` corrects:

1. **Wrong colours in the first rows.** textual-image defines each colour register
   (``#N;2;r;g;b``) where the colour is first used. xterm keeps drawing in the colour
   selected before until the register is selected again (``#N``), so the rows drawn
   right after a definition came out white or grey: a bright bar over the top of most
   digits, speckles at their first stroke. :func:`palette_first` moves every definition
   before the first pixel and leaves only selections in the data (the order libsixel's
   ``img2sixel`` uses, which every Sixel terminal reads).
2. **The screen scrolled a line.** After the image textual-image put the cursor one row
   *below* it, where Textual, which had not moved it, went on writing the rest of that
   line and then a newline: below an image that reached the row above the footer (the
   full-screen view) the terminal scrolled, doubling the footer and losing the title.
3. **Flicker.** Every repaint of a card (a label, the cursor moving, ``g``) first wrote
   spaces over the image — text erases Sixel graphics in xterm — then sent the image
   again, so cards went blank for a moment (and, reading the code, a repaint of only some
   rows of an image would leave them blank: the image went out with its last row only).
4. **Dimmed cards kept bright images** (a skipped card, the batch being replaced).

Each row of cells now gets its own slice of the image, sent with that row: a repaint of
any rows sends exactly their slices, over the old pixels, and nothing ever writes spaces
under the image. Slices are ``P2=1`` Sixel (unset pixels stay as they are), so the last
band of six pixel rows of a slice, which reaches into the row below, covers nothing
there. After each slice the cursor goes back to that row, just right of the image, where
Textual expects it. The image is blended with the background behind its card by the
card's opacity. The widget builds on textual-image's private ``_ImageSixelImpl``; pyproject pins the
version range it was written against.

Kitty before 0.28 answers textual-image's graphics query but cannot show its images
(they are placed through Unicode placeholders, new in kitty 0.28; Debian 12 ships 0.26):
every card showed a block of placeholder glyphs. :func:`placeholders_missing` reads the
terminal's version (XTVERSION, asked once at import, before Textual reads the keyboard,
and only when textual-image chose the graphics protocol); such a kitty gets half-blocks.

Grey images are drawn with 32 grey levels (steps of 3%, which a digit does not show):
the encoder's time grows with the colours in each band, and an upscaled digit has
hundreds of edge greys, so this halves the time a new batch of cards takes to encode.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import IO, TYPE_CHECKING, NamedTuple, cast

from PIL import Image as PILImage
from rich.control import Control
from rich.segment import ControlType, Segment
from rich.style import Style
from textual.dom import NoScreen
from textual.geometry import Region
from textual.strip import Strip
from textual.widget import Widget
from textual_image._pixeldata import PixelData
from textual_image._sixel import BackgroundColor, SixelOptions, image_to_sixels
from textual_image._terminal import CellSize, TerminalError, capture_terminal_response, get_cell_size
from textual_image._utils import StrOrBytesPath
from textual_image.renderable import Image as AutoRenderable
from textual_image.renderable.halfcell import Image as HalfcellRenderable
from textual_image.renderable.tgp import Image as TGPRenderable
from textual_image.widget import HalfcellImage, SixelImage, TGPImage, UnicodeImage
from textual_image.widget import Image as AutoImage
from textual_image.widget.sixel import _ImageSixelImpl, _NoopRenderable

OPAQUE_BACKGROUND: BackgroundColor = (0, 0, 0, 1.0)
GREY_LEVELS = 32
_POSTERIZE = [round(round(v * (GREY_LEVELS - 1) / 255) * 255 / (GREY_LEVELS - 1)) for v in range(256)]

_RASTER = re.compile(r'\x1bP[0-9;]*q"\d+;\d+;\d+;\d+')  # DCS … q and the raster attributes
_DEFINE = re.compile(r"#(\d+);2;(\d+);(\d+);(\d+)")  # a colour register definition (RGB %)
_KEEP_UNSET = "\x1bP0;1;0q"  # P2=1: pixels the data leaves unset keep what is on screen
_NULL_STYLE = Style()
Picture = StrOrBytesPath | IO[bytes] | PILImage.Image | None  # what textual-image's widgets take
_VERBATIM = ((ControlType.CURSOR_FORWARD, 0),)  # a no-op control: Rich passes the text through


def palette_first(sixels: str) -> str:
    """The same Sixel image with every colour register defined before any pixel.

    The data keeps only selections (``#N``), so each colour change is an explicit select,
    which is what xterm needs to draw in the colour just defined.
    """
    header = _RASTER.match(sixels)
    if header is None:  # not textual-image's layout: leave it alone
        return sixels
    body = sixels[header.end() :]
    definitions = "".join(match.group(0) for match in _DEFINE.finditer(body))
    return sixels[: header.end()] + definitions + _DEFINE.sub(r"#\1", body)


def row_sixels(
    image: PILImage.Image,
    cell_height: int,
    options: SixelOptions | None = None,
    background: BackgroundColor | None = None,
) -> list[str]:
    """One Sixel image per row of cells (``cell_height`` pixels each), palette first, P2=1."""
    rows = []
    for top in range(0, image.height, cell_height):
        band = image.crop((0, top, image.width, min(top + cell_height, image.height)))
        sixels = palette_first(image_to_sixels(band, options, background))
        rows.append(_KEEP_UNSET + sixels[sixels.index("q") + 1 :])
    return rows


def has_transparency(image: PILImage.Image | StrOrBytesPath | IO[bytes]) -> bool:
    """Whether compositing onto a background could change the image's pixels."""
    opened = image if isinstance(image, PILImage.Image) else PILImage.open(image)
    try:
        return opened.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in opened.info
    finally:
        if opened is not image:
            opened.close()


def fewer_greys(image: PILImage.Image) -> PILImage.Image:
    """A grey image with :data:`GREY_LEVELS` evenly spaced levels (others are unchanged)."""
    return image.point(_POSTERIZE) if image.mode == "L" else image


def faded(image: PILImage.Image, opacity: float, behind: tuple[int, int, int]) -> PILImage.Image:
    """``image`` seen at ``opacity`` over the colour ``behind`` (as Textual blends text)."""
    if opacity >= 1:
        return image
    rgb = image.convert("RGB")
    return PILImage.blend(PILImage.new("RGB", rgb.size, behind), rgb, max(opacity, 0.0))


class _Encoded(NamedTuple):
    key: tuple[object, ...]
    rows: list[str]


class _SixelLayer(_ImageSixelImpl):
    """Paints textual-image's Sixel image a row of cells at a time (module docstring)."""

    def __init__(self, image=None, sixel_options: SixelOptions | None = None) -> None:
        super().__init__(image, sixel_options)
        self._encoded: _Encoded | None = None
        self._opaque: bool | None = None

    def _background(self) -> BackgroundColor:
        # Only a transparent image is composited onto the background; an opaque one keeps
        # one constant, so the cursor card's own background does not force a re-encode.
        if self._opaque is None:
            self._opaque = self.image is None or not has_transparency(self.image)
        return OPAQUE_BACKGROUND if self._opaque else self._get_background_rgba()

    def _rows(self, image: PILImage.Image | StrOrBytesPath | IO[bytes], crop: Region, cell: CellSize) -> list[str]:
        opacity = round(self.opacity, 2)
        behind = self.background_colors[0].rgb
        background = self._background()
        key = (image, crop, self.content_size, cell, self._sixel_options, background, opacity, behind)
        if self._encoded is None or self._encoded.key != key:
            pixels = self._crop_image(self._scale_image(PixelData(image), cell), crop, cell)
            shown = faded(fewer_greys(pixels.pil_image), opacity, behind)
            self._encoded = _Encoded(key, row_sixels(shown, cell.height, self._sixel_options, background))
        return self._encoded.rows

    def render_lines(self, crop: Region) -> list[Strip]:
        try:
            if not self.image or not self.screen.is_active:
                return []
        except NoScreen:  # not on a screen (yet): nothing to paint
            return []
        rows = self._rows(self.image, crop, get_cell_size())
        region = self.screen.find_widget(self).visible_region
        strips = []
        for y, sixels in zip(range(region.y, region.bottom), rows):
            # Draw the slice at the row's first cell, then put the cursor where Textual
            # believes it is: after this row's cells, on this row (not below the image).
            segments = [
                Segment(Control.move_to(region.x, y).segment.text, _NULL_STYLE),
                Segment(sixels, _NULL_STYLE, _VERBATIM),
                Segment(Control.move_to(region.right, y).segment.text, _NULL_STYLE),
            ]
            strips.append(Strip(segments, cell_length=crop.width))
        return strips


KITTY_PLACEHOLDERS = (0, 28)  # the kitty release that draws images through Unicode placeholders


def ask_terminal_version() -> str:
    """The terminal's XTVERSION reply (``ESC P >| name(version) ESC \\``), ``""`` if none.

    Only before Textual starts: afterwards its input thread takes the reply."""
    if not (sys.__stdout__ and sys.__stdout__.isatty()):
        return ""
    try:
        with capture_terminal_response("\x1bP>|", "\x1b\\", timeout=0.1) as response:
            sys.__stdout__.write("\x1b[>0q")
            sys.__stdout__.flush()
    except (TerminalError, TimeoutError, OSError):
        return ""
    return response.sequence


def placeholders_missing(xtversion: str) -> bool:
    """Whether the terminal is a kitty too old for textual-image's graphics (before 0.28)."""
    found = re.search(r"kitty\((\d+)\.(\d+)", xtversion)
    return found is not None and (int(found.group(1)), int(found.group(2))) < KITTY_PLACEHOLDERS


# Decided once, at import, like textual-image's own choice (aeep_tui.app imports this early).
HALF_BLOCKS_INSTEAD = AutoRenderable is TGPRenderable and placeholders_missing(ask_terminal_version())


class SixelTerminalImage(SixelImage, Renderable=_NoopRenderable):
    """textual-image's Sixel widget, painted by :class:`_SixelLayer`."""

    def compose(self):
        yield _SixelLayer(self.image, self._sixel_options)


# The mixin is no Widget at run time: Textual's CSS type names follow each class's first
# widget base, so the kept widgets still answer to their own (``AutoImage``, ``HalfcellImage``).
if TYPE_CHECKING:
    _MixinBase = Widget
else:
    _MixinBase = object


class _KeepsLines(_MixinBase):
    """Serve the rendered lines again while nothing they depend on has changed.

    Textual refreshes every descendant of a widget whose colour changes: a label key
    restyles the answered card and the next (border colours), and each of their pictures
    was rendered again, image scaling and all (two of about three quarters of a key's
    work). The lines of a picture depend only on the picture, the size, the background
    behind it and the opacity; those are the key here."""

    _kept_picture: object = None
    _kept: tuple[object, ...] | None = None
    _kept_lines: dict[Region, list[Strip]]
    _shape_before: tuple[int, int] | None = None  # while a new picture is set: the old one's

    @property
    def image(self) -> Picture:
        return cast(HalfcellImage, self)._image

    @image.setter
    def image(self, value: Picture) -> None:
        widget = cast(HalfcellImage, self)
        self._shape_before = (widget._image_width, widget._image_height)
        try:
            super(_KeepsLines, type(self)).image.fset(self, value)  # type: ignore[misc]
        finally:
            self._shape_before = None

    def refresh(self, *regions: Region, repaint: bool = True, layout: bool = False, recompose: bool = False):
        # textual-image asks for a layout pass of the screen for every new picture, as its
        # size may change. It does not when the picture takes the old one's size, pixel
        # for pixel or, sized ``auto`` both ways (the cards), by aspect ratio: every Enter
        # on a batch of digits laid the whole screen out again for nothing.
        return super().refresh(*regions, repaint=repaint, layout=layout and not self._keeps_size(), recompose=recompose)

    def _keeps_size(self) -> bool:
        if self._shape_before is None:
            return False
        widget = cast(HalfcellImage, self)
        (w0, h0), (w1, h1) = self._shape_before, (widget._image_width, widget._image_height)
        if (w0, h0) == (w1, h1):
            return True
        auto = widget._get_styled_size() == ("auto", "auto")
        return auto and 0 not in (w0, h0, w1, h1) and w0 * h1 == w1 * h0

    def render_lines(self, crop: Region) -> list[Strip]:
        picture = cast(HalfcellImage, self).image  # by identity: a PIL image's == compares pixels
        key = (self.size, self.background_colors, self.opacity)
        if self._kept_picture is not picture or self._kept != key:
            self._kept_picture, self._kept, self._kept_lines = picture, key, {}
        if crop not in self._kept_lines:
            self._kept_lines[crop] = super().render_lines(crop)
        return self._kept_lines[crop]


class _KeptHalfcellImage(_KeepsLines, HalfcellImage, Renderable=HalfcellRenderable):
    pass


class _KeptAutoImage(_KeepsLines, AutoImage, Renderable=AutoRenderable):  # type: ignore[misc,valid-type]
    pass


def terminal_image(image: PILImage.Image | Path, *, id: str | None = None, classes: str | None = None) -> Widget:
    """An image widget for whatever the terminal supports (detected by textual-image).

    Kitty graphics and half-blocks use textual-image's own widget; Sixel uses
    :class:`SixelTerminalImage`; a kitty older than 0.28 gets half-blocks. The widget is styled by ``id``/``classes`` (``width``
    and ``height`` ``auto`` keep the image's aspect ratio inside its container).
    """
    if AutoImage is SixelImage:
        return SixelTerminalImage(image, id=id, classes=classes)
    if HALF_BLOCKS_INSTEAD:
        return _KeptHalfcellImage(image, id=id, classes=classes)
    return _KeptAutoImage(image, id=id, classes=classes)  # type: ignore[arg-type]  # AutoImage is chosen at import


def takes_new_pictures(widget: Widget) -> bool:
    """Whether ``widget`` (made by :func:`terminal_image`) shows another picture when its
    ``image`` is set; the Sixel widget cannot (it paints a layer it composed)."""
    return isinstance(widget, (AutoImage, HalfcellImage, TGPImage, UnicodeImage)) and not isinstance(widget, SixelImage)


def show_picture(widget: Widget, image: PILImage.Image | Path) -> None:
    """Show ``image`` in a widget that :func:`takes_new_pictures`, in place."""
    if not takes_new_pictures(widget):
        raise TypeError(f"{type(widget).__name__} cannot take a new picture; mount a new one")
    cast(HalfcellImage, widget).image = image
