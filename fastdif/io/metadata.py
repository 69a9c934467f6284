"""What a keep-best rule reads of a file beyond the repository: format, EXIF date, frames.

Only the header is read: Pillow opens a file lazily and reads no pixels
until asked, and none are asked for here. :func:`fastdif.search` calls this
for the members of groups only: frame counts always (a file with more frames
is always kept), dates and formats only when its rule compares them. A file
that cannot be read has an unknown format, no date and one frame: the
failure is that value, never an exception.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from datetime import datetime

from PIL import Image

from ..params import canonical_format
from . import decode  # noqa: F401 - registers the HEIC/HEIF opener with Pillow
from .files import open_regular

#: Camera raw extensions: a file with one of these is format "raw", whatever
#: Pillow reads of it (many raws are TIFF-like and Pillow calls them TIFF).
RAW_EXTENSIONS = frozenset(
    {
        ".3fr",
        ".arw",
        ".cr2",
        ".cr3",
        ".crw",
        ".dcr",
        ".dng",
        ".erf",
        ".iiq",
        ".k25",
        ".kdc",
        ".mef",
        ".mos",
        ".mrw",
        ".nef",
        ".nrw",
        ".orf",
        ".pef",
        ".raf",
        ".raw",
        ".rw2",
        ".rwl",
        ".sr2",
        ".srf",
        ".srw",
        ".x3f",
    }
)

#: The Exif IFD pointer, and DateTimeOriginal inside it.
EXIF_IFD = 0x8769
DATE_TIME_ORIGINAL = 36867


@dataclass(frozen=True)
class Metadata:
    """A file's format and EXIF date, as keep-best rules compare them.

    Attributes
    ----------
    format : str or None
        ``"raw"`` for a camera raw extension (:data:`RAW_EXTENSIONS`), else
        Pillow's name of the format its header shows, canonical
        (:func:`fastdif.params.canonical_format`: ``"jpeg"`` for JPEG and
        MPO, ``"heif"`` for HEIC and HEIF); None when unreadable or not asked.
    taken : datetime or None
        EXIF DateTimeOriginal (tag 36867 of the Exif IFD, 0x8769), naive as
        written; None when absent, malformed, unreadable or not asked.
    """

    format: str | None = None
    taken: datetime | None = None


def read_metadata(path: str, format: bool = True, taken: bool = True) -> Metadata:
    """Read ``path``'s format and EXIF date from its header (no pixels decoded).

    A PNG's EXIF is read only when its eXIf chunk comes before the image
    data, as Pillow and most tools write it: reading further would decode
    the pixels.
    """
    raw = os.path.splitext(path)[1].lower() in RAW_EXTENSIONS
    if raw and not taken:
        return Metadata("raw", None)
    fmt = when = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_regular(path) as file, Image.open(file) as image:
                fmt = canonical_format(image.format) if image.format else None
                if taken and (image.format != "PNG" or "exif" in image.info):
                    when = exif_date(image.getexif().get_ifd(EXIF_IFD).get(DATE_TIME_ORIGINAL))
        except Exception:  # noqa: BLE001 - an unreadable file has no format and no date
            pass
    if raw:
        fmt = "raw"
    return Metadata(fmt if format else None, when)


def frame_count(path: str) -> int:
    """How many frames or pages ``path`` holds (Pillow's ``n_frames``); 1 when unknown.

    Only headers are read: GIF frames are skipped by their block lengths,
    TIFF pages followed along their directory chain, APNG and WebP counts
    read from their headers; no pixel is decoded. A file that cannot be read
    or is not a regular file (never opened blocking: a named pipe would
    hang) counts as one frame.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            with open_regular(path) as file, Image.open(file) as image:
                return max(1, int(getattr(image, "n_frames", 1)))
        except Exception:  # noqa: BLE001 - an unreadable file has one frame, as far as is known
            return 1


def exif_date(value) -> datetime | None:
    """An EXIF date (``"YYYY:MM:DD HH:MM:SS"``, bytes or str) as a datetime; None if malformed.

    Cameras without a clock write blanks or zeros ("0000:00:00 00:00:00"):
    those are no date.
    """
    if isinstance(value, bytes):
        value = value.decode("ascii", "replace")
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip("\x00 ")[:19], "%Y:%m:%d %H:%M:%S")
    except ValueError:
        return None
