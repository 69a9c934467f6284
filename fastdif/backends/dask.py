"""The Dask backend: ``build`` and ``search`` with ``scheduler=client``.

Needs the ``dask`` extra (``pip install "fastdif[dask]"``); ``distributed``
is imported only when a scheduler is given, so without it nothing imports Dask.
The work is the local backend's: the same decoder and the same engine
functions, run as tasks.

What the workers need: the same fastdif installed, the image files at the
paths the client found them, and (with ``store``) the store folder at the
same path: a shared filesystem.

Build
    Files go to tasks in shards of :data:`SHARD_FILES`; each task decodes its
    shard with :func:`fastdif.io.decode.decode_file`, the local path's code, and
    returns the thumbnails (uint8) and the reasons of invalid files. With a
    ``store`` folder, tasks write their thumbnails there as ``.npy`` shards
    instead, which tasks then copy into one ``tensors.npy``: the client never
    holds the thumbnails, and the store is a saved repository
    (:mod:`fastdif.io.store`) that the returned repository is memory-mapped from.
    A shard whose task keeps killing its worker (Dask gives up after
    ``distributed.scheduler.allowed-failures`` deaths) is decoded again file
    by file, so only the file that kills a worker is reported (the retry
    policy of :class:`fastdif.io.decode.Retries`).

Search
    Tasks compute the channel means (or, for threshold 0, the rotation
    hashes) of :data:`MAP_IMAGES` images each. For a threshold above 0 the
    client makes the engine's plan of each unit
    (:func:`fastdif.engine.matching.unit_plan`) or of the new images
    against a library (:func:`~fastdif.engine.matching.library_plan`), the
    plan the local backend runs, and cuts each tile into pieces of at most
    ``chunksize`` rows and ``2 * chunksize`` images
    (:meth:`fastdif.engine.matching.Tile.pieces`); small pieces (of every
    set of equal dimensions at once) are laid end to end into tasks of up to
    ``2 * chunksize`` images. A task reads its images, computes their block
    means and runs the local path's kernels
    (:func:`fastdif.engine.matching.match_items`), returning only the
    matches. Threshold 0 uses the engine's hashing, as the local backend
    does (:class:`fastdif.backends.base.Searcher`). The client merges the
    matches into groups and computes each member's MSE to its key as the
    local path does, so results are the same.

    Tasks read thumbnails (the repository's, and a library's) from the
    ``.npy`` file they are memory-mapped from (a store, :func:`fastdif.load`,
    or ``np.load(..., mmap_mode="r")``) by path; any other array is
    scattered to every worker once per search.

Threads
    Each task runs Numba's kernels on ``cores // dask_threads`` threads (at
    least 1), where ``cores`` are the cores of its host and ``dask_threads``
    the Dask worker threads on that host, so Dask's threads and Numba's
    together never oversubscribe the cores. Give workers one thread each
    (``LocalCluster(n_workers=k, threads_per_worker=1)``, ``dask worker
    --nthreads 1``) and k up to the number of cores.

Fault tolerance is Dask's: the tasks of a lost worker are run again elsewhere.
Thumbnails scattered to the workers have no lineage: when a worker dies with
the last replica, the search scatters them again and resubmits the tasks that
read them.
Per-file time limits of the local build do not apply (tasks run in worker
threads, where no timer signal reaches).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from contextlib import contextmanager, nullcontext

import numba
import numpy as np

from .. import params
from ..engine.kernels import block_means, rotation_hashes
from ..engine.matching import Thumbnails, library_plan, match_items, unit_plan
from ..engine.warmup import load_kernels
from ..io import decode as _decode
from ..io import store
from ..io.decode import FILE_TIME_LIMIT, Decoded, Failure, Retries
from ..model import Criteria
from .base import Searcher

#: Files decoded per build task.
SHARD_FILES = 64

#: Images per task when computing channel means or rotation hashes.
MAP_IMAGES = 4096

#: Least side of a search tile (``chunksize`` when it is not given): a tile
#: task holds two blocks of this many thumbnails (71 MB of uint8 ones at px 50).
MIN_TILE_SIDE = 4096

#: Times the search scatters its thumbnails again after a worker lost them.
RESENDS = 2

#: Kernels the search tasks run, on writable copies of the thumbnails.
_TASK_KERNELS = ("rotation_hashes", "block_means", "match_ranges")


def _distributed():
    """The ``distributed`` package, or an ImportError that says what to install."""
    try:
        import distributed
    except ImportError as exc:
        raise ImportError(
            '"scheduler" needs Dask, which is not installed: pip install "fastdif[dask]"'
        ) from exc
    return distributed


def client_of(scheduler):
    """Check that ``scheduler`` is a Dask client, and that Dask is installed.

    Raises
    ------
    ImportError
        Dask (``dask.distributed``) is not installed.
    TypeError
        ``scheduler`` is not a ``dask.distributed.Client``.
    """
    client = _distributed().Client
    return params.check_type(
        "scheduler", scheduler, client, "a dask.distributed.Client", show_type=True
    )


def checked_client(scheduler, processes):
    """The Dask client to run on, or None for the local path.

    Raises
    ------
    ImportError, TypeError
        See :func:`client_of`.
    ValueError
        ``processes`` is given with a scheduler: the Dask workers' threads
        set the parallelism there.
    """
    if scheduler is None:
        return None
    client = client_of(scheduler)
    if processes is not None:
        raise params.invalid(
            "processes",
            'with "scheduler" the Dask workers\' threads do the work; leave processes=None.',
        )
    return client


def connect(address: str):
    """A client of the Dask scheduler at ``address``, waiting up to 10 s for it.

    Raises
    ------
    ImportError
        Dask is not installed.
    ValueError, OSError
        ``address`` is malformed, or no scheduler answers there.
    """
    return _distributed().Client(address, timeout="10s")


class _Tasks:
    """Submits tasks to a client and counts them."""

    def __init__(self, client):
        self.client = client
        self.count = 0
        try:
            workers = client.scheduler_info(n_workers=-1)["workers"]
        except TypeError:  # distributed before 2025.4 lists every worker by default
            workers = client.scheduler_info()["workers"]
        per_host = Counter()
        for info in workers.values():
            per_host[info["host"]] += info["nthreads"]
        #: Dask threads on each worker's host, by worker address.
        self.host_threads = {address: per_host[info["host"]] for address, info in workers.items()}
        #: The hosts the workers run on.
        self.hosts = sorted({info["host"] for info in workers.values()})

    def first_on_each_host(self, function, *args) -> None:
        """Run ``function(*args)`` on one worker of each host, before other tasks.

        Numba's on-disk cache may crash processes that fill it at once
        (numba issues 4807 and 10128): the first task on a host fills it, the
        other workers there then load it. Each task asks for its host, not a
        worker: a worker that died and came back has a new address, and a
        task bound to the old one would wait forever. The restriction is loose,
        so a host that left the cluster cannot hold the search up either.
        """
        futures = [
            self.client.submit(
                function, *args, workers=[host], allow_other_workers=True, pure=False
            )
            for host in self.hosts
        ]
        self.count += len(futures)
        self.client.gather(futures)

    def run(self, function, calls, progress=None, weights=None, tolerate=(), resend=None):
        """Run ``function(*args)`` for each ``args`` in ``calls``; results in order.

        ``progress(weight)`` is called as each task succeeds. A task failing
        with an exception of the ``tolerate`` types has that exception as its
        result; any other failure raises. Tasks still pending when this
        returns or raises are cancelled.

        Scattered data has no lineage: a worker that dies with the only
        replica (the scheduler's memory manager drops extra replicas) takes it
        away, and the tasks that read it are cancelled. With ``resend``, such
        tasks are submitted again (at most :data:`RESENDS` times) with their
        first argument replaced by ``resend()``, the data scattered anew.
        """
        from distributed import as_completed
        from distributed.client import FutureCancelledError

        results = [None] * len(calls)
        pending = list(range(len(calls)))
        for attempt in range(RESENDS + 1):
            futures = [self.client.submit(function, *calls[k], pure=False) for k in pending]
            self.count += len(futures)
            position = {future.key: k for k, future in zip(pending, futures, strict=True)}
            lost = []
            try:
                for future in as_completed(futures):
                    k = position[future.key]
                    try:
                        results[k] = future.result()
                    except tolerate as exc:
                        results[k] = exc
                        continue
                    except FutureCancelledError:
                        if resend is None or attempt == RESENDS:
                            raise
                        lost.append(k)
                        continue
                    if progress is not None:
                        progress(1 if weights is None else weights[k])
            finally:
                self.client.cancel([f for f in futures if not f.done()])
            if not lost:
                break
            source = resend()
            calls = [(source, *args[1:]) for args in calls]
            pending = sorted(lost)
        return results

    def stats(self) -> dict:
        return {
            "scheduler": self.client.scheduler.address,
            "workers": len(self.host_threads),
            "tasks": self.count,
        }


#: Held around kernel calls where Numba's threading layer is ``workqueue``,
#: which aborts when two threads of a process launch parallel kernels at once.
_WORKQUEUE_LOCK = threading.Lock()


def _serial_launches() -> bool:
    try:
        return numba.threading_layer() == "workqueue"
    except ValueError:  # no parallel kernel has run yet: the layer is not chosen
        return True


@contextmanager
def _numba_threads(host_threads):
    """In a task: Numba's threads set to this worker's share of its host's cores."""
    from distributed import get_worker

    worker = get_worker()
    dask_threads = host_threads.get(worker.address, worker.state.nthreads)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    with _WORKQUEUE_LOCK if _serial_launches() else nullcontext():
        previous = numba.get_num_threads()
        numba.set_num_threads(max(1, min(cores // dask_threads, numba.config.NUMBA_NUM_THREADS)))
        try:
            yield
        finally:
            numba.set_num_threads(previous)


# ------------------------------------------------------------------------ search


def _npy_file(tensors) -> str | None:
    """The ``.npy`` file ``tensors`` is the whole memory map of, if any."""
    filename = getattr(tensors, "filename", None)
    if not isinstance(tensors, np.memmap) or not filename or not tensors.flags.c_contiguous:
        return None
    filename = os.fspath(filename)
    try:
        whole = np.load(filename, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError):
        return None
    layout = (whole.shape, whole.dtype, whole.offset)
    return filename if layout == (tensors.shape, tensors.dtype, tensors.offset) else None


def _rows(source, ids, dtype=None) -> np.ndarray:
    """In a task: thumbnails ``ids`` of a ``.npy`` file or of an array (as ``dtype``)."""
    if isinstance(source, str):
        source = np.load(source, mmap_mode="r", allow_pickle=False)
    return np.ascontiguousarray(source[ids], dtype=dtype)


def _channel_means(sources, which, ids, threads):
    with _numba_threads(threads):
        return block_means(_rows(sources[which], ids), 1)


def _rotation_hashes(sources, which, ids, threads, flip):
    with _numba_threads(threads):
        return rotation_hashes(_rows(sources[which], ids), flip)


def _match_tiles(sources, which, dtype, row_set, candidate_set, entries, criteria, threads):
    """In a task: pieces of tiles (:class:`fastdif.engine.matching.Piece`) laid end to end.

    ``row_set`` and ``candidate_set`` are ``(ids, shapes, means)`` of images
    of ``sources[0]`` and of ``sources[which]``, read as ``dtype``; entry
    ``e`` of ``entries = (rows, begins, stops)`` compares row image
    ``rows[e]`` with candidates ``begins[e]:stops[e]``. Returns the matches
    as image ids, and the pairs no bound skipped.
    """
    sets = (row_set, candidate_set)
    if which == 0:  # one set: each image read once, rows and candidates pointing into it
        together = [np.concatenate(pair) for pair in zip(row_set, candidate_set, strict=True)]
        ids, first, at = np.unique(together[0], return_index=True, return_inverse=True)
        sets = ((ids, together[1][first], together[2][first]),)
        rows, order = at[: row_set[0].size][entries[0]], at[row_set[0].size :]
    else:
        rows, order = entries[0], np.arange(candidate_set[0].size, dtype=np.int64)
    read = (sources[0], sources[which])[: len(sets)]
    with _numba_threads(threads):
        found = [
            Thumbnails.of(_rows(source, ids, dtype), shapes, means)
            for source, (ids, shapes, means) in zip(read, sets, strict=True)
        ]
        i, j, summed = match_items(found[0], rows, found[-1], order, *entries[1:], criteria)
    return sets[0][0][i], sets[-1][0][j], summed


class DaskSearcher(Searcher):
    """Searches a repository's comparable units, and new images against a library, as Dask tasks.

    See the module notes.
    """

    def __init__(self, client, dif):
        super().__init__(dif)
        self.tasks = _Tasks(client)
        #: The repositories tasks read thumbnails of: this one, then a library's.
        self.sets = [dif]
        #: Per set, the ``.npy`` file tasks read its thumbnails from (None: scattered).
        self.files = [dif.tensors_file or _npy_file(dif.tensors)]
        self.sources = list(self.files)
        self._loaded = set()
        self._load_kernels(dif.tensors.dtype)

    def _load_kernels(self, *dtypes) -> None:
        # Here first (a LocalCluster shares this machine's cache), then on each host.
        for dtype in {np.dtype(d) for d in dtypes} - self._loaded:
            load_kernels(dtype, _TASK_KERNELS)
            self.tasks.first_on_each_host(load_kernels, dtype, _TASK_KERNELS)
            self._loaded.add(dtype)

    def thumbnails(self) -> tuple:
        """What tasks read each set's thumbnails from: the ``.npy`` path, or the scattered array."""
        for k, dif in enumerate(self.sets):
            if self.sources[k] is None:
                data = np.ascontiguousarray(dif.tensors)
                self.sources[k] = self.tasks.client.scatter(data, broadcast=True, hash=False)
        return tuple(self.sources)

    def _scattered(self) -> list:
        """The thumbnails scattered so far (the others are read by path)."""
        return [s for s in self.sources if s is not None and not isinstance(s, str)]

    def _scatter_again(self):
        """The thumbnails scattered anew, after a worker died with the last replica."""
        self.tasks.client.cancel(self._scattered())
        self.sources = list(self.files)
        return self.thumbnails()

    def _run(self, function, calls, progress=None, weights=None):
        """``tasks.run``, resending scattered thumbnails a dead worker took with it."""
        resend = self._scatter_again if None in self.files else None
        return self.tasks.run(function, calls, progress, weights, resend=resend)

    def __exit__(self, *exc) -> None:
        """Release the thumbnails scattered to the workers."""
        if self._scattered():
            self.tasks.client.cancel(self._scattered())

    def stats(self) -> dict:
        return {"dask": {**self.tasks.stats(), "thumbnails": self.files[0] or "scattered"}}

    def _per_block(self, function, which, ids, *more):
        """``function(sources, which, ids, threads, *more)`` over ``ids`` in tasks of
        :data:`MAP_IMAGES` images, concatenated."""
        sources, threads = self.thumbnails(), self.tasks.host_threads
        calls = [
            (sources, which, ids[a : a + MAP_IMAGES], threads, *more)
            for a in range(0, ids.size, MAP_IMAGES)
        ]
        return np.concatenate(self._run(function, calls))

    def rotation_hashes(self, indexes, flip):
        if not indexes:
            return
        hashes = self._per_block(_rotation_hashes, 0, np.concatenate(indexes), flip)
        starts = np.cumsum([0] + [index.size for index in indexes])
        for k in range(len(indexes)):
            yield hashes[starts[k] : starts[k + 1]]

    def matches(self, indexes, criteria: Criteria, tile_rows, progress):
        """Every unit's plan goes in one round of tasks, small pieces packed together.

        So many small units (``same_dim``) cost about as much as one large
        one. All pairs summed are counted with the first unit.
        """
        if not indexes:
            return
        every = np.concatenate(indexes)
        starts = np.cumsum([0] + [index.size for index in indexes])
        means = np.empty((len(self.dif), 1, 1, 3), dtype=np.float32)
        means[every] = self._per_block(_channel_means, 0, every)
        plans = [(unit_plan(means[index], criteria.max_mse, tile_rows), index, index)
                 for index in indexes]  # fmt: skip
        found = (self.dif.shapes, means)
        a, b, summed = self._execute(plans, found, found, 0, criteria, tile_rows, progress)
        i, j = np.minimum(a, b), np.maximum(a, b)
        unit_of = np.empty(len(self.dif), dtype=np.int64)
        unit_of[every] = np.repeat(np.arange(len(indexes)), np.diff(starts))
        by_unit = np.argsort(unit_of[i], kind="stable")
        bounds = np.searchsorted(unit_of[i][by_unit], np.arange(len(indexes) + 1))
        for k, index in enumerate(indexes):
            mine = by_unit[bounds[k] : bounds[k + 1]]
            # Image ids ascend with positions in ``index``, so i < j still holds.
            unit_i, unit_j = np.searchsorted(index, i[mine]), np.searchsorted(index, j[mine])
            first = np.lexsort((unit_j, unit_i))
            yield unit_i[first], unit_j[first], summed if k == 0 else 0

    def library_matches(self, new, library, criteria: Criteria, tile_rows, progress):
        """The library's thumbnails go to the tasks as the repository's do."""
        if not (new.size and len(library)):
            progress(new.size)
            return np.empty(0, np.int64), np.empty(0, np.int64), 0
        self.sets.append(library)
        self.files.append(library.tensors_file or _npy_file(library.tensors))
        self.sources.append(self.files[-1])
        which = len(self.sets) - 1
        both = np.result_type(self.dif.tensors.dtype, library.tensors.dtype)
        self._load_kernels(library.tensors.dtype, both)
        ids = np.arange(len(library), dtype=np.int64)
        library_means = self._per_block(_channel_means, which, ids)
        means = np.empty((len(self.dif), 1, 1, 3), dtype=np.float32)
        means[new] = self._per_block(_channel_means, 0, new)
        plan = library_plan(means[new], library_means, criteria.max_mse, tile_rows)
        i, j, summed = self._execute(
            [(plan, new, ids)], (self.dif.shapes, means), (library.shapes, library_means),
            which, criteria, tile_rows, progress,
        )  # fmt: skip
        first = np.lexsort((j, i))
        return i[first], j[first], summed

    def _execute(self, plans, row_set, candidate_set, which, criteria, side, progress):
        """Run ``plans`` as tasks: ``(i, j, summed)``, the matches as image ids.

        Each plan comes with the image ids of its rows and of its candidates;
        ``row_set`` and ``candidate_set`` are ``(shapes, means)`` of all images
        of the repository and of set ``which``. Tiles are cut into pieces of
        at most ``2 * side`` images (:meth:`~fastdif.engine.matching.Tile.pieces`),
        small ones laid end to end into tasks of up to as many, all in one round.
        """
        batches, rows = _Batches(2 * side), 0
        for plan, row_ids, candidate_ids in plans:
            rows += plan.rows.size
            for piece in plan.pieces(side):
                r, c = row_ids[piece.row_ids], candidate_ids[piece.candidate_ids]
                # The images a task reads: one set's are read once (see _match_tiles).
                batches.add(r, c, piece, np.union1d(r, c).size if which == 0 else r.size + c.size)
        sources, threads = self.thumbnails(), self.tasks.host_threads
        dtype = np.result_type(self.sets[0].tensors.dtype, self.sets[which].tensors.dtype)
        calls = [
            (sources, which, dtype, (r, *(a[r] for a in row_set)),
             (c, *(a[c] for a in candidate_set)), entries, criteria, threads)
            for r, c, *entries in batches.arrays()
        ]  # fmt: skip
        found = self._run(_match_tiles, calls, progress, batches.weights)
        if rows > sum(batches.weights):
            progress(rows - sum(batches.weights))  # rows without a piece
        i = np.concatenate([np.empty(0, np.int64)] + [f[0] for f in found])
        j = np.concatenate([np.empty(0, np.int64)] + [f[1] for f in found])
        return i, j, sum(int(f[2]) for f in found)


class _Batches:
    """Pieces of tiles laid end to end into tasks of at most ``limit`` images each."""

    def __init__(self, limit: int):
        self.limit = limit
        #: Per task: its pieces' shares of their tiles' rows (for progress).
        self.weights: list[float] = []
        self._parts: list[tuple[list, ...]] = []  # per task: row ids, candidate ids, entries
        self._size = self._rows = self._candidates = 0  # of the last task so far

    def add(self, row_ids, candidate_ids, piece, size: int) -> None:
        """Add a piece that reads ``size`` images."""
        if not self._parts or self._size + size > self.limit:
            self._parts.append(([], [], [], [], []))
            self.weights.append(0.0)
            self._size = self._rows = self._candidates = 0
        at, to = self._rows, self._candidates  # where this piece's images start in its task
        arrays = (row_ids, candidate_ids, at + piece.rows, to + piece.begins, to + piece.stops)
        for part, array in zip(self._parts[-1], arrays, strict=True):
            part.append(array)
        self.weights[-1] += piece.weight
        self._size += size
        self._rows += row_ids.size
        self._candidates += candidate_ids.size

    def arrays(self):
        """Per task: row ids, candidate ids, rows, begins, stops, positions counted across it."""
        for parts in self._parts:
            yield tuple(np.concatenate(part) for part in parts)


# ------------------------------------------------------------------------- build


def _decode_shard(paths, px_size, decoder, out=None):
    """Decode ``paths``; with ``out``, save the valid thumbnails there and return none."""
    results = [decoder(path, px_size, FILE_TIME_LIMIT) for path in paths]
    if out is None:
        return results
    valid = [r.thumbnail for r in results if r.reason is None]
    thumbnails = np.frombuffer(b"".join(valid), dtype=np.uint8)
    store.write_shard(out, thumbnails.reshape(len(valid), px_size, px_size, 3))
    return [Decoded(None, r.width, r.height, r.reason, r.failure) for r in results]


class DaskDecoder:
    """Decodes files as Dask tasks; follows :class:`fastdif.backends.base.Decoder`.

    Parameters
    ----------
    client : dask.distributed.Client
    px_size : int
    folder : str, optional
        A folder the workers share: thumbnails are written there as shards
        (and yielded without them) for :meth:`assemble`.
    """

    def __init__(self, client, px_size, folder=None):
        self.tasks = _Tasks(client)
        self.px_size = px_size
        self.folder = folder
        #: Shard files written, in the order of the files they hold.
        self.shards: list[str] = []

    def _shard_file(self, name: str) -> str | None:
        return None if self.folder is None else store.shard_file(self.folder, name)

    def decode(self, paths, progress=None):
        """Yield a :class:`~fastdif.io.decode.Decoded` per file of ``paths``, in order.

        A shard whose task kept killing its workers is decoded again file by
        file, each alone in its task, under the retry policy of
        :class:`~fastdif.io.decode.Retries`: only a file that kills the
        worker decoding it alone, every time, is lost.
        """
        from distributed import KilledWorker

        # Looked up at call time, so a substitute decoder reaches the workers.
        decoder = _decode.decode_file
        shards = [paths[a : a + SHARD_FILES] for a in range(0, len(paths), SHARD_FILES)]
        calls = [
            (shard, self.px_size, decoder, self._shard_file(f"{k:07d}"))
            for k, shard in enumerate(shards)
        ]

        def tick(files):
            for _ in range(files if progress is not None else 0):
                progress()

        sizes = [len(shard) for shard in shards]
        results = self.tasks.run(_decode_shard, calls, tick, sizes, tolerate=KilledWorker)
        singles = {
            (k, m): ([path], self.px_size, decoder, self._shard_file(f"{k:07d}-{m:05d}"))
            for k, result in enumerate(results)
            if isinstance(result, KilledWorker)
            for m, path in enumerate(shards[k])
        }
        # The first attempt of each file alone runs in parallel; a task queued
        # on a worker that dies counts that death too, so a further attempt
        # runs with no other task beside it.
        outcomes = dict(
            zip(singles, self.tasks.run(_decode_shard, list(singles.values()), tick,
                                        [1] * len(singles), KilledWorker), strict=True)
        )  # fmt: skip
        retries = Retries()
        for key, call in singles.items():
            if not isinstance(outcomes[key], KilledWorker):
                continue
            while isinstance(outcomes[key], KilledWorker) and retries.again(key):
                outcomes[key] = self.tasks.run(_decode_shard, [call], tolerate=KilledWorker)[0]
            tick(1)
        self.shards = []
        for k, (call, result) in enumerate(zip(calls, results, strict=True)):
            if not isinstance(result, KilledWorker):
                self.shards.append(call[3])
                yield from result
                continue
            for m in range(len(call[0])):
                outcome = outcomes[k, m]
                if isinstance(outcome, KilledWorker):
                    yield Decoded(
                        None,
                        0,
                        0,
                        "Dask worker died decoding this file (KilledWorker)",
                        Failure.WORKER_DIED,
                    )
                else:
                    self.shards.append(singles[k, m][3])
                    yield outcome[0]

    def assemble(self, target: str) -> None:
        """Copy the shards, in order, into ``target`` (tasks), and remove them.

        ``target`` is the tensors file of :func:`fastdif.io.store.create_tensors`,
        with as many rows as the shards hold valid thumbnails.
        """
        count = store.rows(target)
        calls, offset = [], 0
        for shard in self.shards:
            calls.append((shard, target, offset))
            offset += store.rows(shard)
        if offset != count:
            raise RuntimeError(f"shards hold {offset} thumbnails, expected {count}")
        self.tasks.run(store.copy_shard, calls)
        store.remove_shards(self.folder)

    def stats(self) -> dict:
        return {"dask": self.tasks.stats()}
