"""The facade: ``build`` and ``search``. Checks parameters once, picks a backend, and runs it.

This is the only module that chooses between the local backend
(:mod:`fastdif.backends.local`) and the Dask one (:mod:`fastdif.backends.dask`).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import signal
import threading
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime

import numpy as np

from . import params
from .backends import dask
from .backends.local import LocalDecoder, LocalSearcher
from .engine.grouping import drop_distinct, library_groups, unit_groups
from .engine.keep import Facts, folder_parts, reads
from .engine.keep import choose as choose_kept
from .engine.kernels import grid_side
from .engine.matching import (
    CLASSIC_MAX_IMAGES,
    SYMMETRY_NAMES,
    Thumbnails,
    comparable_units,
    cross_mse,
    find_library_matches,
    repository_block_means,
)
from .engine.transforms import compared
from .io.cache import CachedDecoder, decoding_settings, resolve_cache
from .io.decisions import Decisions
from .io.decode import THUMBNAIL_VERSION, Decoded
from .io.discover import discover, folder_name, owning_inputs, validate_directories
from .io.files import open_regular
from .io.metadata import Metadata, frame_count, read_metadata
from .io.partial import Finished, PartialBuild
from .io.store import array_file, create_tensors, new_array, publish, staging_folder, write
from .model import BlockMeans, BuildOptions, Criteria, Repository, load
from .progress import progress_bar
from .result import SearchResult, difpy_result

#: Share of physical memory an in-memory build's thumbnails may take; above
#: it ``build`` asks for a ``store`` instead (see :func:`_check_fits_in_memory`).
MEMORY_SHARE = 0.5


def build(
    *directory: str | os.PathLike | list,
    recursive: bool = True,
    in_folder: bool | str = False,
    limit_extensions: bool = True,
    px_size: int = 50,
    show_progress: bool = True,
    processes: int | None = None,
    cache: str | os.PathLike | bool | None = None,
    scheduler=None,
    store: str | os.PathLike | None = None,
    reference=None,
    **kwargs,
) -> Repository:
    """Find and decode every image under ``directory`` into a repository.

    Parameters
    ----------
    *directory : str, os.PathLike or list of them
        Folders or single files to search.
    recursive : bool, default True
        Walk sub-folders.
    in_folder : bool or "subfolders", default False
        True (difPy's meaning): search each input on its own, a folder with
        its sub-folders; matches never cross inputs, and the result is keyed
        by input (see :func:`_search_groups`). "subfolders": search each
        folder on its own. False: one search of everything.
    limit_extensions : bool, default True
        Read only files with an extension Pillow registers; others are
        reported in ``invalid_files`` as "Unsupported file type".
    px_size : int, default 50
        Thumbnail side in pixels, 10..5000.
    show_progress : bool, default True
        Show a progress bar on stderr.
    processes : int, optional
        CPU cores to use, 1..os.cpu_count(): here the decoding processes.
        None uses all cores.
    cache : str, os.PathLike or bool, optional
        Thumbnail cache (an SQLite file, see :mod:`fastdif.io.cache`): files
        whose resolved path, size and modification time are unchanged are not
        decoded again. A path names the cache file (or a folder to hold it);
        True uses the default file under ``$XDG_CACHE_HOME/fastdif`` (or
        ``~/.cache/fastdif``); None or False (default) decodes every file.
        What the cache did is in ``stats["process"]["build"]["cache"]``; a
        corrupt cache is moved aside with a :class:`fastdif.io.cache.CacheWarning`.
    scheduler : dask.distributed.Client, optional
        Decode as Dask tasks on this client's cluster (needs the ``dask``
        extra); the workers must see the files at the same paths. See
        :mod:`fastdif.backends.dask`.
    store : str or os.PathLike, optional
        With ``scheduler``: a folder to create, on storage the workers share.
        The workers write the thumbnails there (uint8) instead of sending
        them to this process; the folder is a saved repository
        (:func:`fastdif.load` reads it) and the returned repository is
        memory-mapped from it. Not with ``cache``.
    reference : str, os.PathLike, list of them, or Repository, optional
        A library to check the new images in ``directory`` against: folders
        or files, decoded as ``directory`` is (with the same ``cache``), or a
        repository (:func:`fastdif.load` of a saved one). The result's
        ``reference`` holds it; a search then reports only matches that
        involve a new image, and never compares two library images. A file
        found in both is a library image only. Not with ``in_folder`` or
        ``store``.

    Returns
    -------
    Repository

    Raises
    ------
    ValueError, TypeError, FileNotFoundError
        For invalid parameters or missing paths; the message names the parameter.
    FileExistsError
        ``store`` exists, or something else took its name while it was
        built: that is left as it was, and the message says where the
        finished store is (publishing is a rename that never replaces).
    fastdif.io.partial.PartialBuildError
        ``store``'s partial folder (``.NAME.partial`` beside it) is a link,
        not a folder, not a fastdif build, another build's, or made with
        other settings; nothing in it is written or removed.
    OSError
        The disk filled while the store was written (``errno.ENOSPC``):
        what was decoded is journaled; running the same build again when
        there is room resumes it.
    ImportError
        ``scheduler`` is given but Dask is not installed.
    """
    _no_unknown_keywords("build", kwargs)
    start = datetime.now()
    paths = validate_directories(directory)
    options = BuildOptions(
        recursive=params.check_bool("recursive", recursive),
        in_folder=params.check_in_folder(in_folder),
        limit_extensions=params.check_bool("limit_extensions", limit_extensions),
        px_size=params.check_int_range("px_size", px_size, 10, 5000),
    )
    show_progress = params.check_bool("show_progress", show_progress)
    cache_path = resolve_cache(cache)
    library = None
    if reference is not None:
        if options.in_folder is not False or store is not None:
            raise ValueError('"reference" cannot be combined with "in_folder" or "store".')
        library = reference
        if isinstance(reference, (str, os.PathLike, list, tuple)):
            library = build(
                *(reference if isinstance(reference, (list, tuple)) else [reference]),
                recursive=options.recursive,
                limit_extensions=options.limit_extensions,
                px_size=options.px_size,
                show_progress=show_progress,
                processes=processes,
                cache=cache,
                scheduler=scheduler,
            )
        _check_library(library, options.px_size, THUMBNAIL_VERSION)
    staging = target = partial = None
    if store is not None:
        target = os.path.abspath(os.fspath(store))
        if os.path.lexists(target):
            raise FileExistsError(f'Invalid value for "store" parameter: "{target}" exists.')
    if scheduler is not None:
        client = dask.checked_client(scheduler, processes)
        if store is not None:
            if cache_path is not None:
                raise ValueError('"cache" and "store" cannot be combined with "scheduler".')
            staging = staging_folder(target)
        decoder = dask.DaskDecoder(client, options.px_size, staging)
    else:
        processes = params.check_processes(processes)
        decoder = LocalDecoder(options.px_size, processes)
        if store is not None:
            partial = PartialBuild(target, options.px_size, decoding_settings(options.px_size))
    exclude = set() if library is None else _identities(library)
    try:
        dif, excluded = _decode_files(
            paths, options, decoder, cache_path, show_progress, start, processes, exclude, partial
        )
        if library is not None:
            dif.reference = library
            dif.stats["process"]["build"]["reference"] = {
                "images": len(library),
                "files_also_in_reference": excluded,
            }
        if store is None:
            return dif
        written = ("tensors",)
        if partial is not None:
            staging = os.path.dirname(dif.tensors_file)
            partial.close()
            written = ("tensors", "grids", "means")
        write(dif, staging, written)
        dif = None  # closes its map of the tensors, so the folder can move on every system
        try:
            publish(staging, target)
        except FileExistsError:
            if partial is None:
                kept, staging = staging, None  # finished: kept for the user
                advice = "rename it to a free name: fastdif.load reads it"
            else:
                kept = partial.folder
                advice = (
                    f'run the same command again once "{target}" is free to publish it '
                    "(nothing is decoded again)"
                )
            raise FileExistsError(
                f'"{target}" was created by something else while the store was built, and '
                f'was left as it was. The finished store is in "{kept}": {advice}.'
            ) from None
        staging = None
        if partial is not None:
            # The journal and its settings are not part of the saved repository.
            partial.remove()
        return load(target, verify=False)
    except OSError as exc:
        if partial is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise OSError(
            exc.errno,
            f'{exc.strerror} while writing the store "{target}": every file decoded so far '
            f'is kept in "{partial.folder}"; free some space and run the same command again '
            "to resume the build.",
        ) from exc
    finally:
        if partial is not None:
            partial.close()  # journals what was decoded: a build run again resumes
        if staging is not None and (partial is None or staging != partial.folder):
            shutil.rmtree(staging, ignore_errors=True)


def _decode_files(
    paths,
    options: BuildOptions,
    decoder,
    cache_path,
    show_progress,
    start,
    cores,
    exclude,
    partial: PartialBuild | None = None,
):
    """Discover and decode the files under ``paths`` into a repository.

    In memory (float32 thumbnails) by default; with ``partial`` (a local
    build into a store) the thumbnails are written to its folder as they
    come, files it finished before are not decoded again, and the
    repository's tensors are memory-mapped from the folder the store is
    written from; with a decoder that writes thumbnails into a store (a
    Dask decoder with a folder), from the store's tensors file. Files whose
    ``(st_dev, st_ino)`` is in ``exclude`` (those of a library) are left
    out. The repository gets its block means unless its tensors are in a
    Dask store.

    Returns
    -------
    Repository
    excluded : int
        Files left out by ``exclude``.
    """
    found = discover(paths, options.recursive, options.limit_extensions)
    invalid = dict(found.invalid)
    px = options.px_size
    in_store = decoder.folder is not None
    reused: dict[int, Finished] = {}
    if partial is not None:
        for k, path in enumerate(found.files):
            record = partial.reusable(path)
            if record is not None:
                reused[k] = record
        partial.reserve(len(found.files) - len(reused))
    elif not in_store:
        _check_fits_in_memory(len(found.files), px)
    tensors = None
    if partial is None and not in_store:
        tensors = np.empty((len(found.files), px, px, 3), dtype=np.float32)
    shapes = np.empty((len(found.files), 2), dtype=np.int64)
    kept_paths, kept_folders, sizes, mtimes, inodes, rows = [], [], [], [], [], []
    excluded = 0
    with progress_bar(
        len(found.files), "Building", "files", show_progress, done=len(reused)
    ) as bar:
        decode = decoder.decode if in_store else _decoding_copies_once(decoder.decode, cores)
        cached = CachedDecoder(cache_path, px, decode, bar.update)
        fresh = cached.decode([p for k, p in enumerate(found.files) if k not in reused], paths)
        for k, (path, folder) in enumerate(zip(found.files, found.folders, strict=True)):
            item = reused.get(k) or next(fresh)
            if item.identity in exclude:
                excluded += 1
                continue
            decoded = item.decoded
            row = item.row if k in reused else -1
            if partial is not None and k not in reused:
                row = partial.add(path, decoded, item.size, item.mtime_ns, item.identity)
            if decoded.reason is not None:
                invalid[path] = decoded.reason
                continue
            n = len(kept_paths)
            if tensors is not None:
                tensors[n] = np.frombuffer(decoded.thumbnail, dtype=np.uint8).reshape(px, px, 3)
            shapes[n] = decoded.width, decoded.height
            rows.append(row)
            kept_paths.append(path)
            kept_folders.append(folder)
            sizes.append(item.size)
            mtimes.append(item.mtime_ns)
            inodes.append(item.identity)
        for _ in fresh:  # runs the decoder to its end, so a process pool shuts down cleanly
            raise RuntimeError("the decoder returned more results than files")
    n = len(kept_paths)
    tensors_file = None
    if partial is not None:
        folder = partial.finish(np.asarray(rows, dtype=np.int64))
        tensors_file = array_file(folder, "tensors")
    elif in_store:
        tensors_file = create_tensors(decoder.folder, n, px)
        decoder.assemble(tensors_file)
    if tensors_file is not None:
        tensors = np.load(tensors_file, mmap_mode="r", allow_pickle=False)
    elif n < len(tensors):
        tensors = tensors[:n]
    folders, groups = _search_groups(paths, found, kept_paths, kept_folders, options)
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
                    "recursive": options.recursive,
                    "in_folder": options.in_folder,
                    "limit_extensions": options.limit_extensions,
                    "px_size": px,
                    "processes": cores,
                },
            }
        },
        "total_files": n + len(invalid),
        "invalid_files": {"count": len(invalid), "logs": invalid},
    }
    if cached.stats is not None:
        stats["process"]["build"]["cache"] = cached.stats
    stats["process"]["build"].update(decoder.stats())
    if partial is not None:
        stats["process"]["build"]["store"] = {
            "path": partial.target,
            "resumed": len(reused),
            "decoded": len(found.files) - len(reused),
        }
    dif = Repository(
        np.ascontiguousarray(tensors),
        kept_paths,
        shapes[:n].copy(),
        np.asarray(sizes, dtype=np.int64),
        groups,
        folders,
        options.in_folder,
        stats,
        np.asarray(mtimes, dtype=np.int64),
        thumbnail_version=THUMBNAIL_VERSION,
        # st_dev and st_ino are unsigned 64-bit: kept bit for bit in int64.
        inodes=np.array(inodes, dtype=np.uint64).reshape(n, 2).view(np.int64),
        tensors_file=tensors_file,
    )
    if tensors_file is None:  # one pass over the thumbnails in memory
        dif.block_means = repository_block_means(dif.tensors)
    elif partial is not None:  # one pass over the thumbnails just written
        dif.block_means = _block_means_in(os.path.dirname(tensors_file), dif.tensors)
    return dif, excluded


def _decoding_copies_once(decode, threads: int | None):
    """``decode(paths, progress)`` that decodes each content once.

    Of byte-identical files (:func:`_first_copies`) only the first is
    decoded; each copy yields the same :class:`~fastdif.io.decode.Decoded`,
    in its place, and counts as a file decoded for ``progress``. Only the
    thumbnail is shared: each path keeps its own entry, size, time and
    identity (read by the caller), and a failure's reason names the copy.
    """

    def decode_once(paths, progress=None):
        source = _first_copies(paths, threads)
        results = decode([path for k, path in enumerate(paths) if source[k] == k], progress)
        return _with_copies(paths, source, results, progress)

    return decode_once


def _with_copies(paths, source, results, progress):
    """``results`` (one per first copy) in ``paths`` order, each copy given its first's."""
    copies = Counter(first for k, first in enumerate(source) if first != k)
    shared: dict[int, Decoded] = {}
    for k, path in enumerate(paths):
        first = source[k]
        if first == k:
            decoded = next(results)
            if copies[k]:
                shared[k] = decoded
            yield decoded
            continue
        decoded = shared[first]
        copies[first] -= 1
        if not copies[first]:
            del shared[first]
        if decoded.reason is not None:
            reason = decoded.reason.replace(paths[first], path)
            decoded = Decoded(None, 0, 0, reason, decoded.failure)
        if progress:
            progress()
        yield decoded
    yield from results  # none: the caller checks, and it lets a process pool shut down


