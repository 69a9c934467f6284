"""The built repository: thumbnails, paths, shapes, folder groups and build stats."""

from __future__ import annotations

import os
import shutil
from datetime import datetime

import numpy as np

from . import params
from .cache import CachedDecoder, resolve_cache
from .decode import THUMBNAIL_VERSION
from .discover import discover, validate_directories
from .progress import progress_bar


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
        Search groups: one group of all images, or one per folder with
        ``in_folder=True``; each holds image indices in ``paths`` order.
    folders : tuple of str
        The folder of each group (the common input when not ``in_folder``).
    stats : dict
        difPy's build statistics (JSON-serialisable).
    tensors_file : str or None
        The ``.npy`` file ``tensors`` is memory-mapped from (a repository
        loaded by :func:`fastdif.load`); a Dask search opens it on each
        worker instead of sending the thumbnails.
    thumbnail_version : int or None
        The thumbnail definition the files were decoded with
        (:data:`fastdif.decode.THUMBNAIL_VERSION` for a build; 1, JPEG draft
        decoding, for a repository saved before it was recorded); None for
        :func:`from_arrays`. Thumbnails of different versions are not
        comparable.
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

    @property
    def px_size(self) -> int:
        """Side of the square thumbnails in pixels."""
        return int(self.tensors.shape[1])

    def __len__(self) -> int:
        return len(self.paths)

    def save(self, path: str | os.PathLike, overwrite: bool = False) -> str:
        """Save the repository to the folder ``path``; see :func:`fastdif.store.save`."""
        from .store import save

        return save(self, path, overwrite=overwrite)

    def __repr__(self) -> str:
        return f"<fastdif.Repository: {len(self)} images, px_size={self.px_size}>"


def build(
    *directory: str | os.PathLike | list,
    recursive: bool = True,
    in_folder: bool = False,
    limit_extensions: bool = True,
    px_size: int = 50,
    show_progress: bool = True,
    processes: int | None = None,
    cache: str | os.PathLike | bool | None = None,
    scheduler=None,
    store: str | os.PathLike | None = None,
) -> Repository:
    """Find and decode every image under ``directory`` into a repository.

    Parameters
    ----------
    *directory : str, os.PathLike or list of them
        Folders or single files to search.
    recursive : bool, default True
        Walk sub-folders.
    in_folder : bool, default False
        Make every folder its own search group: matches never cross folders.
    limit_extensions : bool, default True
        Read only files with an extension Pillow registers; others are
        reported in ``invalid_files`` as "Unsupported file type".
    px_size : int, default 50
        Thumbnail side in pixels, 10..5000.
    show_progress : bool, default True
        Show a progress bar on stderr.
    processes : int, optional
        Decoding processes, 1..os.cpu_count(); None uses all cores.
    cache : str, os.PathLike or bool, optional
        Thumbnail cache (an SQLite file, see :mod:`fastdif.cache`): files
        whose resolved path, size and modification time are unchanged are not
        decoded again. A path names the cache file (or a folder to hold it);
        True uses the default file under ``$XDG_CACHE_HOME/fastdif`` (or
        ``~/.cache/fastdif``); None or False (default) decodes every file.
        What the cache did is in ``stats["process"]["build"]["cache"]``; a
        corrupt cache is moved aside with a :class:`fastdif.cache.CacheWarning`.
    scheduler : dask.distributed.Client, optional
        Decode as Dask tasks on this client's cluster (needs the ``dask``
        extra); the workers must see the files at the same paths. See
        :mod:`fastdif.cluster`.
    store : str or os.PathLike, optional
        With ``scheduler``: a folder to create, on storage the workers share.
        The workers write the thumbnails there (uint8) instead of sending
        them to this process; the folder is a saved repository
        (:func:`fastdif.load` reads it) and the returned repository is
        memory-mapped from it. Not with ``cache``.

    Returns
    -------
    Repository

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        For invalid parameters or missing paths; the message names the parameter.
    FileExistsError
        ``store`` exists.
    ImportError
        ``scheduler`` is given but Dask is not installed.
    """
    start = datetime.now()
    paths = validate_directories(directory)
    recursive = params.check_bool("recursive", recursive)
    in_folder = params.check_bool("in_folder", in_folder)
    limit_extensions = params.check_bool("limit_extensions", limit_extensions)
    px_size = params.check_int_range("px_size", px_size, 10, 5000)
    show_progress = params.check_bool("show_progress", show_progress)
    cache_path = resolve_cache(cache)
    shards = staging = target = None
    if scheduler is not None:
        from . import cluster

        client = cluster.checked_client(scheduler, processes)
        if store is not None:
            if cache_path is not None:
                raise ValueError('"cache" and "store" cannot be combined.')
            target = os.path.abspath(os.fspath(store))
            if os.path.lexists(target):
                raise FileExistsError(f'Invalid value for "store" parameter: "{target}" exists.')
            from .store import staging_folder

            staging = staging_folder(target)
        shards = cluster.ShardDecoder(client, px_size, staging)
    elif store is not None:
        raise ValueError('"store" needs "scheduler" (a Dask client).')
    processes = params.check_processes(processes) if shards is None else None
    try:
        return _build(
            paths, recursive, in_folder, limit_extensions, px_size, show_progress, processes,
            cache_path, shards, target, start,
        )  # fmt: skip
    finally:
        if staging is not None:
            shutil.rmtree(staging, ignore_errors=True)


