"""The local backend: decoding in a process pool, matching on this process's Numba threads.

A unit of up to :data:`fastdif.engine.numpy_kernels.MAX_VALUES` values is
searched in NumPy (:mod:`fastdif.engine.numpy_kernels`, the same results bit
for bit) while the kernels it would call are not ready: neither compiled in
this process nor in Numba's cache (:func:`fastdif.engine.warmup.ready`). So
the first search in a fresh environment does not wait for Numba's compile.
"""

from __future__ import annotations

import numba
import numpy as np

from ..engine import kernels, matching, numpy_kernels, warmup
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

    Runs the engine's plans (:func:`fastdif.engine.matching.unit_plan`,
    :func:`~fastdif.engine.matching.library_plan`) tile by tile here.
    """

    def __init__(self, dif, threads: int):
        super().__init__(dif)
        self.threads = threads
        self._previous_threads = None
        #: :func:`fastdif.engine.warmup.ready`, by (threshold 0, dtype, read-only).
        self._ready: dict[tuple, bool] = {}

    def _whole(self, index) -> bool:
        """Whether ``index`` is every image of the repository, in order."""
        return index.size == len(self.dif) and np.array_equal(index, np.arange(index.size))

    def _rows(self, index):
        """Thumbnails and shapes of the images ``index``, read-only, contiguous."""
        if self._whole(index):
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
        if self._whole(index):
            matching.Thumbnails.of_repository(self.dif)  # computes and keeps them
            return self.dif.block_means
        if self.dif.block_means is None:
            return None
        held = self.dif.block_means
        return BlockMeans(held.grids[index], held.means[index])

    def _thumbnails(self, index) -> matching.Thumbnails:
        """The images ``index`` with their block means (see :meth:`_block_means`)."""
        tensors, shapes = self._rows(index)
        held = self._block_means(index)
        if held is None:
            return matching.Thumbnails.of(tensors, shapes)
        return matching.Thumbnails.of(tensors, shapes, held.means, held.grids)

    def _in_numpy(self, index, duplicates: bool) -> bool:
        """Whether the unit ``index`` is searched with :mod:`fastdif.engine.numpy_kernels`.

        Yes when it is small (and would take the classic path), its sums are
        exact there (:func:`~fastdif.engine.numpy_kernels.exact`), and the
        kernels of a search at threshold 0 (``duplicates``) or above are not
        ready. A unit that is to compile them waits for a background compile
        to end first (:func:`fastdif.engine.warmup.wait_for_background`), and
        then loads what it filled.
        """
        values = index.size * np.prod(self.dif.tensors.shape[1:])
        small = values <= numpy_kernels.MAX_VALUES and index.size <= matching.CLASSIC_MAX_IMAGES
        if small:
            tensors = self._rows(index)[0]
            readonly = not tensors.flags.writeable
        else:  # the type _rows gives, without copying the rows
            tensors = self.dif.tensors
            readonly = not (tensors.flags.writeable and self._whole(index))
        key = (duplicates, tensors.dtype.str, readonly)
        if key not in self._ready:
            if duplicates:
                names = warmup.DUPLICATES_KERNELS
            else:
                # block_means only where the repository holds none (from_arrays).
                names = ("match_ranges", "pair_mse")
                names += ("block_means",) if self.dif.block_means is None else ()
            self._ready[key] = warmup.ready(tensors.dtype, names, readonly)
        if self._ready[key]:
            return False
        if small and numpy_kernels.exact(tensors):
            return True
        warmup.wait_for_background()
        return False

    def pair_kernel(self, index, criteria: Criteria):
        if self._in_numpy(index, criteria.max_mse == 0):
            return numpy_kernels.pair_mse
        return kernels.pair_mse

    def rotation_hashes(self, indexes, flip):
        # Units hashed in NumPy go together, up to MAX_VALUES values a call:
        # its hash steps once through an image's values for all images at once.
        per_image = int(np.prod(self.dif.tensors.shape[1:]))
        batch = max(1, numpy_kernels.MAX_VALUES // per_image)
        groups, group, total = [], [], 0
        for k, index in enumerate(indexes):
            if not self._in_numpy(index, True):
                continue
            if group and total + index.size > batch:
                groups.append(group)
                group, total = [], 0
            group.append(k)
            total += index.size
        groups += [group] if group else []
        hashed: dict[int, np.ndarray] = {}
        for group in groups:
            rows = self._rows(np.concatenate([indexes[k] for k in group]))[0]
            found = np.split(
                numpy_kernels.rotation_hashes(rows, flip),
                np.cumsum([indexes[k].size for k in group])[:-1],
            )
            hashed.update(zip(group, found, strict=True))
        for k, index in enumerate(indexes):
            if k in hashed:
                yield hashed.pop(k)
            else:
                yield kernels.rotation_hashes(self._rows(index)[0], flip)

    def matches(self, indexes, criteria: Criteria, tile_rows, progress):
        for index in indexes:
            if self._in_numpy(index, False):
                tensors, shapes = self._rows(index)
                held = None if self.dif.block_means is None else self._block_means(index)
                found = numpy_kernels.find_matches(tensors, shapes, criteria, held)
                progress(index.size)
                yield found
                continue
            images = self._thumbnails(index)
            plan = matching.unit_plan(images.means, criteria.max_mse, tile_rows)
            yield plan.run(images, images, criteria, progress)

    def library_matches(self, new, library, criteria: Criteria, tile_rows, progress):
        queries, held = self._thumbnails(new), matching.Thumbnails.of_repository(library)
        i, j, summed = matching.find_library_matches(queries, held, criteria, tile_rows, progress)
        return new[i], j, summed

    def __enter__(self):
        self._previous_threads = numba.get_num_threads()
        numba.set_num_threads(min(self.threads, numba.config.NUMBA_NUM_THREADS))
        return self

    def __exit__(self, *exc) -> None:
        numba.set_num_threads(self._previous_threads)
