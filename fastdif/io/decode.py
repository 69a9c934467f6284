"""Decode one image file into a px x px x 3 thumbnail; failures as values with a kind.

Every file is decoded at full resolution and reduced by one filter,
:func:`fastdif.io.resample.area_thumbnail`, so a thumbnail does not depend on
which decoder read the file: JPEG goes through libjpeg-turbo (simplejpeg) and
8-bit PNG through libspng (pyspng), both straight into NumPy and bit-for-bit
what Pillow decodes; everything else, any file those two refuse, and any file
over :data:`FAST_DECODE_BYTES`, through Pillow. Only a regular file is opened
(:func:`fastdif.io.files.open_regular`: a named pipe is refused, never waited
on). HEIC and HEIF are read by Pillow through pillow-heif's opener (libheif),
registered when this module is imported: so in every process that decodes (a
spawned worker imports this module) and before ``limit_extensions`` lists the
extensions Pillow opens. AVIF is Pillow's own (libavif).

Where files are decoded (a process pool, Dask tasks) is a backend's choice
(:mod:`fastdif.backends`); this module decodes one file, in any process.
"""

from __future__ import annotations

import enum
import io
import os
import signal
import struct
import threading
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass
from typing import BinaryIO

import numpy as np
import PIL
import pillow_heif
import pyspng
import simplejpeg
from PIL import Image, UnidentifiedImageError

from .files import open_regular
from .resample import area_thumbnail, orient

# HEIC/HEIF in Image.open, and .heic, .heif, .hif among Pillow's extensions.
# libheif applies the file's irot/imir transforms while decoding and the plugin
# resets the EXIF orientation it reports to 1, so load_thumbnail turns the
# image once; 10- and 12-bit images come as 8-bit RGB(A), the top 8 bits of
# each value, as Pillow reads a 16-bit RGB PNG or TIFF (its high byte).
pillow_heif.register_heif_opener()

#: Version of the thumbnail definition: decoders, colour conversion, filter,
#: orientation. Stored with cached and saved thumbnails, so that thumbnails of
#: another definition are never mixed with these. 1 was JPEG draft decoding
#: with a bicubic resize; 2 is a full decode with the exact area filter.
THUMBNAIL_VERSION = 2


def thumbnail_definition() -> str:
    """The thumbnail version and the decoders' versions, as one key string."""
    return (
        f"thumbnail={THUMBNAIL_VERSION};pillow={PIL.__version__};"
        f"simplejpeg={simplejpeg.__version__};pyspng={pyspng.__version__};"
        f"pillow_heif={pillow_heif.__version__};libheif={pillow_heif.libheif_version()}"
    )


#: Largest image accepted, in pixels (width x height as declared in the
#: file): Pillow's DecompressionBombError threshold, 2 x its default
#: ``MAX_IMAGE_PIXELS`` (about 179 megapixels). Pillow only warns between 1x
#: and 2x; those images (100 MP medium-format photos are real) are decoded.
#: Fixed here so that a caller setting ``Image.MAX_IMAGE_PIXELS = None`` does
#: not switch the check off, and so that spawned workers apply the same limit.
MAX_PIXELS = 2 * 89_478_485

#: Seconds one file may take to decode. In a worker process (and in the
#: calling process's main thread) a timer interrupts the decoder; a worker
#: still busy a grace period later (stuck in C code) is killed by its pool.
FILE_TIME_LIMIT = 60.0

#: The retry policy of every backend's decoder: a file is reported as
#: :attr:`Failure.WORKER_DIED` after the process decoding it alone died this
#: many times (a local worker, a Dask task of one file). A death with several
#: files in hand (a Dask shard) blames none of them: each is decoded again alone.
DECODE_ATTEMPTS = 2

#: Largest file read whole, in bytes, for the faster decoders (which take
#: bytes); a larger one is decoded by Pillow, which reads as it needs: so the
#: memory a file costs does not grow with bytes beyond its image. Far above a
#: camera's JPEG; a larger file (a PNG of tens of megapixels) decodes more
#: slowly, to the same thumbnail.
FAST_DECODE_BYTES = 128 << 20

#: Largest PNG ``eXIf`` chunk read for the orientation (a JPEG's EXIF is at
#: most 64 KiB); a larger one is ignored, never read into memory.
MAX_EXIF_BYTES = 1 << 20

