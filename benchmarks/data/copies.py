"""The one copy maker: every kind of copy the generated sets hold, made the same way.

A copy is either the original file's bytes (:data:`EXACT`) or a
:class:`Recipe`: an edit of the decoded original (EXIF orientation applied,
RGB), then an encoding. Each set names its own kinds and picks their
recipes from the edits and encodings here, with its own parameters (quality
ranges, scale factors), so that every set stays what it was when its
figures were measured. Random draws come from the generator the caller
passes, edit first, then encoding.
"""

from __future__ import annotations

import io
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance, ImageFont, ImageOps

#: An edit: (decoded original, generator) -> the copy's pixels.
Edit = Callable[[Image.Image, np.random.Generator], Image.Image]

TURNS = (Image.Transpose.ROTATE_90, Image.Transpose.ROTATE_180, Image.Transpose.ROTATE_270)

#: The CSS ``sepia(1)`` matrix (rows: R, G, B out), as photo apps tint.
SEPIA = np.array(
    [[0.393, 0.769, 0.189], [0.349, 0.686, 0.168], [0.272, 0.534, 0.131]], dtype=np.float32
)


# --- encodings ---------------------------------------------------------------------


@dataclass(frozen=True)
class Encoding:
    """How a copy is written: Pillow's format and options, JPEG quality drawn from a range.

    Attributes
    ----------
    ext : str
        The file extension, with its dot.
    pillow : str
        Pillow's format name.
    options : dict
        Keywords of :meth:`PIL.Image.Image.save`.
    quality : (int, int), optional
        JPEG quality drawn from ``[lo, hi)``.
    """

    ext: str
    pillow: str
    options: dict = field(default_factory=dict)
    quality: tuple[int, int] | None = None

    def encode(self, image: Image.Image, rng: np.random.Generator) -> bytes:
        """The file's bytes."""
        options = dict(self.options)
        if self.quality is not None:
            options["quality"] = int(rng.integers(*self.quality))
        buffer = io.BytesIO()
        image.save(buffer, self.pillow, **options)
        return buffer.getvalue()


def jpeg(quality: int | tuple[int, int]) -> Encoding:
    """JPEG at ``quality``, or at a quality drawn from ``[lo, hi)``."""
    if isinstance(quality, tuple):
        return Encoding(".jpg", "JPEG", quality=quality)
    return Encoding(".jpg", "JPEG", {"quality": quality})


def png(level: int) -> Encoding:
    """PNG at zlib compression ``level``."""
    return Encoding(".png", "PNG", {"compress_level": level})


BMP = Encoding(".bmp", "BMP")
TIFF = Encoding(".tiff", "TIFF")
WEBP_LOSSLESS = Encoding(".webp", "WEBP", {"lossless": True, "method": 0})


# --- edits -------------------------------------------------------------------------


def scaled(lo: float, hi: float | None = None, least: int = 1, whole=round) -> Edit:
    """Resize (Lanczos) by ``lo``, or by a factor drawn from ``[lo, hi)``.

    Each side is ``whole(side * factor)``, at least ``least``.
    """

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        factor = lo if hi is None else rng.uniform(lo, hi)
        size = (
            max(whole(image.width * factor), least),
            max(whole(image.height * factor), least),
        )
        return image.resize(size, Image.Resampling.LANCZOS)

    return edit


def turned(quarters: int | None = None) -> Edit:
    """A lossless rotation by ``quarters`` (1 to 3) quarter turns, or by a drawn one."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        turn = TURNS[quarters - 1] if quarters else TURNS[int(rng.integers(3))]
        return image.transpose(turn)

    return edit


def reencoded(quality: tuple[int, int]) -> Edit:
    """A JPEG round trip in memory, at a quality drawn from ``[lo, hi)``."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        data = jpeg(quality).encode(image, rng)
        return Image.open(io.BytesIO(data)).convert("RGB")

    return edit


