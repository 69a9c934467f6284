"""The build pipeline: discover, cache, decode on a backend, and collect thumbnails in a sink.

:func:`build` runs it for :func:`fastdif.build` once the parameters are
checked. Thumbnails go to one of three sinks: this process's memory
(float32), the journal of a local build into a store (uint8, written as they
come, so a build run again resumes), or the shards Dask workers write into a
store's folder. Each image's near features
(:func:`fastdif.engine.near.near_features`) are taken from the cache or the
store a build updates where they are stored, and computed in the parent for
the others once the thumbnails are in, a few thousand at a time: each
once, those of the cache's thumbnails then stored there.
"""

from __future__ import annotations

import errno
import os
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from .. import params
from ..backends import dask
from ..backends.local import LocalDecoder
from ..engine.kernels import grid_side
from ..engine.matching import repository_block_means
from ..engine.near import NearFeatures, near_features
from ..io.cache import CachedDecoder, FileThumbnail, decoding_settings
from ..io.copies import decoding_copies_once
from ..io.decode import THUMBNAIL_VERSION, Decoded
from ..io.discover import discover, folder_name, owning_inputs
from ..io.partial import Finished, PartialBuild
from ..io.store import (
    array_file,
    create_tensors,
    discard,
    is_repository,
    new_array,
    publish,
    staging_folder,
    write,
)
from ..model import BlockMeans, BuildOptions, NearRecords, Repository, load, stored_near
from ..progress import progress_bar
from .library import check_library, identities

#: Share of physical memory an in-memory build's thumbnails may take; above
#: it ``build`` asks for a ``store`` instead (see :func:`_check_fits_in_memory`).
MEMORY_SHARE = 0.5


@dataclass(frozen=True)
class Resources:
    """Where a build runs and what it keeps: :func:`fastdif.build`'s own checked parameters.

    Attributes
    ----------
    show_progress : bool
    processes : int or None
        Decoding processes (checked for a local build; Dask checks its own).
    cache : str or None
        The thumbnail cache file.
    scheduler : dask.distributed.Client or None
    store : str or None
        The absolute path of the store to create.
    """

    show_progress: bool = True
    processes: int | None = None
    cache: str | None = None
    scheduler: object = None
    store: str | None = None


def build(paths: list[str], options: BuildOptions, resources: Resources, reference=None):
    """Build the repository of ``paths`` (see :func:`fastdif.build` for what is raised).

    ``reference``: the library, folders and files to build as these are, or a repository.
    """
    start = datetime.now()
    saved = [path for path in paths if os.path.isdir(path) and is_repository(path)]
    if saved:
        return _with_saved(paths, saved, options, resources, reference, start)
    library = None if reference is None else _library(reference, options, resources)
    target = resources.store
    processes = resources.processes
    out = _Store(target)
    if target is not None and os.path.lexists(target):
        out.previous = _previous_store(target, options.px_size, resources)
        out.updates = True
    if resources.scheduler is not None:
        client = dask.checked_client(resources.scheduler, processes)
        if target is not None:
            if resources.cache is not None:
                raise ValueError('"cache" and "store" cannot be combined with "scheduler".')
            out.staging = staging_folder(target)
        decoder = dask.DaskDecoder(client, options.px_size, out.staging)
    else:
        processes = params.check_processes(processes)
        decoder = LocalDecoder(options.px_size, processes)
        if target is not None:
            out.partial = PartialBuild(target, options.px_size, decoding_settings(options.px_size))
    exclude = set() if library is None else identities(library)
    try:
        dif, excluded = _decode_files(
            paths, options, decoder, resources, start, processes, exclude, out
        )
        if library is not None:
            dif.reference = library
            dif.stats["process"]["build"]["reference"] = {
                "images": len(library),
                "files_also_in_reference": excluded,
            }
        if target is None:
            return dif
        out.write(dif)
        dif = None  # closes its map of the tensors, so the folder can move on every system
        return out.publish()
    except OSError as exc:
        resumable = out.disk_full(exc)
        if resumable is None:
            raise
        raise resumable from exc
    finally:
        out.close()


