"""Photo-like test images made with NumPy and Pillow, so every expectation is known.

An image is a smooth colour gradient with soft colour blobs, a faint periodic
texture and a little noise, all drawn from one seed. Two seeds give images
whose 50 x 50 thumbnails differ by an MSE in the hundreds (under every
rotation); a JPEG re-encode, a lossless rotation or a half-size copy of one
image stays within an MSE of about 3. Pixel values stay inside ``lo..hi``
(20..230 by default) so a constant offset never clips.
"""

from __future__ import annotations

import os

import numpy as np
from PIL import Image, ImageDraw

#: Default size of a test photo (width, height).
SIZE = (200, 150)

ROTATIONS = {
    90: Image.Transpose.ROTATE_90,
    180: Image.Transpose.ROTATE_180,
    270: Image.Transpose.ROTATE_270,
}


def photo(seed: int, width: int = SIZE[0], height: int = SIZE[1], lo: int = 20, hi: int = 230):
    """A deterministic photo-like RGB image as a (height, width, 3) uint8 array."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float64)
    xs, ys = x / width, y / height
    img = np.empty((height, width, 3))
    for c in range(3):
        a, b, c0 = rng.uniform(-1, 1, 3)
        img[..., c] = 0.5 + 0.175 * (a * xs + b * ys) + 0.15 * c0
    for _ in range(6):
        cx, cy = rng.uniform(0, 1, 2)
        radius = rng.uniform(0.08, 0.3)
        colour = rng.uniform(-0.4, 0.4, 3)
        blob = np.exp(-(((xs - cx) * width / height) ** 2 + (ys - cy) ** 2) / (2 * radius**2))
        img += blob[..., None] * colour
    for _ in range(2):
        fx, fy = rng.uniform(2, 8, 2) * rng.choice([-1, 1], 2)
        phase = rng.uniform(0, 2 * np.pi)
        wave = np.sin(2 * np.pi * (fx * xs + fy * ys) + phase)
        img += 0.06 * wave[..., None] * rng.uniform(-1, 1, 3)
    img = lo + np.clip(img, 0, 1) * (hi - lo)
    img += rng.normal(0, 3, img.shape)
    return np.clip(np.rint(img), lo, hi).astype(np.uint8)


def photo_image(seed: int, width: int = SIZE[0], height: int = SIZE[1], **kwargs) -> Image.Image:
    """:func:`photo` as a Pillow RGB image."""
    return Image.fromarray(photo(seed, width, height, **kwargs), "RGB")


def save(image, path, **save_kwargs) -> str:
    """Save a Pillow image or uint8 array to ``path`` (format from the extension).

    Parent folders are created; JPEG defaults to quality 95. Returns ``str(path)``.
    """
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.splitext(path)[1].lower() in (".jpg", ".jpeg"):
        save_kwargs.setdefault("quality", 95)
    image.save(path, **save_kwargs)
    return path


def save_photo(seed: int, path, width: int = SIZE[0], height: int = SIZE[1], **save_kwargs) -> str:
    """Save the photo of ``seed`` to ``path``; returns ``str(path)``."""
    return save(photo_image(seed, width, height), path, **save_kwargs)


def reencode(source, path, quality: int = 85) -> str:
    """Decode the JPEG (or any image) at ``source`` and save it again as JPEG ``quality``."""
    with Image.open(source) as image:
        return save(image.convert("RGB"), path, quality=quality)


def rotated(source, path, angle: int) -> str:
    """Save ``source`` rotated counter-clockwise by ``angle`` (90, 180, 270), losslessly as PNG."""
    with Image.open(source) as image:
        return save(image.transpose(ROTATIONS[angle]), path)


def resized(source, path, factor: float = 0.5) -> str:
    """Save ``source`` scaled by ``factor`` (Lanczos) to ``path``."""
    with Image.open(source) as image:
        size = (round(image.width * factor), round(image.height * factor))
        return save(image.resize(size, Image.Resampling.LANCZOS), path)


def copy_bytes(source, path) -> str:
    """An exact byte copy of ``source`` at ``path``."""
    path = os.fspath(path)
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(source, "rb") as src, open(path, "wb") as dst:
        dst.write(src.read())
    return path


def area_weights(n: int, px_size: int) -> np.ndarray:
    """(px_size, n) integer weights of the exact area filter: row i averages
    source pixels over ``[i * n / px_size, (i + 1) * n / px_size)``, each by the
    part of it inside, in units of ``1 / px_size`` pixel (a row sums to n)."""
    edges = np.arange(px_size + 1) * n  # in units of 1 / px_size pixel
    pixel = np.arange(n) * px_size
    inside = np.minimum(pixel + px_size, edges[1:, None]) - np.maximum(pixel, edges[:-1, None])
    return np.clip(inside, 0, None).astype(np.int64)


def thumbnail(image, px_size: int = 50) -> np.ndarray:
    """The reference thumbnail of a Pillow image or path, as float64.

    A full decode (Pillow, EXIF orientation not applied), RGB, then the exact
    area filter as dense integer matrices, rounded half up: the definition
    fastdif's decoder must meet, computed independently of it.
    """
    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            return thumbnail(opened.convert("RGB"), px_size)
    pixels = np.asarray(image.convert("RGB"), dtype=np.int64)
    height, width = pixels.shape[:2]
    rows, columns = area_weights(height, px_size), area_weights(width, px_size)
    sums = np.einsum("iy,yxc->ixc", rows, pixels)
    sums = np.einsum("ixc,jx->ijc", sums, columns)
    area = height * width
    return ((2 * sums + area) // (2 * area)).astype(np.float64)


def mse(a, b) -> float:
    """Mean squared error of two arrays, in float64 (no uint8 wrap-around)."""
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def min_rotated_mse(a, b) -> float:
    """Smallest MSE between ``b`` and ``a`` rotated by 0, 90, 180 or 270 degrees."""
    return min(mse(np.rot90(a, k), b) for k in range(4))


# Stored pixels for each EXIF orientation: the inverse of what displays them upright.
EXIF_STORED = {
    1: None,
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_90,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_270,
}


#: Kinds of :func:`texture`: the content where a reduced-scale decode drifts.
TEXTURES = ("foliage", "gravel", "brick", "stars", "text")


def texture(kind: str, seed: int, width: int = 1280, height: int = 960) -> Image.Image:
    """A texture-rich RGB photo of ``kind`` (one of :data:`TEXTURES`).

    Fine detail down to single pixels, on a coarse scene of its own, so that
    two seeds (or two kinds) stay far apart while a reduced-scale decode of one
    image drifts from its full decode.
    """
    rng = np.random.default_rng([TEXTURES.index(kind), seed])
    y, x = np.mgrid[0:height, 0:width]
    scene = np.asarray(
        Image.fromarray(rng.integers(40, 216, (3, 4, 3), dtype=np.uint8)).resize(
            (width, height), Image.Resampling.BICUBIC
        ),
        np.float64,
    )
    if kind == "foliage":
        leaves = rng.normal(0, 1, (height // 3 + 1, width // 3 + 1))
        leaves = np.repeat(np.repeat(leaves, 3, 0), 3, 1)[:height, :width]
        img = scene * [0.5, 0.9, 0.4] + 60 * leaves[..., None] * [0.6, 1.0, 0.4]
        img += rng.normal(0, 25, (height, width, 1))
    elif kind == "gravel":
        stones = rng.integers(60, 200, (height // 5 + 1, width // 5 + 1, 3))
        img = np.repeat(np.repeat(stones, 5, 0), 5, 1)[:height, :width].astype(np.float64)
        img = 0.5 * img + 0.5 * scene + rng.normal(0, 30, (height, width, 1))
    elif kind == "brick":
        row, offset = y // 14, (y // 14 % 2) * 17
        brick = rng.uniform(0.7, 1.2, (height // 14 + 1, width // 34 + 2))[row, (x + offset) // 34]
        mortar = (y % 14 < 3) | ((x + offset) % 34 < 3)
        img = np.where(mortar[..., None], 200.0, brick[..., None] * [170, 80, 60])
        img = 0.8 * img + 0.2 * scene + rng.normal(0, 12, (height, width, 3))
    elif kind == "stars":
        img = 0.25 * scene
        stars = rng.random((height, width)) < 0.02
        img[stars] = rng.uniform(150, 255, (int(stars.sum()), 1))
    elif kind == "text":
        page = Image.new("L", (width, height), 235)
        draw = ImageDraw.Draw(page)
        for line in range(0, height, 11):
            words = rng.integers(97, 123, width // 6)
            draw.text((2 - line % 5, line), bytes(words.astype(np.uint8)).decode(), fill=20)
        img = np.asarray(page, np.float64)[..., None] * scene / 200
    else:
        raise ValueError(kind)
    return Image.fromarray(np.clip(np.rint(img), 0, 255).astype(np.uint8), "RGB")


#: EXIF DateTimeOriginal values, as cameras write them.
DATE_2019 = "2019:03:02 08:00:00"
DATE_2021 = "2021:06:01 10:22:00"


def exif_with_date(date: str):
    """An ``Image.Exif`` with DateTimeOriginal (tag 36867 of the Exif IFD 0x8769)."""
    exif = Image.Exif()
    exif.get_ifd(0x8769)[36867] = date
    exif[0x8769] = exif.get_ifd(0x8769)
    return exif


def dated_photo(path, seed=1, size=SIZE, date=None, **kwargs) -> str:
    """The photo of ``seed`` at ``path`` (format from the extension), with an EXIF date."""
    if date is not None:
        kwargs["exif"] = exif_with_date(date)
    return save(photo_image(seed, *size), path, **kwargs)
