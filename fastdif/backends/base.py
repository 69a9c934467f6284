"""What a backend is: the two protocols, written down.

A backend decides where the work runs (this process and its pools, or a
Dask cluster); what is computed is the engine's (:mod:`fastdif.engine`) and
the decoder's (:mod:`fastdif.io.decode`), the same for every backend, so
every backend gives the same repository and the same result.

:class:`Decoder`
    Turns file paths into :class:`~fastdif.io.decode.Decoded` results, in
    order, under one retry policy (:class:`fastdif.io.decode.Retries`).
:class:`Searcher`
    Finds the matching pairs of each comparable unit, and of new images
    against a library. The choice per unit (hashing at threshold 0, bounded
    matching above it), the exact MSEs and the count of pairs summed are
    made here, once; a backend supplies the work that runs on its workers:
    the rotation hashes of units (and of their mirror images with ``flip``),
    and the matches, by running the engine's plans
    (:func:`fastdif.engine.matching.unit_plan`,
    :func:`~fastdif.engine.matching.library_plan`), the same on every backend.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from typing import Protocol

import numpy as np

from ..engine.kernels import pair_mse
from ..engine.matching import identical_pairs, unit_mse
from ..model import Criteria


class Decoder(Protocol):
    """Decodes files somewhere: a build's backend.

    Attributes
    ----------
    folder : str or None
        Where the decoder writes the thumbnails (a store on shared storage)
        instead of yielding them; :meth:`assemble` then copies them into the
        store's tensors file. None: thumbnails come with the results.
    """

    folder: str | None

    def decode(self, paths: list[str], progress: Callable[[], None] | None = None):
        """Yield one :class:`~fastdif.io.decode.Decoded` per path, in order.

        ``progress()`` is called once per file decoded.
        """
        ...

    def assemble(self, target: str) -> None:
        """Copy the thumbnails written to :attr:`folder` into the tensors file ``target``.

        Only decoders with a :attr:`folder` have it.
        """
        ...

    def stats(self) -> dict:
        """Entries this backend adds to ``stats["process"]["build"]``."""
        ...


class Searcher(ABC):
    """Finds the matching pairs of a repository's comparable units.

    Use as a context manager: entering sets up the backend's resources (the
    Numba threads, thumbnails sent to workers), leaving releases them.

    Attributes
    ----------
    summed : int
        Pairs that no bound skipped (an exact sum was started), over the
        units yielded so far by :meth:`pairs`.
    """

    def __init__(self, dif):
        self.dif = dif
        self.summed = 0

    def pairs(self, units, criteria: Criteria, tile_rows: int, progress):
        """For each unit ``(folder, index)``: ``(i, j, mse)``.

        ``i < j`` are the matching pairs as positions in ``index``,
        ascending; ``mse(left, right)`` gives the exact MSEs of pairs of
        positions. ``progress(rows)`` is called as rows are finished.
        """
        indexes = [index for _, index in units]
        if criteria.max_mse == 0:
            hashed = self.rotation_hashes(indexes, criteria.flip)
            for index, hashes in zip(indexes, hashed, strict=True):
                mse = unit_mse(self.dif.tensors, index, criteria, self.pair_kernel(index, criteria))
                i, j = identical_pairs(
                    hashes,
                    self.dif.shapes[index],
                    criteria,
                    lambda left, right, mse=mse: mse(left, right) == 0,
                )
                progress(index.size)
                yield i, j, mse
            return
        matches = self.matches(indexes, criteria, tile_rows, progress)
        for index, (i, j, summed) in zip(indexes, matches, strict=True):
            self.summed += summed
            mse = unit_mse(self.dif.tensors, index, criteria, self.pair_kernel(index, criteria))
            yield i, j, mse

    def pair_kernel(self, index: np.ndarray, criteria: Criteria):
        """What gives the exact MSEs of pairs of the unit ``index`` (see :func:`unit_mse`).

        :func:`~fastdif.engine.kernels.pair_mse`; a backend may give a
        function that returns the same, bit for bit.
        """
        return pair_mse

    @abstractmethod
    def rotation_hashes(self, indexes: list[np.ndarray], flip: bool) -> Iterator[np.ndarray]:
        """Per unit: :func:`~fastdif.engine.kernels.rotation_hashes` of its images."""

    @abstractmethod
    def matches(
        self, indexes: list[np.ndarray], criteria: Criteria, tile_rows: int, progress
    ) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        """Per unit: ``(i, j, summed)``, the pairs within ``criteria.max_mse`` (> 0).

        ``i < j`` are positions in the unit's index, ascending; ``summed``
        the pairs no bound skipped, counted as they become known (a backend
        that runs units together may count them all with its first unit).
        """

    @abstractmethod
    def library_matches(
        self, new: np.ndarray, library, criteria: Criteria, tile_rows: int, progress
    ) -> tuple[np.ndarray, np.ndarray, int]:
        """The pairs within ``criteria.max_mse`` (> 0) of images ``new`` and a library's.

        ``library`` is a :class:`~fastdif.model.Repository` of thumbnails
        that compare with these. Returns ``(i, j, summed)``: ``i`` images of
        the repository (among ``new``), ``j`` of the library, in ascending
        (i, j) order, and the pairs no bound skipped. ``progress(rows)`` is
        called as new images are finished.
        """

    def stats(self) -> dict:
        """Entries this backend adds to ``stats["process"]["search"]``."""
        return {}

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        return None