def _library(reference, options: BuildOptions, resources: Resources) -> Repository:
    """The library a build checks against: ``reference`` built as the inputs are, or as given."""
    library = reference
    if isinstance(reference, (str, os.PathLike, list, tuple)):
        sources = reference if isinstance(reference, (list, tuple)) else [reference]
        from_paths = BuildOptions(
            recursive=options.recursive,
            limit_extensions=options.limit_extensions,
            px_size=options.px_size,
        )
        library = build(
            list(sources), from_paths, Resources(**{**resources.__dict__, "store": None})
        )
    check_library(library, options.px_size, THUMBNAIL_VERSION)
    return library


def _with_saved(paths, saved, options: BuildOptions, resources: Resources, reference, start):
    """The repository of ``paths`` where ``saved`` of them are saved repositories (stores).

    Each is loaded as the repository it is, not read as a folder of files;
    the other inputs are built, and all are searched as one. A single saved
    repository is returned as loaded (memory-mapped); several inputs are
    joined in memory (float32), each path once (a file built now is taken
    over its copy in a saved repository), in path order.
    """
    if options.in_folder is not False or resources.store is not None:
        raise params.invalid(
            "directory",
            f'"{saved[0]}" is a saved repository: it is searched as one, not with in_folder '
            "or into a store.",
        )
    parts = []
    others = [path for path in paths if path not in saved]
    if others:
        parts.append(build(others, options, resources))
    for path in saved:
        loaded = load(path)
        if loaded.px_size != options.px_size or loaded.thumbnail_version != THUMBNAIL_VERSION:
            raise params.invalid(
                "directory",
                f'"{path}" holds thumbnails of {loaded.px_size} px, version '
                f"{loaded.thumbnail_version}; this build makes {options.px_size} px, version "
                f"{THUMBNAIL_VERSION}.",
            )
        parts.append(loaded)
    dif = parts[0] if len(parts) == 1 else _joined(parts, paths)
    end = datetime.now()
    build_stats = dif.stats["process"]["build"] = dict(dif.stats["process"]["build"])
    build_stats["duration"] = {
        "start": start.isoformat(),
        "end": end.isoformat(),
        "seconds_elapsed": round((end - start).total_seconds(), 4),
    }
    reused = sum(len(part) for part in parts[len(parts) - len(saved) :])
    build_stats["saved"] = {"paths": list(saved), "reused": reused, "decoded": len(dif) - reused}
    dif.stats["directory"] = list(paths)
    if reference is not None:
        library = _library(reference, options, resources)
        known = identities(library)
        inodes = dif.inodes.view(np.uint64).tolist()
        mine = [k for k, (d, i) in enumerate(inodes) if (int(d), int(i)) not in known]
        if len(mine) < len(dif):
            dif = _joined([dif], paths, mine)
        dif.reference = library
        build_stats = dif.stats["process"]["build"]
        build_stats["reference"] = {
            "images": len(library),
            "files_also_in_reference": len(inodes) - len(mine),
        }
    return dif


