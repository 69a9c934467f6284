"""Generate texture-rich photo-like images with labelled copies.

    python -m benchmarks.data.textures OUT --images 200 --seed 0

The content where a reduced-scale (JPEG draft) decode loses most: foliage
(small leaf blobs over high-frequency green noise), gravel (stones and
speckle), brick (a mortar grid, per-brick colour and noise), star fields
(sparse single bright pixels on a dark sky), printed text (many lines of
small type), flat and dark pictures, and mosaics of several of these.
Originals are 0.3 to 3 megapixels (``--megapixels``) plus ``--large`` of 4
to 12 megapixels; mostly JPEG (quality 80 to 95, some with an EXIF
orientation), with PNG and lossy WebP. Each copy is one of :data:`KINDS`:

- ``exact``: the file's bytes;
- ``png``, ``bmp``, ``tiff``, ``webp_lossless``: the decoded original (as
  displayed, EXIF orientation applied) saved losslessly in that format;
- ``reencode``: JPEG at quality 70 to 95 of the decoded original;
- ``rotate90``, ``rotate180``, ``rotate270``: a lossless rotation, as PNG;
- ``downscale``: 0.5x to 0.9x (Lanczos), as JPEG quality 92 or PNG.

``OUT/truth.json`` lists every copy as ``{"original", "copy", "kind"}`` as
:mod:`benchmarks.data.photos` does, and every original's texture under
``"originals"`` (``{"path", "texture", "width", "height"}``).
:func:`texture_dataset` keeps generated sets in the benchmark cache folder.
"""

from __future__ import annotations

import argparse
import os
import string
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from . import copies
from .cache import cached_set
from .photos import photo, save
from .truth import write_truth

KINDS = (
    "exact",
    "png",
    "bmp",
    "tiff",
    "webp_lossless",
    "reencode",
    "rotate90",
    "rotate180",
    "rotate270",
    "downscale",
)

#: Copy kinds whose pixels are exactly the decoded original's.
LOSSLESS_KINDS = ("png", "bmp", "tiff", "webp_lossless")

#: Original formats, in turn: every tenth a PNG, every tenth a lossy WebP.
ORIGINAL_FORMATS = (".jpg",) * 4 + (".png",) + (".jpg",) * 4 + (".webp",)

#: Share of JPEG originals written with an EXIF orientation (2 to 8).
EXIF_SHARE = 0.15

#: How each kind of copy is made.
COPIES = {
    "exact": copies.EXACT,
    "png": copies.recipe(copies.png(6)),
    "bmp": copies.recipe(copies.BMP),
    "tiff": copies.recipe(copies.TIFF),
    "webp_lossless": copies.recipe(copies.WEBP_LOSSLESS),
    "reencode": copies.recipe(copies.jpeg((70, 96))),
    "rotate90": copies.recipe(copies.png(1), copies.turned(1)),
    "rotate180": copies.recipe(copies.png(1), copies.turned(2)),
    "rotate270": copies.recipe(copies.png(1), copies.turned(3)),
    "downscale": copies.recipe(copies.jpeg(92), copies.scaled(0.5, 0.9), copies.png(1)),
}


# --- textures: each (rng, width, height) -> uint8 array (height, width, 3) ---


def _noise(rng: np.random.Generator, height: int, width: int, sigma: float, channels: int = 1):
    """Per-pixel Gaussian noise, float32 (height, width, channels)."""
    return rng.standard_normal((height, width, channels), dtype=np.float32) * np.float32(sigma)


def _field(rng: np.random.Generator, height: int, width: int, cell: float, sigma: float):
    """Smooth noise, float32 (height, width, 3): a coarse random grid blown up bicubically."""
    shape = (max(int(height / cell), 2), max(int(width / cell), 2), 3)
    coarse = np.clip(rng.normal(128, sigma, shape), 0, 255).astype(np.uint8)
    blown = Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC)
    return np.asarray(blown, dtype=np.float32) - 128


def _to_uint8(pixels: np.ndarray) -> np.ndarray:
    return np.clip(pixels, 0, 255).astype(np.uint8)


