"""Search a repository: thresholds, classic vs chunked path, groups, lower_quality, stats."""

from __future__ import annotations

import os
import signal
import threading
from contextlib import contextmanager
from datetime import datetime

import numba
import numpy as np

from . import params, verify
from .actions import delete_files, move_files
from .kernels import (
    BOUND_SLACK,
    block_means,
    grid_side,
    match_ranges,
    pair_mse,
    rotation_hashes,
)
from .progress import progress_bar
from .report import write_report
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

    The classic path (``tile_rows=None``) considers every pair in one kernel
    call; the chunked path sorts images by overall mean, compares each image
    only with the window of later images that the mean bound allows, and goes
    ``tile_rows`` rows at a time. Both skip pairs by the same exact bounds
    (see :mod:`fastdif.kernels`) and return the same pairs.

    Parameters
    ----------
    tensors : float32 or uint8 array (N, px, px, 3), C-contiguous
    shapes : int64 array (N, 2)
    max_mse : float
        Threshold on the 0..255 scale.
    rotate, same_dim : bool
        As in :func:`search`.
    tile_rows : int, optional
        Rows per tile of the chunked path. Memory of a tile is at most
        ``tile_rows * ceil(N / BLOCK) * (CAPACITY + 4) * 12`` bytes plus the
        matches found; it never grows with N squared.
    progress : callable, optional
        Called with the number of rows finished after each tile.

    Returns
    -------
    i, j : int64 arrays
        Matching pairs in ascending (i, j) order.
    summed : int
        Pairs that no bound skipped (an exact sum was started).
    """
    n = tensors.shape[0]
    g = grid_side(tensors.shape[1])
    grids = block_means(tensors, g)
    means = block_means(tensors, 1)
    if tile_rows is None:
        order = np.arange(n, dtype=np.int64)
        tiles = [(order, order + 1, np.full(n, n, dtype=np.int64))]
    else:
        order, ends = sorted_windows(means, max_mse)
        positions = np.arange(n, dtype=np.int64)
        tiles = (
            (
                positions[s : s + tile_rows],
                positions[s : s + tile_rows] + 1,
                ends[s : s + tile_rows],
            )
            for s in range(0, n, tile_rows)
        )
    found_i, found_j, summed = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
    for rows, begins, stops in tiles:
        i, j, exact = match_items(
            tensors, grids, means, order, shapes, rows, begins, stops, rotate, same_dim, max_mse
        )
        found_i.append(i)
        found_j.append(j)
        summed += exact
        if progress:
            progress(len(rows))
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first = np.lexsort((j, i))
    return i[first], j[first], summed


def sorted_windows(means, max_mse):
    """Images sorted by overall mean, and the window each may match in that order.

    Parameters
    ----------
    means : float32 array (N, 1, 1, 3)
        Channel means (``block_means(tensors, 1)``).
    max_mse : float

    Returns
    -------
    order : int64 array (N,)
        Image indices by ascending overall mean (stable).
    ends : int64 array (N,)
        Image ``order[p]`` can only match images ``order[p + 1 : ends[p]]``
        among those after it: the overall means differ by more than
        ``sqrt(max_mse)`` beyond (with :data:`~fastdif.kernels.BOUND_SLACK`).
    """
    n = means.shape[0]
    overall = means.reshape(n, 3).astype(np.float64).mean(axis=1)
    order = np.argsort(overall, kind="stable").astype(np.int64)
    ranked = overall[order]
    radius = np.sqrt(max_mse * (1 + BOUND_SLACK) + BOUND_SLACK)
    ends = np.searchsorted(ranked, ranked + radius, side="right").astype(np.int64)
    return order, ends


def match_items(
    tensors, grids, means, order, shapes, rows, begins, stops, rotate, same_dim, max_mse
):
    """Compare image ``order[r]`` with images ``order[begins:stops]`` for each row ``r``.

    Rows are split into kernel work items of at most :data:`BLOCK` positions.

    Returns
    -------
    i, j : int64 arrays
        Matching pairs of image indices, ``i < j``, in no particular order.
    summed : int
        Pairs that no bound skipped.
    """
    per_row = np.maximum(stops - begins, 0)
    blocks = -(-per_row // BLOCK)
    item_row = np.repeat(rows, blocks)
    first = np.repeat(np.cumsum(blocks) - blocks, blocks)
    item_begin = np.repeat(begins, blocks) + (np.arange(item_row.size) - first) * BLOCK
    item_end = np.minimum(item_begin + BLOCK, np.repeat(stops, blocks))
    args = (tensors, grids, means, order, shapes)
    flags = (rotate, same_dim, max_mse)
    with numba.parallel_chunksize(1):
        counts, cols, _, exact = match_ranges(
            *args, item_row, item_begin, item_end, *flags, CAPACITY
        )
        over = np.flatnonzero(counts > CAPACITY)
        if over.size:
            wide = int(counts[over].max())
            redo = match_ranges(
                *args, item_row[over], item_begin[over], item_end[over], *flags, wide
            )[1]
            cols = np.concatenate([cols, np.zeros((cols.shape[0], wide - CAPACITY), np.int64)], 1)
            cols[over] = redo
    stored = np.arange(cols.shape[1]) < counts[:, None]
    w, _ = np.nonzero(stored)
    a, b = order[item_row[w]], cols[stored]
    return np.minimum(a, b), np.maximum(a, b), int(exact.sum())


def find_identical(tensors, shapes, rotate, same_dim):
    """Pairs of identical thumbnails (MSE 0), up to rotation with ``rotate``, in O(N).

    Images are bucketed by a hash of their canonical form (the smallest hash of
    their rotations) and, with ``same_dim``, by their sorted (width, height);
    within a bucket, equality is confirmed exactly. Returns pairs (i, j), i < j,
    in ascending order, linking each image to the first image equal to it: the
    same groups as all pairs with MSE 0, without comparing pairs.
    """
    if tensors.shape[0] < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return identical_pairs(
        rotation_hashes(tensors),
        shapes,
        rotate,
        same_dim,
        lambda left, right: pair_mse(tensors, left, right, rotate) == 0,
    )


def identical_pairs(hashes, shapes, rotate, same_dim, equal):
    """The pairs of :func:`find_identical`, from the images' rotation hashes.

    Parameters
    ----------
    hashes : uint64 array (N, 4)
        :func:`~fastdif.kernels.rotation_hashes` of the images.
    shapes : int64 array (N, 2)
    rotate, same_dim : bool
    equal : callable
        ``equal(left, right)``: a bool array, True where images ``left[m]`` and
        ``right[m]`` are identical (up to rotation with ``rotate``).
    """
    key = hashes.min(axis=1) if rotate else hashes[:, 0]
    columns = [key.view(np.int64)]
    if same_dim:
        columns += [shapes.min(axis=1), shapes.max(axis=1)]
    _, bucket = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    bucket = bucket.ravel()
    sizes = np.bincount(bucket)
    order = np.argsort(bucket, kind="stable")
    order = order[sizes[bucket[order]] > 1]
    found_i, found_j = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    # Each round compares every image with the first of its bucket, in one
    # kernel call; images unequal to it (hash collisions) stay for the next.
    while order.size > 1:
        ids = bucket[order]
        head = np.r_[True, ids[1:] != ids[:-1]]
        first = order[np.maximum.accumulate(np.where(head, np.arange(order.size), 0))]
        left, right = first[~head], order[~head]
        same = equal(left, right)
        found_i.append(left[same])
        found_j.append(right[same])
        rest = ~head
        rest[rest] = ~same
        order = order[rest]
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first = np.lexsort((j, i))
    return i[first], j[first]


def comparable_units(dif, same_dim):
    """The sets of images that can match, as (folder, image indices) with >= 2 images.

    Each search group (all images, or a folder with ``in_folder``) is one
    unit; with ``same_dim`` it is split by sorted (width, height), since only
    images of equal dimensions (in either orientation) are compared.
    """
    for folder, group in zip(dif.folders, dif.groups, strict=True):
        index = np.asarray(group, dtype=np.int64)
        if same_dim and index.size > 1:
            shapes = np.sort(dif.shapes[index], axis=1)
            _, unit = np.unique(shapes, axis=0, return_inverse=True)
            order = np.argsort(unit.ravel(), kind="stable")
            bounds = np.flatnonzero(np.diff(unit.ravel()[order])) + 1
            parts = np.split(index[order], bounds)
        else:
            parts = [index]
        for part in parts:
            if part.size > 1:
                yield folder, part


@contextmanager
def interrupts_between_kernels():
    """Hold Ctrl-C while kernels run; yield a check that delivers it between them.

    A KeyboardInterrupt raised while a parallel Numba kernel runs can crash the
    process, so in the main thread SIGINT only records itself until the check
    (called after each kernel call) or the end of the block hands it to the
    handler installed before: Python's default raises KeyboardInterrupt, a
    program's own handler is called (and the search goes on if it returns),
    SIG_DFL ends the process. SIGINT ignored, or handled outside Python,
    stays as it is.
    """
    if threading.current_thread() is not threading.main_thread():
        yield lambda: None
        return
    previous = signal.getsignal(signal.SIGINT)
    if previous in (signal.SIG_IGN, None):  # None: a handler Python cannot put back
        yield lambda: None
        return
    received = []
    signal.signal(signal.SIGINT, lambda signum, frame: received.append(frame))

    def check():
        if not received:
            return
        frame = received[-1]
        received.clear()
        if previous == signal.SIG_DFL:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            signal.raise_signal(signal.SIGINT)
        else:
            previous(signal.SIGINT, frame)

    try:
        yield check
    finally:
        signal.signal(signal.SIGINT, previous)
    check()


class _LocalSearch:
    """Searches comparable units in this process, with the Numba kernels' threads."""

    def __init__(self, dif):
        self.dif = dif
        #: Pairs that no bound skipped, over the units yielded so far.
        self.summed = 0

    def pairs(self, units, max_mse, rotate, same_dim, tile_rows, progress):
        """For each unit: (i, j, mse), as :meth:`fastdif.cluster.Search.pairs`."""
        for _, index in units:
            whole = len(index) == len(self.dif)
            tensors = self.dif.tensors if whole else np.ascontiguousarray(self.dif.tensors[index])
            shapes = self.dif.shapes if whole else self.dif.shapes[index]
            # Read-only like the repository's arrays: the kernels see one type
            # either way, the one fastdif.warmup compiles them for.
            tensors.flags.writeable = shapes.flags.writeable = False
            if max_mse == 0:
                i, j = find_identical(tensors, shapes, rotate, same_dim)
                progress(len(index))
            else:
                rows = tile_rows if len(index) > CLASSIC_MAX_IMAGES else None
                i, j, summed = find_matches(
                    tensors, shapes, max_mse, rotate, same_dim, rows, progress
                )
                self.summed += summed
            yield i, j, lambda left, right, t=tensors: pair_mse(t, left, right, rotate)

    def stats(self) -> dict:
        return {}

    def close(self) -> None:
        pass


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
    repository : Repository or None
        The repository searched, for the dimensions and file sizes that
        :meth:`report` shows.
    """

    def __init__(self, result, lower_quality, stats, repository=None):
        self.result = result
        self.lower_quality = lower_quality
        self.stats = stats
        self.repository = repository
        # Files move_to moved: {new path: (member path in result, identity after the move)}.
        self._moved: dict[str, tuple[str, verify.Identity]] = {}

    def report(
        self,
        path,
        thumbnail_size: int = 160,
        processes: int | None = None,
        show_progress: bool = False,
    ) -> str:
        """Write an HTML report of the groups to ``path``; see :func:`fastdif.report.write_report`.

        One self-contained file (thumbnails embedded, no network) to look at
        the groups and choose what to keep; it never changes a file itself.
        ``thumbnail_size`` is the longest thumbnail side in pixels,
        ``processes`` the threads reading images (None: all cores).

        Returns
        -------
        str
            The path written.
        """
        return write_report(self, path, thumbnail_size, processes, show_progress)

    def move_to(self, destination) -> dict:
        """Move the ``lower_quality`` files into ``destination``.

        Just before each move, the file is checked against its group's key
        (see :mod:`fastdif.verify`): both must still be the files decoded at
        build (size, modification time, inode), two different files, and
        decoded again now they must still match within the search's
        threshold. A file failing a check stays where it is and is reported
        in ``"failed"`` with the check named. This costs one decode per file
        moved (and one per key).

        An existing file is never overwritten: a numbered suffix is added.
        ``lower_quality`` is updated to the new paths. A manifest of the moves
        is written into ``destination``; :func:`fastdif.undo_move` reverses them.

        Returns
        -------
        dict
            ``{"moved": {source: destination}, "failed": {source: reason},
            "manifest": manifest_path or None}``.
        """
        refusal = self._refusal_checker(_key_of(self.result, self.stats))
        failed: dict[str, str] = {}

        def checked():
            # Consumed by move_files one path at a time: each check runs
            # right before that file's move.
            for path in self.lower_quality:
                reason = refusal(path)
                if reason is None:
                    yield path
                else:
                    failed[path] = reason

        moved, move_failed, manifest = move_files(checked(), destination)
        failed.update(move_failed)
        for source, target in moved.items():
            # A later move_to checks the file where it is now, against the same key.
            origin = self._moved.pop(source, (source, None))[0]
            try:
                self._moved[target] = (origin, verify.Identity.of_stat(os.stat(target)))
            except OSError:
                continue
        self.lower_quality = [moved.get(path, path) for path in self.lower_quality]
        return {"moved": moved, "failed": failed, "manifest": manifest}

    def delete(self, silent_del: bool = False, dry_run: bool = False) -> dict:
        """Delete the ``lower_quality`` files (never a group's key).

        Asks for confirmation on standard input unless ``silent_del``. Just
        before each file is deleted it is checked against its group's key
        (see :mod:`fastdif.verify`): both must still be the files decoded at
        build (size, modification time, inode), two different files, and
        decoded again now they must still match within the search's
        threshold (identical for "duplicates"). A file failing a check is
        kept and reported in ``"failed"`` with the check named. This costs
        one decode per file deleted (and one per key). With ``dry_run``
        nothing is deleted and nothing asked: ``"would_delete"`` lists the
        files a real run would remove, after the same checks.

        Returns
        -------
        dict
            ``{"deleted": [paths], "failed": {path: reason}}``, plus
            ``"would_delete": [paths]`` with ``dry_run``.
        """
        params.check_bool("silent_del", silent_del)
        params.check_bool("dry_run", dry_run)
        keep = _key_of(self.result, self.stats)
        targets = [path for path in self.lower_quality if path in keep]
        if not dry_run and not silent_del and targets:
            try:
                answer = input(f"Delete {len(targets)} lower quality files? (y/n) ")
            except EOFError:
                answer = "n"
            if answer.strip().lower() not in ("y", "yes"):
                return {"deleted": [], "failed": {}}
        refusal = self._refusal_checker(keep)
        deleted, failed = [], {}
        for path in targets:
            reason = refusal(path)
            if reason is not None:
                failed[path] = reason
                continue
            done, not_done = delete_files([path], keep, dry_run=dry_run)
            deleted += done
            failed.update(not_done)
        if dry_run:
            return {"deleted": [], "failed": failed, "would_delete": deleted}
        gone = set(deleted)
        self.lower_quality = [path for path in self.lower_quality if path not in gone]
        return {"deleted": deleted, "failed": failed}

    def _refusal_checker(self, keys: dict[str, str]):
        """A function of a ``lower_quality`` path: None if it may be acted on now, else why not.

        ``keys`` is :func:`_key_of` the result. One per action: keys are
        decoded once for it.
        """
        dif = self.repository
        records: dict[str, verify.Identity] = {}
        criteria = None
        # Only a built repository recorded the files it decoded (from_arrays did not).
        if dif is not None and dif.thumbnail_version is not None:
            wanted = set(keys) | set(keys.values())
            for i, path in enumerate(dif.paths):
                if path in wanted:
                    records[path] = verify.Identity.recorded(
                        dif.file_sizes[i], dif.mtimes_ns[i], *dif.inodes[i]
                    )
            search = self.stats["process"]["search"]["parameters"]
            criteria = verify.Criteria(dif.px_size, search["similarity_mse"], search["rotate"])
        key_thumbnails: dict = {}

        def refusal(path: str) -> str | None:
            origin, record = self._moved.get(path, (path, records.get(path)))
            key = keys.get(origin)
            if key is None:
                return "not a member of a group in this result"
            found = verify.check_pair(key, path, records.get(key), record, criteria, key_thumbnails)
            return None if found is None else str(found)

        return refusal


def _key_of(result, stats) -> dict[str, str]:
    """``{member: key}`` for every member of every group of ``result``."""
    in_folder = stats["process"]["build"]["parameters"]["in_folder"]
    groups = (
        (g for folder in result.values() for g in folder.items()) if in_folder else result.items()
    )
    return {path: key for key, members in groups for path, _ in members}


def search(
    dif: Repository,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    same_dim: bool = True,
    show_progress: bool = True,
    processes: int | None = None,
    chunksize: int | None = None,
    scheduler=None,
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
        Rows per tile of the chunked path (groups of more than 5,000 images,
        and every group with ``scheduler``); default ``round(1_000_000 / N)``,
        at least 1,024 (4,096 with ``scheduler``).
    scheduler : dask.distributed.Client, optional
        Run the search as Dask tasks on this client's cluster (needs the
        ``dask`` extra); the result is the same as without. See
        :mod:`fastdif.cluster`.

    Returns
    -------
    SearchResult

    Raises
    ------
    ValueError, TypeError
        For invalid parameters; the message names the parameter.
    ImportError
        ``scheduler`` is given but Dask is not installed.
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
    cluster = client = None
    if scheduler is not None:
        from . import cluster

        client = cluster.checked_client(scheduler, processes)
    processes = params.check_processes(processes)
    largest = max((len(g) for g in dif.groups), default=0)
    tile_rows = params.check_chunksize(chunksize, largest)
    if cluster is not None and chunksize is None:
        tile_rows = max(tile_rows, cluster.MIN_TILE_SIDE)

    threads = numba.get_num_threads()
    numba.set_num_threads(min(processes, numba.config.NUMBA_NUM_THREADS))
    found = []
    searcher = _LocalSearch(dif) if cluster is None else cluster.Search(client, dif)
    try:
        units = list(comparable_units(dif, same_dim))
        total = sum(len(index) for _, index in units)
        chunked_used = cluster is not None or any(len(ix) > CLASSIC_MAX_IMAGES for _, ix in units)
        with (
            progress_bar(total, "Searching", "images", show_progress) as bar,
            interrupts_between_kernels() as check,
        ):

            def tick(rows):
                bar.update(rows)
                check()

            found_pairs = searcher.pairs(units, max_mse, rotate, same_dim, tile_rows, tick)
            for (folder, index), (i, j, mse) in zip(units, found_pairs, strict=True):
                keys, others = [], []
                for members in connected_groups(len(index), i, j):
                    key = choose_key(index[members], dif.shapes, dif.file_sizes)
                    keys.append(members[index[members].tolist().index(key)])
                    others.append([m for m in members if index[m] != key])
                # One kernel call for every member's MSE to its key.
                left = np.repeat(np.asarray(keys, dtype=np.int64), [len(o) for o in others])
                right = np.asarray([m for o in others for m in o], dtype=np.int64)
                mses = iter(mse(left, right).tolist())
                for key, members in zip(keys, others, strict=True):
                    group_mses = [next(mses) for _ in members]
                    found.append((folder, int(index[key]), index[members].tolist(), group_mses))
                check()
    finally:
        numba.set_num_threads(threads)
        searcher.close()

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
                    "processes": processes if cluster is None else None,
                    "chunksize": tile_rows if chunked_used else chunksize,
                },
                "files_searched": len(dif),
                **searcher.stats(),
                "pairs_compared_exactly": searcher.summed,
                "matches_found": {"duplicates": duplicates, "similar": similar},
            },
        },
        "total_files": dif.stats["total_files"],
        "invalid_files": dif.stats["invalid_files"],
    }
    return SearchResult(result, lower_quality, stats, dif)
