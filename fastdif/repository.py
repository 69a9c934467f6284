"""The built repository: thumbnails, paths, shapes, folder groups and build stats."""

from __future__ import annotations

import os
from datetime import datetime

import numpy as np

from . import params
from .decode import decode_all
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
    groups : tuple of tuple of int
        Search groups: one group of all images, or one per folder with
        ``in_folder=True``; each holds image indices in ``paths`` order.
    folders : tuple of str
        The folder of each group (the common input when not ``in_folder``).
    stats : dict
        difPy's build statistics (JSON-serialisable).
    """

    def __init__(self, tensors, paths, shapes, file_sizes, groups, folders, in_folder, stats):
        for array in (tensors, shapes, file_sizes):
            array.flags.writeable = False
        self.tensors = tensors
        self.paths = tuple(paths)
        self.shapes = shapes
        self.file_sizes = file_sizes
        self.groups = tuple(tuple(g) for g in groups)
        self.folders = tuple(folders)
        self.in_folder = in_folder
        self.stats = stats

    @property
    def px_size(self) -> int:
        """Side of the square thumbnails in pixels."""
        return int(self.tensors.shape[1])

    def __len__(self) -> int:
        return len(self.paths)

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

    Returns
    -------
    Repository

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        For invalid parameters or missing paths; the message names the parameter.
    """
    start = datetime.now()
    paths = validate_directories(directory)
    recursive = params.check_bool("recursive", recursive)
    in_folder = params.check_bool("in_folder", in_folder)
    limit_extensions = params.check_bool("limit_extensions", limit_extensions)
    px_size = params.check_int_range("px_size", px_size, 10, 5000)
    show_progress = params.check_bool("show_progress", show_progress)
    processes = params.check_processes(processes)

    found = discover(paths, recursive, limit_extensions)
    invalid = dict(found.invalid)
    tensors = np.empty((len(found.files), px_size, px_size, 3), dtype=np.float32)
    shapes = np.empty((len(found.files), 2), dtype=np.int64)
    kept_paths, kept_folders, sizes = [], [], []
    with progress_bar(len(found.files), "Building", "files", show_progress) as bar:
        for path, folder, decoded in zip(
            found.files,
            found.folders,
            decode_all(found.files, px_size, processes, bar.update),
            strict=True,
        ):
            if decoded.reason is not None:
                invalid[path] = decoded.reason
                continue
            n = len(kept_paths)
            tensors[n] = np.frombuffer(decoded.thumbnail, dtype=np.uint8).reshape(
                px_size, px_size, 3
            )
            shapes[n] = decoded.width, decoded.height
            kept_paths.append(path)
            kept_folders.append(folder)
            sizes.append(_file_size(path))
    n = len(kept_paths)
    tensors = tensors[:n] if n < len(tensors) else tensors
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
    return Repository(
        np.ascontiguousarray(tensors),
        kept_paths,
        shapes[:n].copy(),
        np.asarray(sizes, dtype=np.int64),
        groups,
        folders,
        in_folder,
        stats,
    )


def _common_folder(paths: list[str]) -> str:
    try:
        return os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:  # paths on different drives
        return ""


def _file_size(path: str) -> int:
    try:
        return os.path.getsize(path)
    except OSError:
        return 0