def _joined(parts: list[Repository], paths, rows=None) -> Repository:
    """One in-memory repository of ``parts``' images (``rows`` of them), each path once, sorted."""
    every = [(path, p, k) for p, part in enumerate(parts) for k, path in enumerate(part.paths)]
    first: dict[str, tuple[int, int]] = {}
    wanted = None if rows is None else set(rows)
    for number, (path, p, k) in enumerate(every):
        if wanted is None or number in wanted:
            first.setdefault(path, (p, k))
    order = sorted(first)
    n, px = len(order), parts[0].px_size
    _check_fits_in_memory(n, px)
    tensors = np.empty((n, px, px, 3), dtype=np.float32)
    fields = {name: [] for name in ("shapes", "file_sizes", "mtimes_ns", "inodes")}
    taken = [([], []) for _ in parts]  # per part: its rows taken, and where they go
    for row, path in enumerate(order):
        p, k = first[path]
        tensors[row] = parts[p].tensors[k]
        taken[p][0].append(k)
        taken[p][1].append(row)
        for name, values in fields.items():
            values.append(getattr(parts[p], name)[k])
    invalid = {}
    for part in parts:
        invalid.update(part.stats["invalid_files"]["logs"])
    stats = {
        "directory": list(paths),
        "process": {"build": dict(parts[0].stats["process"]["build"])},
        "total_files": n + len(invalid),
        "invalid_files": {"count": len(invalid), "logs": invalid},
    }
    dif = Repository(
        tensors,
        order,
        np.array(fields["shapes"], dtype=np.int64).reshape(n, 2),
        np.array(fields["file_sizes"], dtype=np.int64),
        [range(n)],
        [_common_folder(list(paths))],
        False,
        stats,
        np.array(fields["mtimes_ns"], dtype=np.int64),
        thumbnail_version=THUMBNAIL_VERSION,
        inodes=np.array(fields["inodes"], dtype=np.int64).reshape(n, 2),
    )
    dif.block_means = repository_block_means(dif.tensors)
    joined = NearFeatures.concatenate(
        part.near_features.take(np.asarray(rows, np.int64))
        for part, (rows, _) in zip(parts, taken, strict=True)
    )
    into = np.concatenate([np.asarray(into, np.int64) for _, into in taken])
    dif.near_features = joined.take(np.argsort(into))  # row ``into[k]`` is joined's k-th
    return dif


class _Store:
    """A build into the store ``target``: where it is written, and publishing it.

    ``partial`` (a local build) journals each thumbnail; ``staging`` (a Dask
    build) is the folder the workers write into. Either is published by a
    rename that never replaces; what is left unpublished is removed, or
    kept for a build run again to resume (the journal).
    """

    def __init__(self, target: str | None):
        self.target = target
        self.partial: PartialBuild | None = None
        self.staging: str | None = None
        #: The finished store at ``target`` this build updates (until its sink takes it).
        self.previous: Repository | None = None
        self.updates = False

    def write(self, dif: Repository) -> None:
        """Write what ``dif`` has not written yet into the folder to publish."""
        written = ("tensors",)
        if self.partial is not None:
            self.staging = os.path.dirname(dif.tensors_file)
            self.partial.close()
            written = ("tensors", "grids", "means")
        write(dif, self.staging, written, near=stored_near(dif))

    def publish(self) -> Repository:
        """Rename the written folder to the store, and load the repository from there."""
        try:
            publish(self.staging, self.target, replace=self.updates)
        except FileExistsError:
            if self.partial is None:
                kept, self.staging = self.staging, None  # finished: kept for the user
                advice = "rename it to a free name: fastdif.load reads it"
            else:
                kept = self.partial.folder
                advice = (
                    f'run the same command again once "{self.target}" is free to publish it '
                    "(nothing is decoded again)"
                )
            raise FileExistsError(
                f'"{self.target}" was created by something else while the store was built, and '
                f'was left as it was. The finished store is in "{kept}": {advice}.'
            ) from None
        self.staging = None
        if self.partial is not None:
            # The journal and its settings are not part of the saved repository.
            self.partial.remove()
        return load(self.target, verify=False)

    def disk_full(self, exc: OSError) -> OSError | None:
        """For a full disk under a journaled build, an error that says how to resume; else None."""
        if self.partial is None or exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return None
        return OSError(
            exc.errno,
            f'{exc.strerror} while writing the store "{self.target}": every file decoded so far '
            f'is kept in "{self.partial.folder}"; free some space and run the same command again '
            "to resume the build.",
        )

    def close(self) -> None:
        """Journal what was decoded (a build run again resumes); remove an unpublished folder."""
        if self.partial is not None:
            self.partial.close()
        if self.staging is not None and (
            self.partial is None or self.staging != self.partial.folder
        ):
            discard(self.staging)


