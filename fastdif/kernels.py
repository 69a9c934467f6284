"""Numba kernels: pairwise MSE between thumbnails, with rotations.

Kernels take and return arrays only. Thumbnails are float32 arrays of shape
(N, px, px, 3) holding values on the 0..255 scale. Sums of squares are
accumulated in float64, so for integer-valued thumbnails every MSE is exact
and an MSE of 0 means identical thumbnails. ``reassoc`` lets LLVM vectorise
the float64 reduction; for integer-valued inputs the order does not matter.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

_FASTMATH = {"reassoc", "contract"}


@njit(cache=True)
def rotations(image):
    """The four rotations of a (px, px, 3) image, flattened: shape (4, px*px*3).

    Row k is ``np.rot90(image, k)`` (counter-clockwise) raveled.
    """
    p = image.shape[0]
    out = np.empty((4, p, p, 3), dtype=image.dtype)
    for y in range(p):
        for x in range(p):
            for c in range(3):
                out[0, y, x, c] = image[y, x, c]
                out[1, y, x, c] = image[x, p - 1 - y, c]
                out[2, y, x, c] = image[p - 1 - y, p - 1 - x, c]
                out[3, y, x, c] = image[p - 1 - x, y, c]
    return out.reshape(4, p * p * 3)


@njit(cache=True, fastmath=_FASTMATH)
def bounded_sse(a, b, row_len, limit):
    """Sum of squared differences of flat arrays ``a`` and ``b``, up to ``limit``.

    Adds one image row (``row_len`` values) at a time and stops as soon as the
    sum exceeds ``limit``; the returned value is then some number > ``limit``.
    Exact (float64) when the sum is <= ``limit``.
    """
    total = 0.0
    n = a.shape[0]
    for start in range(0, n, row_len):
        row = 0.0
        for t in range(start, min(start + row_len, n)):
            d = np.float64(a[t]) - np.float64(b[t])
            row += d * d
        total += row
        if total > limit:
            return total
    return total


@njit(cache=True)
def comparable(shapes, i, j, same_dim):
    """True when image ``i`` and ``j`` may be compared under ``same_dim``."""
    if not same_dim:
        return True
    wi, hi = shapes[i, 0], shapes[i, 1]
    wj, hj = shapes[j, 0], shapes[j, 1]
    return (wi == wj and hi == hj) or (wi == hj and hi == wj)


@njit(parallel=True, cache=True)
def match_tile(tensors, shapes, rows, rotate, same_dim, max_mse, block, capacity):
    """Find, for each image in ``rows``, the later images within ``max_mse``.

    Work is split into items of one row image against a block of ``block``
    later images, so a tile of even one row runs on every thread.

    Parameters
    ----------
    tensors : float32 array (N, px, px, 3), C-contiguous
    shapes : int64 array (N, 2) of the images' (width, height)
    rows : int64 array (R,) of image indices
    rotate : bool
        Also compare the four rotations; the smallest MSE counts.
    same_dim : bool
        Compare only images of equal (width, height) in either orientation.
    max_mse : float
        MSE threshold on the 0..255 scale; a pair matches when its MSE <= it.
    block, capacity : int
        Images per work item, and matches stored per work item.

    Returns
    -------
    counts : int64 array (R, B)
        Matches of row ``r`` in block ``b``; may exceed ``capacity``, in which
        case only the first ``capacity`` are stored.
    cols : int64 array (R, B, capacity)
        The matching image indices ``j > rows[r]``, ascending.
    mses : float32 array (R, B, capacity)
        Their MSE.
    """
    n = tensors.shape[0]
    p = tensors.shape[1]
    size = p * p * 3
    row_len = p * 3
    flat = tensors.reshape(n, size)
    n_rot = 4 if rotate else 1
    # A pair matches when its MSE, sse / size, is <= max_mse. The sum may stop
    # early only above ``limit``, kept a little above max_mse * size so that
    # rounding in that product never drops a pair exactly at the threshold.
    limit = max_mse * size * (1.0 + 1e-9) + 1e-9
    n_rows = rows.shape[0]
    n_blocks = (n + block - 1) // block
    counts = np.zeros((n_rows, n_blocks), dtype=np.int64)
    cols = np.empty((n_rows, n_blocks, capacity), dtype=np.int64)
    mses = np.empty((n_rows, n_blocks, capacity), dtype=np.float32)
    for item in prange(n_rows * n_blocks):
        r = item // n_blocks
        b = item % n_blocks
        i = rows[r]
        start = max(b * block, i + 1)
        stop = min((b + 1) * block, n)
        if start >= stop:
            continue
        rotated = rotations(tensors[i])
        found = 0
        for j in range(start, stop):
            if not comparable(shapes, i, j, same_dim):
                continue
            best = limit
            for k in range(n_rot):
                sse = bounded_sse(rotated[k], flat[j], row_len, best)
                if sse <= best:
                    best = sse
            if best / size <= max_mse:
                if found < capacity:
                    cols[r, b, found] = j
                    mses[r, b, found] = best / size
                found += 1
        counts[r, b] = found
    return counts, cols, mses


@njit(parallel=True, cache=True)
def mse_to_key(tensors, key, members, rotate):
    """Exact MSE of image ``key`` against each image in ``members`` (float64 array).

    With ``rotate`` the smallest MSE over the four rotations counts.
    """
    p = tensors.shape[1]
    size = p * p * 3
    flat = tensors.reshape(tensors.shape[0], size)
    rotated = rotations(tensors[key])
    n_rot = 4 if rotate else 1
    out = np.empty(members.shape[0], dtype=np.float64)
    for m in prange(members.shape[0]):
        best = np.inf
        for k in range(n_rot):
            sse = bounded_sse(rotated[k], flat[members[m]], size, np.inf)
            if sse < best:
                best = sse
        out[m] = best / size
    return out
