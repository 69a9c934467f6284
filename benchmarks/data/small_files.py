"""Many real small image files in sub-folders, generated once into the benchmark cache.

    python -m benchmarks.scripts.streamed generate 200000 [--seed 0]

:func:`small_files` writes ``n`` files into the benchmark cache folder
(:mod:`benchmarks.data.cache`) as ``small-n{n}-seed{seed}/``: sub-folders of
at most 1,000 files, 64 to 256 pixels a side (half of them one of a dozen
common sizes, the others any width and height), about 70 % JPEG (quality 75
to 95) and 30 % PNG, photo-like scenes, noise, gradients, stripes, checkers,
bricks, star fields, text, shapes, a few flat and dark pictures, and about
10 % near-duplicates of an earlier file (a JPEG re-encode, a downscale or a
rotation).
"""

from __future__ import annotations

import io
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor

import numpy as np
from PIL import Image, ImageDraw

from . import copies, textures
from .cache import cache_folder
from .photos import photo

#: Files per sub-folder, and per generating task.
FOLDER_FILES = 1000

#: Share of files that are near-duplicates of an earlier one, and how far back
#: (in files) their original may lie.
NEAR_SHARE = 0.1
NEAR_WINDOW = 3000

#: Half the originals have one of these (width, height), 30 % of them turned
#: to portrait, as thumbnails, icons and avatars do; the others have any
#: width and height from 64 to 256.
COMMON_SIZES = (
    (64, 64),
    (96, 96),
    (128, 128),
    (150, 150),
    (200, 200),
    (256, 256),
    (160, 120),
    (256, 192),
    (240, 160),
    (192, 128),
    (256, 144),
    (160, 90),
)

NEAR_KINDS = ("reencode", "downscale", "rotate")

#: The edit of each kind of near-duplicate (a re-encode is the decoded pixels, as JPEG).
NEAR_EDITS = {
    "reencode": None,
    "downscale": copies.scaled(0.5, 0.9, least=32, whole=int),
    "rotate": copies.turned(),
}

#: How files are encoded, by extension.
ENCODINGS = {".jpg": copies.jpeg((75, 96)), ".png": copies.png(3)}


# --- content: each (rng, width, height) -> uint8 array (height, width, 3) ---------


def _colours(rng: np.random.Generator, count: int) -> np.ndarray:
    return rng.integers(0, 256, (count, 3)).astype(np.float32)