def _decode_files(paths, options: BuildOptions, decoder, resources, start, cores, exclude, out):
    """Discover and decode the files under ``paths`` into a repository.

    The thumbnails go to the sink for ``decoder`` and the store ``out``
    (:func:`_sink`). Files whose ``(st_dev, st_ino)`` is in ``exclude``
    (those of a library) are left out.

    Returns
    -------
    Repository
    excluded : int
        Files left out by ``exclude``.
    """
    found = discover(paths, options.recursive, options.limit_extensions)
    px = options.px_size
    sink = _sink(found.files, px, decoder, out)
    kept = _Kept(invalid=dict(found.invalid))
    near_rows = _NearRows(len(found.files))
    total = len(found.files)
    with progress_bar(
        total, "Building", "files", resources.show_progress, done=len(sink.reused)
    ) as bar:
        decode = (
            decoder.decode
            if decoder.folder is not None
            else decoding_copies_once(decoder.decode, cores)
        )
        cached = CachedDecoder(resources.cache, px, decode, bar.update, near_rows.layout)
        fresh = cached.decode([p for k, p in enumerate(found.files) if k not in sink.reused], paths)
        for k, (path, folder) in enumerate(zip(found.files, found.folders, strict=True)):
            item = sink.reused.get(k) or next(fresh)
            if item.identity in exclude:
                kept.excluded += 1
                continue
            row = sink.record(k, path, item)
            if item.decoded.reason is not None:
                kept.invalid[path] = item.decoded.reason
                continue
            sink.put(len(kept.paths), item.decoded)
            cache_key = item.features_key if isinstance(item, FileThumbnail) else None
            near_rows.put(len(kept.paths), sink.near_record(item), cache_key)
            kept.add(path, folder, item, row)
        for _ in fresh:  # runs the decoder to its end, so a process pool shuts down cleanly
            raise RuntimeError("the decoder returned more results than files")
    n = len(kept.paths)
    tensors, tensors_file = sink.finish(kept.rows, n)
    folders, groups = _search_groups(paths, found, kept.paths, kept.folders, options)
    stats = _stats(paths, options, cores, start, kept)
    build_stats = stats["process"]["build"]
    if cached.stats is not None:
        build_stats["cache"] = cached.stats
    build_stats.update(decoder.stats())
    build_stats.update(sink.stats(total))
    dif = Repository(
        np.ascontiguousarray(tensors),
        kept.paths,
        np.array(kept.shapes, dtype=np.int64).reshape(n, 2),
        np.asarray(kept.sizes, dtype=np.int64),
        groups,
        folders,
        options.in_folder,
        stats,
        np.asarray(kept.mtimes, dtype=np.int64),
        thumbnail_version=THUMBNAIL_VERSION,
        # st_dev and st_ino are unsigned 64-bit: kept bit for bit in int64.
        inodes=np.array(kept.inodes, dtype=np.uint64).reshape(n, 2).view(np.int64),
        tensors_file=tensors_file,
    )
    means = sink.block_means(dif.tensors)
    if means is not None:
        dif.block_means = means
    dif.near_features = near_rows.features(dif.tensors)
    cached.store_features(near_rows.for_cache())
    return dif, kept.excluded


class _NearRows:
    """Each kept image's near features: stored ones as they come, the others computed at the end.

    Those computed for the cache's thumbnails are then handed to it
    (:meth:`for_cache`), so each is computed once. Memory: one record
    (:class:`~fastdif.model.NearRecords`) and a flag per file, and a key per
    thumbnail the cache wants features of.
    """

    #: Thumbnails read at a time when computing (bounds the memory of a store's build).
    CHUNK = 4096

    def __init__(self, count: int):
        self.layout = NearRecords()
        self.records = np.empty(count, self.layout.dtype)
        self.known = np.zeros(count, dtype=bool)
        #: ``(n, features_key)`` of the images whose features the cache wants.
        self.cache_keys: list[tuple] = []

    def put(self, n: int, record, cache_key=None) -> None:
        """Keep the ``n``-th kept image's stored record (bytes or a record), if there is one.

        Else note ``cache_key`` (a :attr:`~fastdif.io.cache.FileThumbnail.features_key`
        or None): the cache stores the features computed for this image.
        """
        if record is None:
            if cache_key is not None:
                self.cache_keys.append((n, cache_key))
            return
        if isinstance(record, bytes):
            record = np.frombuffer(record, self.layout.dtype)[0]
        self.records[n] = record
        self.known[n] = True

    def features(self, tensors) -> NearFeatures:
        """The features of the ``len(tensors)`` kept images, the missing ones from ``tensors``."""
        n = len(tensors)
        records = self.records[:n]
        missing = np.flatnonzero(~self.known[:n])
        for a in range(0, len(missing), self.CHUNK):
            rows = missing[a : a + self.CHUNK]
            records[rows] = self.layout.records(near_features(tensors[rows], chunk=256))
        return self.layout.features(self.layout.definition, records)

    def for_cache(self):
        """Yield ``(features_key, record)`` of the images the cache wants, once computed."""
        for n, key in self.cache_keys:
            yield key, self.records[n]


