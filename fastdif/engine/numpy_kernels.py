"""The search's kernels in vectorised NumPy, for small units while Numba's are not ready.

A search in a fresh environment would otherwise wait seconds for Numba to
compile :mod:`fastdif.engine.kernels`; a unit of a few hundred images takes
a fraction of that here. The local searcher (:mod:`fastdif.backends.local`)
uses these functions for units of up to :data:`MAX_VALUES` values when the
kernels it would call are neither compiled in this process nor in Numba's
cache (:func:`fastdif.engine.warmup.ready`), and only for thumbnails whose
sums are exact (:func:`exact`): every result is then the kernels' own, bit
for bit (the tests compare them).

Exactness. When every value is an integer, or a multiple of 1/256 as
:mod:`fastdif.engine.transforms` makes them, every product of two values is
an integer multiple of a unit (1, or 2**-16), and every partial sum of such
products is one too while it stays below 2**53 units: float64 then holds
it exactly, whatever the order of the additions. So the sum of squared
differences of two images is the same exact number summed here in any
order, by a matrix product (``|a|^2 + |b|^2 - 2 a.b``) or by the kernels
row by row; :func:`exact` checks the bound for the largest value.
"""

from __future__ import annotations

import numpy as np

from .kernels import BOUND_SLACK, ring_size, symmetry_range
from .matching import bound_features, repository_block_means

#: Units of up to this many values (1,000 images at px 50) may be searched
#: here: time grows with its square (every pair is summed), and memory twice
#: its float64 copy.
MAX_VALUES = 1000 * 50 * 50 * 3

#: Images (or pairs) per matrix product or gathered block: bounds the memory.
CHUNK = 256

#: Transformed thumbnails are multiples of 1 / GRID (:data:`fastdif.engine.transforms.GRID`).
GRID = 256


def exact(tensors) -> bool:
    """Whether every sum of products of ``tensors``' values is exact in float64.

    True for uint8 thumbnails, and for float thumbnails whose values are all
    integers, or all multiples of 1/:data:`GRID`, with ``2 * size * max|v|**2
    < 2**53`` units (``size`` the values per image).
    """
    n = tensors.shape[0]
    size = int(np.prod(tensors.shape[1:]))
    if tensors.dtype == np.uint8:
        return True
    if tensors.dtype.kind != "f" or n == 0:
        return n == 0
    values = np.asarray(tensors, dtype=np.float64)
    largest = float(np.abs(values).max())
    if not np.isfinite(largest):
        return False
    for unit in (1.0, 1.0 / GRID):
        scaled = values / unit
        if 2.0 * size * (largest / unit) ** 2 < 2.0**53 and np.array_equal(scaled, np.rint(scaled)):
            return True
    return False


def permutation(p: int, k: int) -> np.ndarray:
    """Flat indices of a (p, p, 3) image that symmetry ``k`` reads, in its order.

    ``image.ravel()[permutation(p, k)]`` is ``np.rot90(image, k).ravel()`` for
    k < 4 and ``np.rot90(np.fliplr(image), k - 4).ravel()`` for k >= 4 (see
    :func:`fastdif.engine.kernels.rotation_offsets`).
    """
    index = np.arange(p * p * 3, dtype=np.int64).reshape(p, p, 3)
    if k >= 4:
        index = np.fliplr(index)
    return np.ascontiguousarray(np.rot90(index, k % 4)).ravel()


def _flat(tensors) -> np.ndarray:
    n = tensors.shape[0]
    return np.asarray(tensors, dtype=np.float64).reshape(n, -1)


def pair_mse(tensors, left, right, rotate, flip):
    """:func:`fastdif.engine.kernels.pair_mse`: each pair's MSE and the symmetry that gave it."""
    n, p = tensors.shape[0], tensors.shape[1]
    size = p * p * 3
    flat = np.asarray(tensors).reshape(n, size)
    compared = range(0, *symmetry_range.py_func(rotate, flip))
    perms = [permutation(p, k) for k in compared]
    mse = np.empty(left.shape[0], dtype=np.float64)
    which = np.empty(left.shape[0], dtype=np.int64)
    for a in range(0, left.shape[0], CHUNK):
        b = flat[right[a : a + CHUNK]].astype(np.float64)
        rows = flat[left[a : a + CHUNK]]
        sse = np.stack(
            [((rows[:, perm].astype(np.float64) - b) ** 2).sum(axis=1) for perm in perms], axis=1
        )
        arg = sse.argmin(axis=1)  # the lowest k on a tie, as the kernel
        mse[a : a + CHUNK] = sse[np.arange(arg.size), arg] / size
        which[a : a + CHUNK] = np.asarray(compared)[arg]
    return mse, which


