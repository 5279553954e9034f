"""Images in the terminal: the Sixel fixes of ``aeep_tui.widgets.terminal_image`` and the
full-screen view's aspect ratio, on real Textual apps (Pilot) and real Sixel data.

A small reference Sixel decoder below reads the data the way xterm 379 does, including
the quirk that made textual-image's images wrong there (a colour register defined while
another colour is selected is not drawn with until it is selected again), so the tests
fail on textual-image's own output and pass on the fixed one. The real-terminal check is
``tests/test_graphics_terminals.py``.
"""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from PIL import Image
from textual.app import App
from textual.geometry import Region
from textual_image._sixel import image_to_sixels
from textual_image._terminal import get_cell_size

from aeep_tui.screens.image_view import ImageViewScreen
from aeep_tui.widgets.terminal_image import (
    GREY_LEVELS,
    SixelTerminalImage,
    _SixelLayer,
    faded,
    fewer_greys,
    palette_first,
    placeholders_missing,
    row_sixels,
)


def decode_like_xterm(sixels: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb [H, W, 3] uint8, set [H, W] bool)`` as xterm 379 draws a Sixel image.

    xterm keeps the colour it draws with when a register is (re)defined and only picks
    the register's new colour up when ``#N`` selects it: a definition ``#N;2;r;g;b``
    alone leaves the previous drawing colour (white at start, standing in for whatever
    the previous image ended with, which is what showed as a white bar)."""
    header = re.match(r'\x1bP(\d*);(\d*);?(\d*)q"\d+;\d+;(\d+);(\d+)', sixels)
    assert header is not None, sixels[:40]
    width, height = int(header.group(4)), int(header.group(5))
    height = math.ceil(height / 6) * 6
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    written = np.zeros((height, width), dtype=bool)
    registers: dict[int, tuple[int, int, int]] = {}
    drawing = (255, 255, 255)
    x = band = 0
    data = sixels[header.end() : sixels.rindex("\x1b\\")]
    for token in re.finditer(r"#(\d+)((?:;\d+){4})?|!(\d+)(.)|([?-~])|\$|-", data):
        text = token.group(0)
        if token.group(1) is not None:
            index = int(token.group(1))
            if token.group(2):  # a definition: recorded, not picked up for drawing
                _, r, g, b = (int(v) for v in token.group(2)[1:].split(";"))
                registers[index] = tuple(round(v * 255 / 100) for v in (r, g, b))  # type: ignore[assignment]
            else:
                drawing = registers[index]
        elif text == "$":
            x = 0
        elif text == "-":
            x, band = 0, band + 1
        else:
            count, char = (int(token.group(3)), token.group(4)) if token.group(3) else (1, token.group(5))
            bits = ord(char) - 63
            for row in range(6):
                if bits & (1 << row):
                    rgb[band * 6 + row, x : x + count] = drawing
                    written[band * 6 + row, x : x + count] = True
            x += count
    return rgb, written


def digit_like(width: int = 60, height: int = 60) -> Image.Image:
    """A grey stroke on black, smoothed (many edge greys) like an upscaled MNIST digit;
    its first rows are black, where xterm drew the white bar."""
    yy, xx = np.mgrid[0:height, 0:width]
    ring = np.abs(np.hypot(yy - height * 0.6, xx - width / 2) - width / 4)
    pixels = np.clip(255 * (1.5 - ring / 3), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels, "L")


def as_sixel_percent(image: Image.Image) -> np.ndarray:
    """The image's RGB as Sixel can carry it (percent steps), for comparison."""
    rgb = np.asarray(image.convert("RGB")).astype(int)
    return np.rint(np.rint(rgb * 100 / 255) * 255 / 100).astype(np.uint8)


def test_textual_images_own_sixels_draw_wrong_colours_in_xterm():
    """The fault the fix is for: black first rows drawn white."""
    image = digit_like()
    rgb, _ = decode_like_xterm(image_to_sixels(image))
    assert rgb[:6].max() == 255  # the first band should be black


def test_palette_first_draws_every_pixel_in_its_own_colour():
    image = digit_like()
    fixed = palette_first(image_to_sixels(image))
    data = fixed[fixed.index('"') :]
    definitions = [m.start() for m in re.finditer(r"#\d+;2;", data)]
    first_data = re.search(r"#\d+(?![\d;])", data)
    assert first_data is not None and max(definitions) < first_data.start()  # all before any selection
    rgb, written = decode_like_xterm(fixed)
    assert written[: image.height].all()
    assert np.array_equal(rgb[: image.height], as_sixel_percent(image))