#: Bytes read first from files of equal size: only files that also begin
#: alike are read whole (so a folder of distinct BMPs, all of one size, is not).
_PREFIX_BYTES = 64 << 10


def _first_copies(paths: list[str], threads: int | None) -> list[int]:
    """For each path, the index of the first path with the same bytes: its own if none.

    Files are compared by size, then by the BLAKE2b hash (256 bits) of their
    first :data:`_PREFIX_BYTES`, then of all their bytes: each step only for
    files still alike, on ``threads`` threads. A file that cannot be read is
    nobody's copy (its decoder reports why).
    """
    alike = _split([list(range(len(paths)))], paths, _size, map)
    pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
    try:
        for key in (lambda path: _digest(path, _PREFIX_BYTES), _digest):
            alike = _split(alike, paths, key, pool.map)
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, waits for no file but those being read
    source = list(range(len(paths)))
    for group in alike:
        for k in group[1:]:
            source[k] = group[0]
    return source


def _split(groups: list[list[int]], paths: list[str], key, mapper) -> list[list[int]]:
    """``groups`` of indexes in ``paths``, split by the ``key`` of each path.

    ``mapper`` is :func:`map` or a thread pool's. Groups of one, and indexes
    whose key is None, are left out.
    """
    members = [k for group in groups for k in group]
    keys = dict(zip(members, mapper(key, [paths[k] for k in members]), strict=True))
    split = defaultdict(list)
    for number, group in enumerate(groups):
        for k in group:
            if keys[k] is not None:
                split[number, keys[k]].append(k)
    return [group for group in split.values() if len(group) > 1]


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _digest(path: str, limit: int | None = None) -> bytes | None:
    """BLAKE2b of the file's first ``limit`` bytes (all: None), or None if it cannot be read.

    hashlib releases the GIL while it hashes.
    """
    digest = hashlib.blake2b(digest_size=32)
    try:
        with open_regular(path) as file:
            if limit is not None:
                digest.update(file.read(limit))
            else:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
    except OSError:
        return None
    return digest.digest()


