"""fastdif.io.decode: one file -> px x px x 3 uint8 thumbnail, any Pillow mode, EXIF orientation."""

import images
import numpy as np
import pytest
from PIL import Image

from fastdif.backends import pool
from fastdif.io import decode

PX = 50


def gray_ramp(width=64, height=48):
    return (np.arange(width * height).reshape(height, width) % 200 + 20).astype(np.uint8)


def make_mode(mode, path):
    """Save an image of Pillow ``mode`` to ``path``; return (path, expected width, height)."""
    w, h = 64, 48
    if mode == "L":
        image = Image.fromarray(gray_ramp(w, h), "L")
    elif mode == "LA":
        image = Image.merge("LA", [Image.fromarray(gray_ramp(w, h)), Image.new("L", (w, h), 128)])
    elif mode == "P+transparency":
        image = images.photo_image(1, w, h).quantize(16)
        image.info["transparency"] = 0
    elif mode == "RGBA":
        alpha = Image.fromarray(np.tile(np.linspace(0, 255, w).astype(np.uint8), (h, 1)))
        image = images.photo_image(2, w, h).convert("RGBA")
        image.putalpha(alpha)
    elif mode == "CMYK":
        image = images.photo_image(3, w, h).convert("CMYK")
    elif mode == "I;16":
        image = Image.fromarray(gray_ramp(w, h).astype(np.uint16) * 257)
    elif mode == "1":
        image = Image.fromarray(gray_ramp(w, h) > 120).convert("1")
    elif mode == "RGB":
        image = images.photo_image(4, w, h)
    else:
        raise AssertionError(mode)
    kwargs = {"transparency": 0} if mode == "P+transparency" else {}
    return images.save(image, path, **kwargs), w, h


MODES = [
    ("L", "png", "L"),
    ("LA", "png", "LA"),
    ("P+transparency", "png", "P"),
    ("RGBA", "png", "RGBA"),
    ("CMYK", "jpg", "CMYK"),
    ("I;16", "png", "I;16"),
    ("1", "png", "1"),
    ("RGB", "jpg", "RGB"),
    ("L", "jpg", "L"),
    ("RGBA", "webp", "RGBA"),
    ("P+transparency", "gif", "P"),
    ("RGB", "bmp", "RGB"),
    ("RGB", "tif", "RGB"),
]


@pytest.mark.parametrize(
    ("mode", "ext", "opened_mode"), MODES, ids=[f"{m}-{e}" for m, e, _ in MODES]
)
def test_every_mode_decodes_to_an_rgb_thumbnail(tmp_path, mode, ext, opened_mode):
    path, w, h = make_mode(mode, tmp_path / f"image.{ext}")
    with Image.open(path) as opened:
        assert opened.mode == opened_mode  # the file really has this mode

    thumb, width, height = decode.load_thumbnail(path, PX)

    assert thumb.shape == (PX, PX, 3)
    assert thumb.dtype == np.uint8
    assert (width, height) == (w, h)
    assert thumb.std() > 1  # real content, not a blank fill

    decoded = decode.decode_file(path, PX)
    assert decoded.reason is None
    assert decoded.thumbnail == thumb.tobytes()
    assert (decoded.width, decoded.height) == (w, h)


@pytest.mark.parametrize("mode", ["I;16", "I"])
def test_sixteen_bit_values_are_scaled_not_clipped(mode):
    values = np.array([[0, 257, 128 * 257, 65535]], dtype=np.uint16)
    array = values if mode == "I;16" else values.astype(np.int32)
    image = Image.fromarray(array)
    assert image.mode == mode

    rgb = decode.to_rgb(image)

    assert rgb.mode == "RGB"
    assert np.asarray(rgb)[0].tolist() == [[0, 0, 0], [1, 1, 1], [128, 128, 128], [255, 255, 255]]


