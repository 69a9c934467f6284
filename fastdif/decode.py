"""Decode image files into px x px x 3 thumbnails, in a process pool.

Workers only run Pillow and NumPy (never Numba): each returns a compact uint8
thumbnail, and the parent writes it into one contiguous float32 array.
"""

from __future__ import annotations

import multiprocessing
import sys
import types
import warnings
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps

#: JPEG files are decoded at a reduced scale (Pillow's draft mode) whose
#: smaller side is still at least this many times ``px_size``.
DRAFT_FACTOR = 4

#: Below this many files the pool's start-up costs more than it saves.
MIN_FILES_FOR_POOL = 32

_BACKGROUND = (255, 255, 255)


@dataclass(frozen=True)
class Decoded:
    """What a worker returns for one file: a thumbnail or the reason it failed."""

    thumbnail: bytes | None
    width: int
    height: int
    reason: str | None = None


def to_rgb(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, the same way for every file.

    Transparent pixels are composed over white; 16- and 32-bit integer images
    are scaled from 0..65535 to 0..255 (not clipped); float images are clipped
    to 0..255.
    """
    mode = image.mode
    has_alpha = mode in ("RGBA", "LA", "PA", "La", "RGBa") or "transparency" in image.info
    if mode == "RGB" and not has_alpha:
        return image
    if mode.startswith("I") or mode == "F":
        values = np.asarray(image, dtype=np.float64)
        if mode != "F":
            values = values / 257.0
        gray = np.clip(np.rint(values), 0, 255).astype(np.uint8)
        return Image.fromarray(gray).convert("RGB")
    if has_alpha:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def load_thumbnail(path: str, px_size: int) -> tuple[np.ndarray, int, int]:
    """Decode one file into a (px_size, px_size, 3) uint8 thumbnail.

    The EXIF orientation is applied, so the thumbnail is what a person sees;
    the returned (width, height) are the displayed full-size dimensions. For
    animated or multi-page files the first frame is used.

    Raises
    ------
    OSError, ValueError, Image.DecompressionBombError
        When the file cannot be read or decoded.
    """
    with Image.open(path) as image:
        orientation = image.getexif().get(0x0112, 1)
        width, height = image.size
        if orientation in (5, 6, 7, 8):
            width, height = height, width
        target = DRAFT_FACTOR * px_size
        image.draft("RGB", (target, target))
        image = ImageOps.exif_transpose(image)
        image = to_rgb(image)
        image = image.resize((px_size, px_size), Image.Resampling.BICUBIC)
        return np.asarray(image, dtype=np.uint8), width, height


def decode_file(path: str, px_size: int) -> Decoded:
    """Worker entry: decode ``path``; any failure becomes a one-line reason."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            thumb, width, height = load_thumbnail(path, px_size)
        except Image.DecompressionBombError as exc:
            return Decoded(None, 0, 0, f"Decompression bomb refused: {exc}")
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported, the build goes on
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            return Decoded(None, 0, 0, f"{type(exc).__name__}: {message}")
    return Decoded(thumb.tobytes(), width, height)


def decode_all(paths: list[str], px_size: int, processes: int, progress=None):
    """Decode ``paths`` in order, yielding one :class:`Decoded` per file.

    Uses a ``spawn`` process pool when ``processes > 1`` and there are enough
    files; ``progress`` (a callable taking no arguments) is called per file.
    """
    if processes == 1 or len(paths) < MIN_FILES_FOR_POOL:
        for path in paths:
            yield decode_file(path, px_size)
            if progress:
                progress()
        return
    chunk = max(1, min(64, len(paths) // (processes * 8)))
    context = multiprocessing.get_context("spawn")
    executor = ProcessPoolExecutor(max_workers=processes, mp_context=context)
    try:
        with _caller_script_hidden():
            results = executor.map(decode_file, paths, [px_size] * len(paths), chunksize=chunk)
        for decoded in results:
            yield decoded
            if progress:
                progress()
    except BaseException:
        processes = list((executor._processes or {}).values())
        executor.shutdown(wait=False, cancel_futures=True)
        for proc in processes:
            proc.terminate()
        raise
    executor.shutdown(wait=True)


@contextmanager
def _caller_script_hidden():
    """Start spawned workers without re-running the caller's script.

    A ``spawn`` worker normally re-imports the script that started Python, so
    a script without an ``if __name__ == "__main__":`` guard (as difPy users
    write them) would run again in every worker. The workers only need this
    module, so while they start (``executor.map`` starts them all) ``__main__``
    is a bare module.
    """
    main = sys.modules["__main__"]
    sys.modules["__main__"] = types.ModuleType("__main__")
    try:
        yield
    finally:
        sys.modules["__main__"] = main
