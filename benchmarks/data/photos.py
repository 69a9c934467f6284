"""Photo-like pictures, and generated photo sets with labelled duplicates.

    python -m benchmarks.data.photos OUT --images 1000 --duplicates 500 --seed 0

Images are procedural but cost what photos cost: 0.3 to 3 megapixels,
landscape and portrait, smooth shapes plus texture and sensor grain, mostly
JPEG (quality 80 to 95) with some PNG and WebP. Each duplicate is one of:
exact copy, re-encode, format change, downscale, rotation (:data:`COPIES`).
``OUT/truth.json`` lists every duplicate as ``{"original", "copy", "kind"}``.

``dataset(1000)`` is the folder ``<cache>/photos-n1000-dup500-seed0`` made by
:func:`make_dataset` (``n`` images, ``n // 2`` of them duplicates), generated
on first use and reused afterwards (:mod:`benchmarks.data.cache`); a folder
made earlier with the command above can be linked there under that name.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

from . import copies
from .cache import cached_set
from .truth import write_truth

KINDS = ("exact", "reencode", "format", "downscale", "rotate")

#: How each kind of duplicate is made; a rotation turns by ``index % 3 + 1`` quarters.
COPIES = {
    "exact": copies.EXACT,
    "reencode": copies.recipe(copies.jpeg((70, 90))),
    "format": copies.recipe(copies.png(1)),
    "downscale": copies.recipe(copies.jpeg(92), copies.scaled(0.5, whole=int)),
}


def photo(rng: np.random.Generator, size: tuple[int, int] | None = None) -> Image.Image:
    """A photo-like RGB image: 0.3 to 3 megapixels, or ``size`` (width, height)."""
    if size is None:
        megapixels = rng.uniform(0.3, 3.0)
        aspect = rng.choice([4 / 3, 3 / 2, 16 / 9])
        width = int(np.sqrt(megapixels * 1e6 * aspect))
        height = int(width / aspect)
        if rng.random() < 0.3:
            width, height = height, width
    else:
        width, height = size
    # Smooth scene: a coarse random colour field blown up bicubically.
    coarse = rng.integers(0, 256, (rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.uint8)
    scene = np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))
    # Texture: a finer field at 1/8 scale, then grain at full scale.
    fine = rng.normal(0, 18, (max(height // 8, 2), max(width // 8, 2), 3))
    fine = Image.fromarray(np.clip(fine + 128, 0, 255).astype(np.uint8))
    texture = np.asarray(fine.resize((width, height), Image.Resampling.BILINEAR), np.int16) - 128
    grain = rng.normal(0, 5, (height, width, 1)).astype(np.int16)
    pixels = np.clip(scene.astype(np.int16) + texture + grain, 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def save(image: Image.Image, path: str, rng: np.random.Generator) -> None:
    """Save by the path's extension; JPEG at quality 80..95."""
    ext = os.path.splitext(path)[1]
    if ext == ".jpg":
        image.save(path, quality=int(rng.integers(80, 96)))
    elif ext == ".webp":
        image.save(path, quality=90)
    else:
        image.save(path, compress_level=1)


def make_original(args: tuple[str, int, int]) -> str:
    """Write original number ``index`` into ``out``; return its path."""
    out, index, seed = args
    rng = np.random.default_rng([seed, index])
    ext = rng.choice([".jpg"] * 8 + [".png", ".webp"])
    path = os.path.join(out, f"img_{index:06d}{ext}")
    save(photo(rng), path, rng)
    return path


def make_duplicate(args: tuple[str, str, int, int]) -> dict:
    """Write duplicate number ``index`` of ``original``; return its truth record."""
    out, original, index, seed = args
    rng = copies.copy_rng(seed, index)
    kind = KINDS[index % len(KINDS)]
    if kind == "rotate":
        how = copies.recipe(copies.png(1), copies.turned(index % 3 + 1))
    else:
        how = COPIES[kind]
    copy = copies.write_copy(original, os.path.join(out, f"dup_{index:06d}"), how, rng)
    return {"original": original, "copy": copy, "kind": kind}


def make_dataset(out: str, images: int, duplicates: int, seed: int = 0, processes=None) -> dict:
    """Write ``images`` files, ``duplicates`` of them copies of others; return the truth."""
    os.makedirs(out, exist_ok=True)
    originals = images - duplicates
    with ProcessPoolExecutor(processes) as pool:
        paths = list(
            pool.map(make_original, [(out, i, seed) for i in range(originals)], chunksize=4)
        )
        jobs = copies.copy_jobs(out, paths, duplicates, seed)
        truth = list(pool.map(make_duplicate, jobs, chunksize=4))
    return write_truth(out, {"images": images, "duplicates": truth, "seed": seed})


def dataset_name(n: int, seed: int = 0) -> str:
    """Folder name of the set of ``n`` images (``n // 2`` duplicates) in the cache folder."""
    return f"photos-n{n}-dup{n // 2}-seed{seed}"


def dataset(n: int, seed: int = 0) -> str:
    """The folder of the generated set of ``n`` images, made if missing.

    Parameters
    ----------
    n : int
        Number of image files; ``n // 2`` of them are duplicates.
    seed : int, default 0
        Generator seed.

    Returns
    -------
    str
        Absolute path of the folder (images and ``truth.json``).
    """
    return cached_set(dataset_name(n, seed), lambda tmp: make_dataset(tmp, n, n // 2, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--images", type=int, default=6000)
    parser.add_argument("--duplicates", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    make_dataset(args.out, args.images, args.duplicates, args.seed)


if __name__ == "__main__":
    main()