def test_sixteen_bit_png_thumbnail_reaches_white(tmp_path):
    path = images.save(Image.fromarray(np.full((30, 40), 65535, np.uint16)), tmp_path / "w.png")
    thumb, width, height = decode.load_thumbnail(path, 10)
    assert (width, height) == (40, 30)
    assert np.all(thumb == 255)


@pytest.mark.parametrize(
    "image",
    [
        Image.new("RGBA", (8, 6), (10, 20, 30, 0)),
        Image.new("LA", (8, 6), (10, 0)),
        Image.new("PA", (8, 6), (0, 0)),
    ],
    ids=["RGBA", "LA", "PA"],
)
def test_fully_transparent_pixels_become_white(image):
    assert np.all(np.asarray(decode.to_rgb(image)) == 255)


def test_opaque_alpha_keeps_colours_and_half_alpha_blends_with_white():
    assert np.asarray(decode.to_rgb(Image.new("RGBA", (4, 4), (10, 20, 30, 255))))[
        0, 0
    ].tolist() == [
        10,
        20,
        30,
    ]
    blended = np.asarray(decode.to_rgb(Image.new("RGBA", (4, 4), (0, 0, 0, 128))))[0, 0]
    assert all(abs(int(v) - 127) <= 1 for v in blended)


def test_palette_transparency_becomes_white(tmp_path):
    image = Image.new("P", (10, 4), 0)
    image.putpalette([255, 0, 0, 0, 0, 255] + [0] * 762)
    image.paste(1, (0, 0, 5, 4))
    path = images.save(image, tmp_path / "p.png", transparency=1)
    with Image.open(path) as opened:
        rgb = np.asarray(decode.to_rgb(opened))
    assert rgb[0, 0].tolist() == [255, 255, 255]  # palette entry 1 is transparent
    assert rgb[0, 9].tolist() == [255, 0, 0]


def test_colour_key_transparency_is_treated_the_same_in_l_and_rgb(tmp_path):
    # A grey picture with a transparent colour key, saved once as L and once as
    # RGB, is the same picture: both must decode alike (transparent -> white).
    pixels = np.full((4, 6), 7, np.uint8)
    pixels[:, 3:] = 200
    gray = images.save(Image.fromarray(pixels), tmp_path / "gray.png", transparency=7)
    rgb = images.save(
        Image.fromarray(pixels).convert("RGB"), tmp_path / "rgb.png", transparency=(7, 7, 7)
    )
    with Image.open(gray) as g, Image.open(rgb) as c:
        assert "transparency" in g.info and "transparency" in c.info
        from_gray = np.asarray(decode.to_rgb(g))
        from_rgb = np.asarray(decode.to_rgb(c))
    assert from_gray[0, 0].tolist() == [255, 255, 255]
    assert np.array_equal(from_rgb, from_gray)


@pytest.mark.parametrize("orientation", sorted(images.EXIF_STORED))
def test_exif_orientation_gives_the_displayed_picture(tmp_path, orientation):
    upright = images.photo_image(5, 200, 150)
    stored = (
        upright
        if images.EXIF_STORED[orientation] is None
        else upright.transpose(images.EXIF_STORED[orientation])
    )
    exif = Image.Exif()
    exif[0x0112] = orientation
    path = images.save(stored, tmp_path / "camera.png", exif=exif.tobytes())  # lossless
    with Image.open(path) as opened:
        assert opened.getexif().get(0x0112) == orientation

    thumb, width, height = decode.load_thumbnail(path, PX)

    assert (width, height) == (200, 150)
    assert np.array_equal(thumb, images.thumbnail(upright, PX).astype(np.uint8))


def test_exif_orientation_in_jpeg(tmp_path):
    upright = images.photo_image(6, 200, 150)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = images.save(
        upright.transpose(Image.Transpose.ROTATE_90), tmp_path / "c.jpg", exif=exif.tobytes()
    )

    thumb, width, height = decode.load_thumbnail(path, PX)

    assert (width, height) == (200, 150)
    assert images.mse(thumb, images.thumbnail(upright, PX)) < 5
    assert images.mse(thumb, np.rot90(images.thumbnail(upright, PX))) > 100


