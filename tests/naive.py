"""Plain-NumPy reference implementations of fastdif's search semantics.

These are deliberately simple (and slow): they define what the Numba kernels
must compute. The MSE of a pair is difPy's ``np.mean((a - b) ** 2)`` taken in
float64, so there is no uint8 wrap-around, and a pair matches when that MSE is
``<= max_mse`` (inclusive).
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st


def symmetry_indices(rotate, flip):
    """The symmetries k compared: 0..3 with ``rotate``, plus 4..7 with ``flip``
    (only 0 and 4 with ``flip`` alone), as fastdif documents them."""
    turns = [0, 1, 2, 3] if rotate else [0]
    return turns + ([4 + k for k in turns] if flip else [])


def symmetry(images, k, axes=(0, 1)):
    """Symmetry k of images: ``np.rot90`` by k (k < 4), or by k - 4 after ``np.flip``
    of the column axis (a horizontal flip; k >= 4)."""
    if k >= 4:
        images = np.flip(images, axis=axes[1])
    return np.rot90(images, k % 4, axes=axes)


def reference_mse_matrix(tensors, rotate, flip=False):
    """float64 (N, N): entry [i, j] is min over k of MSE(symmetry(tensors[i], k), tensors[j]).

    k runs over :func:`symmetry_indices`: 0..3 with ``rotate``, 0 otherwise,
    and the same after a horizontal flip with ``flip``. Because the
    symmetries compared form a group, transforming ``i`` or ``j`` gives the
    same minimum, so the matrix is symmetric.
    """
    return reference_mse_and_symmetry(tensors, rotate, flip)[0]


def reference_mse_and_symmetry(tensors, rotate, flip=False):
    """:func:`reference_mse_matrix`, and the symmetry k of each minimum (the lowest on a tie)."""
    t = np.asarray(tensors, dtype=np.float64)
    n = t.shape[0]
    flat = t.reshape(n, -1)
    best = np.full((n, n), np.inf)
    which = np.zeros((n, n), dtype=np.int64)
    for k in symmetry_indices(rotate, flip):
        moved = symmetry(t, k, axes=(1, 2)).reshape(n, -1)
        for i in range(n):
            mse = np.mean((moved[i][None, :] - flat) ** 2, axis=1)
            better = mse < best[i]
            which[i][better] = k
            best[i] = np.minimum(best[i], mse)
    return best, which


def comparable(shapes, i, j, same_dim):
    """difPy's same_dim rule: equal (width, height) in either orientation."""
    if not same_dim:
        return True
    a = tuple(int(v) for v in shapes[i])
    b = tuple(int(v) for v in shapes[j])
    return a == b or a == b[::-1]


def reference_matches(tensors, shapes, max_mse, rotate, same_dim, mse=None, flip=False):
    """Sorted list of (i, j), i < j, with reference MSE <= max_mse (and comparable)."""
    if mse is None:
        mse = reference_mse_matrix(tensors, rotate, flip)
    n = mse.shape[0]
    return [
        (i, j)
        for i in range(n)
        for j in range(i + 1, n)
        if mse[i, j] <= max_mse and comparable(shapes, i, j, same_dim)
    ]


def reference_groups(n, i, j):
    """Connected components (size >= 2) of the graph on ``n`` nodes, by BFS."""
    adjacency = [set() for _ in range(n)]
    for a, b in zip(list(i), list(j), strict=True):
        a, b = int(a), int(b)
        if a != b:
            adjacency[a].add(b)
            adjacency[b].add(a)
    seen = [False] * n
    groups = []
    for start in range(n):
        if seen[start] or not adjacency[start]:
            continue
        seen[start] = True
        queue, component = [start], []
        while queue:
            node = queue.pop()
            component.append(node)
            for other in adjacency[node]:
                if not seen[other]:
                    seen[other] = True
                    queue.append(other)
        groups.append(sorted(component))
    return groups


def reference_key(indices, shapes, file_sizes):
    """Largest width*height, then largest file size, then smallest index."""
    ranked = sorted(
        (int(k) for k in indices),
        key=lambda k: (-(int(shapes[k, 0]) * int(shapes[k, 1])), -int(file_sizes[k]), k),
    )
    return ranked[0]


#: (width, height) of the original images; (10, 20) and (20, 10) are equal
#: under same_dim in either orientation, the others are not.
SHAPE_POOL = ((10, 20), (20, 10), (16, 16), (30, 12))

#: What each entry of a plan for :func:`planted_images` makes.
KINDS = ("fresh", "flat", "copy", "rot", "noise", "sparse", "mirror")


