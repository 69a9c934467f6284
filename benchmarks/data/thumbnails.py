"""Photo-like thumbnails in memory, for searches over 100k to 1M images.

Decoding a million files is not what these benchmarks measure, so images are
rendered small (192 x 144, landscape or portrait), given a random exposure as
photos have, and resized to px x px as fastdif does. A fraction of them are
near-duplicates of another image: a JPEG re-encode (quality 60 to 90), a
rotation by 90/180/270 degrees, a 0.8x downscale, or a small exposure change.
Results are cached as .npy files in the benchmark cache folder
(:mod:`benchmarks.data.cache`).
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from . import copies
from .cache import cache_folder
from .photos import photo

#: The near-duplicates, each drawn with equal chance.
NEAR_EDITS = {
    "reencode": copies.reencoded((60, 91)),
    "rotate": copies.turned(),
    "downscale": copies.scaled(0.8, whole=int),
    "exposure": copies.exposed(0.98, 1.02),
}


def _render(rng: np.random.Generator) -> Image.Image:
    size = (192, 144) if rng.random() < 0.7 else (144, 192)
    image = np.asarray(photo(rng, size), dtype=np.float32)
    exposure = rng.uniform(0.35, 1.25)
    return Image.fromarray(np.clip(image * exposure, 0, 255).astype(np.uint8))


def _near_copy(image: Image.Image, rng: np.random.Generator) -> Image.Image:
    edits = list(NEAR_EDITS.values())
    return edits[rng.integers(len(edits))](image, rng)


def _chunk(args: tuple[int, int, int, int, float]) -> np.ndarray:
    start, stop, px, seed, near = args
    out = np.empty((stop - start, px, px, 3), dtype=np.uint8)
    rng = np.random.default_rng([seed, start])
    source = None
    for k in range(stop - start):
        if source is not None and rng.random() < near:
            image = _near_copy(source, rng)
        else:
            image = source = _render(rng)
        out[k] = np.asarray(image.resize((px, px), Image.Resampling.BICUBIC))
    return out


def photo_thumbnails(n: int, px: int = 50, near: float = 0.1, seed: int = 0) -> np.ndarray:
    """``n`` uint8 thumbnails (n, px, px, 3), a fraction ``near`` near-duplicates.

    Memory-mapped from the cache when it exists, generated (in parallel) otherwise.
    """
    folder = cache_folder()
    path = os.path.join(folder, f"thumbs-n{n}-px{px}-near{near}-seed{seed}.npy")
    if os.path.exists(path):
        return np.load(path, mmap_mode="r")
    os.makedirs(folder, exist_ok=True)
    step = 2000
    jobs = [(s, min(s + step, n), px, seed, near) for s in range(0, n, step)]
    tmp = path + f".{os.getpid()}.tmp"
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint8, shape=(n, px, px, 3))
    with ProcessPoolExecutor() as pool:
        for (start, stop, *_), chunk in zip(jobs, pool.map(_chunk, jobs), strict=True):
            out[start:stop] = chunk
    out.flush()
    del out
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


def thumbnail_file(n: int) -> str:
    """Path of the ``.npy`` file of ``photo_thumbnails(n)`` (written once), for memory-mapping."""
    return photo_thumbnails(n).filename
