"""HEIC/HEIF (pillow-heif) and AVIF (Pillow) files decode like every other format.

fastdif.io.decode registers pillow-heif's opener on import, so a HEIC file
goes through the same path as a PNG: a full decode by Pillow, ``to_rgb``, the
exact area filter, then its orientation, applied once. Every file here is
made in ``tmp_path`` with pillow-heif or Pillow; nothing is downloaded.
"""

import os
import struct
import subprocess
import sys
import zlib

import images
import numpy as np
import pillow_heif
import pytest
from PIL import Image, features

import fastdif
from fastdif.backends import pool as decode_pool
from fastdif.io import decode
from fastdif.io.discover import UNSUPPORTED, image_extensions

PX = 50

#: A lossless HEIC from pillow-heif: ``quality=-1`` alone is x265's lossless
#: mode on YCbCr 4:2:0, which is not the RGB pixels; without chroma
#: subsampling and with the identity matrix (RGB coded as is) it is.
LOSSLESS = {"quality": -1, "chroma": 444, "matrix_coefficients": 0}

needs_avif = pytest.mark.skipif(not features.check("avif"), reason="Pillow without AVIF")


def reference(image) -> np.ndarray:
    """The exact area-filter thumbnail of a Pillow image or path (tests/images.py)."""
    return images.thumbnail(image, PX).astype(np.uint8)


def save_heic(image, path, **options) -> str:
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image.save(path, **options)
    return path