def planted_images(px, plan, seed):
    """Integer-valued float32 thumbnails with planted duplicates, from a plan.

    ``plan`` is a list of ``(kind, a, b, shape)`` tuples, one per image:

    - ``fresh``: random values in ``lo .. lo + span - 1``, span from ``a``
      (1, 4, 16 or 256 levels) and ``lo`` from ``b``;
    - ``flat``: every value ``b % 256``;
    - ``copy``: an exact copy of an earlier image (``a`` picks it);
    - ``rot``: ``np.rot90`` of an earlier image by ``1 + b % 3`` quarter turns;
    - ``mirror``: an earlier image flipped horizontally, then turned ``b % 4``
      quarter turns (a mirror image, as ``flip`` finds);
    - ``noise``: an earlier image plus integer noise in ``+-(1 + b % 8)`` everywhere;
    - ``sparse``: an earlier image with ``1 + b % 5`` values changed by 1..3.

    ``shape`` >= 0 picks the (width, height) from :data:`SHAPE_POOL`; -1
    inherits the parent's (swapped for odd rotations).

    Returns
    -------
    tensors : float32 (N, px, px, 3), C-contiguous
    shapes : int64 (N, 2)
    planted : list of (parent, child) index pairs
    """
    rng = np.random.default_rng(seed)
    images, shapes, planted = [], [], []
    for idx, (kind, a, b, shape) in enumerate(plan):
        if idx == 0 and kind not in ("fresh", "flat"):
            kind = "fresh"
        parent = None
        inherited = SHAPE_POOL[a % len(SHAPE_POOL)]
        if kind == "fresh":
            span = (1, 4, 16, 256)[a % 4]
            low = b % (257 - span)
            image = rng.integers(low, low + span, size=(px, px, 3))
        elif kind == "flat":
            image = np.full((px, px, 3), b % 256, dtype=np.int64)
        else:
            parent = a % idx
            source = images[parent]
            inherited = shapes[parent]
            if kind == "copy":
                image = source.copy()
            elif kind == "rot":
                turns = 1 + b % 3
                image = np.ascontiguousarray(np.rot90(source, turns))
                if turns % 2:
                    inherited = inherited[::-1]
            elif kind == "mirror":
                turns = b % 4
                image = np.ascontiguousarray(np.rot90(np.fliplr(source), turns))
                if turns % 2:
                    inherited = inherited[::-1]
            elif kind == "noise":
                amp = 1 + b % 8
                image = np.clip(source + rng.integers(-amp, amp + 1, size=source.shape), 0, 255)
            elif kind == "sparse":
                image = source.copy()
                flat = image.reshape(-1)
                count = 1 + b % 5
                where = rng.choice(flat.size, size=count, replace=False)
                delta = rng.integers(1, 4, size=count)
                up = flat[where] + delta
                flat[where] = np.where(up <= 255, up, flat[where] - delta)
            else:
                raise ValueError(kind)
            planted.append((parent, idx))
        images.append(image)
        shapes.append(tuple(inherited) if shape < 0 else SHAPE_POOL[shape % len(SHAPE_POOL)])
    tensors = np.ascontiguousarray(np.stack(images).astype(np.float32))
    return tensors, np.asarray(shapes, dtype=np.int64), planted


#: Threshold choices for :func:`pick_threshold`.
THRESHOLDS = ("zero", "five", "random", "planted", "inf")


def pick_threshold(choice, random_value, mse, planted, shapes, same_dim, which=0):
    """An MSE threshold: 0, 5, ``random_value``, inf, or exactly a planted pair's MSE.

    "planted" takes the reference MSE of a planted (parent, child) pair that is
    comparable under ``same_dim`` (``which`` picks one, preferring pairs with a
    non-zero MSE; pair (0, 1) if there is none), so the threshold sits exactly
    on a pair and tests that the boundary is inclusive.
    """
    if choice == "zero":
        return 0.0
    if choice == "five":
        return 5.0
    if choice == "random":
        return float(random_value)
    if choice == "inf":
        return float("inf")
    values = [
        float(mse[min(p, c), max(p, c)]) for p, c in planted if comparable(shapes, p, c, same_dim)
    ]
    nonzero = [v for v in values if v > 0]
    candidates = nonzero or values or [float(mse[0, 1])]
    return candidates[which % len(candidates)]


@st.composite
def image_specs(draw, min_n=2, max_n=24, max_px=16):
    """(px, plan, seed) for reference.planted_images: N images with planted copies."""
    px = draw(st.integers(10, max_px))
    entry = st.tuples(
        st.sampled_from(KINDS),
        st.integers(0, 10**6),
        st.integers(0, 10**6),
        st.integers(-1, len(SHAPE_POOL) - 1),
    )
    plan = draw(st.lists(entry, min_size=min_n, max_size=max_n))
    seed = draw(st.integers(0, 2**32 - 1))
    return px, plan, seed