def _block_means_in(folder: str, tensors) -> BlockMeans:
    """:func:`repository_block_means` of ``tensors``, written to ``folder``'s grids and means files.

    They are memory-mapped, so they are page cache like the thumbnails:
    1.2 kB per image at px 50, not held in this process's memory. Their
    space is reserved first, so a full disk is an OSError, not a SIGBUS.
    """
    n, px = tensors.shape[0], tensors.shape[1]
    g = grid_side(px)
    grids = new_array(array_file(folder, "grids"), np.float32, (n, g, g, 3))
    means = new_array(array_file(folder, "means"), np.float32, (n, 1, 1, 3))
    found = repository_block_means(tensors, chunk=256, out=(grids, means))
    grids.flush()
    means.flush()
    return found


def _check_fits_in_memory(count: int, px: int) -> None:
    """Raise MemoryError before decoding when ``count`` float32 thumbnails need too much memory.

    The limit is :data:`MEMORY_SHARE` of the machine's physical memory
    (no limit where the operating system does not tell it).
    """
    total = _physical_memory()
    needed = count * px * px * 3 * 4
    if total is not None and needed > MEMORY_SHARE * total:
        raise MemoryError(
            f"{count:,} images at px_size {px} need {needed / 2**30:.1f} GiB of thumbnails in "
            f"memory, more than {MEMORY_SHARE:.0%} of this machine's {total / 2**30:.1f} GiB. "
            'Pass store="FOLDER" (command line: --store FOLDER) to stream them to disk as '
            "uint8 (4x smaller, memory-mapped; the same results), or a smaller px_size."
        )


