"""fastdif.engine.grouping: groups, keys, and how each member links to its key."""

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from fastdif.engine.grouping import connected_groups, links_to_keys


def hops_from(key, n, pairs):
    """Steps from ``key`` to every image over ``pairs`` (None: not linked), by plain relaxation."""
    hops = [None] * n
    hops[key] = 0
    changed = True
    while changed:
        changed = False
        for a, b in pairs:
            for x, y in ((a, b), (b, a)):
                if hops[x] is not None and (hops[y] is None or hops[x] + 1 < hops[y]):
                    hops[y] = hops[x] + 1
                    changed = True
    return hops


def test_a_chain_links_each_member_through_the_one_before_it():
    # 0 - 1 - 2 - 3, and 4 - 5 in another group
    i, j = np.array([0, 1, 2, 4]), np.array([1, 2, 3, 5])
    assert links_to_keys(i, j, [0, 5]) == {1: 0, 2: 1, 3: 2, 4: 5}
    assert links_to_keys(i, j, [2]) == {1: 2, 3: 2, 0: 1}


@settings(max_examples=200, deadline=None)
@given(st.integers(2, 12).flatmap(lambda n: st.tuples(
    st.just(n),
    st.lists(st.tuples(st.integers(0, n - 1), st.integers(0, n - 1)), max_size=30),
)))  # fmt: skip
def test_each_member_links_one_step_nearer_its_key(case):
    n, pairs = case
    pairs = [(a, b) for a, b in pairs if a != b]
    i = np.array([a for a, _ in pairs], dtype=np.int64)
    j = np.array([b for _, b in pairs], dtype=np.int64)
    groups = connected_groups(n, i, j)
    keys = [group[-1] for group in groups]
    through = links_to_keys(i, j, keys)
    linked = {a: set() for a in range(n)}
    for a, b in pairs:
        linked[a].add(b)
        linked[b].add(a)
    for group, key in zip(groups, keys, strict=True):
        hops = hops_from(key, n, pairs)
        assert key not in through
        for member in group:
            if member == key:
                continue
            nearer = sorted(m for m in linked[member] if hops[m] == hops[member] - 1)
            assert through[member] == nearer[0]
    assert set(through) == {m for group in groups for m in group} - set(keys)