#: fastdif.engine.transforms' constants, restated: the luma weights in
#: thousandths (ITU-R BT.601, Pillow's "L"), the contrast of a normalised
#: thumbnail, the flat-image floor and the grid transformed values are rounded to.
LUMA_WEIGHTS = (299, 587, 114)
REFERENCE_CONTRAST = 50.0
FLAT_CONTRAST = 10.0
GRID = 256


def reference_transform(tensors, color, normalize):
    """The thumbnails a search with ``color`` and ``normalize`` compares, image by image.

    For integer-valued thumbnails. Luma ``Y = (299 R + 587 G + 114 B) / 1000``;
    means and variances from the exact sums of the values (luma in
    thousandths) and of their squares, ``var = S2 / n - (S1 / n)^2``. An
    image whose luma standard deviation is below ``FLAT_CONTRAST`` stays as
    it is; otherwise ``color=False`` gives its luma in the three channels,
    ``normalize`` each channel less its mean (the luma's with
    ``color=False``) times ``REFERENCE_CONTRAST`` over the standard
    deviation (of the luma, or the root of the three channels' mean
    variance), plus 128. Every value is rounded to a multiple of 1 / GRID.
    """
    out = []
    for image in np.asarray(tensors, dtype=np.float64):
        n = image.shape[0] * image.shape[1]
        units = image @ np.array(LUMA_WEIGHTS, dtype=np.float64)
        mean = math.fsum(units.ravel()) / n
        variance = max(math.fsum((units * units).ravel()) / n - mean * mean, 0.0)
        y_mean, y_var = mean / 1000.0, variance / 1e6
        luma = units / 1000.0
        if math.sqrt(y_var) < FLAT_CONTRAST or (color and not normalize):
            compared = image
        elif not normalize:
            compared = np.stack([luma] * 3, axis=2)
        elif not color:
            normal = (luma - y_mean) * (REFERENCE_CONTRAST / math.sqrt(y_var)) + 128.0
            compared = np.stack([normal] * 3, axis=2)
        else:
            means, variances = [], []
            for c in range(3):
                channel = image[:, :, c].ravel()
                m = math.fsum(channel) / n
                means.append(m)
                variances.append(max(math.fsum(channel * channel) / n - m * m, 0.0))
            pooled = sum(variances) / 3
            compared = (image - np.array(means)) * (REFERENCE_CONTRAST / math.sqrt(pooled)) + 128.0
        compared = np.rint(compared * GRID) / GRID
        if normalize or not color:
            compared = reference_swap(compared, 0 if normalize else 1)
        out.append(compared)
    return np.asarray(out, dtype=np.float32).reshape(np.shape(tensors))


def reference_swap(image, first):
    """The isometry Q of fastdif.engine.transforms: swap the mean of each channel from
    ``first`` on and its contrast on a region, ``v + (q - m)(1 - P)``, rounded to 1 / GRID.

    Regions, with ``a = |2y - (p - 1)|`` and ``b = |2x - (p - 1)|``: the centre
    disc for channel 0, the corners for channel 1, a smaller centre disc for
    channel 2. ``P`` is ``sqrt((1 - rho) / rho)`` inside, ``-sqrt(rho / (1 - rho))``
    outside (rho: the region's share), ``m`` the channel's mean, ``q`` the mean
    of ``P`` times the channel.
    """
    p = image.shape[0]
    n = p * p
    y, x = np.mgrid[0:p, 0:p]
    a, b = np.abs(2 * y - (p - 1)), np.abs(2 * x - (p - 1))
    regions = (
        2 * (a * a + b * b) <= (p - 1) ** 2,
        2 * np.minimum(a, b) >= p - 1,
        5 * (a * a + b * b) <= (p - 1) ** 2,
    )
    out = image.copy()
    for c, region in enumerate(regions):
        inside = int(region.sum())
        if c < first:
            continue
        if inside in (0, n):
            continue
        units = image[:, :, c] * GRID  # integers: exact sums
        whole, part = math.fsum(units.ravel()), math.fsum(units[region])
        rho = inside / n
        outside = math.sqrt(rho / (1.0 - rho))
        pattern = np.where(region, math.sqrt((1.0 - rho) / rho), -outside)
        mean = whole / (GRID * n)
        shift = (part / (GRID * inside) - mean) * outside - mean
        out[:, :, c] = np.rint((image[:, :, c] + shift * (1.0 - pattern)) * GRID) / GRID
    return out
