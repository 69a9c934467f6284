"""The data fastdif works on: a repository of thumbnails, and what a search matches by.

NumPy only, apart from :mod:`fastdif.io.store`, the saved format, which
:meth:`Repository.save` and :func:`load` go through, :mod:`fastdif.params`,
which words the messages of :func:`from_arrays`, and :mod:`fastdif.engine.near`,
whose :class:`~fastdif.engine.near.NearFeatures` a repository holds. Building a
repository is :func:`fastdif.api.build`'s job.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from . import params
from .engine import near
from .io import store


@dataclass(frozen=True)
class Criteria:
    """When two thumbnails match: what :func:`fastdif.search` was asked.

    Attributes
    ----------
    max_mse : float
        Threshold on the 0..255 scale: a pair matches when its MSE is at most this.
    rotate : bool
        The smallest MSE over rotations by 0, 90, 180 and 270 degrees counts.
    same_dim : bool
        Only images of equal (width, height), in either orientation, are compared.
    flip : bool
        The horizontal flip counts too: with ``rotate`` the smallest MSE over
        the eight symmetries of the square (each rotation, with and without
        the flip), without it over the image and its mirror image.
    color : bool
        True (difPy's): compare the thumbnails in colour. False: compare
        their luma, so a greyscale or sepia copy matches its original.
    normalize : bool
        Compare thumbnails normalised to zero mean and a fixed contrast, so
        brightness and contrast edits match. Images without contrast (flat)
        are compared as plain MSE does in every mode; see
        :mod:`fastdif.engine.transforms`.
    near : bool
        ``similarity="near"``: also near copies (crops up to 10% a side,
        overlays, tone edits; :mod:`fastdif.engine.near`), whatever their
        dimensions; a pair matches within ``max_mse`` or as a near copy.
    """

    max_mse: float
    rotate: bool = True
    same_dim: bool = True
    flip: bool = False
    color: bool = True
    normalize: bool = False
    near: bool = False


@dataclass(frozen=True)
class BuildOptions:
    """How :func:`fastdif.build` finds and decodes files (its checked parameters)."""

    recursive: bool = True
    in_folder: bool | str = False  # False, True or "subfolders" (params.check_in_folder)
    limit_extensions: bool = True
    px_size: int = 50


@dataclass
class BlockMeans:
    """Block means of a repository's thumbnails: what the search's bounds read.

    Attributes
    ----------
    grids : float32 array (N, g, g, 3)
        Means of a g x g grid of blocks per channel
        (:func:`fastdif.engine.kernels.grid_side` gives g).
    means : float32 array (N, 1, 1, 3)
        Channel means.
    """

    grids: np.ndarray
    means: np.ndarray

    def __post_init__(self):
        # Read-only like the thumbnails: the kernels see one type.
        self.grids.flags.writeable = self.means.flags.writeable = False


class Repository:
    """Thumbnails of every valid image, ready for :func:`fastdif.search`.

    Attributes
    ----------
    tensors : float32 array (N, px, px, 3), read-only
        Thumbnails on the 0..255 scale, in ``paths`` order.
    paths : tuple of str
        Image paths as discovered.
    shapes : int64 array (N, 2), read-only
        Each image's displayed (width, height) before resizing.
    file_sizes : int64 array (N,), read-only
        File sizes in bytes.
    mtimes_ns : int64 array (N,), read-only
        File modification times in ns since the epoch (0 when unknown),
        read with the sizes before decoding.
    inodes : int64 array (N, 2), read-only
        Each file's ``(st_dev, st_ino)``, read with the sizes (unsigned
        values stored bit for bit); ``(0, 0)`` when unknown
        (:func:`from_arrays`, a repository saved before it was recorded).
        ``delete`` and ``move_to`` check it, the size and the modification
        time before acting on a file (see :mod:`fastdif.verify`).
    groups : tuple of tuple of int
        Search groups, each holding image indices in ``paths`` order: one
        group of all images (``in_folder=False``), one per input
        (``in_folder=True``, difPy's meaning) or one per folder
        (``in_folder="subfolders"``).
    folders : tuple of str
        The name of each group, which keys the result with ``in_folder``:
        the input (True), the folder ("subfolders"), the inputs' common
        folder (False).
    in_folder : bool or str
        How the images were grouped: False, True or "subfolders". A
        repository saved by a fastdif before "subfolders" existed loads with
        the bool it saved, and its saved groups (one per folder) are searched.
    stats : dict
        difPy's build statistics (JSON-serialisable).
    tensors_file : str or None
        The ``.npy`` file ``tensors`` is memory-mapped from (a repository
        loaded by :func:`fastdif.load`); a Dask search opens it on each
        worker instead of sending the thumbnails.
    thumbnail_version : int or None
        The thumbnail definition the files were decoded with
        (:data:`fastdif.io.decode.THUMBNAIL_VERSION` for a build; 1, JPEG draft
        decoding, for a repository saved before it was recorded); None for
        :func:`from_arrays`. Thumbnails of different versions are not
        comparable.
    reference : Repository or None
        The library these images are checked against (``build(...,
        reference=...)``): a search then reports only matches that involve
        one of these images, and a library image is always the key of its
        group. Not saved with the repository.
    block_means : BlockMeans or None
        The thumbnails' block means, once a build or a search against this
        repository as a library computed them; saved with the repository.
    near_features : NearFeatures
        What ``similarity="near"`` indexes (:func:`fastdif.engine.near.near_features`
        of ``tensors``): made by the build, saved with the repository and
        loaded with it; where none are held (:func:`from_arrays`, a repository
        saved before they were, or with another
        :data:`~fastdif.engine.near.FEATURES_VERSION`) computed from the
        thumbnails when first asked for. Used only to find candidates.
    """

    def __init__(
        self,
        tensors,
        paths,
        shapes,
        file_sizes,
        groups,
        folders,
        in_folder,
        stats,
        mtimes_ns=None,
        tensors_file=None,
        thumbnail_version=None,
        inodes=None,
        reference=None,
        block_means=None,
        near_features=None,
    ):
        if mtimes_ns is None:
            mtimes_ns = np.zeros(len(paths), dtype=np.int64)
        if inodes is None:
            inodes = np.zeros((len(paths), 2), dtype=np.int64)
        for array in (tensors, shapes, file_sizes, mtimes_ns, inodes):
            array.flags.writeable = False
        self.tensors = tensors
        self.paths = tuple(paths)
        self.shapes = shapes
        self.file_sizes = file_sizes
        self.mtimes_ns = mtimes_ns
        self.inodes = inodes
        self.groups = tuple(tuple(g) for g in groups)
        self.folders = tuple(folders)
        self.in_folder = in_folder
        self.stats = stats
        self.tensors_file = tensors_file
        self.thumbnail_version = thumbnail_version
        self.reference = reference
        self.block_means = block_means
        self._near_features = None
        if near_features is not None:
            self.near_features = near_features

    @property
    def near_features(self) -> near.NearFeatures:
        """The thumbnails' near features, computed from them the first time if none are held."""
        if self._near_features is None:
            self._near_features = near.near_features(self.tensors)
        return self._near_features

    @near_features.setter
    def near_features(self, features: near.NearFeatures) -> None:
        if len(features) != len(self.tensors):
            raise ValueError(f"{len(features)} near features for {len(self.tensors)} thumbnails")
        self._near_features = features

    @property
    def px_size(self) -> int:
        """Side of the square thumbnails in pixels."""
        return int(self.tensors.shape[1])

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Save the repository to the folder ``path``; see :func:`save`."""
        return save(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        return f"<fastdif.Repository: {len(self)} images, px_size={self.px_size}>"


def from_arrays(tensors: np.ndarray, paths=None, shapes=None) -> Repository:
    """A repository of thumbnails a program already holds, for :func:`fastdif.search`.

    Parameters
    ----------
    tensors : uint8 or float32 array (N, px, px, 3)
        Thumbnails on the 0..255 scale, C-contiguous. Not copied: a uint8 or
        memory-mapped array (``np.load(..., mmap_mode="r")``) keeps memory at
        px*px*3 bytes per image; the search converts values as it reads them.
    paths : sequence of str, optional
        A name per image (default ``"0"``, ``"1"``, ...), used in results.
    shapes : int array (N, 2), optional
        Each image's (width, height) for ``same_dim`` (default px x px for all).

    Returns
    -------
    Repository

    Raises
    ------
    TypeError, ValueError
        For arrays of the wrong type, shape or values; the message names the parameter.
    """
    if not isinstance(tensors, np.ndarray) or tensors.dtype not in (np.uint8, np.float32):
        raise params.invalid("tensors", "must be a uint8 or float32 array.", TypeError)
    if tensors.ndim != 4 or tensors.shape[3] != 3 or tensors.shape[1] != tensors.shape[2]:
        raise params.invalid("tensors", f"must have shape (N, px, px, 3), got {tensors.shape}.")
    if not tensors.flags.c_contiguous:
        raise params.invalid("tensors", "must be C-contiguous.")
    if tensors.dtype == np.float32 and not np.isfinite(tensors).all():
        raise params.invalid("tensors", "values must be finite.")
    n, px = tensors.shape[0], tensors.shape[1]
    paths = [str(k) for k in range(n)] if paths is None else [str(p) for p in paths]
    if len(paths) != n:
        raise params.invalid("paths", f"need {n} paths, got {len(paths)}.")
    if len(set(paths)) != n:
        raise params.invalid("paths", "paths must be unique.")
    if shapes is None:
        shapes = np.full((n, 2), px, dtype=np.int64)
    else:
        shapes = np.array(shapes, dtype=np.int64)
        if shapes.shape != (n, 2):
            raise params.invalid("shapes", f"must have shape ({n}, 2), got {shapes.shape}.")
    now = datetime.now().isoformat()
    stats = {
        "directory": [],
        "process": {
            "build": {
                "duration": {"start": now, "end": now, "seconds_elapsed": 0.0},
                "parameters": {"in_folder": False, "px_size": int(px), "from_arrays": True},
            }
        },
        "total_files": n,
        "invalid_files": {"count": 0, "logs": {}},
    }
    return Repository(
        tensors.view(), paths, shapes, np.zeros(n, dtype=np.int64), [range(n)], [""], False, stats
    )


def save(dif: Repository, path: str | os.PathLike, overwrite: bool = False) -> str:
    """Save ``dif`` to the folder ``path`` (created; written atomically).

    The format is :mod:`fastdif.io.store`'s; the near features are saved
    too (computed first if the repository holds none).

    Parameters
    ----------
    dif : Repository
    path : str or os.PathLike
        Folder to create, e.g. ``"photos.fastdif"``.
    overwrite : bool, default False
        Replace a repository already saved at ``path`` (a folder, not a
        link, whose ``repository.json`` is fastdif's): the new one is put
        in its place, and only then are the old one's files removed; any
        other file in it is kept, in a folder the warning names. Anything
        else at ``path`` is never replaced.

    Returns
    -------
    str
        The folder written.

    Raises
    ------
    FileExistsError
        ``path`` exists and ``overwrite`` is False, or it is not a saved
        repository; also when something else took ``path`` while the
        repository was written (it is left as it was: the folder is
        published by a rename that never replaces, see
        :func:`fastdif.io.store.publish`).
    TypeError
        ``dif`` is not a Repository.
    """
    params.check_type("dif", dif, Repository, "a fastdif Repository", show_type=True)
    return store.save(dif, path, overwrite=overwrite, near=stored_near(dif))


def load(path: str | os.PathLike, verify: bool = True) -> Repository:
    """Load a repository saved by :meth:`Repository.save`.

    The thumbnails are memory-mapped read-only: pages are read from disk
    when a search touches them.

    Parameters
    ----------
    path : str or os.PathLike
        The folder written by ``save``.
    verify : bool, default True
        Check each array's CRC-32 (reads the whole folder once; about 0.03 s
        per 180 MB); False loads without touching the data.

    Returns
    -------
    Repository

    Raises
    ------
    FileNotFoundError
        ``path`` is not a saved repository.
    fastdif.io.store.RepositoryFormatError
        A format version this fastdif cannot read, a corrupt or
        inconsistent file, or one that is not a regular file (a named pipe
        or a device, which would block or never end; the message names it).
    """
    fields = store.read(path, verify=verify)
    block_means = fields.pop("block_means")
    stored = fields.pop("near_features")
    return Repository(
        **fields,
        block_means=None if block_means is None else BlockMeans(**block_means),
        near_features=None if stored is None else NearRecords().features(*stored),
    )


class NearRecords:
    """Near features as stored: one record per image, a field per array, and their definition.

    Generic over :class:`~fastdif.engine.near.NearFeatures`' fields (names,
    dtypes and trailing shapes are those of ``NearFeatures.empty()``).
    Records stored with another :attr:`definition` (another
    :data:`~fastdif.engine.near.FEATURES_VERSION`, other fields) are stale:
    :meth:`features` refuses them, and they are made again from the thumbnails.

    Attributes
    ----------
    dtype : numpy.dtype
        A record: a field per array (little-endian).
    definition : str
        The features version and the record's layout, stored beside the records.
    """

    def __init__(self):
        empty = near.NearFeatures.empty().arrays()
        self.dtype = np.dtype(
            [(name, a.dtype.newbyteorder("<"), a.shape[1:]) for name, a in empty.items()]
        )
        self.definition = f"near {near.FEATURES_VERSION} {self.dtype.descr}"

    def records(self, features: near.NearFeatures) -> np.ndarray:
        """``features`` as an array (N,) of records."""
        out = np.empty(len(features), self.dtype)
        for name, array in features.arrays().items():
            out[name] = array
        return out

    def features(self, definition, records) -> near.NearFeatures | None:
        """The features ``records`` (an array (N,)) hold; None unless of this definition."""
        if definition != self.definition or getattr(records, "dtype", None) != self.dtype:
            return None
        return near.NearFeatures(
            **{name: np.ascontiguousarray(records[name]) for name in self.dtype.names}
        )


def stored_near(dif: Repository) -> tuple[str, np.ndarray]:
    """``(definition, records)`` of ``dif``'s near features, what a saved repository holds."""
    records = NearRecords()
    return records.definition, records.records(dif.near_features)
