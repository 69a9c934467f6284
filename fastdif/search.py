"""Search a repository: thresholds, classic vs chunked path, groups, lower_quality, stats."""

from __future__ import annotations

from datetime import datetime

import numba
import numpy as np

from . import params
from .actions import delete_files, move_files
from .kernels import match_tile, mse_to_key
from .progress import progress_bar
from .repository import Repository

#: Search groups up to this size compare all pairs in one kernel call (the
#: classic path); larger ones go tile by tile (the chunked path).
CLASSIC_MAX_IMAGES = 5000

#: Images per kernel work item and matches stored per work item before a
#: row is recomputed with room for all of them.
BLOCK = 1024
CAPACITY = 16


def find_matches(tensors, shapes, max_mse, rotate, same_dim, tile_rows=None, progress=None):
    """Every pair (i, j), i < j, whose MSE is <= ``max_mse``.

    Parameters
    ----------
    tensors : float32 array (N, px, px, 3), C-contiguous
    shapes : int64 array (N, 2)
    max_mse : float
        Threshold on the 0..255 scale.
    rotate, same_dim : bool
        As in :func:`search`.
    tile_rows : int, optional
        None compares all pairs in one kernel call (classic path); otherwise
        rows are processed ``tile_rows`` at a time (chunked path). Memory of a
        tile is ``tile_rows * ceil(N / BLOCK) * CAPACITY * 12`` bytes plus the
        matches found, independent of N squared.
    progress : callable, optional
        Called with the number of rows finished after each tile.

    Returns
    -------
    i, j : int64 arrays
        Matching pairs in ascending (i, j) order.
    """
    n = tensors.shape[0]
    step = max(n, 1) if tile_rows is None else tile_rows
    found_i, found_j = [], []
    for start in range(0, n, step):
        rows = np.arange(start, min(start + step, n), dtype=np.int64)
        i, j = _match_rows(tensors, shapes, rows, max_mse, rotate, same_dim)
        found_i.append(i)
        found_j.append(j)
        if progress:
            progress(len(rows))
    if not found_i:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return np.concatenate(found_i), np.concatenate(found_j)


def _match_rows(tensors, shapes, rows, max_mse, rotate, same_dim):
    capacity = CAPACITY
    with numba.parallel_chunksize(1):
        counts, cols, _ = match_tile(
            tensors, shapes, rows, rotate, same_dim, max_mse, BLOCK, capacity
        )
        overflow = np.flatnonzero((counts > capacity).any(axis=1))
        if overflow.size:
            capacity = int(counts.max())
            redo = match_tile(
                tensors, shapes, rows[overflow], rotate, same_dim, max_mse, BLOCK, capacity
            )
            cols = np.concatenate(
                [cols, np.zeros(cols.shape[:2] + (capacity - CAPACITY,), np.int64)], 2
            )
            cols[overflow] = redo[1]
    stored = np.arange(capacity) < counts[..., None]
    r, _, _ = np.nonzero(stored)
    return rows[r], cols[stored]


def connected_groups(n, i, j):
    """Connected components of the match graph with at least two images.

    Returns a list of sorted index lists, ordered by their smallest index.
    """
    parent = np.arange(n)

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for a in sorted(set(i.tolist()) | set(j.tolist())):
        members.setdefault(root(a), []).append(a)
    return [members[k] for k in sorted(members)]


def choose_key(indices, shapes, file_sizes):
    """The best image of a group: largest width*height, then file size, then path order."""
    return max(
        indices, key=lambda k: (int(shapes[k, 0]) * int(shapes[k, 1]), int(file_sizes[k]), -k)
    )


class SearchResult:
    """Matches found by :func:`search`, in difPy's shapes.

    Attributes
    ----------
    result : dict
        ``{key_path: [[path, mse], ...]}``, or ``{folder: {key_path: [...]}}``
        with ``in_folder``; ``mse`` is the MSE to the key (0..255 scale).
    lower_quality : list of str
        Every group member except the keys.
    stats : dict
        difPy's build and search statistics (JSON-serialisable).
    """

    def __init__(self, result, lower_quality, stats):
        self.result = result
        self.lower_quality = lower_quality
        self.stats = stats

    def move_to(self, destination) -> dict:
        """Move the ``lower_quality`` files into ``destination``.

        An existing file is never overwritten: a numbered suffix is added.
        ``lower_quality`` is updated to the new paths.

        Returns
        -------
        dict
            ``{"moved": {source: destination}, "failed": {source: reason}}``.
        """
        moved, failed = move_files(self.lower_quality, destination)
        self.lower_quality = [moved.get(path, path) for path in self.lower_quality]
        return {"moved": moved, "failed": failed}

    def delete(self, silent_del: bool = False) -> dict:
        """Delete the ``lower_quality`` files (never a group's key).

        Asks for confirmation on standard input unless ``silent_del``. A file is
        deleted only while the key of its group still exists.

        Returns
        -------
        dict
            ``{"deleted": [paths], "failed": {path: reason}}``.
        """
        params.check_bool("silent_del", silent_del)
        keep = {}
        for key, member in _key_member_pairs(self.result, self.stats):
            keep[member] = key
        targets = [path for path in self.lower_quality if path in keep]
        if not silent_del and targets:
            try:
                answer = input(f"Delete {len(targets)} lower quality files? (y/n) ")
            except EOFError:
                answer = "n"
            if answer.strip().lower() not in ("y", "yes"):
                return {"deleted": [], "failed": {}}
        deleted, failed = delete_files(targets, keep)
        self.lower_quality = [path for path in self.lower_quality if path not in set(deleted)]
        return {"deleted": deleted, "failed": failed}


