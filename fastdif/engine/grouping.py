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


def unit_groups(index, i, j, mse, shapes, file_sizes, choose=None, symmetries=None):
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
    choose : callable, optional
        ``choose(images) -> image``: the key among a group's image indices
        (in path order), for a keep-best rule (:mod:`fastdif.engine.keep`);
        default :func:`choose_key`.
    symmetries : dict, optional
        Filled with ``{member: k}``, by image index, for each member whose
        MSE to its key came from a symmetry k other than 0 of the key (a
        rotation or a flip; ``mse(left, right, symmetry=True)`` gives it).

    Returns
    -------
    list of (key, members, mses)
        Image indices: the key, the other members in order, and their MSEs
        to the key (floats on the 0..255 scale).
    """
    keys, others = [], []
    for members in connected_groups(len(index), i, j):
        if choose is None:
            key = choose_key(index[members], shapes, file_sizes)
        else:
            key = choose(index[members].tolist())
        keys.append(members[index[members].tolist().index(key)])
        others.append([m for m in members if index[m] != key])
    left = np.repeat(np.asarray(keys, dtype=np.int64), [len(o) for o in others])
    right = np.asarray([m for o in others for m in o], dtype=np.int64)
    mses = iter(_measure(mse, left, right, index, symmetries))
    return [
        (int(index[key]), index[members].tolist(), [next(mses) for _ in members])
        for key, members in zip(keys, others, strict=True)
    ]


def library_groups(n_new, i, j, mse, shapes, file_sizes, choose=None, symmetries=None):
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
    choose : callable, optional
        ``choose(images) -> image``, as in :func:`unit_groups`: the key among
        the group's library images, or among its new images when it has none.
    symmetries : dict, optional
        As in :func:`unit_groups`, by image number.

    Returns
    -------
    list of (key, members, mses)
        As :func:`unit_groups`, in image numbers.
    """
    keys, others = [], []
    for members in connected_groups(len(shapes), i, j):
        library = [m for m in members if m >= n_new]
        new = [m for m in members if m < n_new]
        candidates = library or new
        key = choose_key(candidates, shapes, file_sizes) if choose is None else choose(candidates)
        keys.append(key)
        others.append([m for m in new if m != key])
    left = np.repeat(np.asarray(keys, dtype=np.int64), [len(o) for o in others])
    right = np.asarray([m for o in others for m in o], dtype=np.int64)
    mses = iter(_measure(mse, left, right, np.arange(len(shapes)), symmetries))
    return [
        (int(key), members, [next(mses) for _ in members])
        for key, members in zip(keys, others, strict=True)
    ]


def links_to_keys(i, j, keys) -> dict[int, int]:
    """For each image linked to a key by the pairs ``(i, j)``: the image it was reached through.

    A breadth-first walk of the match graph from each of ``keys`` (one per
    group): each image's entry is its neighbour one step nearer its group's
    key (the key itself for a member matching it directly), the first such
    neighbour in image order. Keys have no entry.
    """
    neighbours: dict[int, list[int]] = {}
    for a, b in zip(i.tolist(), j.tolist(), strict=True):
        neighbours.setdefault(a, []).append(b)
        neighbours.setdefault(b, []).append(a)
    through: dict[int, int] = {}
    for key in keys:
        seen, frontier = {key}, [key]
        while frontier:
            reached = []
            for image in frontier:
                for other in sorted(neighbours.get(image, ())):
                    if other not in seen:
                        seen.add(other)
                        through[other] = image
                        reached.append(other)
            frontier = sorted(reached)
    return through


def _measure(mse, left, right, index, symmetries) -> list[float]:
    """``mse(left, right)`` as floats; any symmetry k but 0 goes into ``symmetries``.

    ``symmetries`` is keyed by ``index[right]`` (the members' image numbers).
    """
    if not left.size:
        return []
    if symmetries is None:
        return mse(left, right).tolist()
    values, which = mse(left, right, symmetry=True)
    for member, k in zip(index[right].tolist(), which.tolist(), strict=True):
        if k:
            symmetries[member] = k
    return values.tolist()


def drop_distinct(n, i, j, labels, distinct, mse):
    """Which matching pairs to keep so that no group holds two images marked distinct.

    A component of the match graph with no two images marked distinct keeps
    every pair, so its group is the one formed without marks. In a component
    that has such images, even linked only through others, pairs are joined
    in order of their MSE, smallest first (ties: by image numbers), and a
    pair that would put two images marked distinct into one group is dropped
    (Kruskal's order with cannot-link marks): each image stays with its
    closest matches, and the result does not depend on the order pairs came in.

    Marks are given by entry, never as pairs: an entry of k files would be
    k * (k - 1) / 2 pairs. Each group keeps, per entry, the one identity it
    holds of it (two would be marked distinct); a pair is checked against
    the entries of its smaller group, and joining merges the smaller group's
    into the larger's, so each is copied at most log2(n) times.

    Parameters
    ----------
    n : int
        Images are numbered ``0 .. n - 1``.
    i, j : int64 arrays
        Matching pairs of image numbers.
    labels : int64 array of n
        Each image's identity number, -1 for none (it is marked distinct from nothing).
    distinct : dict of int to dict of int to int
        For an identity number, the entries that mark it distinct: ``{entry
        number: how many of the entry's files have this identity}``. Two
        images are marked distinct when one entry holds both their
        identities, or holds their one identity twice (then copies of one
        content are never grouped together).
    mse : callable
        ``mse(left, right)`` of image numbers; called at most once, for the
        pairs of components that hold two images marked distinct.

    Returns
    -------
    bool array
        One per pair: True to keep it.
    """
    keep = np.ones(i.size, dtype=bool)
    if not distinct or not i.size:
        return keep
    component = np.full(n, -1, dtype=np.int64)
    marked = []
    for c, members in enumerate(connected_groups(n, i, j)):
        component[members] = c
        if _holds_marked(labels[members].tolist(), distinct):
            marked.append(c)
    if not marked:
        return keep
    edges = np.flatnonzero(np.isin(component[i], marked))
    left, right = i[edges], j[edges]
    order = np.lexsort((np.maximum(left, right), np.minimum(left, right), mse(left, right)))
    parent: dict[int, int] = {}
    #: For the root of each group: {entry number: the identity the group holds of it}.
    held: dict[int, dict[int, int]] = {}

    def root(a):
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def holding(a):
        if a not in held:
            x = int(labels[a])
            held[a] = dict.fromkeys(distinct.get(x, ()), x)
        return held[a]

    for e in order.tolist():
        a, b = root(int(left[e])), root(int(right[e]))
        if a == b:
            continue
        small, large = sorted((holding(a), holding(b)), key=len)
        if any(_marked(x, large.get(entry), entry, distinct) for entry, x in small.items()):
            keep[edges[e]] = False
            continue
        large.update(small)
        low, high = min(a, b), max(a, b)
        parent[high] = low
        held[low] = large
        del held[high]
    return keep


def _holds_marked(labels, distinct) -> bool:
    """Whether two of the images with identity numbers ``labels`` are marked distinct."""
    seen: dict[int, int] = {}  # entry number -> the identity seen of it
    for x in labels:
        for entry in distinct.get(x, ()):
            if _marked(x, seen.get(entry), entry, distinct):
                return True
            seen[entry] = x
    return False


def _marked(x: int, y: int | None, entry: int, distinct) -> bool:
    """Whether identities ``x`` and ``y`` (None: no identity) are both in ``entry``'s files."""
    return y is not None and (x != y or distinct[x][entry] > 1)
