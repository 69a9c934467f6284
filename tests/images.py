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
from PIL import Image

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


def thumbnail(image, px_size: int = 50) -> np.ndarray:
    """difPy's thumbnail of a Pillow image or path: RGB, bicubic px x px, as float64."""
    if not isinstance(image, Image.Image):
        with Image.open(image) as opened:
            return thumbnail(opened.convert("RGB"), px_size)
    resized_image = image.convert("RGB").resize((px_size, px_size), Image.Resampling.BICUBIC)
    return np.asarray(resized_image, dtype=np.float64)


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
