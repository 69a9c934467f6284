"""fastdif.engine: find_matches (classic and chunked), groups, keys."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import (
    THRESHOLDS,
    image_specs,
    pick_threshold,
    planted_images,
    reference_groups,
    reference_key,
    reference_matches,
    reference_mse_matrix,
)

from fastdif.engine import matching as search_module
from fastdif.engine.grouping import choose_key, connected_groups
from fastdif.model import Criteria


def find_matches(
    tensors, shapes, max_mse, rotate, same_dim, tile_rows=None, progress=None, flip=False
):
    """:func:`fastdif.engine.matching.find_matches` with the criteria as flat arguments."""
    criteria = Criteria(max_mse, rotate, same_dim, flip)
    return search_module.find_matches(tensors, shapes, criteria, tile_rows, progress)


SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


searches = st.fixed_dictionaries(
    {
        "spec": image_specs(),
        "rotate": st.booleans(),
        "same_dim": st.booleans(),
        "choice": st.sampled_from(THRESHOLDS),
        "random_value": st.floats(0, 200),
        "which": st.integers(0, 100),
        "flip": st.booleans(),
    }
)


def _setup(case):
    tensors, shapes, planted = planted_images(*case["spec"])
    rotate, same_dim, flip = case["rotate"], case["same_dim"], case["flip"]
    mse = reference_mse_matrix(tensors, rotate, flip)
    max_mse = pick_threshold(
        case["choice"], case["random_value"], mse, planted, shapes, same_dim, case["which"]
    )
    expected = reference_matches(tensors, shapes, max_mse, rotate, same_dim, mse)
    return tensors, shapes, max_mse, rotate, same_dim, expected, flip


def _pairs(i, j):
    assert i.dtype == np.int64 and j.dtype == np.int64
    assert i.shape == j.shape
    return list(zip(i.tolist(), j.tolist(), strict=True))


def _all_paths(tensors, shapes, max_mse, rotate, same_dim, flip=False):
    """{tile_rows: (i, j)} for the classic path (None) and several chunked tilings."""
    n = tensors.shape[0]

    def pairs(tile_rows):
        return find_matches(tensors, shapes, max_mse, rotate, same_dim, tile_rows, flip=flip)[:2]

    return {tile_rows: pairs(tile_rows) for tile_rows in (None, 1, 2, 5, n)}


def _check_paths(tensors, shapes, max_mse, rotate, same_dim, expected, flip=False):
    results = _all_paths(tensors, shapes, max_mse, rotate, same_dim, flip)
    classic_i, classic_j = results[None]
    for tile_rows, (i, j) in results.items():
        np.testing.assert_array_equal(i, classic_i, err_msg=f"tile_rows={tile_rows}")
        np.testing.assert_array_equal(j, classic_j, err_msg=f"tile_rows={tile_rows}")
        # Ascending (i, j) order, i < j, and the reference pairs.
        assert _pairs(i, j) == expected, f"tile_rows={tile_rows}, max_mse={max_mse!r}"


# --------------------------------------------------------------------------- find_matches


@pytest.mark.slow
@settings(SETTINGS, max_examples=250)
@given(searches)
def test_find_matches_classic_and_chunked_equal_reference(case):
    _check_paths(*_setup(case))


@SETTINGS
@given(searches, st.sampled_from([(4, 1), (1, 1), (3, 2)]))
def test_find_matches_small_block_and_capacity_force_recompute(case, block_capacity):
    block, capacity = block_capacity
    tensors, shapes, max_mse, rotate, same_dim, expected, flip = _setup(case)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_module, "BLOCK", block)
        mp.setattr(search_module, "CAPACITY", capacity)
        _check_paths(tensors, shapes, max_mse, rotate, same_dim, expected, flip)


def _spy_match_ranges(mp):
    calls = []
    real = search_module.match_ranges

    def spy(*args):
        item_begin, item_end, capacity = args[10], args[11], args[-1]
        calls.append((int((item_end - item_begin).max(initial=0)), capacity))
        return real(*args)

    mp.setattr(search_module, "match_ranges", spy)
    return calls


@pytest.mark.parametrize("tile_rows", [None, 1, 3, 20])
@pytest.mark.parametrize("rotate", [False, True])
def test_find_matches_overflow_is_recomputed(tile_rows, rotate):
    """Nine copies of one image: every row overflows a capacity of 1 in a block of 4."""
    px, n = 10, 20
    rng = np.random.default_rng(7)
    tensors = rng.integers(0, 256, (n, px, px, 3)).astype(np.float32)
    copies = [0, 2, 3, 5, 8, 9, 10, 11, 17]
    tensors[copies] = tensors[4]
    tensors[19] = np.rot90(tensors[4], 1)  # a copy only under rotate
    shapes = np.full((n, 2), px, dtype=np.int64)
    group = sorted(copies + [4] + ([19] if rotate else []))
    expected = [(a, b) for a in group for b in group if a < b]
    assert expected == reference_matches(tensors, shapes, 0.5, rotate, True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(search_module, "BLOCK", 4)
        mp.setattr(search_module, "CAPACITY", 1)
        calls = _spy_match_ranges(mp)
        i, j, _ = find_matches(tensors, shapes, 0.5, rotate, True, tile_rows)
    assert _pairs(i, j) == expected
    # The recompute path ran: at least one call with a capacity above CAPACITY.
    assert any(capacity > 1 for _, capacity in calls), calls
    assert all(widest <= 4 for widest, _ in calls)


def test_find_matches_progress_counts_rows():
    px, n = 10, 7
    tensors = np.zeros((n, px, px, 3), dtype=np.float32)
    shapes = np.full((n, 2), px, dtype=np.int64)
    for tile_rows, expected_calls in ((None, [7]), (3, [3, 3, 1]), (7, [7]), (10, [7])):
        seen = []
        i, j, _ = find_matches(tensors, shapes, 1.0, True, True, tile_rows, seen.append)
        assert seen == expected_calls
        assert len(i) == n * (n - 1) // 2


def test_find_matches_single_image_has_no_pairs():
    tensors = np.zeros((1, 10, 10, 3), dtype=np.float32)
    shapes = np.full((1, 2), 10, dtype=np.int64)
    for tile_rows in (None, 1, 4):
        i, j, _ = find_matches(tensors, shapes, 5.0, True, True, tile_rows)
        assert _pairs(i, j) == []


@pytest.mark.parametrize("tile_rows", [None, 1])
def test_find_matches_no_images_has_no_pairs(tile_rows):
    tensors = np.zeros((0, 10, 10, 3), dtype=np.float32)
    shapes = np.zeros((0, 2), dtype=np.int64)
    i, j, _ = find_matches(tensors, shapes, 5.0, True, True, tile_rows)
    assert _pairs(i, j) == []


# --------------------------------------------------------------------------- connected_groups


def _edges(i, j):
    return np.asarray(i, dtype=np.int64), np.asarray(j, dtype=np.int64)


def test_connected_groups_chain_is_transitive():
    assert connected_groups(5, *_edges([1, 2], [2, 4])) == [[1, 2, 4]]
    assert connected_groups(5, *_edges([2, 1], [4, 2])) == [[1, 2, 4]]
    assert connected_groups(6, *_edges([0, 4, 3], [5, 5, 1])) == [[0, 4, 5], [1, 3]]
    assert connected_groups(3, *_edges([], [])) == []


@st.composite
def graphs(draw):
    n = draw(st.integers(1, 40))
    node = st.integers(0, n - 1)
    edges = draw(st.lists(st.tuples(node, node).filter(lambda e: e[0] != e[1]), max_size=60))
    return n, edges


@SETTINGS
@given(graphs(), st.randoms(use_true_random=False))
def test_connected_groups_match_bfs_and_ignore_edge_order(graph, random):
    n, edges = graph
    expected = reference_groups(n, [a for a, _ in edges], [b for _, b in edges])
    got = connected_groups(n, *_edges([a for a, _ in edges], [b for _, b in edges]))
    assert got == expected
    for group in got:
        assert group == sorted(group) and len(group) >= 2
    assert [g[0] for g in got] == sorted(g[0] for g in got)
    # Same groups for shuffled pair order and swapped pair orientation.
    shuffled = [(b, a) if random.random() < 0.5 else (a, b) for a, b in edges]
    random.shuffle(shuffled)
    again = connected_groups(n, *_edges([a for a, _ in shuffled], [b for _, b in shuffled]))
    assert again == got


# --------------------------------------------------------------------------- choose_key


def test_choose_key_precedence():
    shapes = np.array([[10, 10], [20, 5], [5, 20], [11, 10], [4, 4]], dtype=np.int64)
    sizes = np.array([900, 100, 300, 1, 10**9])
    # Largest width*height wins over a larger file.
    assert choose_key([0, 3, 4], shapes, sizes) == 3
    # Equal areas (100): the larger file wins.
    assert choose_key([0, 1, 2], shapes, sizes) == 0
    assert choose_key([1, 2], shapes, sizes) == 2
    # Equal area and file size: the smallest index wins, in any order.
    sizes_tied = np.array([300, 300, 300, 1, 1])
    assert choose_key([2, 1, 0], shapes, sizes_tied) == 0
    assert choose_key([2, 1], shapes, sizes_tied) == 1


def test_choose_key_area_does_not_overflow_int32():
    shapes = np.array([[70000, 70000], [1, 2]], dtype=np.int32)
    sizes = np.array([1, 2], dtype=np.int32)
    assert choose_key([0, 1], shapes, sizes) == 0


@SETTINGS
@given(
    st.lists(
        st.tuples(st.integers(1, 4), st.integers(1, 4), st.integers(0, 3)),
        min_size=1,
        max_size=12,
    ),
    st.randoms(use_true_random=False),
)
def test_choose_key_matches_reference(images, random):
    shapes = np.array([[w, h] for w, h, _ in images], dtype=np.int64)
    sizes = np.array([s for _, _, s in images], dtype=np.int64)
    indices = list(range(len(images)))
    random.shuffle(indices)
    subset = indices[: random.randint(1, len(indices))]
    expected = reference_key(subset, shapes, sizes)
    assert choose_key(subset, shapes, sizes) == expected
    assert choose_key(np.asarray(subset, dtype=np.int64), shapes, sizes) == expected