def _physical_memory() -> int | None:
    """Bytes of physical memory, or None where ``os.sysconf`` does not tell."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (AttributeError, ValueError, OSError):
        return None


def _identities(dif: Repository) -> set:
    """The ``(st_dev, st_ino)`` of a repository's files, as the build reads them (known ones)."""
    known = dif.inodes[(dif.inodes != 0).any(axis=1)].view(np.uint64)
    return {(int(device), int(inode)) for device, inode in known.tolist()}


def _check_library(library, px_size: int, thumbnail_version) -> None:
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


def _no_unknown_keywords(function: str, kwargs: dict) -> None:
    """Raise for keyword arguments a function does not take (difPy's message for ``lazy``)."""
    if "lazy" in kwargs:
        raise ValueError(params.LAZY_RENAMED)
    if kwargs:
        raise TypeError(f"{function}() got an unexpected keyword argument {next(iter(kwargs))!r}")


def _search_groups(paths, found, kept_paths, kept_folders, options: BuildOptions):
    """The search groups and their names, for ``options.in_folder``.

    False: one group of all images, named by the common folder of the inputs.
    True (difPy's meaning): one group per input, holding everything found
    under it; a file given on its own is a group of its own (it matches
    nothing), unless it lies in a folder also given, whose group it joins, as
    does a folder given inside another one when ``recursive`` (the outermost
    takes them: a file is searched once, in the largest group difPy searches
    it in). Named by the input as given, less a trailing separator.
    "subfolders": one group per real folder, however its path was spelled;
    named by the first spelling in sorted order.
    """
    mode = options.in_folder
    if mode is False:
        return [paths[0] if len(paths) == 1 else _common_folder(paths)], [range(len(kept_paths))]
    if mode is True:
        owner = owning_inputs(paths, options.recursive)
        root_of = dict(zip(found.files, found.roots, strict=True))
        labels = [folder_name(owner[root_of[path]]) for path in kept_paths]
        real = {label: label for label in labels}
    else:
        labels = [folder_name(folder) for folder in kept_folders]
        real = {label: os.path.realpath(label) for label in labels}
    names: dict[str, str] = {}
    for label in sorted(real):
        names.setdefault(real[label], label)
    folders = sorted(names.values())
    index = {name: n for n, name in enumerate(folders)}
    groups: list[list[int]] = [[] for _ in folders]
    for i, label in enumerate(labels):
        groups[index[names[real[label]]]].append(i)
    return folders, groups


