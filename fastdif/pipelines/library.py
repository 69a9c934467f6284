"""A library (``reference``): the checks and file identities both pipelines share."""

from __future__ import annotations

import numpy as np

from ..model import Repository


def check_library(library, px_size: int, thumbnail_version) -> None:
    """Raise unless ``library`` is a repository whose thumbnails compare with these."""
    if not isinstance(library, Repository):
        raise TypeError(
            'Invalid value for "reference" parameter: must be folders, files or a fastdif '
            f"Repository, got {type(library).__name__}."
        )
    if library.px_size != px_size:
        raise ValueError(
            f'Invalid value for "reference" parameter: its thumbnails are {library.px_size} px, '
            f"these are {px_size} px."
        )
    versions = {library.thumbnail_version, thumbnail_version} - {None}
    if len(versions) > 1:
        raise ValueError(
            'Invalid value for "reference" parameter: its thumbnails were made by another '
            f"thumbnail definition (version {library.thumbnail_version}, this is "
            f"{thumbnail_version}); build it again."
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
