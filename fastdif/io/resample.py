"""The thumbnail filter: an exact area average of a full-resolution image.

Output cell ``i`` along an axis of ``n`` source pixels covers the source
interval ``[i * n / px, (i + 1) * n / px)``, and each source pixel counts by
the part of it that lies inside: whole pixels weigh 1, the pixels cut by a
cell edge weigh their fraction. Measured in units of ``1 / px`` of a pixel
every edge lies on an integer, so the sums are exact integers (held in
float64, exact below 2 ** 53) and each cell's mean is rounded once (half up)
to uint8.

Because the cells are laid out the same from either end of an axis, the
filter commutes exactly with flips, transposes and rotations by 90 degrees:
the thumbnail of a rotated image is the rotated thumbnail, bit for bit.
That is why EXIF orientation is applied to the small thumbnail, not to the
full image.

Pure NumPy, no Numba: this runs in the decoding worker processes.
"""

from __future__ import annotations

import numpy as np

#: EXIF orientation (tag 0x0112) -> the transform that shows the image upright,
#: on a (rows, columns, channels) array; the same as Pillow's ``exif_transpose``.
_ORIENT = {
    2: lambda a: a[:, ::-1],  # FLIP_LEFT_RIGHT
    3: lambda a: a[::-1, ::-1],  # ROTATE_180
    4: lambda a: a[::-1],  # FLIP_TOP_BOTTOM
    5: lambda a: a.transpose(1, 0, 2),  # TRANSPOSE
    6: lambda a: np.rot90(a, -1),  # ROTATE_270
    7: lambda a: a[::-1, ::-1].transpose(1, 0, 2),  # TRANSVERSE
    8: lambda a: np.rot90(a, 1),  # ROTATE_90
}


def _cells(n: int, px: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """How ``px`` cells cover ``n`` source pixels, in units of ``1 / px`` pixel.

    Cell i spans ``[i * n, (i + 1) * n)``. Source pixels ``first[i]`` up to
    ``first[i + 1]`` (excluded) start inside it; it also takes the part
    ``tail[i]`` of pixel ``first[i + 1]``, and does not take the part
    ``head[i]`` of pixel ``first[i]`` that lies before it. So the cell's sum
    is ``px * sum(first[i]:first[i + 1]) - head[i] * pixel[first[i]] +
    tail[i] * pixel[first[i + 1]]``, with weights that add up to ``n``.
    """
    edges = np.arange(px + 1) * n
    first = edges // px
    return first, edges[:-1] - first[:-1] * px, edges[1:] - first[1:] * px


def _sum_rows(pixels: np.ndarray, px: int) -> np.ndarray:
    """Cell sums along axis 0 of uint8 ``pixels``: float64 (px, width[, channels])."""
    height = pixels.shape[0]
    first, head, _ = _cells(height, px)
    flat = pixels.reshape(height, -1)  # a row is one run of values: fewer, longer sums
    # uint8 rows add up fastest in uint16, while no cell can overflow it.
    wide = np.uint16 if np.diff(first).max() * 255 < 1 << 16 else np.uint32
    sums = np.empty(flat.shape[1], wide)
    out = np.empty((px, flat.shape[1]), np.float64)
    for i in range(px):  # a cell at a time: its sums stay in the processor's cache
        np.add.reduce(flat[first[i] : first[i + 1]], axis=0, dtype=wide, out=sums)
        np.multiply(sums, px, out=out[i], dtype=np.float64)
    if head.any():  # some cell edge cuts a pixel
        # The pixel cut by the edge between cells i - 1 and i is row first[i]:
        # the part head[i] of it that cell i does not take is cell i - 1's tail
        # (tail[i - 1] == head[i]; the first cell has no head, the last no
        # tail). So one product per edge corrects both cells, all at once.
        cut = flat[first[:-1]].astype(np.float64)
        cut *= head[:, None]
        out -= cut
        out[:-1] += cut[1:]
    return out.reshape((px,) + pixels.shape[1:])


def _sum_columns(rows: np.ndarray, px: int) -> np.ndarray:
    """Cell sums along axis 1 of ``rows`` (float64, small): (px, px[, channels])."""
    n = rows.shape[1]
    first, head, tail = _cells(n, px)
    out = np.add.reduceat(rows, first[:-1], axis=1)
    out[:, first[:-1] == first[1:]] = 0  # reduceat gives an empty range its first item
    along = (1, px) + (1,) * (rows.ndim - 2)  # weights broadcast along axis 1
    out *= px
    out -= head.reshape(along) * rows[:, first[:-1]]
    out += tail.reshape(along) * rows[:, np.minimum(first[1:], n - 1)]  # tail is 0 past the end
    return out


def area_thumbnail(pixels: np.ndarray, px_size: int) -> np.ndarray:
    """Exact area average of ``pixels`` on a ``px_size`` x ``px_size`` grid.

    Parameters
    ----------
    pixels : ndarray of uint8, shape (height, width) or (height, width, channels)
        A full-resolution image; any size, larger or smaller than the grid.
    px_size : int
        Side of the thumbnail.

    Returns
    -------
    ndarray of uint8, shape (px_size, px_size) or (px_size, px_size, channels)
        Each cell's mean, rounded half up.
    """
    height, width = pixels.shape[:2]
    # Sums of integers below 2 ** 53 (255 x pixels x px ** 2): exact in float64.
    cells = _sum_columns(_sum_rows(pixels, px_size), px_size).astype(np.int64)
    area = height * width
    return ((2 * cells + area) // (2 * area)).astype(np.uint8)


def orient(thumbnail: np.ndarray, orientation: int) -> np.ndarray:
    """Apply an EXIF orientation (1 to 8; others mean upright) to a thumbnail."""
    transform = _ORIENT.get(orientation)
    return thumbnail if transform is None else np.ascontiguousarray(transform(thumbnail))
