"""Load the kernels a search calls, from Numba's cache or by compiling them, ahead of it.

In a fresh environment the first search pays Numba's compile, seconds per
parallel kernel; later processes load the kernels from Numba's on-disk cache
(in the user's cache folder: :mod:`fastdif.kernel_cache`) in tenths of a
second. :func:`load_kernels` does either for the kernels a
search will call, without running them: each is compiled for the exact
argument types the search passes (Numba compiles a kernel once per set of
types, and read-only and writable arrays are different types), so the search
finds it ready.

:func:`start` does it in a background thread of the command line while the
build decodes in other processes, which never import Numba. Numba compiles
under one lock: a search that calls a kernel while the thread compiles it
waits for that compile instead of starting its own. A warm-up that fails
only leaves the search to compile what it needs itself.

Two processes must not fill one Numba cache at once (numba issues 4807 and
10128): the local warm-up runs in the one process that uses Numba; the Dask
backend loads the kernels in the client first, then on one worker per host
(:meth:`fastdif.backends.dask._Tasks.first_on_each_host`) before other tasks.
"""

from __future__ import annotations

import threading

import numba
import numpy as np

from .. import params
from . import kernels

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


def start(similarity, library_dtype=None, dtype=np.float32) -> Warmup:
    """Warm up, in the background, the kernels a local search at ``similarity`` calls.

    For the repository :func:`fastdif.build` makes: ``dtype`` float32
    thumbnails, uint8 with a ``store``; ``similarity`` as
    :func:`fastdif.search` takes it; ``library_dtype``, the
    dtype of a library's thumbnails when the search has one (float32 for
    folders, a saved repository's own). Call :meth:`Warmup.stop` when the
    search is done or failed: a search that finds nothing to compare calls
    no kernel.
    """
    try:
        threshold = params.check_similarity(similarity)
    except ValueError:  # the search reports it
        return Warmup(dtype, ())
    names = DUPLICATES_KERNELS if threshold == 0 else SIMILAR_KERNELS
    if library_dtype is not None:
        names = LIBRARY_KERNELS + names
    return Warmup(dtype, names, library_dtype=library_dtype or np.float32)
