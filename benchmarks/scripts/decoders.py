"""CPU time per file of each way to make a thumbnail, by format, on the same files.

    python -m benchmarks.scripts.decoders FOLDER [--files 120] [--px 50]

One process, one core; each way runs on every sampled file, best of
``--repeat`` CPU times per file, summed by format. The ways:

- ``difpy``: difPy 4.2.1's path, Pillow full decode + bicubic resize;
- ``draft``: fastdif before thumbnail version 2, Pillow JPEG draft at
  4 x px + bicubic (not faithful: the shortcut this replaced);
- ``pillow_decode``: Pillow full decode alone, into NumPy;
- ``pillow_box``: Pillow full decode + Pillow's own box resize;
- ``pillow_reduce``: Pillow full decode + ``reducing_gap=2`` box resize
  (``reduce()`` first; not exactly the area filter);
- ``simplejpeg`` / ``pyspng`` / ``imagecodecs``: the decoder alone, into NumPy
  (``imagecodecs`` only where installed);
- ``area``: :func:`fastdif.io.resample.area_thumbnail` alone, on decoded pixels;
- ``fastdif``: :func:`fastdif.io.decode.load_thumbnail`, the whole faithful path.

Prints a markdown table of milliseconds per file.
"""

from __future__ import annotations

import argparse
import os
import time
from collections import defaultdict

import numpy as np
import pyspng
import simplejpeg
from PIL import Image, ImageOps

from fastdif.io.decode import load_thumbnail, to_rgb
from fastdif.io.resample import area_thumbnail

try:
    import imagecodecs
except ImportError:  # optional: measured where installed
    imagecodecs = None


def _pillow(path: str) -> Image.Image:
    with Image.open(path) as image:
        return to_rgb(ImageOps.exif_transpose(image))


def ways(px: int) -> dict:
    """Name -> function(path, data, pixels) for every way measured; None = not for this file."""

    def draft(path, data, pixels):
        with Image.open(path) as image:
            image.draft("RGB", (4 * px, 4 * px))
            image = to_rgb(ImageOps.exif_transpose(image))
            return image.resize((px, px), Image.Resampling.BICUBIC)

    def by_format(jpeg, png):
        def run(path, data, pixels):
            ext = os.path.splitext(path)[1].lower()
            if ext in (".jpg", ".jpeg") and jpeg:
                return jpeg(data)
            if ext == ".png" and png:
                return png(data)
            return None

        return run

    table = {
        "difpy": lambda p, d, x: _pillow(p).resize((px, px), Image.Resampling.BICUBIC),
        "draft": draft,
        "pillow_decode": lambda p, d, x: np.asarray(_pillow(p)),
        "pillow_box": lambda p, d, x: _pillow(p).resize((px, px), Image.Resampling.BOX),
        "pillow_reduce": lambda p, d, x: _pillow(p).resize(
            (px, px), Image.Resampling.BOX, reducing_gap=2
        ),
        "simplejpeg": by_format(simplejpeg.decode_jpeg, None),
        "pyspng": by_format(None, pyspng.load),
        "area": lambda p, d, x: area_thumbnail(x, px),
        "fastdif": lambda p, d, x: load_thumbnail(p, px),
    }
    if imagecodecs is not None:
        table["imagecodecs"] = by_format(imagecodecs.jpeg8_decode, imagecodecs.png_decode)
    return table


def measure(files: list[str], px: int, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Format -> way -> CPU seconds per file (best of ``repeat``)."""
    out: dict = defaultdict(lambda: defaultdict(list))
    table = ways(px)
    for path in files:
        fmt = os.path.splitext(path)[1].lower().lstrip(".").replace("jpeg", "jpg")
        with open(path, "rb") as f:
            data = f.read()
        pixels = np.asarray(_pillow(path))
        for name, way in table.items():
            best = np.inf
            for _ in range(repeat):
                start = time.process_time()
                if way(path, data, pixels) is None:
                    break
                best = min(best, time.process_time() - start)
            if np.isfinite(best):
                out[fmt][name].append(best)
    return out


def markdown(figures: dict) -> str:
    """The figures as a markdown table: milliseconds per file, by format and way."""
    order = list(ways(1))
    names = sorted({name for by_way in figures.values() for name in by_way}, key=order.index)
    lines = [
        "| format | files | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for fmt, by_way in sorted(figures.items()):
        count = max(len(v) for v in by_way.values())
        cells = [
            f"{1000 * np.mean(by_way[name]):.1f}" if by_way.get(name) else "" for name in names
        ]
        lines.append(f"| {fmt} | {count} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--files", type=int, default=120, help="files sampled per format")
    parser.add_argument("--px", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    by_format: dict = defaultdict(list)
    for name in sorted(os.listdir(args.folder)):
        ext = os.path.splitext(name)[1].lower()
        if ext in (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff"):
            by_format[ext].append(os.path.join(args.folder, name))
    files = [path for paths in by_format.values() for path in paths[: args.files]]
    print(markdown(measure(files, args.px, args.repeat)))
    print("\nmilliseconds of CPU time per file, one core, best of", args.repeat)


if __name__ == "__main__":
    main()
