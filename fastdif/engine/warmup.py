"""Load the kernels a search calls, from Numba's cache or by compiling them, ahead of it.

In a fresh environment the first search would pay Numba's compile, seconds
per parallel kernel; later processes load the kernels from Numba's on-disk
cache (in the user's cache folder: :mod:`fastdif.kernel_cache`) in tenths
of a second. :func:`load_kernels` does either for the kernels a search will
call, without running them: each is compiled for the exact argument types
the search passes (Numba compiles a kernel once per set of types, and
read-only and writable arrays are different types), so the search finds it
ready. :func:`ready` says whether it would find them so.

:func:`start` prepares the command line's search while the build decodes in
other processes, which never import Numba. Kernels in Numba's cache load in
a background thread (:class:`Warmup`); Numba compiles under one lock, so a
search that calls a kernel while the thread loads it waits for that instead
of starting its own. Kernels not in the cache compile in a separate process
(:func:`compile_in_background`) that outlives the command: its search of
units small enough takes :mod:`fastdif.engine.numpy_kernels` meanwhile, and
the next run finds the kernels cached. A warm-up that fails only leaves the
search to compile what it needs itself.

Processes that compile at once save to Numba's cache one after the other
(:func:`fastdif.kernel_cache.serialise_saves`). Compiling the same twice
is still waste: a background compile holds an exclusive lock on
:data:`LOCK_NAME` in the cache folder while it runs, no second one starts
while it is held, and a search about to compile what it lacks waits for it
first (:func:`wait_for_background`), then loads what it saved. The Dask
backend loads the kernels in the client first, then on one worker per host
(:meth:`fastdif.backends.dask._Tasks.first_on_each_host`) before other tasks.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numba
import numpy as np

from .. import kernel_cache, params
from . import kernels

try:
    import fcntl
except ImportError:  # Windows: no background compile, each process compiles what it needs
    fcntl = None

#: The file a background compile keeps locked in Numba's cache folder.
LOCK_NAME = "fastdif-warmup.lock"

#: Kernels of a search at threshold 0 (hashing) and above 0 (block means, pairs).
DUPLICATES_KERNELS = ("rotation_hashes", "pair_mse")
SIMILAR_KERNELS = ("block_means", "match_ranges", "pair_mse")


def _array(dtype, ndim: int, readonly: bool = False):
    example = np.zeros((1,) * ndim, dtype=dtype)
    example.flags.writeable = not readonly
    return numba.typeof(example)


#: Kernels of a search of new images against a library (the matching of
#: new images with each other is the similar search's).
LIBRARY_KERNELS = ("match_library", "pair_mse")

#: Signatures that are not named after their kernel.
_KERNEL = {"match_library": "match_ranges"}


def argument_types(dtype, readonly: bool, library_dtype=np.float32) -> dict[str, tuple]:
    """The Numba types a search passes to each kernel, by kernel name.

    Parameters
    ----------
    dtype : numpy dtype
        Of the thumbnails: float32 (a build) or uint8.
    readonly : bool
        Thumbnails and shapes are read-only, as in the local search (a
        repository's arrays, or read-only copies of its rows); the Dask
        tasks' copies are writable. Other arrays are always writable, all
        are C-contiguous.
    library_dtype : numpy dtype
        Of a library's thumbnails (``"match_library"``: new images against
        a library, whose arrays and block means are all read-only).
    """
    tensors = _array(dtype, 4, readonly)
    shapes = _array(np.int64, 2, readonly)
    grids = _array(np.float32, 4, readonly)  # read-only with the thumbnails
    features = _array(np.float32, 2)  # fastdif.engine.matching.bound_features
    ints = _array(np.int64, 1)
    flag, number, count = numba.typeof(True), numba.typeof(0.0), numba.typeof(1)
    return {
        "block_means": (tensors, count),
        # the images (tensors, grids, features, shapes, item_image), the
        # others (the same four arrays, order), item_begin, item_end, rotate,
        # flip, same_dim, max_mse, capacity
        "match_ranges": (tensors, grids, features, shapes, ints) * 2
        + (ints, ints, flag, flag, flag, number, count),
        "rotation_hashes": (tensors, flag),
        "pair_mse": (tensors, ints, ints, flag, flag),
        "match_library": (
            (_array(dtype, 4, True), _array(np.float32, 4, True), features)
            + (_array(np.int64, 2, True), ints, _array(library_dtype, 4, True))
            + (_array(np.float32, 4, True), features)
            + (_array(np.int64, 2, True), ints, ints, ints, flag, flag, flag, number, count)
        ),
    }


def load_kernels(
    dtype,
    names,
    readonly: bool = False,
    stop: threading.Event | None = None,
    library_dtype=np.float32,
):
    """Load from Numba's cache, or compile, the kernels ``names`` for thumbnails of ``dtype``.

    Nothing runs: each kernel is compiled for :func:`argument_types`. Stops
    before the next kernel once ``stop`` is set.
    """
    if numba.config.DISABLE_JIT:  # the kernels are plain Python functions
        return
    types = argument_types(dtype, readonly, library_dtype)
    for name in names:
        if stop is not None and stop.is_set():
            return
        getattr(kernels, _KERNEL.get(name, name)).compile(types[name])


def ready(dtype, names, readonly: bool = True, library_dtype=np.float32) -> bool:
    """Whether calling the kernels ``names`` would compile none of them.

    True when each is compiled in this process for :func:`argument_types`,
    or found for them in Numba's cache on disk (then a call loads it, in
    tenths of a second for the first kernel, hundredths for the next).
    Read from the dispatchers, not by loading anything; where Numba's cache
    cannot be read (another Numba, a damaged index) the answer is True, so
    the search calls the kernels as it always did.
    """
    if numba.config.DISABLE_JIT:
        return True
    types = argument_types(dtype, readonly, library_dtype)
    return all(_ready(getattr(kernels, _KERNEL.get(name, name)), types[name]) for name in names)


def _ready(kernel, types: tuple) -> bool:
    if types in kernel.overloads:
        return True
    cache = kernel._cache
    index = getattr(getattr(cache, "_cache_file", None), "_load_index", None)
    if index is None:  # no cache (kernel_cache.ENABLED is false): compiled here or not at all
        return False
    try:
        return cache._index_key(types, kernel.targetctx.codegen()) in index()
    except Exception:  # noqa: BLE001 - Numba's internals changed: call the kernels as before
        return True


def compile_in_background(dtype, names, library_dtype=np.float32) -> subprocess.Popen | None:
    """Start a process that compiles the kernels ``names`` into Numba's cache, and return it.

    The process outlives this one and writes nothing but the cache. It holds
    an exclusive lock on :data:`LOCK_NAME` from before it starts until it
    ends, so no two fill the cache at once. None, and nothing started, where
    another holds the lock, where kernels are not cached, or where locks are
    not to be had (Windows).
    """
    if fcntl is None or not kernel_cache.ENABLED or numba.config.DISABLE_JIT or not names:
        return None
    try:
        lock = os.open(os.path.join(kernel_cache.FOLDER, LOCK_NAME), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # another process fills the cache
            return None
        # The child inherits the locked file, and keeps it open until it ends.
        code = "import sys; from fastdif.engine import warmup; warmup.fill(*sys.argv[1:])"
        dtypes = np.dtype(dtype).str, np.dtype(library_dtype).str
        return subprocess.Popen(
            [sys.executable, "-c", code, *dtypes, *names],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            pass_fds=(lock,),
        )
    except OSError:
        return None
    finally:
        os.close(lock)


#: The background compile's niceness (the most): it takes only the CPU other work leaves idle.
#: It stays in the session of the run that starts it: Linux's autogroups weigh
#: niceness only within a session, and a session of its own would compete as
#: an equal with the run's decoding.
NICENESS = 19


def fill(dtype: str, library_dtype: str, *names: str) -> None:
    """The background compile's work: :func:`load_kernels` for a local search's types."""
    os.nice(NICENESS)
    load_kernels(np.dtype(dtype), names, readonly=True, library_dtype=np.dtype(library_dtype))


def wait_for_background(folder: str | None = None, timeout: float = 300.0) -> bool:
    """Wait until no background compile holds ``folder``'s lock; True if none does.

    ``folder`` is Numba's cache folder (default :data:`fastdif.kernel_cache.FOLDER`).
    Returns False after ``timeout`` seconds with the lock still held.
    """
    folder = kernel_cache.FOLDER if folder is None else folder
    if fcntl is None or folder is None:
        return True
    try:
        lock = os.open(os.path.join(folder, LOCK_NAME), os.O_RDONLY)
    except OSError:  # never made: nothing compiles there
        return True
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return True
            except OSError:
                if time.monotonic() >= deadline:
                    return False
                time.sleep(0.05)
    finally:
        os.close(lock)


class Warmup:
    """:func:`load_kernels` in a background thread, for a local search.

    The thread is not a daemon: the interpreter waits for the kernel it is
    compiling before it exits, rather than tearing LLVM down under it.
    """

    def __init__(self, dtype, names, readonly: bool = True, library_dtype=np.float32):
        self._stop = threading.Event()
        #: The exception that ended the warm-up early, if any.
        self.error: Exception | None = None
        self._thread = threading.Thread(
            target=self._run, args=(dtype, names, readonly, library_dtype), name="fastdif-warmup"
        )
        try:
            self._thread.start()
        except RuntimeError as exc:  # no thread to be had: the search compiles
            self.error = exc

    def _run(self, dtype, names, readonly, library_dtype) -> None:
        try:
            load_kernels(dtype, names, readonly, self._stop, library_dtype)
        except Exception as exc:  # noqa: BLE001 - the search then compiles what it needs
            self.error = exc

    def stop(self) -> None:
        """Start no further kernel (the one being compiled is finished, in the background)."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the warm-up to end; True if it has."""
        if self._thread.ident is not None:
            self._thread.join(timeout)
        return not self._thread.is_alive()


