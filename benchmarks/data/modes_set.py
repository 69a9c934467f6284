"""The labelled set of the matching-modes study: copies of every kind, and decoys.

    python -m benchmarks.studies.modes       # makes it once, then measures on it

The set (:func:`modes_dataset`, made once in the benchmark cache folder)
holds photo-like pictures (:func:`benchmarks.data.photos.photo`) and
textures (:mod:`benchmarks.data.textures`: foliage, gravel, brick, stars,
text, mosaics), each with one copy of every kind in :data:`KINDS`, and
distinct pictures that are hard to tell apart (:data:`DECOYS`): flat walls
and skies (pairs of one colour photographed at two exposures, and pairs of
equal luma in two hues), colour patterns of one luma, dark (underexposed)
and foggy low-contrast photos, line art, and bursts of near neighbours
(one scene, the camera moved 0.3 to 1.2% of the width between shots, exposure
within 1.5%). Every file is a real JPEG or PNG.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw, ImageEnhance

from . import copies
from .cache import cached_set
from .photos import photo
from .textures import TEXTURES
from .truth import write_truth

#: Copy kinds: each original gets one of each.
KINDS = (
    "exact",
    "png",
    "reencode",
    "rotate",
    "downscale",
    "mirror",
    "grey",
    "sepia",
    "darker",
    "brighter",
    "less contrast",
    "more contrast",
    "crop",
    "watermark",
)

#: The exposure edits: Pillow's enhancer and factor (30% either way).
EXPOSURE = {
    "darker": (ImageEnhance.Brightness, 0.7),
    "brighter": (ImageEnhance.Brightness, 1.3),
    "less contrast": (ImageEnhance.Contrast, 0.7),
    "more contrast": (ImageEnhance.Contrast, 1.3),
}

#: How each kind of copy is made.
COPIES = {
    "exact": copies.EXACT,
    "png": copies.recipe(copies.png(1)),
    "reencode": copies.recipe(copies.jpeg((70, 91))),
    "rotate": copies.recipe(copies.png(1), copies.turned(1)),
    "downscale": copies.recipe(copies.jpeg(92), copies.scaled(0.5, 0.8)),
    "mirror": copies.recipe(copies.jpeg(92), copies.mirrored),
    "grey": copies.recipe(copies.jpeg(90), copies.grey),
    "sepia": copies.recipe(copies.jpeg(90), copies.sepia),
    **{
        kind: copies.recipe(copies.jpeg(90), copies.enhanced(*edit))
        for kind, edit in EXPOSURE.items()
    },
    "crop": copies.recipe(copies.jpeg(92), copies.cropped(0.08)),
    "watermark": copies.recipe(copies.jpeg(92), copies.watermarked),
}

#: How each kind is made, for the table.
KIND_NOTES = {
    "exact": "byte copy",
    "png": "PNG of the decoded original",
    "reencode": "JPEG quality 70 to 90",
    "rotate": "90 degrees, lossless (PNG)",
    "downscale": "0.5x to 0.8x, JPEG",
    "mirror": "horizontal flip, JPEG",
    "grey": 'Pillow "L", JPEG',
    "sepia": "CSS sepia(1), JPEG",
    "darker": "brightness -30%, JPEG",
    "brighter": "brightness +30%, JPEG",
    "less contrast": "contrast -30%, JPEG",
    "more contrast": "contrast +30%, JPEG",
    "crop": "8% cut from two sides, JPEG",
    "watermark": "white text, 60% opaque, JPEG",
}

#: Distinct pictures mixed in; none is a copy of another.
DECOYS = ("flat", "isoluminant", "dark", "low_contrast", "line_art", "burst")

#: What originals show, in turn.
CONTENTS = ("photo", "foliage", "photo", "gravel", "photo", "brick", "stars", "text", "mosaic")

_LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)


def _size(rng: np.random.Generator) -> tuple[int, int]:
    """(width, height) of 0.15 to 0.5 megapixels, 4:3 or 3:2, a third portrait."""
    area = rng.uniform(0.15, 0.5) * 1e6
    aspect = rng.choice([4 / 3, 3 / 2])
    width = int(np.sqrt(area * aspect))
    height = int(width / aspect)
    return (height, width) if rng.random() < 0.33 else (width, height)


def _picture(content: str, rng: np.random.Generator, size: tuple[int, int]) -> Image.Image:
    if content == "photo":
        return photo(rng, size)
    return Image.fromarray(TEXTURES[content](rng, *size))


def _jpeg(image: Image.Image, path: str, quality: int) -> str:
    image.save(path, quality=quality)
    return path


def make_original(args: tuple[str, int, int]) -> dict:
    """Write original ``index`` and one copy of each kind; return their truth records."""
    out, index, seed = args
    rng = np.random.default_rng([seed, index])
    content = CONTENTS[index % len(CONTENTS)]
    image = _picture(content, rng, _size(rng))
    stem = os.path.join(out, f"o{index:04d}_{content}")
    if index % 5 == 4:
        original = stem + ".png"
        image.save(original, compress_level=1)
    else:
        original = _jpeg(image, stem + ".jpg", int(rng.integers(88, 96)))
    image = copies.decode(original)
    records = []
    for kind in KINDS:
        copy = copies.write_copy(original, f"{stem}_{kind}", COPIES[kind], rng, image)
        records.append({"original": original, "copy": copy, "kind": kind})
    return {"original": original, "content": content, "copies": records}


def _flat_image(rng, size, colour, ramp, noise) -> Image.Image:
    """A wall or a sky: one colour, a gradient of ``ramp`` levels top to bottom, noise."""
    width, height = size
    gradient = np.linspace(-ramp / 2, ramp / 2, height, dtype=np.float32)[:, None, None]
    grain = rng.standard_normal((height, width, 3)).astype(np.float32) * noise
    pixels = np.asarray(colour, np.float32) + gradient + grain
    return Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8))


def _equal_luma(rng, colour) -> np.ndarray:
    """Another hue of the same luma as ``colour`` (shifted along the grey axis to it)."""
    for _ in range(100):
        other = rng.uniform(30, 225, 3).astype(np.float32)
        other += float(_LUMA @ colour - _LUMA @ other)
        if other.min() >= 0 and other.max() <= 255 and np.abs(other - colour).max() > 40:
            return other
    return colour[::-1].copy()


def _line_art(rng, size) -> Image.Image:
    """Black strokes on white paper: lines, circles and arcs."""
    width, height = size
    image = Image.new("RGB", size, (250, 250, 247))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(8, 30))):
        x0, x1 = rng.uniform(0, width, 2)
        y0, y1 = rng.uniform(0, height, 2)
        ink = int(rng.integers(0, 60))
        stroke = int(rng.integers(1, 4))
        shape = rng.integers(3)
        box = (min(x0, x1), min(y0, y1), max(x0, x1), max(y0, y1))
        if shape == 0:
            draw.line((x0, y0, x1, y1), fill=(ink,) * 3, width=stroke)
        elif shape == 1:
            draw.ellipse(box, outline=(ink,) * 3, width=stroke)
        else:
            draw.arc(box, *sorted(rng.uniform(0, 360, 2)), fill=(ink,) * 3, width=stroke)
    return image


def make_decoys(args: tuple[str, int, int]) -> list[str]:
    """Write decoy set ``index`` (one to four distinct pictures); return their paths."""
    out, index, seed = args
    rng = np.random.default_rng([seed, 2_000_000 + index])
    kind = DECOYS[index % len(DECOYS)]
    size = _size(rng)
    stem = os.path.join(out, f"d{index:04d}_{kind}")
    if kind == "flat":
        colour = rng.uniform(25, 230, 3).astype(np.float32)
        if index % 2:  # one wall, two exposures
            other = colour * rng.choice([0.8, 1.2])
        else:  # two walls of equal luma, two hues
            other = _equal_luma(rng, colour)
        images = [
            _flat_image(rng, size, c, rng.uniform(0, 34), rng.uniform(0.5, 2))
            for c in (colour, other)
        ]
    elif kind == "isoluminant":
        base = rng.uniform(60, 190, 3).astype(np.float32)
        images = []
        for _ in range(2):
            a, b = base, _equal_luma(rng, base)
            period = int(rng.integers(20, 120))
            width, height = size
            stripes = (np.arange(width) // period) % 2 == 1
            pixels = np.where(stripes[None, :, None], b, a) * np.ones((height, 1, 1), np.float32)
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    elif kind == "dark":
        images = [Image.fromarray(TEXTURES["dark"](rng, *size)) for _ in range(2)]
    elif kind == "low_contrast":
        images = []
        for _ in range(2):
            scene = np.asarray(photo(rng, size), np.float32)
            strength = rng.uniform(0.08, 0.25)
            haze = rng.uniform(150, 220)
            pixels = scene * strength + haze * (1 - strength)
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    elif kind == "line_art":
        images = [_line_art(rng, size) for _ in range(2)]
    else:  # a burst: one scene, the camera moved between shots
        width, height = size
        content = ("photo", "foliage", "brick", "text", "gravel")[index // len(DECOYS) % 5]
        margin = int(0.2 * width)
        scene = _picture(content, rng, (width + margin, height + margin))
        images = []
        step = rng.uniform(0.003, 0.012) * width
        for shot in range(4):
            dx = int(round(shot * step))
            dy = int(round(shot * step * rng.uniform(-0.5, 0.5))) + margin // 2
            crop = scene.crop((dx, dy, dx + width, dy + height))
            exposure = rng.uniform(0.985, 1.015)
            pixels = np.asarray(crop, np.float32) * exposure
            images.append(Image.fromarray(np.clip(np.rint(pixels), 0, 255).astype(np.uint8)))
    paths = []
    for n, image in enumerate(images):
        if kind in ("flat", "isoluminant", "line_art") and n % 2:
            image.save(path := f"{stem}_{n}.png", compress_level=1)
        else:
            path = _jpeg(image, f"{stem}_{n}.jpg", int(rng.integers(88, 96)))
        paths.append(path)
    return paths


def make_modes_set(out: str, originals: int = 45, decoys: int = 48, seed: int = 0) -> dict:
    """Write the labelled set into ``out``; return what ``out/truth.json`` holds."""
    os.makedirs(out, exist_ok=True)
    with ProcessPoolExecutor() as pool:
        made = list(pool.map(make_original, [(out, i, seed) for i in range(originals)]))
        distinct = list(pool.map(make_decoys, [(out, i, seed) for i in range(decoys)]))
    record = {
        "seed": seed,
        "originals": [{"path": m["original"], "content": m["content"]} for m in made],
        "duplicates": [copy for m in made for copy in m["copies"]],
        "decoys": [path for paths in distinct for path in paths],
    }
    record["images"] = len(made) * (1 + len(KINDS)) + len(record["decoys"])
    return write_truth(out, record)


def modes_dataset(originals: int = 45, decoys: int = 48, seed: int = 0) -> str:
    """The folder of the labelled set in the benchmark cache folder, made if missing."""
    name = f"modes-o{originals}-d{decoys}-seed{seed}"
    return cached_set(name, lambda tmp: make_modes_set(tmp, originals, decoys, seed))