@dataclass
class _Kept:
    """What a build keeps of each file decoded (in order), and the files it does not."""

    invalid: dict
    excluded: int = 0

    def __post_init__(self):
        self.paths, self.folders, self.shapes, self.rows = [], [], [], []
        self.sizes, self.mtimes, self.inodes = [], [], []

    def add(self, path, folder, item, row: int) -> None:
        self.paths.append(path)
        self.folders.append(folder)
        self.shapes.append((item.decoded.width, item.decoded.height))
        self.rows.append(row)
        self.sizes.append(item.size)
        self.mtimes.append(item.mtime_ns)
        self.inodes.append(item.identity)


def _stats(paths, options: BuildOptions, cores, start: datetime, kept: _Kept) -> dict:
    """The build's stats, difPy's shape."""
    end = datetime.now()
    return {
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
                    "px_size": options.px_size,
                    "processes": cores,
                },
            }
        },
        "total_files": len(kept.paths) + len(kept.invalid),
        "invalid_files": {"count": len(kept.invalid), "logs": kept.invalid},
    }


def _sink(files: list[str], px: int, decoder, out: _Store):
    """Where the thumbnails of ``files`` go: a store's journal, a Dask store's shards, or memory."""
    if out.partial is not None:
        previous, out.previous = out.previous, None  # the sink holds the only reference
        return _Journal(files, out.partial, previous)
    if decoder.folder is not None:
        return _Shards(decoder, px)
    return _Memory(len(files), px)


class _Sink:
    """Where a build's thumbnails go; by default nowhere (the decoder keeps them)."""

    def __init__(self):
        #: Records of files decoded by an earlier run of this build, by position.
        self.reused: dict = {}

    def record(self, k: int, path: str, item) -> int:
        """Note file ``k``'s result (valid or not); its row in the sink's journal, or -1."""
        return -1

    def put(self, n: int, decoded) -> None:
        """Keep the thumbnail of the ``n``-th valid file."""

    def finish(self, rows: list[int], n: int):
        """The ``n`` thumbnails (``rows``: their journal rows) and the file holding them, if any."""
        raise NotImplementedError

    def stats(self, total: int) -> dict:
        return {}

    def near_record(self, item):
        """The stored near features of a file's result ``item`` (a cache hit's), or None."""
        return item.features if isinstance(item, FileThumbnail) else None

    def block_means(self, tensors) -> BlockMeans | None:
        return None


class _Memory(_Sink):
    """Thumbnails in this process's memory, one float32 array."""

    def __init__(self, count: int, px: int):
        super().__init__()
        _check_fits_in_memory(count, px)
        self.px = px
        self.tensors = np.empty((count, px, px, 3), dtype=np.float32)

    def put(self, n: int, decoded) -> None:
        self.tensors[n] = np.frombuffer(decoded.thumbnail, dtype=np.uint8).reshape(
            self.px, self.px, 3
        )

    def finish(self, rows: list[int], n: int):
        return self.tensors[:n], None

    def block_means(self, tensors) -> BlockMeans:
        return repository_block_means(tensors)  # one pass over the thumbnails in memory


