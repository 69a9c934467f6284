"""Exact pruning: each lower bound never exceeds the true MSE; hashing finds exact groups."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import (
    image_specs,
    planted_images,
    reference_groups,
    reference_matches,
    reference_mse_matrix,
    symmetry,
)

from fastdif.engine import kernels
from fastdif.engine import matching as search_module
from fastdif.model import Criteria

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def image_pairs(draw):
    """Two (px, px, 3) images: random, constant, extreme or near each other."""
    px = draw(st.sampled_from([10, 12, 15, 16, 20]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["random", "constant", "extremes", "near", "gradient"]))
    a = rng.integers(0, 256, (px, px, 3)).astype(np.float32)
    if kind == "random":
        b = rng.integers(0, 256, (px, px, 3)).astype(np.float32)
    elif kind == "constant":
        a = np.full((px, px, 3), rng.integers(0, 256), np.float32)
        b = np.full((px, px, 3), rng.integers(0, 256), np.float32)
    elif kind == "extremes":
        a = (rng.random((px, px, 3)) < 0.5).astype(np.float32) * 255
        b = 255 - a
    elif kind == "near":
        b = np.clip(a + rng.integers(-2, 3, a.shape), 0, 255).astype(np.float32)
    else:
        ramp = np.linspace(0, 255, px, dtype=np.float32)
        a = np.broadcast_to(ramp[:, None, None], (px, px, 3)).copy()
        b = np.rot90(a).copy()
    return a, b


def true_mse(a, b):
    return float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@SETTINGS
@given(image_pairs(), st.integers(0, 7))
def test_block_mean_bound_never_exceeds_mse_for_every_grid_and_symmetry(pair, k):
    """Symmetries 0..3 rotate, 4..7 flip horizontally first (see fastdif.engine.kernels)."""
    a, b = pair
    px = a.shape[0]
    moved = np.ascontiguousarray(symmetry(b, k))
    exact = true_mse(a, moved)
    for g in (d for d in range(1, px + 1) if px % d == 0):
        grid_a, grid_b = kernels.block_means(np.stack([a, b]), g)
        # The grid of the moved image is the moved grid, so one grid serves all symmetries.
        grid_moved = kernels.block_means(moved[None], g)[0]
        np.testing.assert_allclose(symmetry(grid_b, k), grid_moved, atol=1e-3)
        bound = true_mse(grid_a, symmetry(grid_b, k))
        assert bound <= exact * (1 + kernels.BOUND_SLACK) + kernels.BOUND_SLACK, (g, bound, exact)


@SETTINGS
@given(image_pairs(), st.integers(0, 7))
def test_overall_mean_bound_never_exceeds_mse(pair, k):
    a, b = pair
    exact = true_mse(a, symmetry(b, k))
    mean_a, mean_b = kernels.block_means(np.stack([a, b]), 1).reshape(2, 3).mean(axis=1)
    assert (float(mean_a) - float(mean_b)) ** 2 <= exact * (1 + 1e-6) + 1e-6


def test_bounds_are_tight_for_constant_images():
    a = np.full((10, 10, 3), 40, np.float32)
    b = np.full((10, 10, 3), 43, np.float32)
    grids = kernels.block_means(np.stack([a, b]), kernels.grid_side(10))
    assert true_mse(grids[0], grids[1]) == true_mse(a, b) == 9.0


def test_grid_side_is_the_largest_divisor_up_to_ten():
    assert [kernels.grid_side(p) for p in (50, 64, 53, 10, 12, 100)] == [10, 8, 1, 10, 6, 10]


@SETTINGS
@given(image_specs(min_n=1, max_px=14), st.booleans(), st.booleans(), st.booleans(), st.booleans())
def test_find_identical_gives_the_groups_of_all_pairs_at_zero(spec, rotate, same_dim, uint8, flip):
    tensors, shapes, _ = planted_images(*spec)
    if uint8:
        tensors = tensors.astype(np.uint8)
    criteria = Criteria(0.0, rotate, same_dim, flip)
    i, j = search_module.find_identical(tensors, shapes, criteria)
    assert np.all(i < j)
    expected = reference_matches(tensors, shapes, 0.0, rotate, same_dim, flip=flip)
    exp_i, exp_j = (
        (np.array(v, dtype=np.int64) for v in zip(*expected, strict=True))
        if expected
        else (np.empty(0, np.int64), np.empty(0, np.int64))
    )
    n = len(tensors)
    assert reference_groups(n, i, j) == reference_groups(n, exp_i, exp_j)


def test_find_identical_confirms_hash_collisions_exactly(monkeypatch):
    rng = np.random.default_rng(3)
    tensors = rng.integers(0, 256, (6, 10, 10, 3)).astype(np.float32)
    tensors[3] = tensors[1]
    tensors[5] = np.rot90(tensors[1], 3)
    tensors[4] = np.rot90(np.fliplr(tensors[1]), 1)
    shapes = np.full((6, 2), 10, np.int64)
    monkeypatch.setattr(
        search_module,
        "rotation_hashes",
        lambda t, flip: np.zeros((len(t), 8 if flip else 4), np.uint64),
    )
    i, j = search_module.find_identical(tensors, shapes, Criteria(0.0, True, True))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 3), (1, 5)]
    i, j = search_module.find_identical(tensors, shapes, Criteria(0.0, False, True))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 3)]
    i, j = search_module.find_identical(tensors, shapes, Criteria(0.0, True, True, True))
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == [(1, 3), (1, 4), (1, 5)]


def test_rotation_hashes_agree_for_rotated_copies():
    rng = np.random.default_rng(5)
    image = rng.integers(0, 256, (12, 12, 3)).astype(np.float32)
    stack = np.stack([np.rot90(image, k) for k in range(4)])
    hashes = kernels.rotation_hashes(np.ascontiguousarray(stack), False)
    assert hashes.shape == (4, 4)
    assert len(set(hashes.min(axis=1).tolist())) == 1
    assert len(set(hashes[:, 0].tolist())) == 4


def test_rotation_hashes_with_flip_agree_for_every_symmetry():
    rng = np.random.default_rng(6)
    image = rng.integers(0, 256, (12, 12, 3)).astype(np.float32)
    stack = np.ascontiguousarray(np.stack([symmetry(image, k) for k in range(8)]))
    hashes = kernels.rotation_hashes(stack, True)
    assert hashes.shape == (8, 8)
    # Column k hashes symmetry k: the first image's row holds every copy's own hash.
    np.testing.assert_array_equal(hashes[0], hashes[:, 0])
    np.testing.assert_array_equal(hashes[:, :4], kernels.rotation_hashes(stack, False))
    assert len(set(hashes.min(axis=1).tolist())) == 1
    assert len(set(hashes[:, 0].tolist())) == 8


@SETTINGS
@given(
    image_specs(),
    st.booleans(),
    st.booleans(),
    st.integers(0, 2**32 - 1),
    st.sampled_from([0.0, 5.0, 50.0, 1000.0]),
    st.booleans(),
)
def test_match_ranges_any_order_and_ranges_match_reference(
    spec, rotate, same_dim, seed, max_mse, flip
):
    tensors, shapes, _ = planted_images(*spec)
    n, px = tensors.shape[0], tensors.shape[1]
    rng = np.random.default_rng(seed)
    order = rng.permutation(n).astype(np.int64)
    item_row = np.arange(n, dtype=np.int64)
    item_begin = item_row + 1
    item_end = np.array([rng.integers(r + 1, n + 1) for r in range(n)], dtype=np.int64)
    grids = kernels.block_means(tensors, kernels.grid_side(px))
    features = search_module.bound_features(grids, kernels.block_means(tensors, 1))
    counts, cols, mses, exact = kernels.match_ranges(
        tensors,
        grids,
        features,
        shapes,
        order[item_row],
        tensors,
        grids,
        features[order],
        shapes,
        order,
        item_begin,
        item_end,
        rotate,
        flip,
        same_dim,
        max_mse,
        n,
    )
    mse = reference_mse_matrix(tensors, rotate, flip)
    for w in range(n):
        i = order[w]
        expected = [
            order[t]
            for t in range(item_begin[w], item_end[w])
            if mse[i, order[t]] <= max_mse
            and (not same_dim or sorted(shapes[i]) == sorted(shapes[order[t]]))
        ]
        assert cols[w, : counts[w]].tolist() == expected
        np.testing.assert_allclose(mses[w, : counts[w]], mse[i, expected], rtol=1e-4)
        assert counts[w] <= exact[w] <= item_end[w] - item_begin[w]


def _ring_means(grid):
    """Per ring (blocks r in from the nearest edge) and channel, the mean of a (g, g, 3) grid."""
    g = grid.shape[0]
    y, x = np.mgrid[:g, :g]
    ring = np.minimum(np.minimum(y, x), np.minimum(g - 1 - y, g - 1 - x))
    return [grid[ring == r].astype(np.float64).mean(axis=0) for r in range((g + 1) // 2)]


@SETTINGS
@given(image_pairs(), st.integers(0, 7))
def test_ring_bound_never_exceeds_the_block_mean_bound_of_any_symmetry(pair, k):
    a, b = pair
    px = a.shape[0]
    g = kernels.grid_side(px)
    grids = kernels.block_means(np.stack([a, b]), g)
    means = kernels.block_means(np.stack([a, b]), 1)
    features = search_module.bound_features(grids, means).astype(np.float64)
    # The reference: ring means straight from the grids, weighted by ring size.
    sizes = [kernels.ring_size(g, r) for r in range((g + 1) // 2)]
    rings_a, rings_b = _ring_means(grids[0]), _ring_means(grids[1])
    reference = sum(
        n * np.sum((ra - rb) ** 2) for n, ra, rb in zip(sizes, rings_a, rings_b, strict=True)
    )
    assert sum(sizes) == g * g
    # What match_ranges computes: g * g times the channel part, plus each ring's part about it.
    ours = g * g * float(np.sum((features[0, :3] - features[1, :3]) ** 2))
    ours += float(np.sum(np.repeat(sizes, 3) * (features[0, 3:] - features[1, 3:]) ** 2))
    np.testing.assert_allclose(ours, reference, rtol=1e-4, atol=1e-2)
    grid_sse = float(np.sum((grids[0].astype(np.float64) - symmetry(grids[1], k)) ** 2))
    assert reference <= grid_sse * (1 + 1e-6) + 1e-3


@st.composite
def channel_means(draw):
    """(N, 1, 1, 3) channel means: spread, clustered on a few values, or on cell edges."""
    n = draw(st.integers(0, 60))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["spread", "clustered", "steps"]))
    if kind == "spread":
        values = rng.uniform(0, 255, (n, 3))
    elif kind == "clustered":
        values = rng.choice(rng.uniform(0, 255, (3, 3)).ravel(), (n, 3))
    else:  # multiples of the window radius: chroma on the cells' edges
        step = search_module.window_radius(5.0)
        values = 100 + step * rng.integers(-4, 5, (n, 3))
    return values.astype(np.float32).reshape(n, 1, 1, 3)


@SETTINGS
@given(channel_means(), st.sampled_from([0.5, 5.0, 50.0]))
def test_cell_windows_visit_each_pair_the_channel_bound_keeps_once(means, max_mse):
    n = means.shape[0]
    windows = search_module.cell_windows(means, max_mse)
    assert sorted(windows.order.tolist()) == list(range(n))
    rows, begins, stops, count = windows.ranges(np.arange(n, dtype=np.int64))
    assert count == n
    visited = [
        (min(windows.order[p], windows.order[q]), max(windows.order[p], windows.order[q]))
        for p, b, e in zip(rows.tolist(), begins.tolist(), stops.tolist(), strict=True)
        for q in range(b, e)
    ]
    assert len(visited) == len(set(visited))  # each pair at most once, never with itself
    assert all(a < b for a, b in visited)
    flat = means.reshape(n, 3).astype(np.float64)
    size = 3.0  # the kernel's test, for any thumbnail size: channel * (size / 3) > skip
    limit = max_mse * size * (1.0 + 1e-9) + 1e-9
    skip = limit * (1.0 + kernels.BOUND_SLACK) + kernels.BOUND_SLACK * size
    kept = {
        (a, b)
        for a in range(n)
        for b in range(a + 1, n)
        if np.sum((flat[a] - flat[b]) ** 2) * (size / 3.0) <= skip
    }
    assert kept <= set(visited)
