"""Faithful thumbnails on texture-rich photos: every lossless copy is a duplicate.

A thumbnail is the exact area filter of a full decode, whatever decoder read
the file, so a lossless copy of a JPEG in any format is a "duplicates" match
and re-encoded, rotated and downscaled copies stay well inside "similar".
The content is the hard kind (foliage, gravel, brick, star fields, printed
text) where decoding a JPEG at a reduced scale drifted by an MSE of up to 20.
"""

import os

import images
import numpy as np
import pytest
from PIL import Image

from fastdif.io import decode

PX = 50

#: Lossless formats a JPEG's decoded pixels are copied to: extension -> save options.
LOSSLESS = {".png": {}, ".bmp": {}, ".tiff": {}, ".webp": {"lossless": True}}


@pytest.fixture(scope="module")
def originals(tmp_path_factory):
    """One JPEG (quality 90) per texture kind, and its decoded pixels."""
    folder = tmp_path_factory.mktemp("originals")
    out = {}
    for kind in images.TEXTURES:
        path = images.save(images.texture(kind, 0), folder / f"{kind}.jpg", quality=90)
        with Image.open(path) as opened:
            out[kind] = (path, opened.convert("RGB"))
    return out


@pytest.mark.parametrize("kind", images.TEXTURES)
def test_every_format_gives_the_area_filter_of_the_full_decode(tmp_path, originals, kind):
    path, pixels = originals[kind]
    reference = images.thumbnail(pixels, PX).astype(np.uint8)
    assert np.array_equal(decode.load_thumbnail(path, PX)[0], reference)
    for ext, options in LOSSLESS.items():
        copy = images.save(pixels, tmp_path / f"copy{ext}", **options)
        assert np.array_equal(decode.load_thumbnail(copy, PX)[0], reference), ext


def test_grey_and_cmyk_jpegs_match_their_pillow_decode(tmp_path, originals):
    _, pixels = originals["text"]
    for mode in ("L", "CMYK"):
        path = images.save(pixels.convert(mode), tmp_path / f"{mode}.jpg", quality=90)
        with Image.open(path) as opened:
            reference = images.thumbnail(opened.convert("RGB"), PX).astype(np.uint8)
        assert np.array_equal(decode.load_thumbnail(path, PX)[0], reference), mode


def test_pillow_decides_what_is_invalid_and_progressive_jpegs_match(tmp_path, originals):
    path, pixels = originals["gravel"]
    truncated = tmp_path / "truncated.jpg"
    truncated.write_bytes(open(path, "rb").read()[:-2000])
    # Pillow refuses it too: the reason is Pillow's, naming the file's problem.
    assert "truncated" in decode.decode_file(str(truncated), PX).reason
    progressive = images.save(pixels, tmp_path / "progressive.jpg", quality=90, progressive=True)
    with Image.open(progressive) as opened:
        reference = images.thumbnail(opened.convert("RGB"), PX).astype(np.uint8)
    assert np.array_equal(decode.load_thumbnail(progressive, PX)[0], reference)


def test_png_orientation_after_the_image_data_is_read_without_pillow_decoding(tmp_path):
    upright = images.texture("brick", 1, 160, 120)
    stored = upright.transpose(Image.Transpose.ROTATE_90)
    exif = Image.Exif()
    exif[0x0112] = 6
    path = images.save(stored, tmp_path / "late.png", exif=exif.tobytes())
    # Move the eXIf chunk behind the image data, where Pillow finds it only on load.
    data = open(path, "rb").read()
    start = data.index(b"eXIf") - 4
    end = start + 12 + int.from_bytes(data[start : start + 4], "big")
    chunk, rest = data[start:end], data[:start] + data[end:]
    iend = rest.index(b"IEND") - 4
    (tmp_path / "late.png").write_bytes(rest[:iend] + chunk + rest[iend:])

    thumb, width, height = decode.load_thumbnail(path, PX)

    assert (width, height) == (160, 120)
    assert np.array_equal(thumb, images.thumbnail(upright, PX).astype(np.uint8))


@pytest.fixture(scope="module")
def copies(originals, tmp_path_factory):
    """Every texture's JPEG with lossless, re-encoded, rotated and downscaled copies.

    Returns (folder, {original: set of its copies}, {original: lossless copies}).
    """
    folder = tmp_path_factory.mktemp("copies")
    related, lossless = {}, {}
    for kind, (path, pixels) in originals.items():
        original = images.copy_bytes(path, folder / f"{kind}.jpg")
        exact = [
            images.save(pixels, folder / f"{kind}_copy{ext}", **options)
            for ext, options in LOSSLESS.items()
        ]
        exact += [
            images.save(pixels.transpose(turn), folder / f"{kind}_rot{angle}.png")
            for angle, turn in images.ROTATIONS.items()
        ]
        near = [
            images.save(pixels, folder / f"{kind}_q{quality}.jpg", quality=quality)
            for quality in (70, 85)
        ]
        half = pixels.resize((pixels.width // 2, pixels.height // 2), Image.Resampling.LANCZOS)
        near.append(images.save(half, folder / f"{kind}_half.jpg", quality=92))
        near.append(images.save(half.transpose(images.ROTATIONS[90]), folder / f"{kind}_hr.png"))
        lossless[original] = set(exact)
        related[original] = set(exact) | set(near)
    # Flat and dark pictures that are no copy of anything: no pair may include them.
    for level in (0, 3, 128):
        images.save(Image.new("RGB", (320, 240), (level,) * 3), folder / f"flat{level}.png")
    return str(folder), related, lossless


@pytest.mark.slow
def test_duplicates_finds_every_lossless_copy_of_a_jpeg(copies, find, groups):
    folder, _, lossless = copies
    found = groups(find(folder, similarity="duplicates", same_dim=False).result)
    assert found == {frozenset({original, *copies}) for original, copies in lossless.items()}


def test_similar_finds_every_copy_with_no_false_pair(copies, find, groups):
    folder, related, _ = copies
    se = find(folder, similarity="similar", same_dim=False)
    chained = se.stats["process"]["search"]["chained"]  # linked through another copy
    found = {g | {p for p, c in chained.items() if c["key"] in g} for g in groups(se.result)}
    assert found == {frozenset({original, *copies}) for original, copies in related.items()}
    assert not any(os.path.basename(p).startswith("flat") for group in found for p in group)