def test_row_sixels_are_one_image_per_cell_row_that_leaves_unset_pixels_alone():
    image = digit_like(45, 50)  # 50 rows: 3 rows of 19 pixels, the last one 12
    rows = row_sixels(image, 19)
    assert len(rows) == 3
    stacked = []
    for index, sixels in enumerate(rows):
        assert sixels.startswith("\x1bP0;1;0q")  # P2=1: the band's padding below draws nothing
        rgb, written = decode_like_xterm(sixels)
        height = min(19, image.height - 19 * index)
        assert written[:height].all() and not written[height:].any()
        stacked.append(rgb[:height])
    assert np.array_equal(np.concatenate(stacked), as_sixel_percent(image))


@pytest.mark.parametrize(
    ("xtversion", "missing"),
    [
        ("\x1bP>|kitty(0.26.5)\x1b\\", True),  # Debian 12's kitty: no Unicode placeholders
        ("\x1bP>|kitty(0.21.2)\x1b\\", True),
        ("\x1bP>|kitty(0.28.0)\x1b\\", False),
        ("\x1bP>|kitty(0.39.1)\x1b\\", False),
        ("\x1bP>|XTerm(379)\x1b\\", False),
        ("\x1bP>|WezTerm 20240203\x1b\\", False),
        ("", False),  # no answer: trust textual-image's choice
    ],
)
def test_placeholders_missing_only_for_kitty_before_0_28(xtversion, missing):
    assert placeholders_missing(xtversion) is missing


def test_fewer_greys_and_faded():
    image = digit_like()
    assert len(set(fewer_greys(image).tobytes())) <= GREY_LEVELS
    assert fewer_greys(image.convert("RGB")).mode == "RGB"  # colour is left alone
    half = np.asarray(faded(image, 0.5, (0, 0, 0)))
    assert half.max() == pytest.approx(255 / 2, abs=1)
    assert faded(image, 1.0, (0, 0, 0)) is image


class OneImage(App[None]):
    CSS = "SixelTerminalImage { width: auto; height: auto; } .dim { opacity: 50%; }"

    def __init__(self, image) -> None:
        super().__init__()
        self.image = image

    def compose(self):
        yield SixelTerminalImage(self.image)


def sixel_strips(layer: _SixelLayer):
    return layer.render_lines(Region(0, 0, layer.size.width, layer.size.height))


async def test_sixel_widget_sends_each_row_with_its_own_cells_and_writes_no_spaces():
    """Every row of cells is claimed by its own slice (no spaces that would erase the
    picture), and the cursor ends on the same row, where Textual thinks it is."""
    image = digit_like(80, 80)
    app = OneImage(image)
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause()
        layer = app.query_one(_SixelLayer)
        region = app.screen.find_widget(layer).visible_region
        strips = sixel_strips(layer)
        assert len(strips) == region.height > 1
        for y, strip in zip(range(region.y, region.bottom), strips):
            assert strip.cell_length == region.width
            text = "".join(segment.text for segment in strip)
            assert " " not in text  # no blank written under the picture
            assert text.startswith(f"\x1b[{y + 1};{region.x + 1}H\x1bP0;1;0q")
            assert text.endswith(f"\x1b\\\x1b[{y + 1};{region.right + 1}H")  # same row, not below the image
        # the same image again: the encoding is cached, not redone
        encoded = layer._encoded
        sixel_strips(layer)
        assert layer._encoded is encoded


async def test_sixel_widget_dims_with_its_card():
    image = Image.new("L", (40, 40), 255)
    app = OneImage(image)
    async with app.run_test(size=(60, 30)) as pilot:
        await pilot.pause()
        layer = app.query_one(_SixelLayer)
        bright, _ = decode_like_xterm(list(sixel_strips(layer)[0])[1].text)
        app.query_one(SixelTerminalImage).add_class("dim")
        await pilot.pause()
        dim, _ = decode_like_xterm(list(sixel_strips(layer)[0])[1].text)
        assert bright.max() == 255 and dim.max() < 160


class ViewApp(App[None]):
    CSS_PATH = "../aeep_tui/styles/app.tcss"

    def __init__(self, image) -> None:
        super().__init__()
        self.image = image

    def on_mount(self) -> None:
        self.push_screen(ImageViewScreen(self.image, "caption"))


@pytest.mark.parametrize("size", [(28, 28), (60, 20), (20, 60)])
async def test_full_screen_view_keeps_the_images_aspect_ratio(size):
    """Space shows the image as large as it fits, not stretched to the screen's shape."""
    width, height = size
    app = ViewApp(Image.new("L", size, 128))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause()
        widget = app.screen.query_one("#image-view")
        cell = get_cell_size()
        shown = (widget.size.width * cell.width) / (widget.size.height * cell.height)
        assert shown == pytest.approx(width / height, rel=0.15)
        body = app.screen.query_one("#image-view-body")
        assert widget.size.width == body.size.width or widget.size.height == body.size.height  # fills one side