def _key_member_pairs(result, stats):
    in_folder = stats["process"]["build"]["parameters"]["in_folder"]
    groups = (
        (g for folder in result.values() for g in folder.items()) if in_folder else result.items()
    )
    for key, members in groups:
        for path, _ in members:
            yield key, path


def search(
    dif: Repository,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    same_dim: bool = True,
    show_progress: bool = True,
    processes: int | None = None,
    chunksize: int | None = None,
    **kwargs,
) -> SearchResult:
    """Find duplicate and similar images in a repository made by :func:`build`.

    Parameters
    ----------
    dif : Repository
    similarity : "duplicates", "similar" or float, default "duplicates"
        MSE threshold on the 0..255 scale: "duplicates" is 0, "similar" is 5.
    rotate : bool, default True
        Also compare rotations by 90, 180 and 270 degrees; the smallest MSE counts.
    same_dim : bool, default True
        Compare only images of the same (width, height), in either orientation.
    show_progress : bool, default True
        Show a progress bar on stderr.
    processes : int, optional
        Threads for the kernels, 1..os.cpu_count(); None uses all cores.
    chunksize : int, optional
        Rows per tile of the chunked path (groups of more than 5,000 images);
        default ``round(1_000_000 / N)``.

    Returns
    -------
    SearchResult

    Raises
    ------
    ValueError, TypeError
        For invalid parameters; the message names the parameter.
    """
    if "lazy" in kwargs:
        raise ValueError(
            'Parameter "lazy" was renamed to "same_dim" in difPy v4.2.0: use same_dim=True/False.'
        )
    if kwargs:
        raise TypeError(f"search() got an unexpected keyword argument {next(iter(kwargs))!r}")
    if not isinstance(dif, Repository):
        raise TypeError(
            f'Invalid value for "dif" parameter: must be the object returned by fastdif.build, '
            f"got {type(dif).__name__}."
        )
    start = datetime.now()
    max_mse = params.check_similarity(similarity)
    rotate = params.check_bool("rotate", rotate)
    same_dim = params.check_bool("same_dim", same_dim)
    show_progress = params.check_bool("show_progress", show_progress)
    processes = params.check_processes(processes)
    largest = max((len(g) for g in dif.groups), default=0)
    tile_rows = params.check_chunksize(chunksize, largest)
    chunked_used = False

    threads = numba.get_num_threads()
    numba.set_num_threads(min(processes, numba.config.NUMBA_NUM_THREADS))
    found = []
    try:
        total = sum(len(g) for g in dif.groups if len(g) > 1)
        with progress_bar(total, "Searching", "images", show_progress) as bar:
            for folder, group in zip(dif.folders, dif.groups, strict=True):
                if len(group) < 2:
                    continue
                index = np.asarray(group, dtype=np.int64)
                whole = len(group) == len(dif)
                tensors = dif.tensors if whole else np.ascontiguousarray(dif.tensors[index])
                shapes = dif.shapes if whole else dif.shapes[index]
                chunked = len(group) > CLASSIC_MAX_IMAGES
                chunked_used |= chunked
                i, j = find_matches(
                    tensors,
                    shapes,
                    max_mse,
                    rotate,
                    same_dim,
                    tile_rows if chunked else None,
                    bar.update,
                )
                for members in connected_groups(len(group), i, j):
                    local = np.asarray(members, dtype=np.int64)
                    key = choose_key(index[local], dif.shapes, dif.file_sizes)
                    others = np.asarray([m for m in members if index[m] != key], dtype=np.int64)
                    local_key = members[[int(index[m]) for m in members].index(key)]
                    mses = mse_to_key(tensors, local_key, others, rotate)
                    found.append((folder, key, index[others].tolist(), mses.tolist()))
    finally:
        numba.set_num_threads(threads)

    found.sort(key=lambda g: g[1])
    result: dict = {}
    lower_quality: list[str] = []
    duplicates = similar = 0
    for folder, key, others, mses in found:
        entries = [[dif.paths[m], float(e)] for m, e in zip(others, mses, strict=True)]
        target = result.setdefault(folder, {}) if dif.in_folder else result
        target[dif.paths[key]] = entries
        lower_quality.extend(path for path, _ in entries)
        duplicates += sum(1 for e in mses if e == 0)
        similar += sum(1 for e in mses if e != 0)
    end = datetime.now()
    stats = {
        "directory": dif.stats["directory"],
        "process": {
            "build": dif.stats["process"]["build"],
            "search": {
                "duration": {
                    "start": start.isoformat(),
                    "end": end.isoformat(),
                    "seconds_elapsed": round((end - start).total_seconds(), 4),
                },
                "parameters": {
                    "similarity_mse": max_mse,
                    "rotate": rotate,
                    "same_dim": same_dim,
                    "processes": processes,
                    "chunksize": tile_rows if chunked_used else chunksize,
                },
                "files_searched": len(dif),
                "matches_found": {"duplicates": duplicates, "similar": similar},
            },
        },
        "total_files": dif.stats["total_files"],
        "invalid_files": dif.stats["invalid_files"],
    }
    return SearchResult(result, lower_quality, stats)
