"""A library (``reference``): the checks and file identities both pipelines share."""

from __future__ import annotations

import numpy as np

from .. import params
from ..model import Repository


def check_library(library, px_size: int, thumbnail_version) -> None:
    """Raise unless ``library`` is a repository whose thumbnails compare with these."""
    expected = "folders, files or a fastdif Repository"
    params.check_type("reference", library, Repository, expected, show_type=True)
    if library.px_size != px_size:
        raise params.invalid(
            "reference", f"its thumbnails are {library.px_size} px, these are {px_size} px."
        )
    versions = {library.thumbnail_version, thumbnail_version} - {None}
    if len(versions) > 1:
        raise params.invalid(
            "reference",
            "its thumbnails were made by another thumbnail definition (version "
            f"{library.thumbnail_version}, this is {thumbnail_version}); build it again.",
        )


def identities(dif: Repository) -> set:
    """The ``(st_dev, st_ino)`` of a repository's files, as the build reads them (known ones)."""
    known = dif.inodes[(dif.inodes != 0).any(axis=1)].view(np.uint64)
    return {(int(device), int(inode)) for device, inode in known.tolist()}


def in_library(dif: Repository, library: Repository) -> np.ndarray:
    """Which of ``dif``'s images are files of ``library`` (the same ``(st_dev, st_ino)``)."""
    known = identities(library)
    ids = dif.inodes.view(np.uint64).tolist()
    return np.fromiter(((int(d), int(i)) in known for d, i in ids), dtype=bool, count=len(ids))