_BACKGROUND = (255, 255, 255)


class Failure(enum.Enum):
    """Why a file has no thumbnail, set where the failure happens."""

    #: The file's bytes: not an image, truncated, corrupt. The same bytes fail again.
    CONTENT = "content"
    #: The operating system (an errno: permission denied, I/O error) or memory.
    SYSTEM = "system"
    #: The file took longer than :data:`FILE_TIME_LIMIT`.
    TIME_LIMIT = "time limit"
    #: The image declares more than :data:`MAX_PIXELS` pixels (a setting).
    SIZE_LIMIT = "size limit"
    #: The process decoding it died (a local worker twice, or a Dask worker).
    WORKER_DIED = "worker died"

    @property
    def lasting(self) -> bool:
        """Whether the failure depends only on the file's bytes, so it may be cached."""
        return self is Failure.CONTENT


@dataclass(frozen=True)
class Decoded:
    """What a worker returns for one file: a thumbnail, or the reason it failed and its kind."""

    thumbnail: bytes | None
    width: int
    height: int
    reason: str | None = None
    failure: Failure | None = None

    def __post_init__(self):
        if (self.reason is None) != (self.failure is None):
            raise ValueError("a failed Decoded needs both a reason and a failure kind")


class Retries:
    """Per file, the deaths of processes that decoded it alone (:data:`DECODE_ATTEMPTS`)."""

    def __init__(self):
        self._deaths: Counter = Counter()

    def again(self, key) -> bool:
        """Record that a process decoding file ``key`` alone died; True if it gets another try."""
        self._deaths[key] += 1
        return self._deaths[key] < DECODE_ATTEMPTS