def _common_folder(paths: list[str]) -> str:
    try:
        return os.path.commonpath([os.path.abspath(p) for p in paths])
    except ValueError:  # paths on different drives
        return ""


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


def search(
    dif: Repository,
    similarity: str | float = "duplicates",
    rotate: bool = True,
    same_dim: bool = True,
    show_progress: bool = True,
    processes: int | None = None,
    chunksize: int | None = None,
    scheduler=None,
    reference: Repository | None = None,
    within_new: bool = True,
    keep=None,
    decisions=None,
    show_done: bool = False,
    flip: bool = False,
    color: bool = True,
    normalize: bool = False,
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
        CPU cores to use, 1..os.cpu_count(): here the kernels' threads.
        None uses all cores.
    chunksize : int, optional
        Rows per tile of the chunked path (groups of more than 5,000 images,
        and every group with ``scheduler``); default ``round(1_000_000 / N)``,
        at least 1,024 (4,096 with ``scheduler``).
    scheduler : dask.distributed.Client, optional
        Run the search as Dask tasks on this client's cluster (needs the
        ``dask`` extra); the result is the same as without. See
        :mod:`fastdif.backends.dask`.
    reference : Repository, optional
        A library to check ``dif``'s images against (default
        ``dif.reference``, set by ``build(..., reference=...)``): only
        matches that involve an image of ``dif`` are reported, and pairs of
        library images are never compared (an exact search, pruned by the
        mean window and block bounds, so a large library costs little). A
        library image is always the key of its group and never in
        ``lower_quality``. Not with ``scheduler``, nor with a ``dif`` built
        with ``in_folder``.
    within_new : bool, default True
        With a library: also match ``dif``'s images with each other. False
        reports only matches with the library.
    keep : str or list of str, optional
        The keep-best rule that chooses each group's key (the file kept):
        criteria in order, each breaking the ties left by those before it,
        then path order: "resolution", "size", "newest", "oldest",
        "format:raw>png>heif>jpeg>webp", "prefer:PATH[|PATH...]",
        "avoid:PATH[|PATH...]" (see docs/curate.md). Default (None)
        ``["resolution", "size"]``. Dates and formats are read from the
        headers of group members only. A library image stays its
        group's key; the rule chooses among several. Why each key was kept
        is in ``stats["process"]["search"]["keep"]``.
    decisions : str, os.PathLike or dict, optional
        A decision file (see :mod:`fastdif.io.decisions` and docs/curate.md),
        or a document as :func:`fastdif.io.decisions.read` returns it. Two
        files marked "not a duplicate" are never in one group (see
        :func:`fastdif.engine.grouping.drop_distinct`); a group marked done
        is left out. Group members are identified by the SHA-256 of their
        bytes, read for this. ``stats["process"]["search"]["decisions"]``
        says what the decisions did.
    show_done : bool, default False
        With ``decisions``: keep the groups marked done in the result.
    flip : bool, default False
        Also compare the mirror image (the horizontal flip): with ``rotate``
        the smallest MSE over the eight symmetries of the square, without it
        over the image and its mirror image. How each member matched its
        key, where rotated or mirrored (e.g. "flipped horizontally"), is in
        ``stats["process"]["search"]["transforms"]`` (with ``rotate`` too).
    color : bool, default True
        False: compare the luma of the thumbnails (ITU-R BT.601, Pillow's
        "L"), so greyscale and sepia copies match; MSE on the 0..255 scale.
    normalize : bool, default False
        True: compare thumbnails normalised to zero mean and a contrast of 50
        (per channel, or the luma with ``color=False``), so brightness and
        contrast edits match; the threshold is an MSE between pictures of
        that contrast. With either option an image whose luma standard
        deviation is below 10 (flat: a wall, a sky) is compared as plain
        MSE compares it; see docs/modes.md. Each option makes a float32
        copy of the thumbnails (px * px * 12 bytes per image) for the search.

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
    _no_unknown_keywords("search", kwargs)
    if not isinstance(dif, Repository):
        raise TypeError(
            f'Invalid value for "dif" parameter: must be the object returned by fastdif.build, '
            f"got {type(dif).__name__}."
        )
    start = datetime.now()
    criteria = Criteria(
        max_mse=params.check_similarity(similarity),
        rotate=params.check_bool("rotate", rotate),
        same_dim=params.check_bool("same_dim", same_dim),
        flip=params.check_bool("flip", flip),
        color=params.check_bool("color", color),
        normalize=params.check_bool("normalize", normalize),
    )
    show_progress = params.check_bool("show_progress", show_progress)
    within_new = params.check_bool("within_new", within_new)
    rule = params.check_keep(keep)
    show_done = params.check_bool("show_done", show_done)
    marks = None if decisions is None else Decisions.of(decisions)
    library = dif.reference if reference is None else reference
    if library is not None:
        _check_library(library, dif.px_size, dif.thumbnail_version)
        if scheduler is not None or dif.in_folder:
            raise ValueError('"reference" cannot be combined with "scheduler" or "in_folder".')
    # What the kernels compare: the thumbnails, or their transform (never
    # the saved block means of untransformed thumbnails).
    searched = compared(dif, criteria)
    searched_library = None if library is None else compared(library, criteria)
    client = dask.checked_client(scheduler, processes)
    largest = max((len(g) for g in dif.groups), default=0)
    tile_rows = params.check_chunksize(chunksize, largest)
    new = np.arange(len(dif), dtype=np.int64)
    if library is not None:
        # A file of the library is a library image only, however it was reached.
        new = new[~_in_library(dif, library)]
    units = list(_units(dif, criteria.same_dim, new)) if within_new or library is None else []
    if client is None:
        processes = params.check_processes(processes)
        searcher = LocalSearcher(searched, processes)
        chunked_used = any(len(index) > CLASSIC_MAX_IMAGES for _, index in units)
    else:
        if chunksize is None:
            tile_rows = max(tile_rows, dask.MIN_TILE_SIDE)
        searcher = dask.DaskSearcher(client, searched)
        chunked_used = True
    reasons: dict[int, str] = {}
    chooser = _keeper(rule, dif, library, reasons)
    symmetries: dict[int, int] = {}  # member -> symmetry of the key it matched by
    found = []
    summed = 0
    total = sum(len(index) for _, index in units) + (0 if library is None else new.size)
    with (
        searcher,
        progress_bar(total, "Searching", "images", show_progress) as bar,
        interrupts_between_kernels() as check,
    ):

        def tick(rows):
            bar.update(rows)
            check()

        found_pairs = searcher.pairs(units, criteria, tile_rows, tick)
        if library is None:
            for (folder, index), (i, j, mse) in zip(units, found_pairs, strict=True):
                i, j = _without_distinct(marks, dif.paths, index, i, j, mse)
                groups = unit_groups(
                    index, i, j, mse, dif.shapes, dif.file_sizes, chooser, symmetries
                )
                found += [(folder, key, members, mses) for key, members, mses in groups]
                check()
        else:
            pairs = [
                (index[i], index[j])
                for (_, index), (i, j, _) in zip(units, found_pairs, strict=True)
            ]
            queries = Thumbnails.of_repository(searched)
            if new.size < len(dif):
                queries = Thumbnails.of(
                    np.ascontiguousarray(searched.tensors[new]),
                    dif.shapes[new],
                    queries.means[new],
                )
            i, j, summed = find_library_matches(
                queries, Thumbnails.of_repository(searched_library), criteria, tile_rows, tick
            )
            pairs.append((new[i], len(dif) + j))
            pairs = _library_pairs_without_distinct(
                marks, searched, searched_library, pairs, criteria
            )
            groups = library_groups(
                len(dif),
                np.concatenate([np.empty(0, np.int64)] + [a for a, _ in pairs]),
                np.concatenate([np.empty(0, np.int64)] + [b for _, b in pairs]),
                cross_mse(searched.tensors, searched_library.tensors, criteria),
                np.concatenate([dif.shapes, library.shapes]),
                np.concatenate([dif.file_sizes, library.file_sizes]),
                chooser,
                symmetries,
            )
            found = [(dif.folders[0], key, members, mses) for key, members, mses in groups]
    found.sort(key=lambda g: g[1])
    paths = dif.paths if library is None else dif.paths + library.paths
    found = _without_done(marks, paths, found, show_done)
    result, lower_quality, duplicates, similar = difpy_result(paths, dif.in_folder, found)
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
                    "similarity_mse": criteria.max_mse,
                    "rotate": criteria.rotate,
                    "same_dim": criteria.same_dim,
                    "flip": criteria.flip,
                    "color": criteria.color,
                    "normalize": criteria.normalize,
                    "processes": processes if client is None else None,
                    "chunksize": tile_rows if chunked_used else chunksize,
                },
                "files_searched": len(dif),
                **searcher.stats(),
                "pairs_compared_exactly": searcher.summed + summed,
                "matches_found": {"duplicates": duplicates, "similar": similar},
            },
        },
        "total_files": dif.stats["total_files"],
        "invalid_files": dif.stats["invalid_files"],
    }
    if library is not None:
        stats["process"]["search"]["reference"] = {
            "images": len(library),
            "within_new": within_new,
            "files_also_in_reference": len(dif) - int(new.size),
        }
    stats["process"]["search"]["keep"] = {
        "rule": [criterion.text for criterion in rule],
        "reasons": {paths[key]: reasons[key] for _, key, _, _ in found},
    }
    # How each member matched its key, where not unchanged (a rotation or a flip).
    stats["process"]["search"]["transforms"] = {
        paths[m]: SYMMETRY_NAMES[symmetries[m]]
        for _, _, members, _ in found
        for m in members
        if m in symmetries
    }
    if marks is not None:
        stats["process"]["search"]["decisions"] = marks.stats(show_done)
    # As difPy's search does, the build's stats get the search's entry too
    # (the latest search's); se.stats stays this search's own dict.
    dif.stats["process"]["search"] = stats["process"]["search"]
    return SearchResult(result, lower_quality, stats, dif, criteria, library, decisions=marks)


