"""How far fastdif's thumbnails are from the faithful ones, per file format.

    python -m benchmarks.studies.fidelity --images 100          # fastdif against the reference
    python -m benchmarks.studies.fidelity --images 100 --draft  # also: what the draft shortcut cost

The reference thumbnail (:func:`reference_thumbnail`) is the definition:
the file decoded in full with Pillow (first frame), EXIF orientation
applied, converted to RGB by :func:`fastdif.io.decode.to_rgb`, then an exact
area average: output cell ``i`` along an axis of ``n`` source pixels covers
``[i * n / px, (i + 1) * n / px)`` and each source pixel weighs by its
overlap with it, rounded half up to uint8. For every file of a texture set
(:func:`benchmarks.data.textures.texture_dataset`, or ``--folder``) this reports
the MSE (0..255 scale, over the px x px x 3 values) between
:func:`fastdif.io.decode.load_thumbnail` and the reference: count, mean,
median, p95, p99 and max per format, lossless formats (which must be exact)
apart, and per texture.

``--draft`` adds the error of the old thumbnail (a JPEG decoded at reduced
scale with Pillow's ``draft``, then a bicubic resize) against a bicubic
resize of the full decode: what the shortcut cost, with the resize filter
unchanged.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageOps

from benchmarks.data.textures import texture_dataset
from benchmarks.data.truth import TRUTH_FILE, image_files
from benchmarks.studies.tables import markdown
from fastdif.io.decode import load_thumbnail, to_rgb

#: What the old code decoded a JPEG at: smaller side at least this times px.
OLD_DRAFT_FACTOR = 4


# --- thumbnails -------------------------------------------------------------


def decode_full(path: str) -> Image.Image:
    """The first frame at full size, EXIF orientation applied, in RGB."""
    with Image.open(path) as image:
        return to_rgb(ImageOps.exif_transpose(image))


def overlap_weights(n: int, px: int) -> np.ndarray:
    """Overlaps (px, n) of ``px`` equal cells with ``n`` source pixels, times ``px``.

    Cell ``i`` covers ``[i * n / px, (i + 1) * n / px)``; scaled by ``px``
    every overlap is a whole number and every row sums to ``n``.
    """
    cells = np.arange(px + 1, dtype=np.int64) * n
    pixels = np.arange(n + 1, dtype=np.int64) * px
    lo = np.maximum(cells[:-1, None], pixels[None, :-1])
    hi = np.minimum(cells[1:, None], pixels[None, 1:])
    return np.clip(hi - lo, 0, None).astype(np.float64)


def _reduce_axis(values: np.ndarray, px: int) -> np.ndarray:
    """``overlap_weights(len(values), px) @ values`` over the first axis, in float64.

    Each cell only reads the source rows it overlaps, so the cost is that of
    one pass over ``values``, not of the dense product.
    """
    n = len(values)
    weights = overlap_weights(n, px)
    out = np.empty((px,) + values.shape[1:])
    for i in range(px):
        first, stop = i * n // px, -(-(i + 1) * n // px)
        out[i] = np.tensordot(weights[i, first:stop], values[first:stop], axes=1)
    return out


def area_average(pixels: np.ndarray, px: int) -> np.ndarray:
    """Exact area average of a uint8 (H, W, 3) image into (px, px, 3), rounded half up.

    ``Wr @ image @ Wc.T`` per channel with the whole-number weights of
    :func:`overlap_weights`: every product and partial sum is an integer
    below 2**53, so float64 holds the numerator exactly, and the division
    by ``H * W`` and the rounding are done in integers (ties go up).
    """
    height, width = pixels.shape[:2]
    rows = _reduce_axis(pixels, px)  # (px, W, 3)
    both = _reduce_axis(rows.transpose(1, 0, 2), px).transpose(1, 0, 2)  # (px, px, 3)
    numerator = np.rint(both).astype(np.int64)
    denominator = height * width
    return ((2 * numerator + denominator) // (2 * denominator)).astype(np.uint8)


def reference_thumbnail(path: str, px: int) -> np.ndarray:
    """The faithful thumbnail (px, px, 3) uint8: full decode, exact area average."""
    return area_average(np.asarray(decode_full(path)), px)


def draft_thumbnail(path: str, px: int) -> np.ndarray:
    """The old thumbnail: JPEG draft decode (smaller side >= 4 px), bicubic resize."""
    with Image.open(path) as image:
        image.draft("RGB", (OLD_DRAFT_FACTOR * px, OLD_DRAFT_FACTOR * px))
        image = to_rgb(ImageOps.exif_transpose(image))
        return np.asarray(image.resize((px, px), Image.Resampling.BICUBIC))


def bicubic_thumbnail(path: str, px: int) -> np.ndarray:
    """The old resize on the full decode: what the draft thumbnail stood in for."""
    return np.asarray(decode_full(path).resize((px, px), Image.Resampling.BICUBIC))


def fastdif_thumbnail(path: str, px: int) -> np.ndarray:
    """fastdif's thumbnail, as :func:`fastdif.io.decode.load_thumbnail` returns it."""
    return load_thumbnail(path, px)[0]