class DecodeTimeout(Exception):
    """A file took longer than the time limit to decode."""


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

    The file is decoded at full resolution and reduced with
    :func:`~fastdif.io.resample.area_thumbnail`; then its EXIF orientation is
    applied, so the thumbnail is what a person sees, and the returned
    (width, height) are the displayed full-size dimensions. For animated or
    multi-page files the first frame is used (for HEIF, the primary image).

    Raises
    ------
    Image.DecompressionBombError
        When the declared size exceeds :data:`MAX_PIXELS` (checked before any
        pixel is decoded).
    OSError, ValueError
        When the file cannot be read or decoded.
    """
    with open_regular(path) as file:
        # The fast decoders take the whole file as bytes (and pyspng copies them):
        # only a file of at most FAST_DECODE_BYTES is read whole. Pillow reads a
        # larger one as it decodes, and stops at the image's end, so padding or
        # anything else after the image costs nothing.
        size = os.fstat(file.fileno()).st_size
        data = file.read(size) if size <= FAST_DECODE_BYTES else None
        source = file if data is None else io.BytesIO(data)
        try:
            opened = Image.open(source)
        except UnidentifiedImageError:
            # Pillow's message would name the file object, not the path.
            raise UnidentifiedImageError(f"cannot identify image file {path!r}") from None
        with opened as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise Image.DecompressionBombError(
                    f"Image size ({width * height} pixels) exceeds limit of {MAX_PIXELS} pixels"
                )
            orientation = _orientation(image, source)
            pixels = None if data is None else _fast_decode(image, data)
            if pixels is None:
                pixels = np.asarray(to_rgb(image))
    thumb = area_thumbnail(pixels, px_size)
    if thumb.ndim == 2:
        thumb = np.repeat(thumb[:, :, None], 3, axis=2)
    if orientation in (5, 6, 7, 8):
        width, height = height, width
    return orient(thumb, orientation), width, height


def _orientation(image: Image.Image, file: BinaryIO) -> int:
    """The EXIF orientation (1 to 8) of an opened image, without decoding its pixels.

    Pillow finds a PNG's ``eXIf`` chunk after the image data only by decoding
    the whole image; here the chunk is looked up in ``file`` (the file Pillow
    reads, its position kept) instead.
    """
    if image.format == "PNG" and "exif" not in image.info:
        exif = _png_chunk(file, b"eXIf")
        if exif is not None:
            image.info["exif"] = b"Exif\x00\x00" + exif.removeprefix(b"Exif\x00\x00")
        # The base class's method reads info and XMP, and never decodes.
        return Image.Image.getexif(image).get(0x0112, 1)
    return image.getexif().get(0x0112, 1)


def _png_chunk(file: BinaryIO, kind: bytes) -> bytes | None:
    """The data of the first chunk of type ``kind`` in the PNG ``file``, if any.

    Only chunk headers are read, and the one chunk's data if it is at most
    :data:`MAX_EXIF_BYTES` (a larger one counts as absent); the file's
    position is left as it was, for Pillow.
    """
    start = file.tell()
    try:
        pos = 8  # after the signature
        while True:
            file.seek(pos)
            header = file.read(8)
            if len(header) < 8:
                return None
            length, found = struct.unpack(">I4s", header)
            if found == kind:
                return file.read(length) if length <= MAX_EXIF_BYTES else None
            if found == b"IEND":
                return None
            pos += length + 12  # length, type, data, CRC
    finally:
        file.seek(start)


def _fast_decode(image: Image.Image, data: bytes) -> np.ndarray | None:
    """Pixels of an opened 8-bit RGB or grey JPEG or PNG, from a faster decoder.

    The result equals Pillow's decode (the tests compare them): grey is
    returned as (height, width) and becomes grey RGB after filtering, as
    Pillow's conversion would make it. ``None`` means Pillow decodes the file:
    another format or mode, a transparent PNG, or a file the decoder refused
    (so that Pillow, not a faster decoder, decides whether a file is invalid).
    """
    size = (image.height, image.width)
    try:
        if image.format == "JPEG" and image.mode in ("RGB", "L"):
            colorspace = "RGB" if image.mode == "RGB" else "GRAY"
            pixels = simplejpeg.decode_jpeg(data, colorspace=colorspace)
        elif image.format == "PNG" and image.mode in ("RGB", "L"):
            if "transparency" in image.info:
                return None
            pixels = pyspng.load(data)
        else:
            return None
    except (ValueError, RuntimeError):
        return None
    if pixels.dtype != np.uint8 or pixels.shape[:2] != size:
        return None
    if pixels.ndim == 3 and pixels.shape[2] == 1:
        pixels = pixels[:, :, 0]
    expected = 3 if image.mode == "RGB" else 2
    return pixels if pixels.ndim == expected else None


def decode_file(path: str, px_size: int, time_limit: float | None = None) -> Decoded:
    """Worker entry: decode ``path``; any failure becomes a one-line reason.

    Parameters
    ----------
    path : str
    px_size : int
    time_limit : float, optional
        Seconds allowed; enforced by a timer signal when called in a main
        thread whose ``SIGALRM`` handler is unused (always so in a worker).
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with _time_limit(time_limit):
                thumb, width, height = load_thumbnail(path, px_size)
        except DecodeTimeout:
            return timed_out(time_limit)
        except Image.DecompressionBombError as exc:
            return Decoded(None, 0, 0, f"Decompression bomb refused: {exc}", Failure.SIZE_LIMIT)
        except Exception as exc:  # noqa: BLE001 - any decoder failure is reported, the build goes on
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            system = isinstance(exc, MemoryError) or (
                isinstance(exc, OSError) and exc.errno is not None
            )
            kind = Failure.SYSTEM if system else Failure.CONTENT
            return Decoded(None, 0, 0, f"{type(exc).__name__}: {message}", kind)
    return Decoded(thumb.tobytes(), width, height)


def timed_out(time_limit: float) -> Decoded:
    """The result of a file that took longer than ``time_limit`` seconds."""
    return Decoded(
        None, 0, 0, f"Timed out: decoding took more than {time_limit:g} s", Failure.TIME_LIMIT
    )


@contextmanager
def _time_limit(seconds: float | None):
    """Raise :class:`DecodeTimeout` in this thread after ``seconds``, where possible.

    Only the main thread receives signals, and a handler already installed
    for ``SIGALRM`` belongs to someone else: in both cases there is no limit
    here (a worker's parent still enforces one).
    """
    usable = (
        seconds
        and hasattr(signal, "setitimer")
        and threading.current_thread() is threading.main_thread()
        and signal.getsignal(signal.SIGALRM) in (signal.SIG_DFL, None)
    )
    if not usable:
        yield
        return

    def expire(signum, frame):
        raise DecodeTimeout

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