def png16(values: np.ndarray, path) -> str:
    """A 16-bit-per-channel RGB PNG of ``values`` (uint16, (height, width, 3)); Pillow
    reads such files but cannot write them."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    height, width, _ = values.shape
    rows = b"".join(b"\x00" + row.astype(">u2").tobytes() for row in values)
    header = struct.pack(">IIBBBBB", width, height, 16, 2, 0, 0, 0)
    with open(path, "wb") as file:
        file.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header))
        file.write(chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
    return os.fspath(path)


# --------------------------------------------------------------------------- fidelity


@pytest.mark.parametrize("kind", images.TEXTURES)
def test_lossless_heic_gives_the_thumbnail_of_the_png_of_its_pixels(tmp_path, kind):
    pixels = images.texture(kind, 0, 480, 360)
    heic = save_heic(pixels, tmp_path / "copy.heic", **LOSSLESS)
    png = images.save(pixels, tmp_path / "copy.png")
    with Image.open(heic) as opened:
        assert opened.format == "HEIF"
        assert np.array_equal(np.asarray(opened.convert("RGB")), np.asarray(pixels))

    thumb, width, height = decode.load_thumbnail(heic, PX)

    assert (width, height) == (480, 360)
    assert np.array_equal(thumb, reference(pixels))
    assert np.array_equal(thumb, decode.load_thumbnail(png, PX)[0])


def test_lossless_heic_and_png_are_duplicates_and_other_photos_are_not(tmp_path, find, groups):
    pixels = images.texture("foliage", 0, 480, 360)
    heic = save_heic(pixels, tmp_path / "a.heic", **LOSSLESS)
    png = images.save(pixels, tmp_path / "a.png")
    save_heic(images.texture("foliage", 1, 480, 360), tmp_path / "b.heic", **LOSSLESS)

    se = find(tmp_path, similarity="duplicates")

    assert se.stats["invalid_files"]["count"] == 0
    assert groups(se.result) == {frozenset([heic, png])}
    assert [mse for _, mse in next(iter(se.result.values()))] == [0.0]


def test_lossy_heic_of_a_jpeg_is_similar_and_different_photos_are_not(tmp_path, find, groups):
    jpeg = images.save(images.texture("gravel", 0, 480, 360), tmp_path / "photo.jpg", quality=90)
    with Image.open(jpeg) as opened:
        heic = save_heic(opened.convert("RGB"), tmp_path / "photo.heic", quality=80)
    other_jpeg = images.save(images.texture("gravel", 1, 480, 360), tmp_path / "other.jpg")
    with Image.open(other_jpeg) as opened:
        save_heic(opened.convert("RGB"), tmp_path / "other.heic", quality=80)
    os.remove(other_jpeg)  # the other photo only as HEIC: two HEICs must not match either

    se = find(tmp_path, similarity="similar")

    assert groups(se.result) == {frozenset([jpeg, heic])}
    (_, mse), *rest = next(iter(se.result.values()))
    assert not rest and 0 < mse <= 5  # lossy: not a duplicate, but similar


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_heic_orientation_is_applied_once(tmp_path, orientation):
    upright = images.texture("brick", 1, 160, 120)
    transform = images.EXIF_STORED[orientation]
    stored = upright if transform is None else upright.transpose(transform)
    exif = Image.Exif()
    exif[0x0112] = orientation
    heic = save_heic(stored, tmp_path / "turned.heic", exif=exif.tobytes(), **LOSSLESS)
    png = images.save(upright, tmp_path / "upright.png")
    # pillow-heif writes the orientation as irot/imir and keeps the EXIF tag, as
    # an iPhone does: both say how to turn the stored pixels.
    raw = Image.Exif()
    raw.load(pillow_heif.open_heif(heic).info["exif"])
    assert raw.get(0x0112) == orientation

    thumb, width, height = decode.load_thumbnail(heic, PX)

    assert (width, height) == upright.size
    assert np.array_equal(thumb, decode.load_thumbnail(png, PX)[0])
    assert np.array_equal(thumb, reference(upright))


def test_heic_exif_orientation_6_gives_the_rotated_thumbnail_and_swapped_size(tmp_path):
    upright = images.texture("text", 2, 200, 120)
    stored = upright.transpose(Image.Transpose.ROTATE_90)  # 120 x 200, shown turned right
    exif = Image.Exif()
    exif[0x0112] = 6
    heic = save_heic(stored, tmp_path / "portrait.heic", exif=exif.tobytes(), **LOSSLESS)
    rotated_png = images.save(upright, tmp_path / "rotated.png")
    stored_png = images.save(stored, tmp_path / "stored.png")

    thumb, width, height = decode.load_thumbnail(heic, PX)

    assert (width, height) == (200, 120) == (stored.height, stored.width)
    shown = decode.load_thumbnail(rotated_png, PX)[0]
    assert np.array_equal(thumb, shown)
    # Not turned (the stored pixels), nor turned twice (by libheif, then by the tag).
    assert images.mse(thumb, decode.load_thumbnail(stored_png, PX)[0]) > 100
    assert images.mse(thumb, np.rot90(shown, -1)) > 100


def test_heic_exif_orientation_without_irot_is_not_applied(tmp_path):
    # libheif turns HEIF images by their irot/imir boxes only, and pillow-heif
    # reports EXIF orientation 1: an EXIF tag without those boxes is not applied.
    stored = images.texture("stars", 3, 160, 120)
    exif = Image.Exif()
    exif[0x010F] = "fastdif"  # an EXIF block without orientation: no irot written
    heic = save_heic(stored, tmp_path / "plain.heic", exif=exif.tobytes(), **LOSSLESS)
    data = open(heic, "rb").read()
    assert b"irot" not in data and b"imir" not in data
    # Add orientation 6 to the stored EXIF by hand: patch the Make entry (0x010F,
    # ASCII, 8 bytes: "fastdif" and NUL) into Orientation (0x0112, SHORT, 1 value: 6).
    order = ">" if exif.tobytes()[6:8] == b"MM" else "<"
    entry = struct.pack(order + "HHI", 0x010F, 2, 8)
    assert data.count(entry) == 1
    make = data.index(entry)
    orientation = struct.pack(order + "HHIHxx", 0x0112, 3, 1, 6)
    patched = data[:make] + orientation + data[make + 12 :]
    (tmp_path / "plain.heic").write_bytes(patched)
    raw = Image.Exif()
    raw.load(pillow_heif.open_heif(heic).info["exif"])
    assert raw.get(0x0112) == 6

    thumb, width, height = decode.load_thumbnail(heic, PX)

    assert (width, height) == stored.size
    assert np.array_equal(thumb, reference(stored))


# --------------------------------------------------------------------------- bit depth


@pytest.mark.parametrize("bits", [10, 12])
def test_high_bit_depth_heic_reads_as_pillow_reads_a_16_bit_png(tmp_path, monkeypatch, bits):
    monkeypatch.setattr(pillow_heif.options, "SAVE_HDR_TO_12_BIT", bits == 12)
    rng = np.random.default_rng(bits)
    base = np.asarray(images.texture("gravel", 4, 96, 64), np.uint16) << (bits - 8)
    values = base + rng.integers(0, 1 << (bits - 8), base.shape, dtype=np.uint16)
    left_aligned = values << (16 - bits)  # as a 16-bit file holds them
    heic = os.fspath(tmp_path / "deep.heic")
    pillow_heif.from_bytes(mode="RGB;16", size=(96, 64), data=left_aligned.tobytes()).save(
        heic, **LOSSLESS
    )
    png = png16(left_aligned, tmp_path / "deep.png")
    with Image.open(heic) as opened:
        assert opened.info["bit_depth"] == bits

    thumb = decode.load_thumbnail(heic, PX)[0]

    # The top 8 bits of each value, as Pillow reads the 16-bit PNG (its high byte).
    assert np.array_equal(
        thumb, reference(Image.fromarray((values >> (bits - 8)).astype(np.uint8)))
    )
    assert np.array_equal(thumb, decode.load_thumbnail(png, PX)[0])


# --------------------------------------------------------------------------- failures, workers


@pytest.mark.parametrize("pool", [False, True], ids=["in-process", "worker-pool"])
def test_heic_through_both_paths_and_bad_heic_reported(tmp_path, find, groups, monkeypatch, pool):
    pixels = images.texture("brick", 5, 320, 240)
    good = save_heic(pixels, tmp_path / "good.heic", **LOSSLESS)
    twin = images.save(pixels, tmp_path / "twin.png")
    lossy = save_heic(images.texture("text", 6, 320, 240), tmp_path / "text.heic", quality=80)
    data = open(lossy, "rb").read()
    truncated = tmp_path / "truncated.heic"
    truncated.write_bytes(data[: len(data) // 2])
    header_only = tmp_path / "header_only.heic"
    header_only.write_bytes(data[:200])
    if pool:  # the same files through spawned worker processes
        monkeypatch.setattr(decode_pool, "MIN_FILES_FOR_POOL", 2)

    se = find(tmp_path, processes=2 if pool else 1)

    logs = se.stats["invalid_files"]["logs"]
    assert set(logs) == {str(truncated), str(header_only)}
    assert "end of file" in logs[str(truncated)]  # libheif's reason
    assert logs[str(header_only)].startswith("UnidentifiedImageError")
    assert all("\n" not in reason for reason in logs.values())
    assert se.stats["total_files"] == 5
    assert groups(se.result) == {frozenset([good, twin])}
    dif = fastdif.build(tmp_path, show_progress=False, processes=2 if pool else 1)
    row = dif.paths.index(good)
    assert np.array_equal(dif.tensors[row], reference(pixels))
    assert dif.shapes[row].tolist() == [320, 240]
    assert dif.shapes[dif.paths.index(lossy)].tolist() == [320, 240]


# --------------------------------------------------------------------------- discovery, keys

HEIF_EXTENSIONS = {".heic", ".heif", ".hif"}


def test_limit_extensions_reads_heic_and_heif(tmp_path, find, groups):
    pixels = images.texture("foliage", 7, 160, 120)
    paths = [save_heic(pixels, tmp_path / f"a{ext}", **LOSSLESS) for ext in sorted(HEIF_EXTENSIONS)]
    images.save(pixels, tmp_path / "a.png")
    (tmp_path / "notes.txt").write_text("not an image")

    assert HEIF_EXTENSIONS <= image_extensions()
    se = find(tmp_path, limit_extensions=True)

    assert se.stats["invalid_files"]["logs"] == {str(tmp_path / "notes.txt"): UNSUPPORTED}
    assert groups(se.result) == {frozenset([*paths, str(tmp_path / "a.png")])}


def test_a_fresh_process_lists_and_reads_heic(tmp_path):
    heic = save_heic(images.texture("gravel", 8, 120, 90), tmp_path / "one.heic", **LOSSLESS)
    images.save(images.texture("gravel", 8, 120, 90), tmp_path / "one.png")
    script = (
        "import sys, fastdif\n"
        "from fastdif.io.discover import image_extensions\n"
        "print(sorted(e for e in image_extensions() if e in {'.heic', '.heif', '.hif', '.avif'}))\n"
        "dif = fastdif.build(\n"
        "    sys.argv[1], show_progress=False, processes=1, limit_extensions=True\n"
        ")\n"
        "print(sorted(dif.paths))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout.splitlines()

    avif = [".avif"] if features.check("avif") else []
    assert out[0] == str(sorted([*HEIF_EXTENSIONS, *avif]))
    assert out[1] == str(sorted([heic, str(tmp_path / "one.png")]))


def test_thumbnail_key_names_pillow_heif_and_libheif(monkeypatch):
    key = decode.thumbnail_definition()
    assert f"pillow_heif={pillow_heif.__version__}" in key
    assert f"libheif={pillow_heif.libheif_version()}" in key
    monkeypatch.setattr(decode.pillow_heif, "__version__", "0.0.1")
    assert decode.thumbnail_definition() != key


# --------------------------------------------------------------------------- AVIF


@needs_avif
def test_avif_is_read_by_pillow_and_a_copy_of_a_jpeg_is_similar(tmp_path, find, groups):
    jpeg = images.save(images.texture("foliage", 9, 480, 360), tmp_path / "photo.jpg", quality=90)
    with Image.open(jpeg) as opened:
        avif = images.save(opened.convert("RGB"), tmp_path / "photo.avif", quality=85)
    images.save(images.texture("foliage", 10, 480, 360), tmp_path / "other.avif", quality=85)
    with Image.open(avif) as opened:
        assert opened.format == "AVIF"  # Pillow's plugin: pillow-heif 1.x reads no AVIF

    se = find(tmp_path, similarity="similar", limit_extensions=True)

    assert se.stats["invalid_files"]["count"] == 0
    assert groups(se.result) == {frozenset([jpeg, avif])}
    assert 0 < next(iter(se.result.values()))[0][1] <= 5


@needs_avif
@pytest.mark.parametrize("orientation", [3, 6, 8])
def test_avif_orientation_is_applied_once(tmp_path, orientation):
    upright = images.texture("brick", 11, 320, 240)
    stored = upright.transpose(images.EXIF_STORED[orientation])
    exif = Image.Exif()
    exif[0x0112] = orientation
    avif = images.save(stored, tmp_path / "turned.avif", exif=exif.tobytes(), quality=90)
    png = images.save(upright, tmp_path / "upright.png")
    # Pillow decodes the stored pixels and reports irot/imir as the EXIF tag.
    with Image.open(avif) as opened:
        assert opened.size == stored.size and opened.getexif().get(0x0112) == orientation

    thumb, width, height = decode.load_thumbnail(avif, PX)

    assert (width, height) == upright.size
    upright_thumb = decode.load_thumbnail(png, PX)[0]
    assert images.mse(thumb, upright_thumb) <= 5
    assert min(images.mse(np.rot90(thumb, k), upright_thumb) for k in (1, 2, 3)) > 100
