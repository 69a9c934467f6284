"""Which pairs of thumbnails match: comparable units, sorted windows, tiles and hashing.

Everything here runs on arrays in the calling process; a backend
(:mod:`fastdif.backends`) decides where each piece runs. The kernels
(:mod:`fastdif.engine.kernels`) skip pairs by exact bounds, so every path
returns the pairs a comparison of all pairs would.

Threshold above 0
    Images are compared with :func:`match_items`: each row (an image) with
    a range of other images, in work items of :data:`BLOCK` images. The
    classic path gives every image all later images in one call (units up
    to :data:`CLASSIC_MAX_IMAGES` images); the chunked path sorts images by
    chroma cell and overall mean (:func:`cell_windows`), gives each only the
    few ranges the channel-mean bound allows, and goes a tile of rows at a
    time (:func:`find_matches`); tasks that hold only part of the images
    use one window of the overall mean (:func:`sorted_windows`) cut in
    :func:`tiles`.

Threshold 0
    Identical thumbnails are found in O(N) by hashing (:func:`identical_pairs`).

With ``rotate`` and ``flip`` (:class:`~fastdif.model.Criteria`) a pair's MSE
is the smallest over the symmetries of the square they compare (see
:mod:`fastdif.engine.kernels`); :data:`SYMMETRY_NAMES` says, for each, what
it does to a group's key to give the member.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..model import BlockMeans, Criteria
from .kernels import (
    BOUND_SLACK,
    block_means,
    grid_side,
    match_ranges,
    pair_mse,
    ring_size,
    rotation_hashes,
    symmetry_range,
)

#: Units up to this many images compare all pairs in one kernel call (the
#: classic path); larger ones go tile by tile (the chunked path).
CLASSIC_MAX_IMAGES = 5000

#: Images per kernel work item and matches stored per work item before a
#: row is recomputed with room for all of them.
BLOCK = 1024
CAPACITY = 16

#: What symmetry k of the kernels (:func:`~fastdif.engine.kernels.rotation_offsets`)
#: does to a key to give its member: ``np.rot90`` turns counter-clockwise,
#: and a flip comes before the turn. "" for none. The flipped ones are their
#: own inverses, so they read the same from the member to the key.
SYMMETRY_NAMES = (
    "",
    "rotated 90 degrees counter-clockwise",
    "rotated 180 degrees",
    "rotated 90 degrees clockwise",
    "flipped horizontally",
    "flipped horizontally and rotated 90 degrees counter-clockwise",
    "flipped vertically",
    "flipped horizontally and rotated 90 degrees clockwise",
)


@dataclass(frozen=True)
class Thumbnails:
    """Thumbnails with what :func:`match_items` reads besides them.

    Attributes
    ----------
    tensors : float32 or uint8 array (N, px, px, 3), C-contiguous
    shapes : int64 array (N, 2)
        Each image's (width, height).
    grids : float32 array (N, g, g, 3)
        Block means on the grid of :func:`~fastdif.engine.kernels.grid_side`.
    means : float32 array (N, 1, 1, 3)
        Channel means.
    """

    tensors: np.ndarray
    shapes: np.ndarray
    grids: np.ndarray
    means: np.ndarray

    @classmethod
    def of(cls, tensors, shapes, means=None) -> Thumbnails:
        """Compute the block means of ``tensors`` (and the channel means unless given)."""
        grids = block_means(tensors, grid_side(tensors.shape[1]))
        if means is None:
            means = block_means(tensors, 1)
        return cls(tensors, shapes, grids, means)

    @classmethod
    def of_repository(cls, dif) -> Thumbnails:
        """All of a repository's thumbnails, with its :class:`~fastdif.model.BlockMeans`.

        Block means a repository does not hold yet (one made by
        :func:`fastdif.from_arrays`, or saved before they were) are computed
        once and kept on it, so they are saved with it.
        """
        if dif.block_means is None:
            found = cls.of(dif.tensors, dif.shapes)
            dif.block_means = BlockMeans(found.grids, found.means)
        return cls(dif.tensors, dif.shapes, dif.block_means.grids, dif.block_means.means)


def repository_block_means(tensors, chunk: int = 1024, out=None) -> BlockMeans:
    """The block means :func:`~fastdif.engine.kernels.block_means` gives, in NumPy, one thread.

    For ``build``: a build starts no Numba thread, so a program that forks
    after it (``multiprocessing``'s default on Linux) can still use Numba in
    the child, which it cannot after OpenMP threads ran. Sums are float64:
    for integer-valued thumbnails (every build's) they are exact, and the
    result is the kernel's bit for bit (the tests compare them). ``chunk``
    rows are summed at a time; ``out``, a pair ``(grids, means)`` of
    writable float32 arrays of the result's shapes (memory-mapped files, for
    example), receives them instead of new arrays.
    """
    n, p = tensors.shape[0], tensors.shape[1]
    g = grid_side(p)
    if out is None:
        out = np.empty((n, g, g, 3), dtype=np.float32), np.empty((n, 1, 1, 3), dtype=np.float32)
    grids, means = out
    for a in range(0, n, chunk):
        rows = np.asarray(tensors[a : a + chunk], dtype=np.float64)
        blocks = rows.reshape(len(rows), g, p // g, g, p // g, 3).sum(axis=(2, 4))
        grids[a : a + chunk] = blocks / (p // g) ** 2
        means[a : a + chunk] = blocks.sum(axis=(1, 2))[:, None, None, :] / (p * p)
    return BlockMeans(grids, means)


def bound_features(grids, means, chunk: int = 16384) -> np.ndarray:
    """What :func:`~fastdif.engine.kernels.match_ranges` reads first of each image.

    Per image, float32: the three channel ``means``, then for each ring r of
    the g x g grid (the blocks r in from the nearest edge; a symmetry of the
    square moves blocks within their ring, so the ring means do not change
    under it) and each channel, the ring's mean minus the grid's channel
    mean. Since ``sum_r n_r (Δ ring mean)^2 <= sum of (Δ block mean)^2``
    (the block-mean bound applied to the rings), the kernel skips with them
    every pair the block means under all symmetries would skip, but reads
    3 + 3 * ceil(g / 2) numbers instead of 3 * g * g per symmetry.
    """
    n, g = grids.shape[0], grids.shape[1]
    y, x = np.mgrid[:g, :g]
    ring = np.minimum(np.minimum(y, x), np.minimum(g - 1 - y, g - 1 - x)).ravel()
    n_rings = (g + 1) // 2
    # The plain Python function: nothing to compile for two integers.
    sizes = np.array([ring_size.py_func(g, r) for r in range(n_rings)], dtype=np.float64)
    # One linear map from a grid, flat (block, channel), to (ring, channel):
    # the ring's mean minus the grid's mean, as one matrix product.
    residual = (ring[:, None] == np.arange(n_rings)) / sizes - 1.0 / (g * g)
    weights = np.kron(residual, np.eye(3))
    out = np.empty((n, 3 + 3 * n_rings), dtype=np.float32)
    out[:, :3] = means.reshape(n, 3)
    for a in range(0, n, chunk):
        blocks = np.asarray(grids[a : a + chunk], dtype=np.float64).reshape(-1, g * g * 3)
        out[a : a + chunk, 3:] = blocks @ weights
    return out


def comparable_units(dif, same_dim: bool):
    """The sets of images that can match, as (folder, image indices) with >= 2 images.

    Each search group of the repository ``dif`` (all images, or a folder with
    ``in_folder``) is one unit; with ``same_dim`` it is split by sorted
    (width, height), since only images of equal dimensions (in either
    orientation) are compared.
    """
    for folder, group in zip(dif.folders, dif.groups, strict=True):
        index = np.asarray(group, dtype=np.int64)
        if same_dim and index.size > 1:
            shapes = np.sort(dif.shapes[index], axis=1)
            _, unit = np.unique(shapes, axis=0, return_inverse=True)
            order = np.argsort(unit.ravel(), kind="stable")
            bounds = np.flatnonzero(np.diff(unit.ravel()[order])) + 1
            parts = np.split(index[order], bounds)
        else:
            parts = [index]
        for part in parts:
            if part.size > 1:
                yield folder, part


def find_matches(
    tensors, shapes, criteria: Criteria, tile_rows=None, progress=None, block_means=None
):
    """Every pair (i, j), i < j, whose MSE is <= ``criteria.max_mse``.

    The classic path (``tile_rows=None``) considers every pair in one kernel
    call; the chunked path compares each image only with the few ranges of
    images that the channel means allow (:func:`cell_windows`), ``tile_rows``
    rows at a time. Both skip pairs by the same exact bounds (see
    :mod:`fastdif.engine.kernels`) and return the same pairs.

    Parameters
    ----------
    tensors : float32 or uint8 array (N, px, px, 3), C-contiguous
    shapes : int64 array (N, 2)
    criteria : Criteria
    tile_rows : int, optional
        Rows per tile of the chunked path. Memory of a tile is at most
        ``tile_rows * 5 * ceil(N / BLOCK) * (CAPACITY + 4) * 12`` bytes plus
        the matches found; it never grows with N squared.
    progress : callable, optional
        Called with the number of rows finished after each tile.
    block_means : BlockMeans, optional
        Of ``tensors``, when the caller holds them (a repository's); computed
        otherwise.

    Returns
    -------
    i, j : int64 arrays
        Matching pairs in ascending (i, j) order.
    summed : int
        Pairs that no bound skipped (an exact sum was started).
    """
    n = tensors.shape[0]
    if block_means is None:
        images = Thumbnails.of(tensors, shapes)
    else:
        images = Thumbnails(tensors, shapes, block_means.grids, block_means.means)
    if not tensors.flags.writeable and images.grids.flags.writeable:
        # Read-only with the thumbnails, as a repository's: one kernel type.
        images.grids.flags.writeable = False
    features = bound_features(images.grids, images.means)
    if tile_rows is None:
        order = np.arange(n, dtype=np.int64)
        ranked = features
        tiles = [(order, order + 1, np.full(n, n, dtype=np.int64), n)]
    else:
        windows = cell_windows(images.means, criteria.max_mse)
        order = windows.order
        ranked = features[order]
        tiles = (
            windows.ranges(np.arange(s, min(s + tile_rows, n))) for s in range(0, n, tile_rows)
        )
    found_i, found_j, summed = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
    for rows, begins, stops, finished in tiles:
        a, b, exact = match_items(
            images, order[rows], images, order, begins, stops, criteria, (features, ranked)
        )
        found_i.append(np.minimum(a, b))
        found_j.append(np.maximum(a, b))
        summed += exact
        if progress:
            progress(finished)
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first = np.lexsort((j, i))
    return i[first], j[first], summed


#: The cells each cell's images are compared with, as (chroma 1, chroma 2)
#: offsets: its own (later positions only) and one of each opposite pair of
#: its eight neighbours, so that every pair of cells is visited once.
NEIGHBOURS = ((0, 0), (0, 1), (1, -1), (1, 0), (1, 1))

#: Most cells along each chroma axis; wider cells only visit more pairs.
MAX_CELLS = 256


@dataclass(frozen=True)
class CellWindows:
    """Images sorted by chroma cell, then overall mean: see :func:`cell_windows`.

    Attributes
    ----------
    order : int64 array (N,)
        Image index at each position.
    cells : int64 array (N,)
        Cell number at each position (ascending); the neighbour at offset
        (a, b) of cell c is cell ``c + a * span + b``.
    span : int
    keys : int64 array (N,)
        ``cells * (N + 1) + rank``, ascending, with ``rank`` the overall
        mean's place among all (``np.searchsorted(overall, m)``): exact
        integers to search a cell's range of overall means in.
    overall : float64 array (N,)
        All overall means, ascending.
    radius : float
    """

    order: np.ndarray
    cells: np.ndarray
    span: int
    keys: np.ndarray
    overall: np.ndarray
    radius: float

    def ranges(self, positions):
        """The work of rows ``positions``: ``(rows, begins, stops, len(positions))``.

        Row ``rows[k]`` (a position) is compared with positions
        ``begins[k]:stops[k]``; a row has one entry per non-empty range.
        """
        n = self.order.size
        centre = self.overall_at(positions)
        low = np.searchsorted(self.overall, centre - self.radius, side="left")
        high = np.searchsorted(self.overall, centre + self.radius, side="right")
        offsets = np.array([a * self.span + b for a, b in NEIGHBOURS], dtype=np.int64)
        target = (self.cells[positions][:, None] + offsets) * (n + 1)
        begins = np.searchsorted(self.keys, target + low[:, None], side="left")
        stops = np.searchsorted(self.keys, target + high[:, None], side="left")
        begins[:, 0] = positions + 1  # its own cell: later positions only
        keep = stops > begins
        rows = np.broadcast_to(positions[:, None], keep.shape)[keep]
        return rows, begins[keep], stops[keep], positions.size

    def overall_at(self, positions):
        """The overall mean of the images at ``positions``."""
        return self.overall[self.keys[positions] % (self.order.size + 1)]


def cell_windows(means, max_mse) -> CellWindows:
    """Where each image's candidates lie, when images are sorted by chroma cell and mean.

    With the channel means scaled as ``y_c = mu_c / sqrt(3)``, the channel
    bound reads ``|Δy|^2 <= MSE``; the overall mean and the two chroma
    coordinates ``(mu_r - mu_g) / sqrt(6)`` and ``(mu_r + mu_g - 2 mu_b) /
    sqrt(18)`` are ``y`` along unit directions, so each differs by at most
    ``sqrt(MSE)`` between matching images. Images are cut into square cells
    of the two chroma coordinates at least :func:`window_radius` wide (a
    little more, so that every pair the channel bound would keep is visited)
    and sorted by cell, then by overall mean: an image's candidates lie in
    its own cell and the eight around it, each a range of positions within
    the radius of its overall mean. Compared with one window of the overall
    mean, this visits about a twelfth of the pairs on photos.
    """
    flat = means.reshape(means.shape[0], 3).astype(np.float64)
    overall = flat.mean(axis=1)
    radius = window_radius(max_mse) * (1 + 1e-6)
    chroma = np.stack(
        [
            (flat[:, 0] - flat[:, 1]) / np.sqrt(6.0),
            (flat[:, 0] + flat[:, 1] - 2 * flat[:, 2]) / np.sqrt(18.0),
        ],
        axis=1,
    )
    low = chroma.min(axis=0, initial=0.0)
    width = max(radius, float((chroma.max(axis=0, initial=0.0) - low).max()) / MAX_CELLS)
    cell = np.floor((chroma - low) / width).astype(np.int64) + 1
    span = int(cell[:, 1].max(initial=0)) + 2
    cells = cell[:, 0] * span + cell[:, 1]
    order = np.lexsort((overall, cells))
    ranked = np.sort(overall)
    rank = np.searchsorted(ranked, overall[order], side="left")
    keys = cells[order] * (order.size + 1) + rank
    return CellWindows(order.astype(np.int64), cells[order], span, keys, ranked, radius)


def sorted_windows(means, max_mse):
    """Images sorted by overall mean, and the window each may match in that order.

    Parameters
    ----------
    means : float32 array (N, 1, 1, 3)
        Channel means (``block_means(tensors, 1)``).
    max_mse : float

    Returns
    -------
    order : int64 array (N,)
        Image indices by ascending overall mean (stable).
    ends : int64 array (N,)
        Image ``order[p]`` can only match images ``order[p + 1 : ends[p]]``
        among those after it: the overall means differ by more than
        ``sqrt(max_mse)`` beyond (with :data:`~fastdif.engine.kernels.BOUND_SLACK`).
    """
    overall = overall_means(means)
    order = np.argsort(overall, kind="stable").astype(np.int64)
    ranked = overall[order]
    ends = np.searchsorted(ranked, ranked + window_radius(max_mse), side="right")
    return order, ends.astype(np.int64)


def overall_means(means) -> np.ndarray:
    """Each image's mean over all its values (float64), from its channel means."""
    return means.reshape(means.shape[0], 3).astype(np.float64).mean(axis=1)


def window_radius(max_mse) -> float:
    """How far apart two images' overall means can be and the images still match.

    ``(Δ overall mean)^2 <= MSE`` (see :mod:`fastdif.engine.kernels`), with
    :data:`~fastdif.engine.kernels.BOUND_SLACK` added.
    """
    return float(np.sqrt(max_mse * (1 + BOUND_SLACK) + BOUND_SLACK))


def find_library_matches(
    queries: Thumbnails, library: Thumbnails, criteria, tile_rows, progress=None
):
    """Every pair (q, l) of a new image q and a library image l within ``criteria.max_mse``.

    Library images are sorted by overall mean; each new image is compared
    only with the window of library images whose overall mean is within
    :func:`window_radius` of its own, on both sides, ``tile_rows`` new
    images at a time. The bounds of :func:`match_items` then skip most of
    the window, so the cost grows with the new images, not with the library.
    Pairs among library images are never compared.

    Parameters
    ----------
    queries, library : Thumbnails
        The new images and the library (same px; the dtypes may differ).
    criteria : Criteria
    tile_rows : int
        New images per kernel call.
    progress : callable, optional
        Called with the number of new images finished after each call.

    Returns
    -------
    i, j : int64 arrays
        Matching pairs, ``i`` indexing ``queries`` and ``j`` ``library``, in
        ascending (i, j) order.
    summed : int
        Pairs that no bound skipped.
    """
    overall = overall_means(library.means)
    order = np.argsort(overall, kind="stable").astype(np.int64)
    ranked = overall[order]
    centres = overall_means(queries.means)
    radius = window_radius(criteria.max_mse)
    begins = np.searchsorted(ranked, centres - radius, side="left").astype(np.int64)
    stops = np.searchsorted(ranked, centres + radius, side="right").astype(np.int64)
    features = (
        bound_features(queries.grids, queries.means),
        bound_features(library.grids, library.means)[order],
    )
    found_i, found_j, summed = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
    for s in range(0, centres.size, tile_rows):
        rows = np.arange(s, min(s + tile_rows, centres.size), dtype=np.int64)
        i, j, exact = match_items(
            queries, rows, library, order, begins[rows], stops[rows], criteria, features
        )
        found_i.append(i)
        found_j.append(j)
        summed += exact
        if progress:
            progress(rows.size)
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first = np.lexsort((j, i))
    return i[first], j[first], summed


def match_items(
    images: Thumbnails, image_ids, others: Thumbnails, order, begins, stops, criteria, features=None
):
    """Compare image ``image_ids[k]`` with images ``order[begins[k]:stops[k]]`` of ``others``.

    ``others`` may be ``images`` itself (a search within one set). Each range
    is split into kernel work items of at most :data:`BLOCK` positions.
    ``features`` is ``(bound_features of images, bound_features of others
    in order)`` when the caller keeps them for several calls; computed
    otherwise (see :func:`bound_features`).

    Returns
    -------
    i, j : int64 arrays
        Matching pairs: ``i`` indexes ``images``, ``j`` indexes ``others``;
        in no particular order.
    summed : int
        Pairs that no bound skipped.
    """
    per_row = np.maximum(stops - begins, 0)
    blocks = -(-per_row // BLOCK)
    item_image = np.repeat(image_ids, blocks)
    first = np.repeat(np.cumsum(blocks) - blocks, blocks)
    item_begin = np.repeat(begins, blocks) + (np.arange(item_image.size) - first) * BLOCK
    item_end = np.minimum(item_begin + BLOCK, np.repeat(stops, blocks))
    if features is None:
        features = (
            bound_features(images.grids, images.means),
            bound_features(others.grids, others.means)[order],
        )
    sets = (
        images.tensors, images.grids, features[0], images.shapes, None,
        others.tensors, others.grids, features[1], others.shapes, order,
    )  # fmt: skip
    flags = (criteria.rotate, criteria.flip, criteria.same_dim, criteria.max_mse)

    def run(items, capacity):
        arrays = sets[:4] + (item_image[items],) + sets[5:]
        return match_ranges(*arrays, item_begin[items], item_end[items], *flags, capacity)

    with numba.parallel_chunksize(1):
        counts, cols, _, exact = run(slice(None), CAPACITY)
        over = np.flatnonzero(counts > CAPACITY)
        if over.size:
            wide = int(counts[over].max())
            redo = run(over, wide)[1]
            cols = np.concatenate([cols, np.zeros((cols.shape[0], wide - CAPACITY), np.int64)], 1)
            cols[over] = redo
    stored = np.arange(cols.shape[1]) < counts[:, None]
    w, _ = np.nonzero(stored)
    return item_image[w], cols[stored], int(exact.sum())


def tiles(ends, side):
    """Tiles of the pairs ``(p, q)``, ``p < q < ends[p]``, of at most ``2 * side`` images.

    For work items that hold only their own images (tasks on other
    machines). Rows go ``side`` positions at a time. A row block's first tile
    holds its rows and the ``side`` positions after them; each further tile
    holds the rows and ``side`` more columns, up to the last position a row
    reaches.

    Yields
    ------
    positions : int64 array
        The tile's images: its rows, then its columns where they differ.
    n_rows : int
    begins, stops : int64 arrays (n_rows,)
        Row ``r`` is compared with ``positions[begins[r]:stops[r]]``.
    weight : float
        The tile's share of its rows (for progress).
    """
    n = ends.size
    for r0 in range(0, n, side):
        r1 = min(r0 + side, n)
        rows = np.arange(r0, r1, dtype=np.int64)
        row_ends = ends[r0:r1]
        last = int(row_ends.max())
        if last <= r0 + 1:
            continue
        spans = [(r0, min(r1 + side, last))]
        spans += [(c0, min(c0 + side, last)) for c0 in range(r1 + side, last, side)]
        found = []
        for c0, c1 in spans:
            begins = np.maximum(rows + 1, c0)
            stops = np.minimum(row_ends, c1)
            if (stops > begins).any():
                found.append((c0, c1, begins, stops))
        for c0, c1, begins, stops in found:
            if c0 == r0:
                positions, shift = np.arange(r0, max(r1, c1), dtype=np.int64), r0
            else:
                positions = np.concatenate([rows, np.arange(c0, c1, dtype=np.int64)])
                shift = c0 - (r1 - r0)
            yield positions, r1 - r0, begins - shift, stops - shift, (r1 - r0) / len(found)


def find_identical(tensors, shapes, criteria: Criteria):
    """Pairs of identical thumbnails (MSE 0), up to the symmetries compared, in O(N).

    See :func:`identical_pairs`. Returns pairs (i, j), i < j, in ascending
    order, linking each image to the first image equal to it: the same
    groups as all pairs with MSE 0, without comparing pairs.
    """
    if tensors.shape[0] < 2:
        return np.empty(0, np.int64), np.empty(0, np.int64)
    return identical_pairs(
        rotation_hashes(tensors, criteria.flip),
        shapes,
        criteria,
        lambda left, right: pair_mse(tensors, left, right, criteria.rotate, criteria.flip)[0] == 0,
    )


def identical_pairs(hashes, shapes, criteria: Criteria, equal):
    """The pairs of :func:`find_identical`, from the images' rotation hashes.

    Images are bucketed by a hash of their canonical form (the smallest hash
    of the symmetries compared: rotations with ``rotate``, flips with
    ``flip``) and, with ``same_dim``, by their sorted (width, height); within
    a bucket, equality is confirmed exactly.

    Parameters
    ----------
    hashes : uint64 array (N, 4), or (N, 8) with ``criteria.flip``
        :func:`~fastdif.engine.kernels.rotation_hashes` of the images.
    shapes : int64 array (N, 2)
    criteria : Criteria
        Its ``rotate``, ``flip`` and ``same_dim``; the threshold is 0.
    equal : callable
        ``equal(left, right)``: a bool array, True where images ``left[m]`` and
        ``right[m]`` are identical (up to the symmetries compared).
    """
    # The plain Python function: nothing to compile for two integers.
    compared = range(0, *symmetry_range.py_func(criteria.rotate, criteria.flip))
    key = hashes[:, compared].min(axis=1)
    columns = [key.view(np.int64)]
    if criteria.same_dim:
        columns += [shapes.min(axis=1), shapes.max(axis=1)]
    _, bucket = np.unique(np.stack(columns, axis=1), axis=0, return_inverse=True)
    bucket = bucket.ravel()
    sizes = np.bincount(bucket)
    order = np.argsort(bucket, kind="stable")
    order = order[sizes[bucket[order]] > 1]
    found_i, found_j = [np.empty(0, np.int64)], [np.empty(0, np.int64)]
    # Each round compares every image with the first of its bucket, in one
    # kernel call; images unequal to it (hash collisions) stay for the next.
    while order.size > 1:
        ids = bucket[order]
        head = np.r_[True, ids[1:] != ids[:-1]]
        first = order[np.maximum.accumulate(np.where(head, np.arange(order.size), 0))]
        left, right = first[~head], order[~head]
        same = equal(left, right)
        found_i.append(left[same])
        found_j.append(right[same])
        rest = ~head
        rest[rest] = ~same
        order = order[rest]
    i, j = np.concatenate(found_i), np.concatenate(found_j)
    first = np.lexsort((j, i))
    return i[first], j[first]


def unit_mse(tensors, index, criteria: Criteria, kernel=pair_mse):
    """``mse(left, right)``: the exact MSEs of pairs of positions in ``index``.

    The smallest over the symmetries ``criteria`` compares, of ``left[m]``;
    ``mse(left, right, symmetry=True)`` also gives the symmetry of each
    (:func:`~fastdif.engine.kernels.pair_mse`, or ``kernel``, a function
    that gives the same: :func:`fastdif.engine.numpy_kernels.pair_mse`).
    ``tensors`` are all the repository's thumbnails; only the rows a call
    needs are read (none copied when ``index`` is every image in order).
    """
    whole = index.size == tensors.shape[0] and np.array_equal(index, np.arange(index.size))

    def mse(left, right, symmetry=False):
        if whole:
            found = kernel(tensors, left, right, criteria.rotate, criteria.flip)
            return found if symmetry else found[0]
        ids, inverse = np.unique(np.concatenate([index[left], index[right]]), return_inverse=True)
        rows = np.ascontiguousarray(tensors[ids])
        # Read-only like a repository's arrays: the kernel sees one type,
        # the one fastdif.engine.warmup compiles it for.
        rows.flags.writeable = False
        found = kernel(
            rows, inverse[: left.size], inverse[left.size :], criteria.rotate, criteria.flip
        )
        return found if symmetry else found[0]

    return mse


def cross_mse(tensors, library_tensors, criteria: Criteria):
    """``mse(left, right)``: exact MSEs of pairs of a repository's images and a library's.

    Ids below ``len(tensors)`` are the repository's images, the others
    ``len(tensors) + k`` the library's image ``k``; only the rows a call
    needs are read. ``symmetry=True`` as in :func:`unit_mse`.
    """
    n = tensors.shape[0]

    def mse(left, right, symmetry=False):
        ids, inverse = np.unique(np.concatenate([left, right]), return_inverse=True)
        rows = np.empty((ids.size, *tensors.shape[1:]), dtype=np.float32)
        own = ids < n
        rows[own] = tensors[ids[own]]
        rows[~own] = library_tensors[ids[~own] - n]
        rows.flags.writeable = False  # the type fastdif.engine.warmup compiles for
        found = pair_mse(
            rows, inverse[: left.size], inverse[left.size :], criteria.rotate, criteria.flip
        )
        return found if symmetry else found[0]

    return mse
