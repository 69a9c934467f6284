"""Generate a photo-like image set with labelled duplicates.

    python -m benchmarks.make_dataset OUT --images 1000 --duplicates 500 --seed 0

Images are procedural but cost what photos cost: 0.3 to 3 megapixels,
landscape and portrait, smooth shapes plus texture and sensor grain, mostly
JPEG (quality 80 to 95) with some PNG and WebP. Each duplicate is one of:
exact copy, re-encode, format change, downscale, rotation. ``OUT/truth.json``
lists every duplicate as ``{"original", "copy", "kind"}``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image

KINDS = ("exact", "reencode", "format", "downscale", "rotate")


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
    rng = np.random.default_rng([seed, 1_000_000 + index])
    kind = KINDS[index % len(KINDS)]
    stem = os.path.join(out, f"dup_{index:06d}")
    if kind == "exact":
        copy = stem + os.path.splitext(original)[1]
        shutil.copyfile(original, copy)
        return {"original": original, "copy": copy, "kind": kind}
    with Image.open(original) as image:
        image = image.convert("RGB")
        if kind == "reencode":
            copy = stem + ".jpg"
            image.save(copy, quality=int(rng.integers(70, 90)))
        elif kind == "format":
            copy = stem + ".png"
            image.save(copy, compress_level=1)
        elif kind == "downscale":
            copy = stem + ".jpg"
            half = (image.width // 2, image.height // 2)
            image.resize(half, Image.Resampling.LANCZOS).save(copy, quality=92)
        else:
            copy = stem + ".png"
            turn = [
                Image.Transpose.ROTATE_90,
                Image.Transpose.ROTATE_180,
                Image.Transpose.ROTATE_270,
            ]
            image.transpose(turn[index % 3]).save(copy, compress_level=1)
    return {"original": original, "copy": copy, "kind": kind}


def make_dataset(out: str, images: int, duplicates: int, seed: int = 0, processes=None) -> dict:
    """Write ``images`` files, ``duplicates`` of them copies of others; return the truth."""
    os.makedirs(out, exist_ok=True)
    originals = images - duplicates
    with ProcessPoolExecutor(processes) as pool:
        paths = list(
            pool.map(make_original, [(out, i, seed) for i in range(originals)], chunksize=4)
        )
        rng = np.random.default_rng(seed)
        sources = rng.choice(originals, duplicates, replace=duplicates > originals)
        jobs = [(out, paths[s], i, seed) for i, s in enumerate(sources)]
        truth = list(pool.map(make_duplicate, jobs, chunksize=4))
    record = {"images": images, "duplicates": truth, "seed": seed}
    with open(os.path.join(out, "truth.json"), "w") as f:
        json.dump(record, f, indent=1)
    return record


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