class _Journal(_Sink):
    """A local build into a store: each thumbnail journaled in the partial folder as it comes.

    Files the journal finished before (a build run again) are not decoded
    again, nor are files of ``previous`` (the finished store this build
    updates) unchanged since: same path, size, modification time and
    ``(st_dev, st_ino)``, the checks of a resumed build; their thumbnails
    are copied into the journal as they come.
    """

    def __init__(self, files: list[str], partial: PartialBuild, previous: Repository | None):
        super().__init__()
        self.partial = partial
        self.previous = previous
        self.folder = None
        self.copied = 0
        #: The near features of ``previous``, as records (computed there if it held none).
        self.previous_near = None if previous is None else stored_near(previous)[1]
        rows = {} if previous is None else {p: r for r, p in enumerate(previous.paths)}
        for k, path in enumerate(files):
            record = partial.reusable(path)
            if record is None and path in rows:
                record = _unchanged(previous, rows[path], path)
                self.copied += record is not None
            if record is not None:
                self.reused[k] = record
        partial.reserve(len(files) - len(self.reused) + self.copied)

    def record(self, k: int, path: str, item) -> int:
        if isinstance(item, _Unchanged):
            thumbnail = np.ascontiguousarray(self.previous.tensors[item.row]).tobytes()
            decoded = Decoded(thumbnail, item.width, item.height)
            return self.partial.add(path, decoded, item.size, item.mtime_ns, item.identity)
        if k in self.reused:
            return item.row
        return self.partial.add(path, item.decoded, item.size, item.mtime_ns, item.identity)

    def near_record(self, item):
        if isinstance(item, _Unchanged):
            return self.previous_near[item.row]
        return super().near_record(item)

    def finish(self, rows: list[int], n: int):
        self.previous = None  # its thumbnails' map closed: the store can be replaced
        self.folder = self.partial.finish(np.asarray(rows, dtype=np.int64))
        tensors_file = array_file(self.folder, "tensors")
        return np.load(tensors_file, mmap_mode="r", allow_pickle=False), tensors_file

    def stats(self, total: int) -> dict:
        reused = len(self.reused)
        store = {
            "path": self.partial.target,
            "resumed": reused - self.copied,
            "reused": self.copied,
            "decoded": total - reused,
        }
        return {"store": store}

    def block_means(self, tensors) -> BlockMeans:
        return _block_means_in(self.folder, tensors)  # one pass over the thumbnails just written


class _Unchanged(Finished):
    """A file of the store a build updates, unchanged since: its row there, and its facts."""


def _unchanged(previous: Repository, row: int, path: str) -> _Unchanged | None:
    """Row ``row`` of ``previous`` if the file at ``path`` is unchanged since it was decoded."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    identity = tuple(int(v) for v in previous.inodes[row].view(np.uint64))
    recorded = (int(previous.file_sizes[row]), int(previous.mtimes_ns[row]), identity)
    if (st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)) != recorded or identity == (0, 0):
        return None
    width, height = (int(v) for v in previous.shapes[row])
    return _Unchanged(row, width, height, *recorded)


def _previous_store(target: str, px_size: int, resources: Resources) -> Repository:
    """The finished store at ``target`` a build updates: checked and loaded (its CRCs verified).

    Raises FileExistsError when ``target`` is anything else (a link, a
    user's folder or file), or the store cannot be updated here.
    """
    if not is_repository(target):
        raise params.invalid(
            "store", f'"{target}" exists and is not a fastdif store; it was left as it was.',
            FileExistsError,
        )  # fmt: skip
    if resources.scheduler is not None:
        raise params.invalid(
            "store", f'"{target}" exists: a store is updated by a local build (no scheduler).',
            FileExistsError,
        )  # fmt: skip
    previous = load(target)
    if previous.px_size != px_size or previous.thumbnail_version != THUMBNAIL_VERSION:
        raise params.invalid(
            "store",
            f'"{target}" holds thumbnails of {previous.px_size} px, version '
            f"{previous.thumbnail_version}; this build makes {px_size} px, version "
            f"{THUMBNAIL_VERSION}: give another store.",
            FileExistsError,
        )
    return previous


class _Shards(_Sink):
    """A Dask build into a store: the workers write shards, assembled into its tensors file.

    Its block means are computed when it is searched.
    """

    def __init__(self, decoder, px: int):
        super().__init__()
        self.decoder = decoder
        self.px = px

    def finish(self, rows: list[int], n: int):
        tensors_file = create_tensors(self.decoder.folder, n, self.px)
        self.decoder.assemble(tensors_file)
        return np.load(tensors_file, mmap_mode="r", allow_pickle=False), tensors_file


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
