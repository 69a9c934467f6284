"""Numba kernels: pairwise MSE between thumbnails, with symmetries and exact bounds.

Kernels take and return arrays only. Thumbnails are arrays of shape
(N, px, px, 3), float32 or uint8, holding values on the 0..255 scale. Sums of
squares are accumulated in float64, so for integer-valued thumbnails every MSE
is exact and an MSE of 0 means identical thumbnails (up to the symmetry that
gave it). ``reassoc`` lets LLVM vectorise the float64 reduction; for
integer-valued inputs order does not matter.

Symmetries. A pair's MSE is the smallest over the symmetries compared, each
applied to the first image of the pair. Symmetry k (0..7) of a (p, p, c)
image is ``np.rot90(image, k)`` for k < 4 (turns counter-clockwise) and
``np.rot90(np.fliplr(image), k - 4)`` for k >= 4 (a horizontal flip, then
the turns): 6 is the vertical flip, 5 and 7 the flips about the diagonals.
``rotate`` compares 0..3, ``flip`` 0 and 4, both all eight, neither only 0
(:func:`symmetry_range`). Each symmetry only moves pixels, so the three
channel means and the overall mean do not change under it.

Lower bounds used to skip pairs (each never exceeds the true MSE):

* Block means. Split both images into the same g x g grid of equal blocks.
  Within a block of n values, the mean of the squared differences is at least
  the square of the mean difference (the variance is >= 0), so
  ``MSE(a, b) >= MSE(block_means(a), block_means(b))``. The bound holds for
  every symmetry S when the grid is transformed the same way, because
  ``block_means(S(a)) = S(block_means(a))``: with side s = p / g (g divides
  p), write a column x = bx * s + r, 0 <= r < s; its mirror p - 1 - x =
  (g - 1 - bx) * s + (s - 1 - r) lies in block column g - 1 - bx, so the
  horizontal flip maps each block, whole, onto the mirrored block (the same
  for rows, and a transpose swaps rows and columns, blocks to blocks). Every
  symmetry is a product of these, so it moves each block's pixels, all
  together, to the block where the symmetry moves the block: the block means
  of S(a) are S of the grid of block means. So ``MSE(S(a), b) >=
  MSE(S(block_means(a)), block_means(b))``, one grid per image serving all
  eight symmetries. g = 1 gives the three channel means, unchanged by S.
* Overall mean. With m the mean over all values, (Δm)^2 = (mean of Δμ_c)^2
  <= mean of (Δμ_c)^2 <= MSE (Cauchy-Schwarz, then the g = 1 bound). It does
  not change under any symmetry, so images sorted by m need only be compared
  within a window of ``sqrt(max_mse)``.

Bounds are computed from float32/float64 means with rounding errors far
below ``BOUND_SLACK``; a pair is skipped only when its bound exceeds the
threshold by more than that slack, and a pair that is not skipped is decided
by its exact sum.

Numba's cache. Each kernel keeps an index of the signatures it compiled,
and Numba adds one by reading the index, choosing a data file name and
writing both: two processes doing it at once can leave the index naming
another signature's code (numba issues 4807 and 10128). So every save of
a fastdif kernel holds an exclusive lock on
:data:`fastdif.kernel_cache.SAVE_LOCK` in the cache folder
(:func:`fastdif.kernel_cache.serialise_saves`), and processes that compile at once (a
search and :func:`fastdif.engine.warmup.compile_in_background`, two runs)
save one after the other.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import kernel_cache

_FASTMATH = {"reassoc", "contract"}

#: A bound must exceed ``max_mse * (1 + BOUND_SLACK) + BOUND_SLACK`` to skip a pair.
BOUND_SLACK = 1e-3


@njit(cache=kernel_cache.ENABLED)
def symmetry_range(rotate, flip):
    """The symmetries compared: ``range(0, stop, step)`` gives their indices k.

    Neither: 0; ``rotate``: 0..3; ``flip``: 0 and 4; both: 0..7.
    """
    stop = 8 if flip else (4 if rotate else 1)
    step = 1 if rotate else 4
    return stop, step


@njit(cache=kernel_cache.ENABLED)
def rotations(image, flip):
    """The symmetries 0..3 (0..7 with ``flip``) of a (p, p, c) image, flattened.

    Shape (4, p*p*c), or (8, p*p*c) with ``flip``: row k is ``np.rot90(image,
    k)`` raveled, and row 4 + k is ``np.rot90(np.fliplr(image), k)`` raveled.
    """
    p = image.shape[0]
    ch = image.shape[2]
    count = 8 if flip else 4
    out = np.empty((count, p, p, ch), dtype=image.dtype)
    last = p - 1
    for y in range(p):
        for x in range(p):
            for c in range(ch):
                out[0, y, x, c] = image[y, x, c]
                out[1, y, x, c] = image[x, last - y, c]
                out[2, y, x, c] = image[last - y, last - x, c]
                out[3, y, x, c] = image[last - x, y, c]
                if flip:
                    out[4, y, x, c] = image[y, last - x, c]
                    out[5, y, x, c] = image[x, y, c]
                    out[6, y, x, c] = image[last - y, x, c]
                    out[7, y, x, c] = image[last - x, last - y, c]
    return out.reshape(count, p * p * ch)


@njit(cache=kernel_cache.ENABLED, fastmath=_FASTMATH)
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


@njit(cache=kernel_cache.ENABLED)
def comparable(shapes, i, other_shapes, j, same_dim):
    """True when image ``i`` (of ``shapes``) and ``j`` (of ``other_shapes``) may be compared."""
    if not same_dim:
        return True
    wi, hi = shapes[i, 0], shapes[i, 1]
    wj, hj = other_shapes[j, 0], other_shapes[j, 1]
    return (wi == wj and hi == hj) or (wi == hj and hi == wj)


@njit(parallel=True, cache=kernel_cache.ENABLED)
def block_means(tensors, g):
    """Means of a g x g grid of equal blocks per channel: float32 (N, g, g, 3).

    ``g`` must divide px. ``g = 1`` gives the channel means.
    """
    n, p = tensors.shape[0], tensors.shape[1]
    side = p // g
    out = np.empty((n, g, g, 3), dtype=np.float32)
    for i in prange(n):
        for by in range(g):
            for bx in range(g):
                for c in range(3):
                    total = 0.0
                    for y in range(by * side, (by + 1) * side):
                        for x in range(bx * side, (bx + 1) * side):
                            total += tensors[i, y, x, c]
                    out[i, by, bx, c] = total / (side * side)
    return out


@njit(cache=kernel_cache.ENABLED)
def ring_size(g, r):
    """Blocks in ring ``r`` of a g x g grid: those ``r`` blocks in from its nearest edge."""
    side = g - 2 * r
    return 1 if side == 1 else 4 * side - 4


@njit(parallel=True, cache=kernel_cache.ENABLED)
def match_ranges(
    tensors,
    grids,
    features,
    shapes,
    item_image,
    others,
    other_grids,
    ranked,
    other_shapes,
    order,
    item_begin,
    item_end,
    rotate,
    flip,
    same_dim,
    max_mse,
    capacity,
):
    """Compare images with ranges of other images in an order; keep pairs within ``max_mse``.

    Work item ``w`` compares image ``item_image[w]`` of ``tensors`` with each
    image ``order[t]`` of ``others`` for ``t`` in ``item_begin[w]:item_end[w]``.
    A search within one set passes the same thumbnails twice: the classic
    path the identity order and every later image, the chunked path an order
    in which each image's candidates lie in a few ranges. A search of new
    images against a library passes the new images first and the library
    second, with the window on both sides of each new image.
    Before each exact sum three bounds are checked: the channel means, the
    ring means (both read from ``ranked`` in position order, so a range is
    read in sequence), then the block means under each symmetry compared.

    Parameters
    ----------
    tensors : float32 or uint8 array (N, px, px, 3), C-contiguous
    grids : float32 array (N, g, g, 3)
        ``block_means(tensors, g)`` with ``g = grid_side(px)``.
    features : float32 array (N, 3 + 3 * ceil(g / 2))
        Each image's channel means, then per ring r (:func:`ring_size`) and
        channel the ring's mean minus the grid's channel mean
        (:func:`fastdif.engine.matching.bound_features`).
    shapes : int64 array (N, 2)
        Images' (width, height).
    item_image : int64 array (W,)
        The image of ``tensors`` each work item compares.
    others, other_grids, other_shapes : arrays (M, ...)
        The images compared with, as above (same px); may be the same arrays.
    ranked : float32 array (M, 3 + 3 * ceil(g / 2))
        The features of image ``order[t]`` of ``others`` at row ``t``.
    order : int64 array (M,)
        Image index of ``others`` at each position.
    item_begin, item_end : int64 arrays (W,)
        Each work item's range, as positions in ``order``.
    rotate : bool
        Also compare the four rotations; the smallest MSE counts.
    flip : bool
        Also compare the horizontal flip (of each rotation, with ``rotate``);
        see :func:`symmetry_range`.
    same_dim : bool
        Compare only images of equal (width, height) in either orientation.
    max_mse : float
        MSE threshold on the 0..255 scale; a pair matches when its MSE <= it.
    capacity : int
        Matches stored per work item.

    Returns
    -------
    counts : int64 array (W,)
        Matches of each item; may exceed ``capacity``, in which case only the
        first ``capacity`` are stored.
    cols : int64 array (W, capacity)
        Indices of the images of ``others`` matching ``item_image[w]``, in
        position order.
    mses : float32 array (W, capacity)
        Their MSE.
    exact : int64 array (W,)
        Pairs of each item that no bound skipped (an exact sum was started).
    """
    m, p = others.shape[0], tensors.shape[1]
    size = p * p * 3
    g = grids.shape[1]
    grid_len = g * g * 3
    scale = size / grid_len
    n_features = features.shape[1]
    other_flat = others.reshape(m, size)
    other_flat_grids = other_grids.reshape(m, grid_len)
    stop, step = symmetry_range(rotate, flip)
    # A pair matches when sse / size <= max_mse. Sums stop early only above
    # ``limit``, a little above max_mse * size, so rounding in that product
    # never drops a pair exactly at the threshold.
    limit = max_mse * size * (1.0 + 1e-9) + 1e-9
    skip = limit * (1.0 + BOUND_SLACK) + BOUND_SLACK * size
    weights = np.empty(n_features, dtype=np.float64)
    for f in range(3, n_features):
        weights[f] = ring_size(g, (f - 3) // 3)
    n_items = item_image.shape[0]
    counts = np.empty(n_items, dtype=np.int64)
    cols = np.empty((n_items, capacity), dtype=np.int64)
    mses = np.empty((n_items, capacity), dtype=np.float32)
    exact = np.empty(n_items, dtype=np.int64)
    for w in prange(n_items):
        i = item_image[w]
        own = features[i]
        rot_grid_i = np.empty((0, grid_len), dtype=grids.dtype)
        rot_i = np.empty((0, size), dtype=tensors.dtype)
        found = 0
        summed = 0
        for t in range(item_begin[w], item_end[w]):
            channel = 0.0
            for c in range(3):
                d = np.float64(own[c]) - np.float64(ranked[t, c])
                channel += d * d
            if channel * (size / 3.0) > skip:
                continue
            # The ring means: sum_r n_r (Δ ring mean)^2 over channels, as the
            # channel part (g^2 blocks) plus each ring's part about it.
            rings = channel * (g * g)
            for f in range(3, n_features):
                d = np.float64(own[f]) - np.float64(ranked[t, f])
                rings += weights[f] * d * d
            if rings * scale > skip:
                continue
            j = order[t]
            if not comparable(shapes, i, other_shapes, j, same_dim):
                continue
            if rot_grid_i.shape[0] == 0:
                rot_grid_i = rotations(grids[i], flip)
            best = limit
            started = False
            for k in range(0, stop, step):
                bound = (best * (1.0 + BOUND_SLACK) + BOUND_SLACK * size) / scale
                if bounded_sse(rot_grid_i[k], other_flat_grids[j], g * 3, bound) > bound:
                    continue
                if rot_i.shape[0] == 0:
                    rot_i = rotations(tensors[i], flip)
                started = True
                sse = bounded_sse(rot_i[k], other_flat[j], p * 3, best)
                if sse <= best:
                    best = sse
            summed += started
            if best / size <= max_mse:
                if found < capacity:
                    cols[w, found] = j
                    mses[w, found] = best / size
                found += 1
        counts[w] = found
        exact[w] = summed
    return counts, cols, mses, exact


@njit(cache=kernel_cache.ENABLED)
def rotation_offsets(p, k):
    """Where symmetry ``k`` (0..7) reads a flat (p, p, 3) image: ``(start, dy, dx)``.

    Symmetry k is ``np.rot90(image, k)`` for k < 4 and
    ``np.rot90(np.fliplr(image), k - 4)`` for k >= 4. Pixel (y, x) of the
    transformed image starts at flat index ``start + y * dy + x * dx`` of the
    image; its 3 values follow. Lets a kernel read a symmetry in place,
    without building it.
    """
    row = 3 * p
    last = p - 1
    if k == 0:  # (y, x)
        return 0, row, 3
    if k == 1:  # (x, last - y)
        return 3 * last, -3, row
    if k == 2:  # (last - y, last - x)
        return last * row + 3 * last, -row, -3
    if k == 3:  # (last - x, y)
        return last * row, 3, -row
    if k == 4:  # (y, last - x)
        return 3 * last, row, -3
    if k == 5:  # (x, y)
        return 0, 3, row
    if k == 6:  # (last - y, x)
        return last * row, -row, 3
    return last * row + 3 * last, -3, -row  # k == 7: (last - x, last - y)


@njit(parallel=True, cache=kernel_cache.ENABLED)
def rotation_hashes(tensors, flip):
    """A 64-bit hash (FNV-1a over the values) of each symmetry: uint64 (N, 4), (N, 8) with ``flip``.

    Column k hashes symmetry k (:func:`rotation_offsets`): the four rotations,
    then with ``flip`` the four rotations of the horizontal flip. Equal
    images give equal hashes, so images equal up to a symmetry share the
    smallest of the hashes of the symmetries compared. Different images may
    collide: callers confirm equality exactly.
    """
    n, p = tensors.shape[0], tensors.shape[1]
    flat = tensors.reshape(n, p * p * 3)
    count = 8 if flip else 4
    out = np.empty((n, count), dtype=np.uint64)
    prime = np.uint64(1099511628211)
    for i in prange(n):
        for k in range(count):
            start, dy, dx = rotation_offsets(p, k)
            h = np.uint64(14695981039346656037)
            for y in range(p):
                for x in range(p):
                    at = start + y * dy + x * dx
                    for c in range(3):
                        # Clamped so the integer conversion is defined for any finite value.
                        v = min(max(np.float64(flat[i, at + c]), -1e15), 1e15)
                        h = (h ^ np.uint64(np.int64(v * 256.0))) * prime
            out[i, k] = h
    return out


def grid_side(p: int) -> int:
    """Side g of the block-mean grid for px = p: the largest divisor of p up to 10."""
    for g in range(min(p, 10), 0, -1):
        if p % g == 0:
            return g
    return 1


@njit(parallel=True, cache=kernel_cache.ENABLED)
def pair_mse(tensors, left, right, rotate, flip):
    """Exact MSE of each pair (``left[m]``, ``right[m]``), and the symmetry that gave it.

    The smallest MSE over the symmetries of ``left[m]`` that ``rotate`` and
    ``flip`` compare (:func:`symmetry_range`) counts.

    Returns
    -------
    mse : float64 array
    symmetry : int64 array
        The symmetry k (:func:`rotation_offsets`) of the smallest MSE, the
        lowest k on a tie: ``right[m]`` is (nearest) ``left[m]`` under it.
    """
    n, p = tensors.shape[0], tensors.shape[1]
    size = p * p * 3
    flat = tensors.reshape(n, size)
    stop, step = symmetry_range(rotate, flip)
    out = np.empty(left.shape[0], dtype=np.float64)
    which = np.empty(left.shape[0], dtype=np.int64)
    for m in prange(left.shape[0]):
        a, b = flat[left[m]], flat[right[m]]
        best = np.inf
        arg = 0
        for k in range(0, stop, step):
            start, dy, dx = rotation_offsets(p, k)
            sse = 0.0
            for y in range(p):
                for x in range(p):
                    at, to = start + y * dy + x * dx, (y * p + x) * 3
                    for c in range(3):
                        d = np.float64(a[at + c]) - np.float64(b[to + c])
                        sse += d * d
            if k == 0 or sse < best:
                best, arg = sse, k
        out[m] = best / size
        which[m] = arg
    return out, which


kernel_cache.serialise_saves(
    symmetry_range,
    rotations,
    bounded_sse,
    comparable,
    block_means,
    ring_size,
    match_ranges,
    rotation_offsets,
    rotation_hashes,
    pair_mse,
)
