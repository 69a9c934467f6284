"""fastdif.engine.kernels against plain-NumPy references (tests/reference.py)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import (
    THRESHOLDS,
    comparable,
    image_specs,
    pick_threshold,
    planted_images,
    reference_matches,
    reference_mse_matrix,
    symmetry,
)

from fastdif.engine import kernels, numpy_kernels
from fastdif.engine.matching import bound_features, find_matches
from fastdif.model import Criteria

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MANY = settings(SETTINGS, max_examples=300)


def mse_to_key(tensors, key, members, rotate, flip=False):
    """``kernels.pair_mse`` of one key against each member (the MSEs only)."""
    members = np.asarray(members, dtype=np.int64)
    keys = np.full(len(members), key, np.int64)
    return kernels.pair_mse(tensors, keys, members, rotate, flip)[0]


def _square_shapes(n, px):
    return np.full((n, 2), px, dtype=np.int64)


def _classic_tile(tensors, shapes, rows, rotate, same_dim, max_mse, block, capacity, flip=False):
    """Run ``match_ranges`` as the classic path does: each row against later images,
    one work item per (row, block of ``block`` images); outputs shaped (R, B, ...)."""
    tensors = np.ascontiguousarray(tensors, dtype=np.float32)
    rows = np.ascontiguousarray(rows, dtype=np.int64)
    n, px = tensors.shape[0], tensors.shape[1]
    n_blocks = -(-n // block)
    b = np.tile(np.arange(n_blocks, dtype=np.int64), len(rows))
    item_row = np.repeat(rows, n_blocks)
    begin = np.maximum(b * block, item_row + 1)
    end = np.minimum((b + 1) * block, n)
    grids = kernels.block_means(tensors, kernels.grid_side(px))
    features = bound_features(grids, kernels.block_means(tensors, 1))
    images = (tensors, grids, features, np.ascontiguousarray(shapes, dtype=np.int64))
    counts, cols, mses, _ = kernels.match_ranges(
        *images,
        item_row,  # the identity order: positions are image indices
        *images,
        np.arange(n, dtype=np.int64),
        begin,
        end,
        bool(rotate),
        bool(flip),
        bool(same_dim),
        float(max_mse),
        int(capacity),
    )
    shape = (len(rows), n_blocks)
    return (
        counts.reshape(shape),
        cols.reshape(shape + (capacity,)),
        mses.reshape(shape + (capacity,)),
    )


def _gather(rows, counts, cols, mses, capacity):
    """{(i, j): mse} from the stored entries, as fastdif.engine.matching.match_items reads them."""
    found = {}
    for r in range(counts.shape[0]):
        for b in range(counts.shape[1]):
            for s in range(min(int(counts[r, b]), capacity)):
                found[(int(rows[r]), int(cols[r, b, s]))] = float(mses[r, b, s])
    return found


def _check_tile(
    tensors, shapes, rows, rotate, same_dim, max_mse, block, capacity, mse=None, flip=False
):
    """Run the classic tile and check every (row, block) cell against the reference.

    Returns the gathered {(i, j): mse} of the stored entries.
    """
    n = tensors.shape[0]
    if mse is None:
        mse = reference_mse_matrix(tensors, rotate, flip)
    counts, cols, mses = _classic_tile(
        tensors, shapes, rows, rotate, same_dim, max_mse, block, capacity, flip
    )
    n_blocks = -(-n // block)
    assert counts.shape == (len(rows), n_blocks)
    assert cols.shape == mses.shape == (len(rows), n_blocks, capacity)
    for r, i in enumerate(rows):
        for b in range(n_blocks):
            expected = [
                j
                for j in range(max(b * block, i + 1), min((b + 1) * block, n))
                if comparable(shapes, i, j, same_dim) and mse[i, j] <= max_mse
            ]
            assert counts[r, b] == len(expected), (i, b, expected, max_mse)
            kept = min(len(expected), capacity)
            assert cols[r, b, :kept].tolist() == expected[:kept], (i, b)
            np.testing.assert_allclose(
                mses[r, b, :kept].astype(np.float64), mse[i, expected[:kept]], rtol=1e-4, atol=0
            )
    found = _gather(rows, counts, cols, mses, capacity)
    if counts.max(initial=0) <= capacity:
        wanted = set(rows.tolist())
        expected_pairs = [
            p
            for p in reference_matches(tensors, shapes, max_mse, rotate, same_dim, mse, flip)
            if p[0] in wanted
        ]
        assert sorted(found) == expected_pairs
    return found


# --------------------------------------------------------------------------- rotations


@SETTINGS
@given(px=st.integers(1, 20), seed=st.integers(0, 2**32 - 1), flip=st.booleans())
def test_rotations_rows_are_numpy_rot90_and_flip(px, seed, flip):
    image = np.random.default_rng(seed).uniform(0, 255, (px, px, 3)).astype(np.float32)
    out = kernels.rotations(image, flip)
    assert out.shape == (8 if flip else 4, px * px * 3)
    assert out.dtype == np.float32
    for k in range(out.shape[0]):
        np.testing.assert_array_equal(out[k], symmetry(image, k).ravel())
        # rotation_offsets reads symmetry k in place, as pair_mse and the hashes do.
        start, dy, dx = kernels.rotation_offsets(px, k)
        at = start + dy * np.arange(px)[:, None] + dx * np.arange(px)[None, :]
        np.testing.assert_array_equal(
            image.ravel()[at[..., None] + np.arange(3)], symmetry(image, k)
        )


# --------------------------------------------------------------------------- bounded_sse


def _exact_sse(a, b):
    return float(np.sum((a.astype(np.float64) - b.astype(np.float64)) ** 2))


@st.composite
def sse_inputs(draw):
    n = draw(st.integers(1, 300))
    row_len = draw(st.integers(1, n + 3))
    seed = draw(st.integers(0, 2**32 - 1))
    style = draw(st.sampled_from(["random", "extremes", "equal", "zero_one"]))
    rng = np.random.default_rng(seed)
    if style == "random":
        a = rng.integers(0, 256, n)
        b = rng.integers(0, 256, n)
    elif style == "extremes":
        a = rng.choice([0, 255], n)
        b = rng.choice([0, 255], n)
    elif style == "equal":
        a = np.full(n, rng.integers(0, 256))
        b = a.copy()
    else:
        a = rng.integers(0, 2, n)
        b = np.zeros(n)
    return a.astype(np.float32), b.astype(np.float32), row_len


@SETTINGS
@given(sse_inputs())
def test_bounded_sse_without_limit_is_exact_sum(args):
    a, b, row_len = args
    assert kernels.bounded_sse(a, b, row_len, np.inf) == _exact_sse(a, b)


@SETTINGS
@given(
    sse_inputs(),
    st.sampled_from(["exact", "below_half", "below_one", "above", "zero", "fraction"]),
    st.floats(0, 1),
)
def test_bounded_sse_with_limit(args, how, fraction):
    a, b, row_len = args
    exact = _exact_sse(a, b)
    limit = {
        "exact": exact,
        "below_half": exact - 0.5,
        "below_one": exact - 1.0,
        "above": exact + 1.0,
        "zero": 0.0,
        "fraction": exact * fraction,
    }[how]
    got = kernels.bounded_sse(a, b, row_len, limit)
    if exact <= limit:
        assert got == exact
    else:
        # Stopped early: a partial sum of non-negative terms, past the limit.
        assert limit < got <= exact


@pytest.mark.parametrize(
    "a_value, b_value, expected_per_value",
    [(0, 255, 65025.0), (255, 0, 65025.0), (0, 0, 0.0), (255, 255, 0.0), (100, 116, 256.0)],
)
@pytest.mark.parametrize("row_len", [1, 7, 48])
def test_bounded_sse_adversarial_values(a_value, b_value, expected_per_value, row_len):
    n = 48 * 3
    a = np.full(n, a_value, dtype=np.float32)
    b = np.full(n, b_value, dtype=np.float32)
    exact = expected_per_value * n
    assert kernels.bounded_sse(a, b, row_len, np.inf) == exact
    assert kernels.bounded_sse(a, b, row_len, exact) == exact
    if exact > 0:
        got = kernels.bounded_sse(a, b, row_len, exact - 1)
        assert exact - 1 < got <= exact
        got = kernels.bounded_sse(a, b, row_len, 0.0)
        assert 0.0 < got <= exact
    else:
        assert kernels.bounded_sse(a, b, row_len, 0.0) == 0.0


# ------------------------------------------------------------- match_ranges, classic tiles


@pytest.mark.slow
@MANY
@given(
    spec=image_specs(),
    rotate=st.booleans(),
    same_dim=st.booleans(),
    choice=st.sampled_from(THRESHOLDS),
    random_value=st.floats(0, 200),
    block=st.sampled_from([1, 3, 7, 1024]),
    capacity=st.sampled_from([1, 2, 64]),
    which=st.integers(0, 100),
    rows_seed=st.integers(0, 2**32 - 1),
    all_rows=st.booleans(),
    flip=st.booleans(),
)
def test_match_ranges_classic_matches_reference(
    spec, rotate, same_dim, choice, random_value, which, block, capacity, rows_seed, all_rows, flip
):
    tensors, shapes, planted = planted_images(*spec)
    n = tensors.shape[0]
    mse = reference_mse_matrix(tensors, rotate, flip)
    max_mse = pick_threshold(choice, random_value, mse, planted, shapes, same_dim, which)
    if all_rows:
        rows = np.arange(n, dtype=np.int64)
    else:
        rng = np.random.default_rng(rows_seed)
        rows = rng.permutation(n)[: rng.integers(1, n + 1)].astype(np.int64)
    _check_tile(tensors, shapes, rows, rotate, same_dim, max_mse, block, capacity, mse, flip)


@pytest.mark.parametrize("block, capacity", [(3, 1), (7, 2), (1, 1), (1024, 64)])
@pytest.mark.parametrize("rotate", [False, True])
def test_match_ranges_classic_all_equal_images_all_match_at_zero(block, capacity, rotate):
    n, px = 13, 10
    tensors = np.full((n, px, px, 3), 77, dtype=np.float32)
    shapes = _square_shapes(n, px)
    rows = np.arange(n, dtype=np.int64)
    counts, cols, mses = _classic_tile(tensors, shapes, rows, rotate, True, 0.0, block, capacity)
    # counts are the true totals even when they exceed capacity.
    for r in range(n):
        for b in range(counts.shape[1]):
            total = len(range(max(b * block, r + 1), min((b + 1) * block, n)))
            assert counts[r, b] == total
    assert counts.sum() == n * (n - 1) // 2
    if capacity >= block:
        found = _gather(rows, counts, cols, mses, capacity)
        assert sorted(found) == [(i, j) for i in range(n) for j in range(i + 1, n)]
        assert set(found.values()) == {0.0}
    _check_tile(tensors, shapes, rows, rotate, True, 0.0, block, capacity)


@pytest.mark.parametrize("rotate", [False, True])
def test_match_ranges_classic_black_vs_white(rotate):
    px = 12
    tensors = np.stack([np.zeros((px, px, 3)), np.full((px, px, 3), 255)]).astype(np.float32)
    shapes = _square_shapes(2, px)
    rows = np.arange(2, dtype=np.int64)
    counts, cols, mses = _classic_tile(tensors, shapes, rows, rotate, True, 65025.0, 4, 2)
    assert counts.tolist() == [[1], [0]]
    assert cols[0, 0, 0] == 1
    assert mses[0, 0, 0] == 65025.0
    counts, _, _ = _classic_tile(tensors, shapes, rows, rotate, True, 65024.5, 4, 2)
    assert counts.sum() == 0
    assert mse_to_key(tensors, 0, np.array([1]), rotate)[0] == 65025.0


@pytest.mark.parametrize("rotate", [False, True])
def test_match_ranges_classic_offset_by_16_is_mse_256_not_duplicate(rotate):
    """difPy subtracted uint8 arrays: (a - b) ** 2 wraps 16 ** 2 = 256 to 0."""
    px = 11
    base = np.random.default_rng(5).integers(0, 240, (px, px, 3))
    tensors = np.stack([base, base + 16]).astype(np.float32)
    shapes = _square_shapes(2, px)
    rows = np.arange(2, dtype=np.int64)
    for threshold in (0.0, 5.0, 255.5):
        counts, _, _ = _classic_tile(tensors, shapes, rows, rotate, True, threshold, 8, 4)
        assert counts.sum() == 0, threshold
    counts, cols, mses = _classic_tile(tensors, shapes, rows, rotate, True, 256.0, 8, 4)
    assert counts.tolist() == [[1], [0]]
    assert (cols[0, 0, 0], mses[0, 0, 0]) == (1, 256.0)
    assert mse_to_key(tensors, 1, np.array([0]), rotate)[0] == 256.0


@pytest.mark.parametrize("turns", [1, 2, 3])
@pytest.mark.parametrize("original_first", [True, False])
def test_match_ranges_classic_rotated_copies(turns, original_first):
    px = 10
    image = np.random.default_rng(turns).integers(0, 256, (px, px, 3))
    rotated = np.rot90(image, turns)
    # Not rotation-symmetric, so rotate=False must tell them apart.
    assert not np.array_equal(rotated, image)
    pair = [image, rotated] if original_first else [rotated, image]
    tensors = np.ascontiguousarray(np.stack(pair), dtype=np.float32)
    # Non-square originals: an odd turn swaps (width, height); same_dim accepts both.
    original_shape = [16, 9]
    rotated_shape = [9, 16] if turns % 2 else [16, 9]
    pair_shapes = (
        [original_shape, rotated_shape] if original_first else [rotated_shape, original_shape]
    )
    shapes = np.array(pair_shapes, dtype=np.int64)
    rows = np.arange(2, dtype=np.int64)
    counts, cols, mses = _classic_tile(tensors, shapes, rows, True, True, 0.0, 2, 1)
    assert counts.tolist() == [[1], [0]]
    assert (cols[0, 0, 0], mses[0, 0, 0]) == (1, 0.0)
    counts, _, _ = _classic_tile(tensors, shapes, rows, False, True, 0.0, 2, 1)
    assert counts.sum() == 0
    counts, _, _ = _classic_tile(tensors, shapes, rows, False, False, 5.0, 2, 1)
    assert counts.sum() == 0
    assert mse_to_key(tensors, 0, np.array([1]), True)[0] == 0.0
    assert mse_to_key(tensors, 1, np.array([0]), True)[0] == 0.0
    assert mse_to_key(tensors, 0, np.array([1]), False)[0] > 5.0


def test_match_ranges_classic_same_dim_blocks_different_shapes():
    px = 10
    tensors = np.zeros((3, px, px, 3), dtype=np.float32)
    shapes = np.array([[10, 20], [20, 10], [10, 21]], dtype=np.int64)
    rows = np.arange(3, dtype=np.int64)
    counts, cols, _ = _classic_tile(tensors, shapes, rows, False, True, 0.0, 8, 4)
    assert counts.tolist() == [[1], [0], [0]]
    assert cols[0, 0, 0] == 1
    counts, _, _ = _classic_tile(tensors, shapes, rows, False, False, 0.0, 8, 4)
    assert counts.tolist() == [[2], [1], [0]]


@pytest.mark.parametrize("rotate", [False, True])
@pytest.mark.parametrize("changed", [55, 123, 61])
def test_match_ranges_classic_threshold_equal_to_pair_mse_is_inclusive(rotate, changed):
    """A pair whose MSE equals the threshold must match (difPy: ``mse <= similarity``).

    ``changed`` values differ by 1, so the exact MSE is ``changed / 300`` and
    mse_to_key reports exactly that value.
    """
    px = 10
    tensors = np.zeros((2, px, px, 3), dtype=np.float32)
    tensors[1].reshape(-1)[:changed] = 1.0
    shapes = _square_shapes(2, px)
    pair_mse = mse_to_key(tensors, 0, np.array([1]), rotate)[0]
    assert pair_mse == changed / (px * px * 3)
    assert pair_mse == reference_mse_matrix(tensors, rotate)[0, 1]
    counts, _, _ = _classic_tile(
        tensors, shapes, np.arange(2, dtype=np.int64), rotate, True, pair_mse, 4, 2
    )
    assert counts.tolist() == [[1], [0]], f"MSE {pair_mse!r} not matched at max_mse={pair_mse!r}"


# --------------------------------------------------------------------------- mse_to_key


@SETTINGS
@given(
    spec=image_specs(max_n=12),
    rotate=st.booleans(),
    fractional=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    flip=st.booleans(),
)
def test_mse_to_key_matches_reference_row(spec, rotate, fractional, seed, flip):
    tensors, _, _ = planted_images(*spec)
    n = tensors.shape[0]
    rng = np.random.default_rng(seed)
    if fractional:
        tensors = np.ascontiguousarray(tensors + rng.uniform(-0.5, 0.5, tensors.shape)).astype(
            np.float32
        )
    key = int(rng.integers(0, n))
    # Any members, the key itself and repeats included.
    members = rng.integers(0, n, size=int(rng.integers(1, 2 * n))).astype(np.int64)
    got = mse_to_key(tensors, key, members, rotate, flip)
    assert got.dtype == np.float64
    expected = reference_mse_matrix(tensors, rotate, flip)[key, members]
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=0)
    assert np.all(got[members == key] == 0.0)


@SETTINGS
@given(spec=image_specs(max_n=10), rotate=st.booleans(), flip=st.booleans())
def test_reference_mse_matrix_is_symmetric(spec, rotate, flip):
    """Sanity check of the reference: transforming i or j gives the same minimum."""
    tensors, _, _ = planted_images(*spec)
    mse = reference_mse_matrix(tensors, rotate, flip)
    np.testing.assert_array_equal(mse, mse.T)
    assert np.all(np.diag(mse) == 0.0)


# --------------------------------------------------------------------------- numpy_kernels


def _as(tensors, kind):
    """Planted integer thumbnails as uint8, as float32, or on the 1/256 grid of transforms."""
    if kind == "uint8":
        return np.ascontiguousarray(tensors.astype(np.uint8))
    if kind == "grid":  # values k / 256, some far above 255, as normalised thumbnails
        spread = np.arange(tensors.size, dtype=np.float64).reshape(tensors.shape) % 7
        return np.ascontiguousarray((tensors * 9.5 + spread / 256).astype(np.float32))
    return tensors


@SETTINGS
@given(
    spec=image_specs(max_n=16),
    kind=st.sampled_from(["float32", "uint8", "grid"]),
    choice=st.sampled_from(THRESHOLDS),
    random_value=st.floats(0, 2000),
    which=st.integers(0, 50),
    rotate=st.booleans(),
    flip=st.booleans(),
    same_dim=st.booleans(),
)
def test_numpy_kernels_give_the_kernels_results_bit_for_bit(
    spec, kind, choice, random_value, which, rotate, flip, same_dim
):
    planted_tensors, shapes, planted = planted_images(*spec)
    tensors = _as(planted_tensors, kind)
    assert numpy_kernels.exact(tensors)
    mse = reference_mse_matrix(tensors, rotate, flip)
    max_mse = pick_threshold(choice, random_value, mse, planted, shapes, same_dim, which)
    criteria = Criteria(max_mse, rotate, same_dim, flip)

    i, j, summed = numpy_kernels.find_matches(tensors, shapes, criteria)
    want_i, want_j, want_summed = find_matches(tensors, shapes, criteria)
    np.testing.assert_array_equal(i, want_i)
    np.testing.assert_array_equal(j, want_j)
    assert summed == want_summed  # the bounds skip the same pairs

    np.testing.assert_array_equal(
        numpy_kernels.rotation_hashes(tensors, flip), kernels.rotation_hashes(tensors, flip)
    )
    n = tensors.shape[0]
    left, right = np.divmod(np.arange(n * n, dtype=np.int64), n)
    got_mse, got_symmetry = numpy_kernels.pair_mse(tensors, left, right, rotate, flip)
    want_mse, want_symmetry = kernels.pair_mse(tensors, left, right, rotate, flip)
    np.testing.assert_array_equal(got_mse, want_mse)
    np.testing.assert_array_equal(got_symmetry, want_symmetry)


@pytest.mark.parametrize("rotate", [False, True])
def test_numpy_find_matches_threshold_on_a_pair_is_inclusive(rotate):
    # Image 1 is image 0 with one value 3 higher, turned: MSE exactly 9 / size.
    tensors = np.zeros((3, 10, 10, 3), dtype=np.uint8)
    tensors[0, 2, 7, 1] = 200
    tensors[1] = np.rot90(tensors[0], 1 if rotate else 0)
    tensors[1][tensors[1] == 200] = 203
    tensors[2] = 255
    shapes = _square_shapes(3, 10)
    exact = 9 / 300

    at = numpy_kernels.find_matches(tensors, shapes, Criteria(exact, rotate, True))
    below = Criteria(np.nextafter(exact, 0), rotate, True)
    below = numpy_kernels.find_matches(tensors, shapes, below)

    assert (at[0].tolist(), at[1].tolist()) == ([0], [1])
    assert below[0].size == 0
    assert at[2] == below[2] == 1  # the channel means skip the white image


def test_exact_accepts_integers_and_the_transforms_grid_only():
    integers = np.full((2, 4, 4, 3), 255.0, dtype=np.float32)
    grid = integers / 256 * 3  # multiples of 1/256
    assert numpy_kernels.exact(integers.astype(np.uint8))
    assert numpy_kernels.exact(integers)
    assert numpy_kernels.exact(grid)
    assert not numpy_kernels.exact(integers + np.float32(0.1))  # neither
    assert not numpy_kernels.exact(np.where(integers > 0, np.nan, 0).astype(np.float32))
    # Integers, but squares summed over an image pass 2**53: a sum could round.
    assert not numpy_kernels.exact(np.full((2, 4, 4, 3), 2.0**24, dtype=np.float32))
    assert not numpy_kernels.exact(np.full((2, 4, 4, 3), 2.0**24, dtype=np.float64) + 0.5)


@pytest.mark.parametrize("k", range(8))
def test_numpy_permutation_is_the_kernels_symmetry(k):
    image = np.arange(5 * 5 * 3).reshape(5, 5, 3)
    np.testing.assert_array_equal(
        image.ravel()[numpy_kernels.permutation(5, k)], symmetry(image, k).ravel()
    )
