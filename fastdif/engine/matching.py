"""Which pairs of thumbnails match: comparable units, plans, cell windows and hashing.

Everything here runs on arrays in the calling process; a backend
(:mod:`fastdif.backends`) decides where each piece runs. The kernels
(:mod:`fastdif.engine.kernels`) skip pairs by exact bounds, so every path
returns the pairs a comparison of all pairs would.

Threshold above 0
    A search runs a :class:`Plan`: row images, each compared with ranges of
    candidates in an order, a tile of rows at a time, by :func:`match_items`
    (in kernel work items of :data:`BLOCK` images). A unit of up to
    :data:`CLASSIC_MAX_IMAGES` images takes the classic plan (each image
    with all later images, in one tile); a larger one the chunked plan
    (images sorted by chroma cell and overall mean, :func:`cell_windows`,
    each compared only with the few ranges the channel-mean bound allows);
    new images against a library the library's window of overall mean
    (:func:`library_plan`). A backend runs the plan in its process
    (:meth:`Plan.run`) or as tasks that hold only the images of a
    :class:`Piece` (:meth:`Tile.pieces`), so every backend finds the same
    pairs.

Threshold 0
    Identical thumbnails are found in O(N) by hashing (:func:`identical_pairs`).

With ``rotate`` and ``flip`` (:class:`~fastdif.model.Criteria`) a pair's MSE
is the smallest over the symmetries of the square they compare (see
:mod:`fastdif.engine.kernels`); :data:`SYMMETRY_NAMES` says, for each, what
it does to a group's key to give the member.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
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
    def of(cls, tensors, shapes, means=None, grids=None) -> Thumbnails:
        """``tensors`` with their block means: ``means`` and ``grids`` as given, or computed.

        The grids of read-only thumbnails (a repository's) are read-only too,
        so the kernels see one type.
        """
        if grids is None:
            grids = block_means(tensors, grid_side(tensors.shape[1]))
        if means is None:
            means = block_means(tensors, 1)
        if not tensors.flags.writeable and grids.flags.writeable:
            grids.flags.writeable = False
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
        return cls.of(dif.tensors, dif.shapes, dif.block_means.means, dif.block_means.grids)


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
    """Every pair (i, j), i < j, whose MSE is <= ``criteria.max_mse``, found in this process.

    Runs :func:`classic_plan` (``tile_rows=None``: every pair in one kernel
    call) or :func:`chunked_plan` (each image only with the few ranges of
    images the channel means allow, ``tile_rows`` rows at a time). Both skip
    pairs by the same exact bounds (see :mod:`fastdif.engine.kernels`) and
    return the same pairs.

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
    held = (None, None) if block_means is None else (block_means.means, block_means.grids)
    images = Thumbnails.of(tensors, shapes, *held)
    if tile_rows is None:
        plan = classic_plan(tensors.shape[0])
    else:
        plan = chunked_plan(images.means, criteria.max_mse, tile_rows)
    return plan.run(images, images, criteria, progress)


@dataclass(frozen=True)
class Piece:
    """Part of a :class:`Tile`, with the images it touches (:meth:`Tile.pieces`).

    Attributes
    ----------
    row_ids : int64 array
        Its row images (of the plan's row set), each once.
    candidate_ids : int64 array
        Its candidates (of the plan's candidate set), in the plan's order.
    rows, begins, stops : int64 arrays (E,)
        Entry ``e`` compares image ``row_ids[rows[e]]`` with images
        ``candidate_ids[begins[e]:stops[e]]``.
    weight : float
        Its share of its tile's rows (for progress).
    """

    row_ids: np.ndarray
    candidate_ids: np.ndarray
    rows: np.ndarray
    begins: np.ndarray
    stops: np.ndarray
    weight: float


@dataclass(frozen=True)
class Tile:
    """Rows of a :class:`Plan`, each with the ranges of candidates it is compared with.

    Attributes
    ----------
    rows : int64 array (E,)
        The row image of each entry (of the plan's row set); a row has one
        entry per range, and its entries are consecutive.
    begins, stops : int64 arrays (E,)
        Entry ``e`` compares image ``rows[e]`` with the candidates at
        positions ``begins[e]:stops[e]`` of the plan's order.
    weight : int
        Rows the tile finishes (for progress).
    """

    rows: np.ndarray
    begins: np.ndarray
    stops: np.ndarray
    weight: int

    def pieces(self, order, side: int, within: bool) -> list[Piece]:
        """The tile cut for tasks that hold only the images they compare.

        Rows go ``side`` at a time; the ranges of such a block of rows,
        merged and laid end to end, are cut so that a piece holds at most
        ``2 * side`` images: its rows, and candidates that are not among
        them (``within``: rows and candidates are one set, as the plan's
        ``order`` is). So a task's memory does not grow with the number of
        images, and each (row, candidate) of the tile is in exactly one piece.
        """
        full = self.stops > self.begins
        rows, begins, stops = self.rows[full], self.begins[full], self.stops[full]
        # A row's entries are consecutive: count the rows, ``side`` to a block.
        block = (np.cumsum(rows != np.r_[-1, rows[:-1]]) - 1) // side
        found = []
        for b in np.unique(block):
            mine = block == b
            found += _cut(rows[mine], begins[mine], stops[mine], order, 2 * side, within)
        return [Piece(*piece, self.weight / len(found)) for piece in found]


def _cut(rows, begins, stops, order, limit, within):
    """:meth:`Tile.pieces` of a block of rows: ``(row_ids, candidate_ids, rows, begins, stops)``."""
    by = np.argsort(begins, kind="stable")
    reach = np.maximum.accumulate(stops[by])
    head = np.flatnonzero(np.r_[True, begins[by][1:] > reach[:-1]])
    low = begins[by][head]  # the merged ranges: low[k] up to low[k] + length[k]
    length = reach[np.r_[head[1:] - 1, by.size - 1]] - low
    offset = np.cumsum(length) - length
    k = np.searchsorted(low, begins, side="right") - 1
    first = begins - low[k] + offset[k]  # each entry's range, in the merged ranges end to end
    last = first + (stops - begins)
    candidates = order[np.arange(int(length.sum())) + np.repeat(low - offset, length)]
    # Candidates that are rows too cost a task nothing more.
    extra = ~np.isin(candidates, rows) if within else np.ones(candidates.size, dtype=bool)
    room = limit - np.unique(rows).size
    chunk = np.maximum(np.cumsum(extra) - 1, 0) // room
    edges = np.r_[0, np.flatnonzero(np.diff(chunk)) + 1, candidates.size]
    found = []
    for c0, c1 in zip(edges[:-1].tolist(), edges[1:].tolist(), strict=True):
        b, s = np.maximum(first, c0), np.minimum(last, c1)
        keep = s > b
        row_ids, at = np.unique(rows[keep], return_inverse=True)
        found.append((row_ids, candidates[c0:c1], at.ravel(), b[keep] - c0, s[keep] - c0))
    return found


@dataclass(frozen=True)
class Plan:
    """What a search compares: row images, each with ranges of candidates in an order.

    Made by :func:`unit_plan` (a unit: rows and candidates are one set) and
    :func:`library_plan` (new images against a library). Every backend runs
    the same plan, in its process (:meth:`run`) or as tasks that each hold
    the images of a :class:`Piece`, so every backend finds the same pairs.

    Attributes
    ----------
    rows : int64 array (R,)
        The row images, in the order tiles take them.
    order : int64 array (M,)
        The candidate image at each position.
    ranges : callable
        ``ranges(positions) -> (at, begins, stops)``: for the rows at
        ``positions`` of ``rows``, one entry per range of positions of
        ``order``; ``at`` is the entry's row position.
    tile_rows : int
        Rows per tile.
    within : bool
        Rows and candidates are one set: each pair is visited once, and
        given as (smaller, larger) image.
    """

    rows: np.ndarray
    order: np.ndarray
    ranges: Callable
    tile_rows: int
    within: bool

    def tiles(self) -> Iterator[Tile]:
        """The tiles, ``tile_rows`` rows each, made one at a time."""
        n = self.rows.size
        for start in range(0, n, self.tile_rows):
            positions = np.arange(start, min(start + self.tile_rows, n), dtype=np.int64)
            at, begins, stops = self.ranges(positions)
            yield Tile(self.rows[at], begins, stops, positions.size)

    def pieces(self, side: int) -> Iterator[Piece]:
        """The tiles' :meth:`Tile.pieces`, for tasks that hold at most ``2 * side`` images."""
        for tile in self.tiles():
            yield from tile.pieces(self.order, side, self.within)

    def run(self, images: Thumbnails, others: Thumbnails, criteria: Criteria, progress=None):
        """Run the plan in this process: :func:`match_items` on each tile.

        ``images`` are the rows' thumbnails, ``others`` the candidates'
        (``images`` again for a unit). Returns the matching pairs ``i, j``
        in ascending order (``i`` of ``images``, ``j`` of ``others``) and the
        pairs no bound skipped; ``progress(rows)`` is called after each tile.
        """
        features = bound_features(images.grids, images.means)
        ranked = features if self.within else bound_features(others.grids, others.means)
        ranked = ranked[self.order]
        found_i, found_j, summed = [np.empty(0, np.int64)], [np.empty(0, np.int64)], 0
        for tile in self.tiles():
            a, b, exact = match_items(
                images, tile.rows, others, self.order, tile.begins, tile.stops, criteria,
                (features, ranked),
            )  # fmt: skip
            found_i.append(np.minimum(a, b) if self.within else a)
            found_j.append(np.maximum(a, b) if self.within else b)
            summed += exact
            if progress:
                progress(tile.weight)
        i, j = np.concatenate(found_i), np.concatenate(found_j)
        first = np.lexsort((j, i))
        return i[first], j[first], summed


def classic_plan(n: int) -> Plan:
    """The classic path's plan of ``n`` images: one tile, each image with all later ones."""
    ids = np.arange(n, dtype=np.int64)
    return Plan(ids, ids, lambda at: (at, at + 1, np.full(at.size, n, np.int64)), max(n, 1), True)


def chunked_plan(means, max_mse, tile_rows: int) -> Plan:
    """The chunked path's plan: :func:`cell_windows`, ``tile_rows`` rows a tile.

    Rows go in the windows' order (chroma cell, then overall mean), each
    with the ranges of its own and the neighbouring cells that the channel
    bound allows.
    """
    windows = cell_windows(means, max_mse)
    ranges = lambda at: windows.ranges(at)[:3]  # noqa: E731 - the plan's one callable
    return Plan(windows.order, windows.order, ranges, tile_rows, True)


def unit_plan(means, max_mse, tile_rows: int) -> Plan:
    """The plan every backend runs for a unit whose images have the channel ``means``.

    :func:`classic_plan` for up to :data:`CLASSIC_MAX_IMAGES` images,
    :func:`chunked_plan` of ``tile_rows`` rows a tile above.
    """
    if means.shape[0] <= CLASSIC_MAX_IMAGES:
        return classic_plan(means.shape[0])
    return chunked_plan(means, max_mse, tile_rows)


def library_plan(query_means, library_means, max_mse, tile_rows: int) -> Plan:
    """The plan of new images (channel means ``query_means``) against a library.

    Both are sorted by overall mean; each new image is compared only with
    the window of library images whose overall mean is within
    :func:`window_radius` of its own, on both sides, ``tile_rows`` new
    images a tile. The bounds of :func:`match_items` then skip most of the
    window, so the cost grows with the new images, not with the library.
    Pairs among library images are never compared.
    """
    overall = overall_means(library_means)
    order = np.argsort(overall, kind="stable").astype(np.int64)
    centres = overall_means(query_means)
    rows = np.argsort(centres, kind="stable").astype(np.int64)
    radius = window_radius(max_mse)
    begins = np.searchsorted(overall[order], centres[rows] - radius, side="left")
    stops = np.searchsorted(overall[order], centres[rows] + radius, side="right")
    begins, stops = begins.astype(np.int64), stops.astype(np.int64)
    return Plan(rows, order, lambda at: (at, begins[at], stops[at]), tile_rows, False)


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

    Runs :func:`library_plan` in this process.

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
    plan = library_plan(queries.means, library.means, criteria.max_mse, tile_rows)
    return plan.run(queries, library, criteria, progress)


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
