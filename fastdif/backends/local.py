"""The local backend: decoding in a process pool, matching on this process's Numba threads."""

from __future__ import annotations

import numba
import numpy as np

from ..engine import matching
from ..engine.kernels import rotation_hashes
from ..model import BlockMeans, Criteria
from .base import Searcher
from .pool import decode_all


class LocalDecoder:
    """Decodes files in ``processes`` spawned worker processes (:mod:`fastdif.backends.pool`).

    Follows :class:`fastdif.backends.base.Decoder`.
    """

    #: Thumbnails come with the results, into the parent's memory.
    folder = None

    def __init__(self, px_size: int, processes: int):
        self.px_size = px_size
        self.processes = processes

    def decode(self, paths, progress=None):
        """Yield one :class:`~fastdif.io.decode.Decoded` per path, in order."""
        return decode_all(paths, self.px_size, self.processes, progress)

    def stats(self) -> dict:
        return {}


class LocalSearcher(Searcher):
    """Searches in this process, the kernels on ``threads`` Numba threads.

    Units of up to :data:`fastdif.engine.matching.CLASSIC_MAX_IMAGES` images
    take the classic path, larger ones the chunked path.
    """

    def __init__(self, dif, threads: int):
        super().__init__(dif)
        self.threads = threads
        self._previous_threads = None

    def _rows(self, index):
        """Thumbnails and shapes of the images ``index``, read-only, contiguous."""
        if index.size == len(self.dif) and np.array_equal(index, np.arange(index.size)):
            return self.dif.tensors, self.dif.shapes
        tensors = np.ascontiguousarray(self.dif.tensors[index])
        shapes = self.dif.shapes[index]
        # Read-only like the repository's arrays: the kernels see one type
        # either way, the one fastdif.engine.warmup compiles them for.
        tensors.flags.writeable = shapes.flags.writeable = False
        return tensors, shapes

    def _block_means(self, index):
        """The repository's block means of the images ``index``, or None to compute them.

        For all images they are computed once and kept on the repository
        (:meth:`fastdif.engine.matching.Thumbnails.of_repository`); for part
        of them, read from it when it holds them.
        """
        if index.size == len(self.dif) and np.array_equal(index, np.arange(index.size)):
            matching.Thumbnails.of_repository(self.dif)  # computes and keeps them
            return self.dif.block_means
        if self.dif.block_means is None:
            return None
        held = self.dif.block_means
        return BlockMeans(held.grids[index], held.means[index])

    def rotation_hashes(self, indexes, flip):
        for index in indexes:
            yield rotation_hashes(self._rows(index)[0], flip)

    def matches(self, indexes, criteria: Criteria, tile_rows, progress):
        for index in indexes:
            tensors, shapes = self._rows(index)
            rows = tile_rows if index.size > matching.CLASSIC_MAX_IMAGES else None
            found = self._block_means(index)
            yield matching.find_matches(tensors, shapes, criteria, rows, progress, found)

    def __enter__(self):
        self._previous_threads = numba.get_num_threads()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc) -> None:
        numba.set_num_threads(self._previous_threads)
