"""fastdif.io.resample: the exact area filter against a dense reference, and orientation."""

import images
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from PIL import Image, ImageOps

from fastdif.io.resample import area_thumbnail, orient


def reference(pixels: np.ndarray, px: int) -> np.ndarray:
    return images.thumbnail(Image.fromarray(pixels), px).astype(np.uint8)


@st.composite
def pictures(draw):
    height, width = draw(st.integers(1, 90)), draw(st.integers(1, 90))
    fill = draw(st.sampled_from(["random", "white", "black", "stripes"]))
    if fill == "random":
        return draw(arrays(np.uint8, (height, width, 3)))
    if fill == "stripes":  # every other pixel white: the worst case for a shifted cell edge
        return np.where((np.indices((height, width)).sum(0) % 2)[..., None], 255, 0).astype(
            np.uint8
        ) * np.ones(3, np.uint8)
    return np.full((height, width, 3), 255 if fill == "white" else 0, np.uint8)


@settings(max_examples=200, deadline=None)
@given(pixels=pictures(), px=st.integers(1, 120))
def test_area_thumbnail_equals_the_dense_reference(pixels, px):
    assert np.array_equal(area_thumbnail(pixels, px), reference(pixels, px))


@settings(max_examples=100, deadline=None)
@given(pixels=pictures(), px=st.integers(1, 60))
def test_area_thumbnail_commutes_with_rotations_and_flips(pixels, px):
    thumb = area_thumbnail(pixels, px)
    for turns in (1, 2, 3):
        assert np.array_equal(area_thumbnail(np.rot90(pixels, turns), px), np.rot90(thumb, turns))
    assert np.array_equal(area_thumbnail(pixels[:, ::-1], px), thumb[:, ::-1])
    assert np.array_equal(area_thumbnail(pixels.transpose(1, 0, 2), px), thumb.transpose(1, 0, 2))


def test_grey_is_filtered_like_each_channel():
    grey = np.random.default_rng(0).integers(0, 256, (37, 53), dtype=np.uint8)
    rgb = np.repeat(grey[..., None], 3, axis=2)
    assert np.array_equal(area_thumbnail(grey, 10), area_thumbnail(rgb, 10)[..., 0])


def test_a_huge_white_image_does_not_overflow():
    # 4,000 rows per cell: past uint16 sums, so the wider accumulator is used.
    white = np.full((200_000, 1, 3), 255, np.uint8)
    assert np.all(area_thumbnail(white, 50) == 255)


@pytest.mark.parametrize("orientation", range(1, 9))
def test_orient_is_pillows_exif_transpose(orientation):
    pixels = np.random.default_rng(orientation).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    image = Image.fromarray(pixels)
    exif = image.getexif()
    exif[0x0112] = orientation
    image.info["exif"] = exif.tobytes()
    expected = np.asarray(ImageOps.exif_transpose(image))
    assert np.array_equal(orient(pixels, orientation), expected)
