"""What a search compares: the thumbnails, or their luma, or normalised thumbnails.

Plain MSE compares the thumbnails as they are. Two options compare a
transform ``T`` of each thumbnail instead, and the search then finds every
pair whose ``MSE(T(a), T(b))`` is within the threshold, exactly as comparing
all pairs would: ``T`` acts on each image alone and commutes with the
rotations and flips, so the kernels (:mod:`fastdif.engine.kernels`), their
bounds and both search paths apply unchanged to the transformed thumbnails
and stay exact for them (the bounds hold for any arrays).

``color=False`` (luma)
    Each pixel's luma ``Y = (299 R + 587 G + 114 B) / 1000``, the ITU-R
    BT.601 weights of Pillow's ``"L"`` conversion, in all three channels:
    the MSE is the luma's MSE on the 0..255 scale, so a greyscale copy
    matches its colour original.
``normalize=True``
    Each thumbnail less its mean, divided by its contrast (standard
    deviation), times :data:`REFERENCE_CONTRAST`, plus 128: brightness and
    contrast edits of a picture give (up to clipping) the same normalised
    thumbnail. With ``color=True`` the mean is taken per channel and the
    contrast over the three channels together (one scale, so a flat channel
    is never blown up on its own); with ``color=False`` the luma is
    normalised. The threshold is an MSE between pictures of contrast
    :data:`REFERENCE_CONTRAST` (a typical photo's, so "similar" keeps its
    meaning for one): ``REFERENCE_CONTRAST**2 * (2 - 2r)`` for the luma, r
    the correlation of the two pictures; MSE 5 is r = 0.999.

The guard: flat images
    An image whose luma standard deviation is below :data:`FLAT_CONTRAST`
    (a wall, a sky, a blank page, a star field) is compared as plain MSE
    compares it: its thumbnail, in colour, unnormalised, in every mode. Its
    luma alone is one number, so two different flat pictures of equal
    luma, a red wall and a grey one, would otherwise match; and its contrast
    is mostly noise and gradient, which normalising blows up: two walls or
    skies, or one wall at two exposures, become the same normalised ramp. A
    flat image matches only what plain MSE matches (a greyscale copy of a
    flat colour picture is not found); a flat image and one with contrast
    are compared thumbnail against transform, and can only be close near
    the floor. The floor is measured: ``python -m benchmarks.studies.modes`` (see
    docs/modes.md) is the lowest at which no mode groups two different
    walls or skies there.

Pruning: the mean swap
    Every normalised thumbnail has mean 128, and every luma thumbnail three
    equal channel means, so the search's first bounds (channel means, and
    the window of overall means) would prune nothing or little. So a
    transformed thumbnail then goes through one fixed isometry ``Q`` (the
    same for every image): for each channel c (from channel 1 on for luma
    alone, whose mean prunes well), its mean ``m`` and its contrast ``q``
    on a region (:func:`swap_regions`, unchanged by every rotation and
    flip) trade places, each value ``v`` becoming ``v + (q - m)(1 - P)``
    with ``P`` the region's unit pattern. ``Q`` is a product of reflections
    that commute with the symmetries, so it changes no MSE under any
    rotation or flip; only the rounding below does (by at most ``2 *
    sqrt(MSE) / 256``, 0.02 at MSE 5). The channel means of ``Q T`` are
    then the region contrasts, which tell pictures apart.

Exactness
    Means and contrasts are computed from exact integer sums (int64) for
    integer-valued thumbnails (every build's, every uint8 array; the luma
    in thousandths is an integer too), and from sums of sorted values
    otherwise, so they depend only on the values, not on their positions:
    the transform of a rotated or mirrored thumbnail is that thumbnail's
    transform rotated or mirrored, bit for bit, and a lossless rotation is
    still a duplicate. Every transformed value is rounded to a multiple of
    1/256 (0.002 at most away), so sums of squared differences are exact
    float64 sums, as for integer thumbnails (up to px 800), and an MSE of 0
    means identical transformed thumbnails. Per value the arithmetic is
    float64 in a fixed order, without ``fastmath``: the NumPy reference of
    the tests (``tests/naive.py``) gives the same bits.

Memory and time: the transformed thumbnails are a float32 array, px * px *
12 bytes per image (30 KB at px 50: 3 GB for 100,000 images), made once per
search by :func:`transformed_thumbnails` (one parallel pass, reading
:data:`CHUNK` images at a time, so a memory-mapped repository stays on disk)
and dropped after it.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from .. import kernel_cache
from ..model import Criteria, Repository

#: Luma weights in thousandths: ITU-R BT.601, as Pillow's "L" conversion.
LUMA_WEIGHTS = (299, 587, 114)

#: Contrast (standard deviation, 0..255 scale) of a normalised thumbnail.
REFERENCE_CONTRAST = 50.0

#: Images with a luma standard deviation below this are compared as plain MSE does.
FLAT_CONTRAST = 10.0

#: Transformed values are multiples of 1 / GRID.
GRID = 256

#: Images read at a time.
CHUNK = 4096


def is_plain(criteria: Criteria) -> bool:
    """Whether ``criteria`` compare the thumbnails as they are (difPy's comparison)."""
    return criteria.color and not criteria.normalize


def transform(tensors, color: bool, normalize: bool, chunk: int = CHUNK) -> np.ndarray:
    """The thumbnails a search with ``color`` and ``normalize`` compares.

    Parameters
    ----------
    tensors : uint8 or float32 array (N, px, px, 3)
        Thumbnails on the 0..255 scale; may be memory-mapped (read ``chunk``
        images at a time).
    color : bool
        False: compare the luma (see the module's docstring).
    normalize : bool
        True: compare normalised thumbnails.
    chunk : int
        Images read at a time.

    Returns
    -------
    float32 array (N, px, px, 3), C-contiguous
        Values are multiples of 1/:data:`GRID`. With ``color`` and not
        ``normalize``, the thumbnails themselves so rounded.
    """
    out = np.empty(tensors.shape, dtype=np.float32)
    for start in range(0, tensors.shape[0], chunk):
        # A contiguous, writable copy: the kernel is compiled for one array type per dtype.
        rows = np.array(tensors[start : start + chunk], order="C")
        transformed_thumbnails(
            rows,
            color,
            normalize,
            FLAT_CONTRAST,
            REFERENCE_CONTRAST,
            GRID,
            swap_regions(tensors.shape[1]),
            out[start : start + len(rows)],
        )
    return out


def swap_regions(p: int) -> np.ndarray:
    """The regions whose contrast normalised thumbnails carry in their channel means.

    With ``a = |2y - (p - 1)|`` and ``b = |2x - (p - 1)|`` (twice the
    distance of pixel (y, x) from the centre along each axis): channel 0 the
    centre disc ``2(a^2 + b^2) <= (p - 1)^2`` (37% of the pixels at px 50),
    channel 1 the four corners ``2 min(a, b) >= p - 1`` (27%), channel 2 the
    small centre disc ``5(a^2 + b^2) <= (p - 1)^2`` (15%). Each is unchanged
    by every rotation and flip of the square. (Chosen among such regions for
    how many pairs of photo-like thumbnails their contrasts tell apart.)

    Returns
    -------
    uint8 array (3, p * p)
        1 where a pixel (row by row) is in the channel's region.
    """
    y, x = np.mgrid[0:p, 0:p]
    a, b = np.abs(2 * y - (p - 1)), np.abs(2 * x - (p - 1))
    regions = (
        2 * (a * a + b * b) <= (p - 1) ** 2,
        2 * np.minimum(a, b) >= p - 1,
        5 * (a * a + b * b) <= (p - 1) ** 2,
    )
    return np.stack(regions).reshape(3, p * p).astype(np.uint8)


def compared(dif: Repository, criteria: Criteria) -> Repository:
    """The repository whose thumbnails a search by ``criteria`` compares.

    ``dif`` itself for plain MSE; otherwise a repository with the same
    files, groups and records and the transformed thumbnails (see
    :func:`transform`), whose block means are computed from them when the
    search needs them: ``dif``'s saved block means are of the thumbnails,
    not of their transform, and are never read.
    """
    if is_plain(criteria):
        return dif
    return Repository(
        transform(dif.tensors, criteria.color, criteria.normalize),
        dif.paths,
        dif.shapes,
        dif.file_sizes,
        dif.groups,
        dif.folders,
        dif.in_folder,
        dif.stats,
        dif.mtimes_ns,
        thumbnail_version=dif.thumbnail_version,
        inodes=dif.inodes,
    )


@njit(parallel=True, cache=kernel_cache.ENABLED)
def transformed_thumbnails(tensors, color, normalize, flat_contrast, contrast, grid, regions, out):
    """Luma or normalised thumbnails, flat images left as they are, into ``out``.

    Parameters
    ----------
    tensors : uint8 or float32 array (N, p, p, 3), C-contiguous
    color, normalize : bool
        As :func:`transform` takes them.
    flat_contrast : float
        Images whose luma standard deviation is below it stay as they are.
    contrast : float
        Standard deviation of a normalised thumbnail.
    grid : int
        Every value is rounded to a multiple of ``1 / grid``.
    regions : uint8 array (3, p * p)
        :func:`swap_regions`: with ``normalize``, channel c's mean and its
        contrast on region c are swapped (see the module's docstring).
    out : float32 array (N, p, p, 3), C-contiguous
        Written with the transformed thumbnails.
    """
    count, p = tensors.shape[0], tensors.shape[1]
    n = p * p
    for i in prange(count):
        image = tensors[i].reshape(n, 3)
        exact = True
        for t in range(n):
            for c in range(3):
                v = np.float64(image[t, c])
                if v != np.rint(v):
                    exact = False
        luma = np.empty(n, dtype=np.float64)
        means = np.zeros(3, dtype=np.float64)
        variances = np.zeros(3, dtype=np.float64)
        if exact:
            # Integers: the luma in thousandths, and every sum, exact in int64.
            first = 0
            second = 0
            c_first = np.zeros(3, dtype=np.int64)
            c_second = np.zeros(3, dtype=np.int64)
            for t in range(n):
                r = np.int64(image[t, 0])
                g = np.int64(image[t, 1])
                b = np.int64(image[t, 2])
                units = 299 * r + 587 * g + 114 * b
                luma[t] = np.float64(units) / 1000.0
                first += units
                second += units * units
                c_first[0] += r
                c_first[1] += g
                c_first[2] += b
                c_second[0] += r * r
                c_second[1] += g * g
                c_second[2] += b * b
            mean = np.float64(first) / n
            y_var = max(np.float64(second) / n - mean * mean, 0.0) / 1e6
            y_mean = mean / 1000.0
            for c in range(3):
                means[c] = np.float64(c_first[c]) / n
                variances[c] = max(np.float64(c_second[c]) / n - means[c] * means[c], 0.0)
        else:
            # Sums in sorted order: the same whatever the order of the pixels.
            for t in range(n):
                luma[t] = 0.299 * image[t, 0] + 0.587 * image[t, 1] + 0.114 * image[t, 2]
            y_mean, y_var = _sorted_moments(luma)
            for c in range(3):
                channel = np.empty(n, dtype=np.float64)
                for t in range(n):
                    channel[t] = image[t, c]
                means[c], variances[c] = _sorted_moments(channel)
        flat = np.sqrt(y_var) < flat_contrast
        pooled = (variances[0] + variances[1] + variances[2]) / 3
        target = out[i].reshape(n, 3)
        for t in range(n):
            for c in range(3):
                v = np.float64(image[t, c])
                if flat or (color and not normalize):
                    pass
                elif not normalize:
                    v = luma[t]
                elif not color:
                    v = (luma[t] - y_mean) * (contrast / np.sqrt(y_var)) + 128.0
                else:
                    v = (v - means[c]) * (contrast / np.sqrt(pooled)) + 128.0
                target[t, c] = np.rint(v * grid) / grid
        if normalize or not color:
            # Luma alone keeps its mean in channel 0: it prunes best by it.
            _swap_means(target, regions, grid, 0 if normalize else 1)


@njit(cache=kernel_cache.ENABLED)
def _swap_means(values, regions, grid, first):
    """Swap the mean of each channel from ``first`` on and its region contrast, in place.

    ``values`` (n, 3) are multiples of ``1 / grid``, so their sums are exact
    and do not depend on the pixels' order. With ``rho`` the region's share
    of the pixels and ``w = 1 - rho``, the unit pattern ``P`` is
    ``sqrt(w / rho)`` inside the region and ``-sqrt(rho / w)`` outside (mean
    0, mean square 1); ``m`` is the channel's mean and ``q`` its mean of
    ``P`` times the values; every value becomes ``v + (q - m)(1 - P)``, rounded.
    """
    n = values.shape[0]
    for c in range(first, 3):
        inside = 0
        for t in range(n):
            inside += regions[c, t]
        if inside == 0 or inside == n:
            continue
        whole = 0.0
        part = 0.0
        for t in range(n):
            units = np.float64(values[t, c]) * grid
            whole += units
            if regions[c, t]:
                part += units
        rho = inside / n
        outside = np.sqrt(rho / (1.0 - rho))
        pattern_in = np.sqrt((1.0 - rho) / rho)
        mean = whole / (grid * n)
        shift = (part / (grid * inside) - mean) * outside - mean
        for t in range(n):
            pattern = pattern_in if regions[c, t] else -outside
            v = np.float64(values[t, c]) + shift * (1.0 - pattern)
            values[t, c] = np.rint(v * grid) / grid


@njit(cache=kernel_cache.ENABLED)
def _sorted_moments(values):
    """Mean and variance of float64 ``values``, summed in sorted order."""
    ordered = np.sort(values)
    mean = ordered.sum() / values.size
    ordered = np.sort((values - mean) ** 2)
    return mean, ordered.sum() / values.size


kernel_cache.serialise_saves(transformed_thumbnails, _swap_means, _sorted_moments)