def rotation_hashes(tensors, flip):
    """:func:`fastdif.engine.kernels.rotation_hashes`: FNV-1a of each symmetry, uint64 (N, 4|8)."""
    n, p = tensors.shape[0], tensors.shape[1]
    size = p * p * 3
    count = 8 if flip else 4
    perms = np.stack([permutation(p, k) for k in range(count)])
    flat = np.asarray(tensors).reshape(n, size)
    prime = np.uint64(1099511628211)
    out = np.empty((n, count), dtype=np.uint64)
    for a in range(0, n, CHUNK):
        # (size, images, symmetries): each step of the hash reads one contiguous slice.
        values = flat[a : a + CHUNK][:, perms].astype(np.float64).transpose(2, 0, 1)
        # Clamped and truncated as the kernel does (v * 256 to int64, then its bits).
        np.clip(values, -1e15, 1e15, out=values)
        words = np.ascontiguousarray((values * 256.0).astype(np.int64).view(np.uint64))
        h = np.full(words.shape[1:], 14695981039346656037, dtype=np.uint64)
        for word in words:
            h ^= word
            h *= prime
        out[a : a + CHUNK] = h
    return out


def find_matches(tensors, shapes, criteria, block_means=None):
    """:func:`fastdif.engine.matching.find_matches` on the classic path: the same pairs and count.

    Each pair i < j goes through the kernel's bounds in its order (channel
    means, ring means, dimensions, then the block means under each
    symmetry, against the best sum so far), so the count of pairs summed is
    the kernel's. The exact sums come from one matrix product per symmetry.
    Only a pair whose block-mean sum equals the bound to some 14 digits
    could be counted differently: the kernel adds those sums in another
    order. Its matches cannot differ (the exact sum then exceeds the best).

    Parameters
    ----------
    tensors : uint8 or float array (N, px, px, 3)
        :func:`exact`.
    shapes : int64 array (N, 2)
    criteria : Criteria
    block_means : BlockMeans, optional
        Of ``tensors``; computed otherwise
        (:func:`~fastdif.engine.matching.repository_block_means`, the
        kernel's bit for bit).

    Returns
    -------
    i, j : int64 arrays
        Matching pairs, i < j, in ascending (i, j) order.
    summed : int
        Pairs that no bound skipped.
    """
    n, p = tensors.shape[0], tensors.shape[1]
    size = p * p * 3
    if block_means is None:
        block_means = repository_block_means(tensors)
    grids = block_means.grids.astype(np.float64).reshape(n, -1)
    g = block_means.grids.shape[1]
    scale = size / grids.shape[1]
    features = bound_features(block_means.grids, block_means.means).astype(np.float64)
    limit = criteria.max_mse * size * (1.0 + 1e-9) + 1e-9
    skip = limit * (1.0 + BOUND_SLACK) + BOUND_SLACK * size
    # The kernel's bounds, in its order of operations (float64 throughout).
    i, j = np.triu_indices(n, 1)
    d = features[i, :3] - features[j, :3]
    channel = d[:, 0] * d[:, 0] + d[:, 1] * d[:, 1] + d[:, 2] * d[:, 2]
    keep = ~(channel * (size / 3.0) > skip)
    i, j, channel = i[keep], j[keep], channel[keep]
    rings = channel * (g * g)
    for f in range(3, features.shape[1]):
        d = features[i, f] - features[j, f]
        rings = rings + ring_size.py_func(g, (f - 3) // 3) * d * d
    keep = ~(rings * scale > skip)
    if criteria.same_dim:
        wi, hi, wj, hj = shapes[i, 0], shapes[i, 1], shapes[j, 0], shapes[j, 1]
        keep &= ((wi == wj) & (hi == hj)) | ((wi == hj) & (hi == wj))
    i, j = i[keep].astype(np.int64), j[keep].astype(np.int64)
    flat = _flat(tensors)
    squares = np.einsum("ij,ij->i", flat, flat)
    best = np.full(i.size, limit)
    started = np.zeros(i.size, dtype=bool)
    for k in range(0, *symmetry_range.py_func(criteria.rotate, criteria.flip)):
        bound = (best * (1.0 + BOUND_SLACK) + BOUND_SLACK * size) / scale
        turned_grids = grids[:, permutation(g, k)]
        go = np.empty(i.size, dtype=bool)
        for a in range(0, i.size, CHUNK * 64):
            part = slice(a, a + CHUNK * 64)
            sums = ((turned_grids[i[part]] - grids[j[part]]) ** 2).sum(axis=1)
            go[part] = ~(sums > bound[part])
        started |= go
        if go.any():
            # |S(a_i) - a_j|^2, exact (see the module's docstring).
            dots = _dots(flat, permutation(p, k), i[go], j[go])
            sse = squares[i[go]] + squares[j[go]] - 2.0 * dots
            best[go] = np.minimum(best[go], sse)
    found = best / size <= criteria.max_mse
    return i[found], j[found], int(started.sum())


def _dots(flat, perm, i, j):
    """``flat[i[m]][perm] . flat[j[m]]`` for each m: whole products when pairs are many."""
    if i.size * 8 < flat.shape[0] ** 2:
        out = np.empty(i.size)
        for a in range(0, i.size, CHUNK):
            rows = flat[i[a : a + CHUNK]][:, perm]
            out[a : a + CHUNK] = np.einsum("ij,ij->i", rows, flat[j[a : a + CHUNK]])
        return out
    return (flat[:, perm] @ flat.T)[i, j]