def _build(
    paths, recursive, in_folder, limit_extensions, px_size, show_progress, processes,
    cache_path, shards, target, start,
):  # fmt: skip
    found = discover(paths, recursive, limit_extensions)
    invalid = dict(found.invalid)
    in_store = shards is not None and shards.folder is not None
    tensors = None
    if not in_store:
        tensors = np.empty((len(found.files), px_size, px_size, 3), dtype=np.float32)
    shapes = np.empty((len(found.files), 2), dtype=np.int64)
    kept_paths, kept_folders, sizes, mtimes, inodes = [], [], [], [], []
    with progress_bar(len(found.files), "Building", "files", show_progress) as bar:
        decoder = CachedDecoder(cache_path, px_size, processes, bar.update, shards)
        for path, folder, item in zip(
            found.files,
            found.folders,
            decoder.decode(found.files, roots=paths),
            strict=True,
        ):
            decoded = item.decoded
            if decoded.reason is not None:
                invalid[path] = decoded.reason
                continue
            n = len(kept_paths)
            if tensors is not None:
                tensors[n] = np.frombuffer(decoded.thumbnail, dtype=np.uint8).reshape(
                    px_size, px_size, 3
                )
            shapes[n] = decoded.width, decoded.height
            kept_paths.append(path)
            kept_folders.append(folder)
            sizes.append(item.size)
            mtimes.append(item.mtime_ns)
            inodes.append(item.identity)
    n = len(kept_paths)
    if in_store:
        tensors = np.load(shards.assemble(n), mmap_mode="r", allow_pickle=False)
    elif n < len(tensors):
        tensors = tensors[:n]
    if in_folder:
        # One group per real folder, however its path was spelled; named by
        # the first spelling in sorted order.
        names: dict[str, str] = {}
        for folder in sorted(kept_folders):
            names.setdefault(os.path.realpath(folder), folder)
        folders = sorted(names.values())
        index = {real: folders.index(name) for real, name in names.items()}
        groups: list[list[int]] = [[] for _ in folders]
        for i, folder in enumerate(kept_folders):
            groups[index[os.path.realpath(folder)]].append(i)
    else:
        folders = [paths[0] if len(paths) == 1 else _common_folder(paths)]
        groups = [list(range(n))]
    end = datetime.now()
    stats = {
        "directory": paths,
        "process": {
            "build": {
                "duration": {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "seconds_elapsed": round((end - start).total_seconds(), 4),
                },
                "parameters": {
                    "recursive": recursive,
                    "in_folder": in_folder,
                    "limit_extensions": limit_extensions,
                    "px_size": px_size,
                    "processes": processes,
                },
            }
        },
        "total_files": n + len(invalid),
        "invalid_files": {"count": len(invalid), "logs": invalid},
    }
    if decoder.stats is not None:
        stats["process"]["build"]["cache"] = decoder.stats
    if shards is not None:
        stats["process"]["build"]["dask"] = shards.stats()
    dif = Repository(
        np.ascontiguousarray(tensors),
        kept_paths,
        shapes[:n].copy(),
        np.asarray(sizes, dtype=np.int64),
        groups,
        folders,
        in_folder,
        stats,
        np.asarray(mtimes, dtype=np.int64),
        thumbnail_version=THUMBNAIL_VERSION,
        # st_dev and st_ino are unsigned 64-bit: kept bit for bit in int64.
        inodes=np.array(inodes, dtype=np.uint64).reshape(n, 2).view(np.int64),
    )
    if not in_store:
        return dif
    from .store import load, publish, write

    write(dif, shards.folder, tensors_written=True)
    publish(shards.folder, target)
    return load(target, verify=False)


def _common_folder(paths: list[str]) -> str:
    try:
        return os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:  # paths on different drives
        return ""


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
        raise TypeError('Invalid value for "tensors" parameter: must be a uint8 or float32 array.')
    if tensors.ndim != 4 or tensors.shape[3] != 3 or tensors.shape[1] != tensors.shape[2]:
        raise ValueError(
            f'Invalid value for "tensors" parameter: must have shape (N, px, px, 3), '
            f"got {tensors.shape}."
        )
    if not tensors.flags.c_contiguous:
        raise ValueError('Invalid value for "tensors" parameter: must be C-contiguous.')
    if tensors.dtype == np.float32 and not np.isfinite(tensors).all():
        raise ValueError('Invalid value for "tensors" parameter: values must be finite.')
    n, px = tensors.shape[0], tensors.shape[1]
    paths = [str(k) for k in range(n)] if paths is None else [str(p) for p in paths]
    if len(paths) != n:
        raise ValueError(f'Invalid value for "paths" parameter: need {n} paths, got {len(paths)}.')
    if len(set(paths)) != n:
        raise ValueError('Invalid value for "paths" parameter: paths must be unique.')
    if shapes is None:
        shapes = np.full((n, 2), px, dtype=np.int64)
    else:
        shapes = np.array(shapes, dtype=np.int64)
        if shapes.shape != (n, 2):
            raise ValueError(
                f'Invalid value for "shapes" parameter: must have shape ({n}, 2), '
                f"got {shapes.shape}."
            )
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