def _keeper(rule, dif: Repository, library: Repository | None, reasons: dict):
    """``choose(images) -> key`` for the grouping functions: the image ``rule`` keeps.

    Image numbers are ``dif``'s, then ``library``'s. The reason of each key
    goes into ``reasons`` by image number. Dimensions, sizes and modification
    times come from the repositories; dates and formats are read from the
    candidates' headers (:func:`~fastdif.io.metadata.read_metadata`), and only
    when the rule compares them; frame counts always (a header read per candidate).
    """
    fields = reads(rule)

    def facts(k: int) -> Facts:
        repository, i = (dif, k) if k < len(dif) else (library, k - len(dif))
        path = repository.paths[i]
        meta = Metadata()
        if fields & {"format", "taken"}:
            meta = read_metadata(path, "format" in fields, "taken" in fields)
        return Facts(
            width=int(repository.shapes[i, 0]),
            height=int(repository.shapes[i, 1]),
            size=int(repository.file_sizes[i]),
            taken=meta.taken,
            mtime_ns=int(repository.mtimes_ns[i]) if "mtime_ns" in fields else 0,
            format=meta.format,
            folders=folder_parts(path) if "folders" in fields else (),
            frames=frame_count(path),
        )

    def choose(images) -> int:
        images = sorted(int(k) for k in images)  # path order
        position, why = choose_kept(rule, [facts(k) for k in images], library=images[0] >= len(dif))
        reasons[images[position]] = why
        return images[position]

    return choose