class Background:
    """The kernels compiled by :func:`compile_in_background`, for the next search or run.

    Follows :class:`Warmup`: :meth:`stop` leaves the compile to go on, so
    that the next run finds the kernels cached.
    """

    def __init__(self, process: subprocess.Popen | None):
        self.process = process

    def stop(self) -> None:
        """Nothing to stop: the compile goes on, in its own process."""

    def join(self, timeout: float | None = None) -> bool:
        """Wait for the other process to end; True if it has (or none was started)."""
        if self.process is None:
            return True
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True


def start(similarity, library_dtype=None, dtype=np.float32) -> Warmup | Background:
    """Prepare, in the background, the kernels a local search at ``similarity`` calls.

    For the repository :func:`fastdif.build` makes: ``dtype`` float32
    thumbnails, uint8 with a ``store``; ``similarity`` as
    :func:`fastdif.search` takes it; ``library_dtype``, the
    dtype of a library's thumbnails when the search has one (float32 for
    folders, a saved repository's own). Kernels in Numba's cache (:func:`ready`)
    load in a thread of this process (:class:`Warmup`); others compile in
    another process (:class:`Background`), except for a search against a
    library, which compiles them in the thread as they are (its library
    matching calls the kernels directly, never waiting for another process).
    Call ``stop()`` when the search is done or failed: a search that finds
    nothing to compare calls no kernel.
    """
    try:
        threshold = params.check_similarity(similarity)
    except ValueError:  # the search reports it
        return Warmup(dtype, ())
    names = DUPLICATES_KERNELS if threshold == 0 else SIMILAR_KERNELS
    if library_dtype is not None:
        names = LIBRARY_KERNELS + names
    library = library_dtype is not None
    library_dtype = library_dtype or np.float32
    if library or ready(dtype, names, True, library_dtype):
        return Warmup(dtype, names, library_dtype=library_dtype)
    return Background(compile_in_background(dtype, names, library_dtype))