def _blobs(image: Image.Image, rng: np.random.Generator, count: int, radius, colours) -> None:
    """Draw ``count`` ellipses with radii in ``radius`` (lo, hi), colours from ``colours``."""
    draw = ImageDraw.Draw(image)
    xs = rng.uniform(0, image.width, count)
    ys = rng.uniform(0, image.height, count)
    rx = rng.uniform(*radius, count)
    ry = rx * rng.uniform(0.4, 1.0, count)
    fills = colours[rng.integers(len(colours), size=count)]
    for x, y, a, b, fill in zip(xs, ys, rx, ry, fills, strict=True):
        draw.ellipse((x - a, y - b, x + a, y + b), fill=tuple(int(c) for c in fill))


def _scale(width: int, height: int) -> float:
    """Feature size relative to a 1-megapixel picture."""
    return max(np.sqrt(width * height / 1e6), 0.5)


def foliage(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Leaves: thousands of small green blobs over shaded, high-frequency green noise."""
    s = _scale(width, height)
    hue = rng.uniform(0.6, 1.4)  # yellow-green .. blue-green
    base = np.array([45 * hue, 85, 35 / hue], np.float32)
    shade = _field(rng, height, width, 60 * s, 45)[..., :1]
    pixels = base + shade + _noise(rng, height, width, 10, 3) + _field(rng, height, width, 3, 30)
    image = Image.fromarray(_to_uint8(pixels))
    greens = rng.normal([60 * hue, 120, 45 / hue], [25, 35, 20], (64, 3)).clip(0, 255)
    count = int(width * height / (40 * s * s))
    _blobs(image, rng, count, (2 * s, 7 * s), greens)
    pixels = np.asarray(image, np.float32) + _noise(rng, height, width, 8)
    return _to_uint8(pixels)


def gravel(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Stones of greys and browns, packed densely, with speckle."""
    s = _scale(width, height)
    tint = rng.uniform(-20, 20, 3)
    background = rng.uniform(50, 90) + tint.astype(np.float32) * 0.5
    background = background + _field(rng, height, width, 40 * s, 20)[..., :1]
    image = Image.fromarray(_to_uint8(background + _noise(rng, height, width, 12)))
    stones = (rng.normal(130, 40, (96, 1)) + rng.normal(0, 15, (96, 3)) + tint).clip(0, 255)
    count = int(width * height / (35 * s * s))
    _blobs(image, rng, count, (2 * s, 9 * s), stones)
    pixels = np.asarray(image, np.float32) + _noise(rng, height, width, 14)
    speckle = rng.random((height, width)) < 0.01
    pixels[speckle] = rng.choice([0, 255], (int(speckle.sum()), 1)).astype(np.float32)
    return _to_uint8(pixels)


def brick(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A brick wall: running bond, per-brick colour, mortar lines and grain."""
    s = _scale(width, height)
    course = max(int(rng.uniform(12, 36) * s), 6)
    length = int(course * rng.uniform(2.0, 3.5))
    mortar = max(course // 7, 1)
    y = np.arange(height)[:, None]
    x = np.arange(width)[None, :]
    row = y // course
    shift = (row % 2) * (length // 2) + rng.integers(0, length)
    col = (x + shift) // length
    rows, cols = height // course + 1, (width + 2 * length) // length + 1
    red = rng.normal([150, 65, 45], [30, 18, 12], (rows, cols, 3)).clip(0, 255)
    pixels = red[row, col].astype(np.float32)
    joint = (y % course < mortar) | ((x + shift) % length < mortar)
    pixels[joint] = np.float32(rng.uniform(150, 210))
    pixels += _noise(rng, height, width, 10, 3) + _field(rng, height, width, 80 * s, 25)[..., :1]
    return _to_uint8(pixels)


def stars(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A night sky: a faint glow, sparse single-pixel stars and a few tiny bright ones."""
    glow = _field(rng, height, width, max(width, height) / 4, 60).clip(0, None) * 0.5
    pixels = rng.uniform(2, 12) + glow * rng.uniform(0.2, 1.0, 3).astype(np.float32)
    pixels += _noise(rng, height, width, 2)
    count = int(width * height * rng.uniform(2e-4, 1.5e-3))
    ys, xs = rng.integers(0, height, count), rng.integers(0, width, count)
    colour = rng.uniform(0.7, 1.0, (count, 3)) * rng.uniform(60, 255, (count, 1))
    pixels[ys, xs] = np.maximum(pixels[ys, xs], colour)
    for _ in range(count // 50):  # a few 3 x 3 stars
        y, x = rng.integers(1, height - 1), rng.integers(1, width - 1)
        pixels[y - 1 : y + 2, x - 1 : x + 2] += rng.uniform(60, 200)
    return _to_uint8(pixels)


def text(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A printed page: many lines of small type (Pillow's default font) on paper."""
    s = _scale(width, height)
    paper = rng.uniform(225, 250) + rng.uniform(-8, 8, 3).astype(np.float32)
    pixels = paper + _field(rng, height, width, 200 * s, 8)[..., :1] + _noise(rng, height, width, 3)
    image = Image.fromarray(_to_uint8(pixels))
    draw = ImageDraw.Draw(image)
    size = max(int(rng.uniform(8, 14) * s), 8)
    font = ImageFont.load_default(size)
    ink = tuple(int(c) for c in rng.uniform(0, 60, 3))
    letters = np.array(list(string.ascii_letters + string.digits + ".,;"))
    columns = int(rng.integers(1, 3))
    margin = int(size * 2)
    column_width = (width - margin * (columns + 1)) // columns
    chars = max(int(column_width / (size * 0.55)), 4)
    for c in range(columns):
        left = margin + c * (column_width + margin)
        for top in range(margin, height - margin - size, int(size * 1.35)):
            line = rng.choice(letters, chars)
            line[rng.integers(0, chars, chars // 6)] = " "
            draw.text((left, top), "".join(line), fill=ink, font=font)
    return np.asarray(image)


def flat(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One colour with a gentle gradient and a trace of noise (a wall, a sky)."""
    colour = rng.uniform(20, 235, 3).astype(np.float32)
    ramp = np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * rng.uniform(0, 12)
    return _to_uint8(colour + ramp + _noise(rng, height, width, rng.uniform(0, 1.5)))


def dark(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """An underexposed photo: a scene at 8 to 25 % exposure with sensor noise."""
    scene = np.asarray(photo(rng, (width, height)), np.float32) * rng.uniform(0.08, 0.25)
    return _to_uint8(scene + _noise(rng, height, width, 1.5, 3))


def mosaic(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A grid of tiles, each a different texture."""
    rows, cols = int(rng.integers(2, 4)), int(rng.integers(2, 4))
    ys = np.linspace(0, height, rows + 1).astype(int)
    xs = np.linspace(0, width, cols + 1).astype(int)
    out = np.empty((height, width, 3), np.uint8)
    names = [name for name in TEXTURES if name != "mosaic"]
    for r in range(rows):
        for c in range(cols):
            make = TEXTURES[names[rng.integers(len(names))]]
            out[ys[r] : ys[r + 1], xs[c] : xs[c + 1]] = make(
                rng, xs[c + 1] - xs[c], ys[r + 1] - ys[r]
            )
    return out


TEXTURES = {
    "foliage": foliage,
    "gravel": gravel,
    "brick": brick,
    "stars": stars,
    "text": text,
    "flat": flat,
    "dark": dark,
    "mosaic": mosaic,
}


# --- files ---------------------------------------------------------------------


def dimensions(rng: np.random.Generator, megapixels: tuple[float, float]) -> tuple[int, int]:
    """(width, height) of a random aspect (4:3, 3:2, 16:9; 30 % portrait) in a megapixel range."""
    area = rng.uniform(*megapixels) * 1e6
    aspect = rng.choice([4 / 3, 3 / 2, 16 / 9])
    width = int(np.sqrt(area * aspect))
    height = int(width / aspect)
    if rng.random() < 0.3:
        width, height = height, width
    return width, height


def make_original(args: tuple[str, int, int, tuple[float, float], bool]) -> dict:
    """Write original number ``index`` into ``out``; return its record.

    Textures and formats go in turn (:data:`TEXTURES`, :data:`ORIGINAL_FORMATS`),
    so that a small set holds each; a ``large`` original is always a JPEG.
    """
    out, index, seed, megapixels, large = args
    rng = np.random.default_rng([seed, index])
    texture = list(TEXTURES)[index % len(TEXTURES)]
    ext = ".jpg" if large else ORIGINAL_FORMATS[index % len(ORIGINAL_FORMATS)]
    width, height = dimensions(rng, megapixels)
    image = Image.fromarray(TEXTURES[texture](rng, width, height))
    path = os.path.join(out, f"tex_{index:06d}_{texture}{ext}")
    if ext == ".jpg" and rng.random() < EXIF_SHARE:
        exif = Image.Exif()
        exif[0x0112] = int(rng.integers(2, 9))  # orientation
        image.save(path, quality=int(rng.integers(80, 96)), exif=exif)
    else:
        save(image, path, rng)
    return {"path": path, "texture": texture, "width": width, "height": height}


def make_copy(args: tuple[str, str, int, int]) -> dict:
    """Write copy number ``index`` of ``original``; return its truth record."""
    out, original, index, seed = args
    rng = copies.copy_rng(seed, index)
    kind = KINDS[index % len(KINDS)]
    stem = os.path.join(out, f"copy_{index:06d}_{kind}")
    copy = copies.write_copy(original, stem, COPIES[kind], rng)
    return {"original": original, "copy": copy, "kind": kind}


def make_textures(
    out: str,
    images: int,
    duplicates: int | None = None,
    seed: int = 0,
    megapixels: tuple[float, float] = (0.3, 3.0),
    large: int = 0,
    large_megapixels: tuple[float, float] = (4.0, 12.0),
    processes: int | None = None,
) -> dict:
    """Write ``images`` files into ``out``, ``duplicates`` of them copies; return the truth.

    Parameters
    ----------
    out : str
        Folder to write (made if missing).
    images : int
        Number of files in all.
    duplicates : int, optional
        How many of them are copies (kinds in turn, of random originals);
        default ``images // 2``.
    seed : int, default 0
    megapixels : (float, float), default (0.3, 3.0)
        Size range of the originals.
    large : int, default 0
        How many originals (the first ones) are JPEGs of ``large_megapixels``.
    large_megapixels : (float, float), default (4.0, 12.0)
    processes : int, optional
        Worker processes; None uses all cores.

    Returns
    -------
    dict
        What ``out/truth.json`` holds: ``images``, ``seed``, ``originals``
        (path, texture, width, height) and ``duplicates`` (original, copy, kind).
    """
    duplicates = images // 2 if duplicates is None else duplicates
    originals = images - duplicates
    if originals < 1 or large > originals:
        raise ValueError(
            f"images={images}, duplicates={duplicates}, large={large}: "
            "need at least one original, and no more large ones than originals"
        )
    os.makedirs(out, exist_ok=True)
    jobs = [
        (out, i, seed, large_megapixels if i < large else megapixels, i < large)
        for i in range(originals)
    ]
    with ProcessPoolExecutor(processes) as pool:
        made = list(pool.map(make_original, jobs))
        paths = [m["path"] for m in made]
        truth = list(pool.map(make_copy, copies.copy_jobs(out, paths, duplicates, seed)))
    return write_truth(
        out, {"images": images, "seed": seed, "originals": made, "duplicates": truth}
    )


def texture_dataset(
    images: int,
    seed: int = 0,
    large: int | None = None,
    large_megapixels: tuple[float, float] = (4.0, 12.0),
) -> str:
    """The folder of a generated texture set in the benchmark cache folder, made if missing.

    Parameters
    ----------
    images : int
        Number of files; ``images // 2`` of them are copies.
    seed : int, default 0
    large : int, optional
        Originals of ``large_megapixels`` (JPEG); default a tenth of the
        originals, at least 1.
    large_megapixels : (float, float), default (4.0, 12.0)

    Returns
    -------
    str
        Absolute path of the folder (images and ``truth.json``).
    """
    originals = images - images // 2
    large = max(originals // 10, 1) if large is None else large
    lo, hi = large_megapixels
    name = f"textures-n{images}-large{large}x{lo:g}-{hi:g}mp-seed{seed}"
    return cached_set(
        name,
        lambda tmp: make_textures(
            tmp, images, seed=seed, large=large, large_megapixels=large_megapixels
        ),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=200)
    parser.add_argument("--duplicates", type=int, help="default: half the images")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--megapixels", type=float, nargs=2, default=(0.3, 3.0))
    parser.add_argument("--large", type=int, default=0, help="originals of 4 to 12 MP")
    parser.add_argument("--processes", type=int)
    args = parser.parse_args()
    make_textures(
        args.out,
        args.images,
        args.duplicates,
        args.seed,
        tuple(args.megapixels),
        args.large,
        processes=args.processes,
    )


if __name__ == "__main__":
    main()
