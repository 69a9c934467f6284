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