#: name -> (thumbnail measured, thumbnail it is measured against)
COMPARISONS = {
    "fastdif": (fastdif_thumbnail, reference_thumbnail),
    "draft": (draft_thumbnail, bicubic_thumbnail),
}


# --- formats ----------------------------------------------------------------


def _webp_lossless(path: str) -> bool:
    """Whether a WebP file's image chunk is VP8L (lossless) rather than VP8 (lossy)."""
    with open(path, "rb") as f:
        f.seek(12)
        while True:
            header = f.read(8)
            if len(header) < 8:
                return False
            fourcc, size = header[:4], int.from_bytes(header[4:], "little")
            if fourcc in (b"VP8 ", b"VP8L"):
                return fourcc == b"VP8L"
            f.seek(size + (size & 1), os.SEEK_CUR)


def file_format(path: str) -> tuple[str, bool]:
    """(format label, lossless): Pillow's format name, WebP split into lossy and lossless."""
    with Image.open(path) as image:
        name = image.format or "unknown"
        compression = image.info.get("compression", "")
    if name == "WEBP":
        lossless = _webp_lossless(path)
        return ("WEBP lossless" if lossless else "WEBP"), lossless
    lossless = name in ("PNG", "BMP", "GIF") or (name == "TIFF" and compression != "jpeg")
    return name, lossless


# --- measuring --------------------------------------------------------------


def mse(a: np.ndarray, b: np.ndarray) -> float:
    """Mean squared error of two uint8 arrays, 0..255 scale."""
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


def _file_error(args: tuple[str, int, str]) -> dict:
    path, px, comparison = args
    measured, against = COMPARISONS[comparison]
    name, lossless = file_format(path)
    return {
        "file": os.path.basename(path),
        "format": name,
        "lossless": lossless,
        "mse": mse(measured(path, px), against(path, px)),
    }


def summary(values) -> dict:
    """count, mean, median, p95, p99 and max of a list of MSEs (None where empty)."""
    v = np.asarray(list(values), dtype=np.float64)
    if not len(v):
        return {"count": 0, "mean": None, "median": None, "p95": None, "p99": None, "max": None}
    return {
        "count": len(v),
        "mean": float(v.mean()),
        "median": float(np.median(v)),
        "p95": float(np.percentile(v, 95)),
        "p99": float(np.percentile(v, 99)),
        "max": float(v.max()),
    }


def errors(files: list[str], px_size: int, comparison: str, processes: int = 1) -> dict:
    """Per-file MSE of one of :data:`COMPARISONS`, summarised; see :func:`fidelity`."""
    jobs = [(path, px_size, comparison) for path in files]
    if processes > 1:
        with ProcessPoolExecutor(processes) as pool:
            per_file = list(pool.map(_file_error, jobs))
    else:
        per_file = [_file_error(job) for job in jobs]
    formats = sorted({r["format"] for r in per_file})
    lossless = [r["mse"] for r in per_file if r["lossless"]]
    return {
        "comparison": comparison,
        "px_size": px_size,
        "all": summary(r["mse"] for r in per_file),
        "formats": {f: summary(r["mse"] for r in per_file if r["format"] == f) for f in formats},
        "lossless": {**summary(lossless), "nonzero": sum(v != 0 for v in lossless)},
        "lossy": summary(r["mse"] for r in per_file if not r["lossless"]),
        "files": per_file,
    }


