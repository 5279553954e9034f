"""Cards show photos shrunk to their size, decoded at reduced scale and upright."""

from pathlib import Path

import numpy as np
from PIL import Image

from aeep_tui.widgets.cards import CARD_PIXELS, shrunk_photo


def _photo(path: Path, size: tuple[int, int], orientation: int | None = None) -> Path:
    w, h = size
    gradient = np.linspace(0, 255, w * h, dtype=np.float32).reshape(h, w)
    pixels = np.stack([gradient, gradient[::-1], np.full_like(gradient, 90)], axis=-1).astype(np.uint8)
    image = Image.fromarray(pixels)
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    image.save(path, quality=90, exif=exif)
    return path


def test_a_camera_photo_is_decoded_small_and_kept_in_shape(tmp_path):
    picture = shrunk_photo(_photo(tmp_path / "big.jpg", (4000, 3000)))
    assert isinstance(picture, Image.Image)
    assert max(picture.size) == CARD_PIXELS and picture.size == (640, 480)


def test_a_photo_taken_sideways_is_shown_upright(tmp_path):
    picture = shrunk_photo(_photo(tmp_path / "turned.jpg", (1200, 800), orientation=6))  # rotate 90° to view
    assert isinstance(picture, Image.Image)
    assert picture.size == (427, 640)


def test_a_small_photo_keeps_its_pixels(tmp_path):
    path = _photo(tmp_path / "small.jpg", (500, 375))
    picture = shrunk_photo(path)
    assert isinstance(picture, Image.Image) and picture.size == (500, 375)
    with Image.open(path) as original:
        assert np.array_equal(np.asarray(picture), np.asarray(original.convert(picture.mode)))


def test_an_unreadable_file_is_passed_on_as_it_is(tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    assert shrunk_photo(broken) == broken