def test_small_jpeg_decodes_at_full_size(tmp_path):
    path = images.save_photo(7, tmp_path / "small.jpg", 160, 120)
    thumb, width, height = decode.load_thumbnail(path, PX)
    assert (width, height) == (160, 120)
    assert np.array_equal(thumb, images.thumbnail(path, PX).astype(np.uint8))


def test_large_jpeg_is_the_area_filter_of_a_full_decode(tmp_path):
    path = images.save_photo(8, tmp_path / "large.jpg", 640, 480)
    thumb, width, height = decode.load_thumbnail(path, PX)
    assert (width, height) == (640, 480)
    assert np.array_equal(thumb, images.thumbnail(path, PX).astype(np.uint8))


def test_animated_gif_uses_the_first_frame(tmp_path):
    first, second = images.photo_image(9, 60, 40), images.photo_image(10, 60, 40)
    path = str(tmp_path / "anim.gif")
    first.save(path, save_all=True, append_images=[second], duration=100, loop=0)
    with Image.open(path) as opened:
        assert opened.n_frames == 2
        expected = images.thumbnail(opened.convert("RGB"), 20)

    thumb, width, height = decode.load_thumbnail(path, 20)

    assert (width, height) == (60, 40)
    assert np.array_equal(thumb, expected.astype(np.uint8))


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("text.jpg", b"this is text, not a JPEG\n"),
        ("empty.png", b""),
        ("header_only.png", b"\x89PNG\r\n\x1a\n"),
    ],
)
def test_decode_file_reports_a_one_line_reason(tmp_path, name, content):
    path = tmp_path / name
    path.write_bytes(content)

    decoded = decode.decode_file(str(path), PX)

    assert decoded.thumbnail is None
    assert isinstance(decoded.reason, str) and decoded.reason
    assert "\n" not in decoded.reason
    assert decoded.failure is decode.Failure.CONTENT


@pytest.mark.parametrize("ext", ["png", "jpg"])
def test_truncated_files_are_reported(tmp_path, ext):
    full = images.save_photo(11, tmp_path / f"full.{ext}")
    data = open(full, "rb").read()
    path = tmp_path / f"truncated.{ext}"
    path.write_bytes(data[: len(data) // 2])

    decoded = decode.decode_file(str(path), PX)

    assert decoded.thumbnail is None
    assert decoded.reason and "\n" not in decoded.reason
    assert decoded.failure is decode.Failure.CONTENT


def test_failures_of_the_system_have_their_kind(tmp_path):
    # Errors with an errno may not happen again: not the file's content.
    for path in (tmp_path / "missing.jpg", tmp_path):
        decoded = decode.decode_file(str(path), PX)
        assert decoded.reason.split(":")[1].strip().startswith("[Errno")
        assert decoded.failure is decode.Failure.SYSTEM
    assert decode.decode_file(images.save_photo(13, tmp_path / "ok.jpg"), PX).failure is None


def test_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = images.save_photo(12, tmp_path / "bomb.png", 200, 150)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 30000 > 2 * 1000 pixels

    decoded = decode.decode_file(path, PX)

    assert decoded.thumbnail is None
    assert decoded.reason.startswith("Decompression bomb")
    assert "\n" not in decoded.reason
    assert decoded.failure is decode.Failure.SIZE_LIMIT


def test_decode_all_keeps_order_and_reports_progress(tmp_path):
    paths = [images.save_photo(20 + k, tmp_path / f"{k}.png", 40, 30) for k in range(3)]
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"nope")
    paths.insert(1, str(bad))
    calls = []

    decoded = list(pool.decode_all(paths, 16, 1, lambda: calls.append(1)))

    assert len(decoded) == 4 and len(calls) == 4
    assert decoded[1].reason is not None
    for path, item in zip([paths[0], *paths[2:]], [decoded[0], *decoded[2:]], strict=True):
        assert item.reason is None
        assert item.thumbnail == decode.load_thumbnail(path, 16)[0].tobytes()