def _ramp(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """0..1 along a random direction, float32 (height, width, 1)."""
    angle = rng.uniform(0, 2 * np.pi)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    t = x * np.float32(np.cos(angle)) + y * np.float32(np.sin(angle))
    t -= t.min()
    return (t / max(float(t.max()), 1.0))[..., None]


def gradient(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A linear blend of two colours in a random direction."""
    a, b = _colours(rng, 2)
    return np.clip(a + (b - a) * _ramp(rng, width, height), 0, 255).astype(np.uint8)


def stripes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """Hard or soft stripes of two colours, period 3 to 30 pixels, at a random angle."""
    a, b = _colours(rng, 2)
    phase = _ramp(rng, width, height) * np.float32(max(width, height) / rng.uniform(3, 30))
    wave = np.sin(phase * np.float32(2 * np.pi))
    mix = (wave > 0).astype(np.float32) if rng.random() < 0.5 else (wave + 1) / 2
    return np.clip(a + (b - a) * mix, 0, 255).astype(np.uint8)


def checker(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A checkerboard of two colours, cells of 3 to 32 pixels."""
    a, b = _colours(rng, 2).astype(np.uint8)
    cell = int(rng.integers(3, 33))
    y, x = np.mgrid[0:height, 0:width]
    return np.where((((x // cell) + (y // cell)) % 2 == 0)[..., None], a, b)


def noise(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A colour plus Gaussian noise (sigma 8 to 60), per pixel or in 2 x 2 cells, grey or colour."""
    base = rng.uniform(40, 215, 3).astype(np.float32)
    cell = int(rng.integers(1, 3))
    shape = (-(-height // cell), -(-width // cell), 3 if rng.random() < 0.5 else 1)
    grain = rng.standard_normal(shape, dtype=np.float32) * np.float32(rng.uniform(8, 60))
    grain = grain.repeat(cell, 0).repeat(cell, 1)[:height, :width]
    return np.clip(base + grain, 0, 255).astype(np.uint8)


def shapes(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A flat background with 3 to 12 filled rectangles and ellipses (an icon, a chart)."""
    image = Image.new("RGB", (width, height), tuple(int(c) for c in rng.integers(0, 256, 3)))
    draw = ImageDraw.Draw(image)
    for _ in range(int(rng.integers(3, 13))):
        x0, x1 = np.sort(rng.integers(0, width, 2))
        y0, y1 = np.sort(rng.integers(0, height, 2))
        fill = tuple(int(c) for c in rng.integers(0, 256, 3))
        shape = draw.rectangle if rng.random() < 0.5 else draw.ellipse
        shape((int(x0), int(y0), int(x1), int(y1)), fill=fill)
    return np.asarray(image)


def plain(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """One colour with a gentle vertical gradient and no noise (a flat graphic)."""
    colour = rng.uniform(20, 235, 3).astype(np.float32)
    ramp = np.linspace(-1, 1, height, dtype=np.float32)[:, None, None] * rng.uniform(0, 12)
    return np.clip(np.broadcast_to(colour + ramp, (height, width, 3)), 0, 255).astype(np.uint8)


def scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like picture (:func:`benchmarks.data.photos.photo`)."""
    return np.asarray(photo(rng, (width, height)))


def smooth_scene(rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    """A photo-like scene without texture or grain (a rendering, as PNGs often are)."""
    coarse = rng.integers(0, 256, (rng.integers(3, 7), rng.integers(3, 7), 3), dtype=np.uint8)
    return np.asarray(Image.fromarray(coarse).resize((width, height), Image.Resampling.BICUBIC))


#: Content of JPEG files and of PNG files, with weights: PNGs are mostly
#: graphics (small files), JPEGs mostly photos and textures.
JPEG_CONTENT = {
    scene: 34,
    noise: 10,
    gradient: 6,
    stripes: 8,
    checker: 3,
    shapes: 4,
    textures.brick: 8,
    textures.stars: 5,
    textures.text: 3,
    textures.flat: 6,
    textures.dark: 12,
}
PNG_CONTENT = {
    shapes: 25,
    gradient: 12,
    stripes: 15,
    checker: 10,
    smooth_scene: 28,
    plain: 10,
}


def _pick(rng: np.random.Generator, weighted: dict):
    makers = list(weighted)
    weights = np.array([weighted[m] for m in makers], dtype=np.float64)
    return makers[rng.choice(len(makers), p=weights / weights.sum())]


# --- files ------------------------------------------------------------------------


def _plan(seed: int, index: int) -> tuple[int | None, str | None]:
    """``(original, kind)`` of file ``index``, or ``(None, None)`` for an original.

    A near-duplicate's original is an original (never another copy), found
    within :data:`NEAR_WINDOW` files before it.
    """
    rng = np.random.default_rng([seed, index, 0])
    if index == 0 or rng.random() >= NEAR_SHARE:
        return None, None
    source = index - 1 - int(rng.integers(min(index, NEAR_WINDOW)))
    while (parent := _plan(seed, source)[0]) is not None:
        source = parent
    return source, NEAR_KINDS[int(rng.integers(len(NEAR_KINDS)))]


def _layout(seed: int, index: int):
    """``(rng, width, height, jpeg, make)`` of original ``index``: its generator, what it drew."""
    rng = np.random.default_rng([seed, index, 1])
    if rng.random() < 0.5:
        width, height = COMMON_SIZES[int(rng.integers(len(COMMON_SIZES)))]
        if rng.random() < 0.3:
            width, height = height, width
    else:
        width = int(rng.integers(64, 257))
        height = width if rng.random() < 0.25 else int(rng.integers(64, 257))
    jpeg = bool(rng.random() < 0.7)
    return rng, width, height, jpeg, _pick(rng, JPEG_CONTENT if jpeg else PNG_CONTENT)


def _original(seed: int, index: int) -> tuple[bytes, str]:
    """The file bytes and extension of original ``index``."""
    rng, width, height, jpeg, make = _layout(seed, index)
    image = Image.fromarray(make(rng, width, height))
    return copies.recipe(ENCODINGS[".jpg" if jpeg else ".png"]).encode(image, rng)


def _near_copy(seed: int, index: int, source: int, kind: str) -> tuple[bytes, str]:
    """The file bytes and extension of near-duplicate ``index`` of original ``source``."""
    rng = np.random.default_rng([seed, index, 1])
    data, ext = _original(seed, source)
    with Image.open(io.BytesIO(data)) as decoded:
        image = decoded.convert("RGB")
    ext = ".jpg" if kind == "reencode" else ext
    return copies.recipe(ENCODINGS[ext], NEAR_EDITS[kind]).encode(image, rng)


def _relative(seed: int, index: int) -> str:
    """Path of file ``index`` inside the set's folder."""
    source, kind = _plan(seed, index)
    if source is None:
        ext = ".jpg" if _layout(seed, index)[3] else ".png"
    else:
        ext = ".jpg" if kind == "reencode" or _layout(seed, source)[3] else ".png"
    return f"d{index // FOLDER_FILES:04d}/f{index:07d}{ext}"


def _write_folder(args: tuple[str, int, int, int]) -> None:
    """Write files ``start`` .. ``stop - 1`` into their sub-folder of ``partial``.

    The sub-folder is written under a temporary name and renamed, so a
    resumed generation keeps only complete ones.
    """
    partial, start, stop, seed = args
    final = os.path.join(partial, os.path.dirname(_relative(seed, start)))
    tmp = f"{final}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    for index in range(start, stop):
        source, kind = _plan(seed, index)
        if source is None:
            data, ext = _original(seed, index)
        else:
            data, ext = _near_copy(seed, index, source, kind)
        # describe() finds each file by _relative(): a mismatch fails there.
        with open(os.path.join(tmp, f"f{index:07d}{ext}"), "wb") as f:
            f.write(data)
    try:
        os.rename(tmp, final)
    except OSError:  # another generation finished this sub-folder first
        shutil.rmtree(tmp, ignore_errors=True)


def describe(folder: str, n: int, seed: int = 0) -> dict:
    """Counts of a set by content and format, its bytes, and its near-duplicates.

    Near-duplicates are ``{"original", "copy", "kind"}``, paths relative to
    ``folder``. Everything but the bytes is recomputed from ``(n, seed)``
    without drawing a picture.
    """
    content: dict[str, int] = {}
    formats: dict[str, int] = {}
    near = []
    total = 0
    for index in range(n):
        path = _relative(seed, index)
        total += os.stat(os.path.join(folder, path)).st_size
        ext = os.path.splitext(path)[1]
        formats[ext] = formats.get(ext, 0) + 1
        source, kind = _plan(seed, index)
        if source is None:
            name = _layout(seed, index)[4].__name__
        else:
            name = f"near-{kind}"
            near.append({"original": _relative(seed, source), "copy": path, "kind": kind})
        content[name] = content.get(name, 0) + 1
    return {
        "files": n,
        "seed": seed,
        "bytes": total,
        "formats": dict(sorted(formats.items())),
        "content": dict(sorted(content.items())),
        "near_duplicates": near,
    }


def set_name(n: int, seed: int = 0) -> str:
    """Folder name, in the cache folder, of the set of ``n`` small files."""
    return f"small-n{n}-seed{seed}"


def small_files(n: int, seed: int = 0, processes: int | None = None) -> str:
    """The folder of ``n`` small image files, generated (in parallel) if missing.

    File ``i`` depends only on ``(seed, i)``, so a set is the same on every
    machine and the first files of a larger set are those of a smaller one.
    Generation goes into ``<name>.partial``, renamed when complete: an
    interrupted generation is never taken for a finished one, and the next
    call resumes it (complete sub-folders are kept). ``<name>.json`` next to
    the folder records counts, bytes, the generation time and every
    near-duplicate as ``{"original", "copy", "kind"}`` (paths relative to
    the folder).

    Parameters
    ----------
    n : int
        Number of files.
    seed : int, default 0
    processes : int, optional
        Generating processes; None uses all cores.

    Returns
    -------
    str
        Absolute path of the folder.
    """
    folder = os.path.abspath(os.path.join(cache_folder(), set_name(n, seed)))
    if os.path.isdir(folder):
        return folder
    partial = folder + ".partial"
    os.makedirs(partial, exist_ok=True)
    started = time.perf_counter()
    jobs = [
        (partial, start, min(start + FOLDER_FILES, n), seed)
        for start in range(0, n, FOLDER_FILES)
        if not os.path.isdir(os.path.join(partial, f"d{start // FOLDER_FILES:04d}"))
    ]
    with ProcessPoolExecutor(processes) as pool:
        list(pool.map(_write_folder, jobs))
    record = describe(partial, n, seed)
    record["generation_seconds"] = round(time.perf_counter() - started, 1)
    record["processes"] = processes or os.cpu_count()
    record["sub_folders_generated"] = len(jobs)  # fewer than all when resumed
    for entry in os.listdir(partial):  # sub-folders left by interrupted runs
        if ".tmp-" in entry:
            shutil.rmtree(os.path.join(partial, entry), ignore_errors=True)
    with open(folder + ".json", "w") as f:
        json.dump(record, f, indent=1)
    try:
        os.rename(partial, folder)
    except OSError:
        if not os.path.isdir(folder):
            raise
    return folder