def mirrored(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A horizontal flip."""
    return ImageOps.mirror(image)


def grey(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """Pillow's ``"L"``: the luma alone."""
    return image.convert("L")


def sepia(image: Image.Image, rng: np.random.Generator | None = None) -> Image.Image:
    """The CSS ``sepia(1)`` filter: each pixel times :data:`SEPIA`, clipped."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.float32) @ SEPIA.T
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def enhanced(enhancer: type[ImageEnhance._Enhance], factor: float) -> Edit:
    """Pillow's ``enhancer`` (brightness, contrast...) at ``factor``."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        return enhancer(image).enhance(factor)

    return edit


def exposed(lo: float, hi: float) -> Edit:
    """Every value times a factor drawn from ``[lo, hi)``, clipped and truncated."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        pixels = np.asarray(image, dtype=np.float32) * rng.uniform(lo, hi)
        return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))

    return edit


def cropped(fraction: float) -> Edit:
    """``fraction`` of each side cut from the left and the top."""

    def edit(image: Image.Image, rng: np.random.Generator) -> Image.Image:
        dx, dy = round(image.width * fraction), round(image.height * fraction)
        return image.crop((dx, dy, image.width, image.height))

    return edit


def watermarked(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    """A semi-transparent white text mark across the lower right corner."""
    marked = image.convert("RGBA")
    layer = Image.new("RGBA", marked.size, (0, 0, 0, 0))
    draw = ImageDraw.Draw(layer)
    size = max(image.height // 10, 10)
    font = ImageFont.load_default(size)
    text = "(c) fastdif photo"
    box = draw.textbbox((0, 0), text, font=font)
    x = image.width - (box[2] - box[0]) - size
    y = image.height - (box[3] - box[1]) - size
    draw.text((x, y), text, font=font, fill=(255, 255, 255, 150))
    return Image.alpha_composite(marked, layer).convert("RGB")


# --- copies ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """A copy made from the decoded original: ``edit`` (None: as decoded), then an encoding.

    With several encodings, one is drawn, each with equal chance (after the edit's draws).
    """

    encodings: tuple[Encoding, ...]
    edit: Edit | None = None

    def encode(self, image: Image.Image, rng: np.random.Generator) -> tuple[bytes, str]:
        """The copy's bytes and extension, from the decoded original ``image``."""
        if self.edit is not None:
            image = self.edit(image, rng)
        if len(self.encodings) == 1:
            encoding = self.encodings[0]
        else:
            encoding = self.encodings[int(rng.random() * len(self.encodings))]
        return encoding.encode(image, rng), encoding.ext


def recipe(encoding: Encoding, edit: Edit | None = None, *others: Encoding) -> Recipe:
    """A :class:`Recipe`: ``edit`` then ``encoding`` (or one of it and ``others``)."""
    return Recipe((encoding, *others), edit)


#: The original file's bytes.
EXACT = None


def copy_jobs(out: str, originals: list[str], count: int, seed: int) -> list[tuple]:
    """``(out, original, index, seed)`` of ``count`` copies, each of an original drawn at random.

    The originals are drawn with a generator seeded by ``seed`` alone, so a
    set's copies depend on its seed and sizes, not on the order work is done.
    """
    rng = np.random.default_rng(seed)
    sources = rng.choice(len(originals), count, replace=count > len(originals))
    return [(out, originals[s], index, seed) for index, s in enumerate(sources)]


def copy_rng(seed: int, index: int) -> np.random.Generator:
    """The generator of copy number ``index`` of a set made with ``seed``."""
    return np.random.default_rng([seed, 1_000_000 + index])


def decode(path: str) -> Image.Image:
    """The image as displayed: EXIF orientation applied, in RGB."""
    with Image.open(path) as image:
        return ImageOps.exif_transpose(image).convert("RGB")


def write_copy(
    original: str | None,
    stem: str,
    how: Recipe | None,
    rng: np.random.Generator,
    image: Image.Image | None = None,
) -> str:
    """Write one copy as ``how`` says, to ``stem`` plus its extension; return its path.

    Parameters
    ----------
    original : str or None
        The original file; None when ``image`` is given and ``how`` is not
        :data:`EXACT`.
    stem : str
        The copy's path without its extension.
    how : Recipe or None
        :data:`EXACT` (None) for the original's bytes, under its extension.
    rng : numpy.random.Generator
    image : PIL.Image.Image, optional
        The decoded original, when the caller has it (several copies of one
        original decode it once); default :func:`decode` of ``original``.
    """
    if how is EXACT:
        copy = stem + os.path.splitext(original)[1]
        shutil.copyfile(original, copy)
        return copy
    data, ext = how.encode(decode(original) if image is None else image, rng)
    with open(stem + ext, "wb") as f:
        f.write(data)
    return stem + ext