def _in_library(dif: Repository, library: Repository) -> np.ndarray:
    """Which of ``dif``'s images are files of ``library`` (the same ``(st_dev, st_ino)``)."""
    known = _identities(library)
    ids = dif.inodes.view(np.uint64).tolist()
    return np.fromiter(((int(d), int(i)) in known for d, i in ids), dtype=bool, count=len(ids))


def _without_distinct(marks, paths, index, i, j, mse):
    """``(i, j)``, matching pairs of positions in ``index``, less those ``marks`` drop.

    Only the images of pairs (group members) are hashed; see
    :func:`~fastdif.engine.grouping.drop_distinct` for which pairs go.
    """
    if marks is None or not marks.distinct or not i.size:
        return i, j
    labels = np.full(index.size, -1, dtype=np.int64)
    members = np.union1d(i, j)
    labels[members] = [marks.label(paths[index[m]]) for m in members.tolist()]
    keep = drop_distinct(index.size, i, j, labels, marks.distinct, mse)
    marks.pairs_dropped += int(keep.size - np.count_nonzero(keep))
    return i[keep], j[keep]


def _library_pairs_without_distinct(marks, dif, library, pairs, criteria):
    """:func:`_without_distinct` of a library search's pairs of image numbers, as one pair."""
    if marks is None:
        return pairs
    i = np.concatenate([np.empty(0, np.int64)] + [a for a, _ in pairs])
    j = np.concatenate([np.empty(0, np.int64)] + [b for _, b in pairs])
    everyone = dif.paths + library.paths
    mse = cross_mse(dif.tensors, library.tensors, criteria)
    return [_without_distinct(marks, everyone, np.arange(len(everyone)), i, j, mse)]


def _without_done(marks, paths, found, show_done):
    """``found`` less the groups ``marks`` has as done (all kept with ``show_done``)."""
    if marks is None:
        return found
    kept = []
    for group in found:
        _, key, members, _ = group
        if marks.is_done([paths[key]] + [paths[m] for m in members]):
            if not show_done:
                marks.groups_hidden += 1
                continue
            marks.done_keys.append(paths[key])
        kept.append(group)
    return kept


def _units(dif: Repository, same_dim: bool, images: np.ndarray):
    """:func:`~fastdif.engine.matching.comparable_units` of ``dif``, of ``images`` only."""
    keep = np.zeros(len(dif), dtype=bool)
    keep[images] = True
    for folder, index in comparable_units(dif, same_dim):
        index = index[keep[index]]
        if index.size > 1:
            yield folder, index