async def test_the_retrain_strip_keeps_reports_until_the_wait_is_shown(image_folder):
    """Reports of the worker before the screen shows the wait draw nothing; showing it
    draws the newest; a report left over from a finished worker is never shown."""
    from aeep_tui.app import LabellingApp
    from aeep_tui.widgets.retrain_status import RetrainStatus
    from tests.test_app import batch_ready, quick_settings, until

    app = LabellingApp(image_folder, quick_settings(budget=40, batch_size=6), confirm_setup=False)
    async with app.run_test(size=(120, 33)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        strip = app.screen.query_one(RetrainStatus)
        strip.finish()
        strip.stage("train", 10, 40)
        strip.stage("score", 500, 2000)
        assert not strip.showing
        strip.start()
        assert strip.text.startswith("Scoring unlabelled items") and "500/2,000" in strip.text
        strip.finish()
        strip.stage("train", 40, 40)  # late, after the worker ended
        strip.finish()  # the next retrain starts
        strip.start()
        assert strip.text == "Retraining the network…"
        await pilot.press("q")


async def test_the_retrain_strip_shows_and_hides_without_a_layout_pass(image_folder, monkeypatch):
    """The retrain strip under the grid shows a stage and a bar while a batch is prepared
    and is blank when it is shown. It always holds its row and only repaints it: the grid
    never changes height, no card is refitted, and nothing asks for a layout pass of the
    screen (two a round, each about 90 ms on the way from Enter to the next batch)."""
    from textual.widget import Widget

    from aeep_tui.app import LabellingApp
    from aeep_tui.widgets.retrain_status import RetrainStatus
    from tests.test_app import batch_ready, quick_settings, until

    app = LabellingApp(image_folder, quick_settings(budget=40, batch_size=6), confirm_setup=False)
    async with app.run_test(size=(120, 33)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        screen = app.screen
        grid = screen.query_one("#card-grid")
        strip = screen.query_one(RetrainStatus)
        strip.finish()
        await pilot.pause(0.3)
        grid_height, card_size = grid.size.height, screen.cards[0].outer_size
        layouts: list[Widget] = []
        refresh = Widget.refresh

        def recording(widget, *regions, layout=False, **kwargs):
            if layout:
                layouts.append(widget)
            return refresh(widget, *regions, layout=layout, **kwargs)

        monkeypatch.setattr(Widget, "refresh", recording)
        for show in (True, False, True):
            if show:
                strip.start()
                strip.stage("score", 500, 2000)
            else:
                strip.finish()
            await pilot.pause(0.3)
            line = str(screen.query_one(RetrainStatus).render_line(0).text)
            assert strip.showing is show and strip.size.height == 1
            assert ("Scoring unlabelled items" in line and "━" in line) if show else not line.strip()
            assert grid.size.height == grid_height and screen.cards[0].outer_size == card_size
        strip.failed("out of memory")
        await pilot.pause(0.3)
        assert "Retraining failed: out of memory" in str(strip.render_line(0).text)
        assert layouts == []
        strip.finish()
        await pilot.press("q")


async def test_a_label_key_restyles_two_cards_without_rendering_their_pictures_again(image_folder, monkeypatch):
    """A label key changes the border colours of the answered card and the next; Textual
    refreshes everything inside them, and each picture used to be scaled and rendered
    again. Its lines are kept while its picture, size, background and opacity hold, and
    rendered again when one changes (the batch dimmed after Enter)."""
    from textual.widget import Widget

    from aeep_tui.app import LabellingApp
    from aeep_tui.widgets.terminal_image import takes_new_pictures
    from tests.test_app import batch_ready, quick_settings, until

    rendered: list[Widget] = []
    render_content = Widget._render_content

    def counting(widget: Widget) -> None:
        rendered.append(widget)
        render_content(widget)

    monkeypatch.setattr(Widget, "_render_content", counting)
    app = LabellingApp(image_folder, quick_settings(batch_size=6), confirm_setup=False)
    async with app.run_test(size=(120, 33)) as pilot:
        await until(pilot, batch_ready(app, 1), what="the first batch")
        await pilot.pause(0.3)
        screen = app.screen
        pictures = [card.body for card in screen.cards]
        assert all(takes_new_pictures(p) for p in pictures)
        for key in "12312":
            rendered.clear()
            await pilot.press(key)
            await pilot.pause(0.05)
            assert any(isinstance(w, type(screen.cards[0])) for w in rendered)  # the frames were restyled
            assert not set(rendered) & set(pictures)
        await pilot.press("3", "enter")  # the batch is dimmed while the next is chosen
        await until(pilot, lambda: set(rendered) & set(pictures), what="the dimmed pictures rendered again")
        await pilot.press("q")
