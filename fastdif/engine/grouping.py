"""From matching pairs to groups: connected components, the key of each, MSEs to the key."""

from __future__ import annotations

import numpy as np


def connected_groups(n, i, j):
    """Connected components of the match graph with at least two images.

    Returns a list of sorted index lists, ordered by their smallest index.
    """
    parent = np.arange(n)

    def root(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    members: dict[int, list[int]] = {}
    for a in sorted(set(i.tolist()) | set(j.tolist())):
        members.setdefault(root(a), []).append(a)
    return [members[k] for k in sorted(members)]


def choose_key(indices, shapes, file_sizes):
    """The best image of a group: largest width*height, then file size, then path order."""
    return max(
        indices, key=lambda k: (int(shapes[k, 0]) * int(shapes[k, 1]), int(file_sizes[k]), -k)
    )


def unit_groups(index, i, j, mse, shapes, file_sizes):
    """The groups of one comparable unit, each with its key and its members' MSEs to the key.

    Parameters
    ----------
    index : int64 array
        The unit's image indices.
    i, j : int64 arrays
        Matching pairs, as positions in ``index``.
    mse : callable
        ``mse(left, right)``: exact MSEs of pairs of positions
        (:func:`fastdif.engine.matching.unit_mse`); called once for all groups.
    shapes, file_sizes : arrays
        Of every image, for :func:`choose_key`.

    Returns
    -------
    list of (key, members, mses)
        Image indices: the key, the other members in order, and their MSEs
        to the key (floats on the 0..255 scale).
    """
    keys, others = [], []
    for members in connected_groups(len(index), i, j):
        key = choose_key(index[members], shapes, file_sizes)
        keys.append(members[index[members].tolist().index(key)])
        others.append([m for m in members if index[m] != key])
    left = np.repeat(np.asarray(keys, dtype=np.int64), [len(o) for o in others])
    right = np.asarray([m for o in others for m in o], dtype=np.int64)
    mses = iter(mse(left, right).tolist()) if left.size else iter(())
    return [
        (int(index[key]), index[members].tolist(), [next(mses) for _ in members])
        for key, members in zip(keys, others, strict=True)
    ]


def library_groups(n_new, i, j, mse, shapes, file_sizes):
    """Groups of new images and the library images they match, keyed by a library image.

    Images are numbered as in :func:`fastdif.engine.matching.cross_mse`: new
    images ``0 .. n_new - 1``, then the library's. A group with a library
    image is keyed by its best library image (:func:`choose_key` among them)
    and lists only its new images: library images are never members, and
    other library images the group links are left out (pairs among library
    images are never compared). A group of new images alone is keyed as
    :func:`unit_groups` keys it.

    Parameters
    ----------
    n_new : int
    i, j : int64 arrays
        Matching pairs of image numbers.
    mse : callable
        ``mse(left, right)`` of image numbers; called once for all groups.
    shapes, file_sizes : arrays
        Of the new images, then the library's.

    Returns
    -------
    list of (key, members, mses)
        As :func:`unit_groups`, in image numbers.
    """
    keys, others = [], []
    for members in connected_groups(len(shapes), i, j):
        library = [m for m in members if m >= n_new]
        new = [m for m in members if m < n_new]
        key = choose_key(library or new, shapes, file_sizes)
        keys.append(key)
        others.append([m for m in new if m != key])
    left = np.repeat(np.asarray(keys, dtype=np.int64), [len(o) for o in others])
    right = np.asarray([m for o in others for m in o], dtype=np.int64)
    mses = iter(mse(left, right).tolist()) if left.size else iter(())
    return [
        (int(key), members, [next(mses) for _ in members])
        for key, members in zip(keys, others, strict=True)
    ]