def fidelity(files: list[str], px_size: int = 50, processes: int = 1) -> dict:
    """MSE of :func:`fastdif.io.decode.load_thumbnail` against :func:`reference_thumbnail`.

    Parameters
    ----------
    files : list of str
        Image paths.
    px_size : int, default 50
        Thumbnail side.
    processes : int, default 1
        Files measured in parallel by this many processes.

    Returns
    -------
    dict
        ``all``, ``lossy`` and ``lossless`` (with ``nonzero``: lossless
        files whose MSE is not 0) and ``formats`` (format label -> summary),
        each summary ``count``, ``mean``, ``median``, ``p95``, ``p99``,
        ``max`` of the per-file MSE (0..255 scale); ``files``: per file its
        name, ``format``, ``lossless`` and ``mse``.
    """
    return errors(files, px_size, "fastdif", processes)


# --- report -----------------------------------------------------------------


def textures_of(folder: str) -> dict[str, str]:
    """File name -> texture of its original, from a texture set's ``truth.json``."""
    with open(os.path.join(folder, TRUTH_FILE)) as f:
        truth = json.load(f)
    texture = {os.path.basename(o["path"]): o["texture"] for o in truth.get("originals", [])}
    for d in truth["duplicates"]:
        original = texture.get(os.path.basename(d["original"]))
        if original:
            texture[os.path.basename(d["copy"])] = original
    return texture


def _cell(value: float | None) -> str:
    return "" if value is None else f"{value:.4g}"


def table(title: str, rows: dict[str, dict]) -> str:
    """Markdown table of summaries, one row each."""
    keys = ("mean", "median", "p95", "p99", "max")
    return markdown(
        [title, "files", *keys],
        ([name, str(s["count"])] + [_cell(s[k]) for k in keys] for name, s in rows.items()),
    )


def report(result: dict, textures: dict[str, str] | None = None) -> str:
    """Markdown: per format, lossy / lossless / all, and per texture when known."""
    rows = dict(result["formats"])
    rows.update(lossy=result["lossy"], lossless=result["lossless"], all=result["all"])
    parts = [table("format", rows)]
    lossless = result["lossless"]
    parts.append(f"\nlossless files with MSE != 0: {lossless['nonzero']} of {lossless['count']}")
    if textures:
        names = sorted({textures.get(r["file"], "?") for r in result["files"]})
        by_texture = {
            t: summary(r["mse"] for r in result["files"] if textures.get(r["file"], "?") == t)
            for t in names
        }
        parts.append("\n" + table("texture", by_texture))
    return "\n".join(parts)


def main(argv: list[str] | None = None) -> None:
    """Parse arguments; measure and print the tables (and write them as JSON)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="size of the texture set")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--folder", help="measure these files instead of a texture set")
    parser.add_argument("--px", type=int, default=50, help="thumbnail side")
    parser.add_argument("--draft", action="store_true", help="also the old draft thumbnail")
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--json", help="write the figures to this file")
    args = parser.parse_args(argv)
    folder = args.folder or texture_dataset(args.images, args.seed)
    files = image_files(folder)
    has_truth = os.path.exists(os.path.join(folder, TRUTH_FILE))
    textures = textures_of(folder) if has_truth else None
    results = {"fastdif": fidelity(files, args.px, args.processes)}
    if args.draft:
        results["draft"] = errors(files, args.px, "draft", args.processes)
    headings = {
        "fastdif": "load_thumbnail against the reference (full decode, exact area average)",
        "draft": "old draft thumbnail against a bicubic resize of the full decode",
    }
    print(f"{len(files)} files in {folder}, px {args.px}, MSE on the 0..255 scale\n")
    for name, result in results.items():
        print(f"### {headings[name]}\n\n{report(result, textures)}\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"folder": folder, "results": results}, f, indent=1)
        print(f"figures written to {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
