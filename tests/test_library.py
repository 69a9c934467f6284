"""New images against a library: fastdif.engine's library search against the NumPy reference."""

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
    reference_key,
    reference_mse_and_symmetry,
)

from fastdif.engine import matching
from fastdif.engine.grouping import library_groups
from fastdif.engine.kernels import block_means, grid_side
from fastdif.engine.matching import (
    Thumbnails,
    cross_mse,
    find_library_matches,
    repository_block_means,
)
from fastdif.model import Criteria

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

cases = st.fixed_dictionaries(
    {
        "spec": image_specs(min_n=3),
        "rotate": st.booleans(),
        "same_dim": st.booleans(),
        "choice": st.sampled_from(THRESHOLDS),
        "random_value": st.floats(0, 200),
        "which": st.integers(0, 100),
        "new": st.lists(st.booleans(), min_size=24, max_size=24),
        "tile_rows": st.integers(1, 30),
        "uint8_library": st.booleans(),
        "flip": st.booleans(),
    }
)


def _split(case):
    tensors, shapes, planted = planted_images(*case["spec"])
    n = len(tensors)
    is_new = np.asarray(case["new"][:n])
    is_new[0], is_new[-1] = True, False  # at least one new image and one library image
    rotate, same_dim = case["rotate"], case["same_dim"]
    mse = reference_mse_and_symmetry(tensors, rotate, case["flip"])[0]
    max_mse = pick_threshold(
        case["choice"], case["random_value"], mse, planted, shapes, same_dim, case["which"]
    )
    return tensors, shapes, mse, np.flatnonzero(is_new), np.flatnonzero(~is_new), max_mse


def _images(tensors, shapes, ids, dtype=np.float32):
    rows = np.ascontiguousarray(tensors[ids].astype(dtype))
    return Thumbnails.of(rows, np.ascontiguousarray(shapes[ids]))


@pytest.mark.slow
@SETTINGS
@given(cases)
def test_library_matches_equal_the_reference_pairs(case):
    tensors, shapes, mse, new, library, max_mse = _split(case)
    rotate, same_dim = case["rotate"], case["same_dim"]
    integers = np.array_equal(tensors, np.round(tensors))
    dtype = np.uint8 if case["uint8_library"] and integers else np.float32
    criteria = Criteria(max_mse, rotate, same_dim, case["flip"])
    seen = []
    i, j, _ = find_library_matches(
        _images(tensors, shapes, new),
        _images(tensors, shapes, library, dtype),
        criteria,
        case["tile_rows"],
        seen.append,
    )
    expected = [
        (a, b)
        for a, q in enumerate(new)
        for b, m in enumerate(library)
        if mse[q, m] <= max_mse and comparable(shapes, q, m, same_dim)
    ]
    assert list(zip(i.tolist(), j.tolist(), strict=True)) == expected  # ascending (i, j)
    assert sum(seen) == len(new)


def test_library_matches_split_items_and_recompute_overflow(monkeypatch):
    """Nine library copies of one new image, in work items of 2 with room for 1 match."""
    rng = np.random.default_rng(3)
    library = rng.integers(0, 256, (30, 10, 10, 3)).astype(np.float32)
    query = library[:1].copy()
    library[[2, 4, 5, 9, 11, 12, 20, 21, 29]] = query[0]
    monkeypatch.setattr(matching, "BLOCK", 2)
    monkeypatch.setattr(matching, "CAPACITY", 1)
    shapes = np.full((30, 2), 10, dtype=np.int64)
    i, j, _ = find_library_matches(
        Thumbnails.of(query, shapes[:1]),
        Thumbnails.of(library, shapes),
        Criteria(0.0, False, True),
        1,
    )
    assert i.tolist() == [0] * 10
    assert j.tolist() == [0, 2, 4, 5, 9, 11, 12, 20, 21, 29]


def test_a_library_search_skips_most_of_a_large_library():
    """The mean window and the block bounds: a few exact sums, not all pairs."""
    rng = np.random.default_rng(5)
    library = rng.integers(0, 256, (4000, 12, 12, 3), dtype=np.uint8)
    queries = np.ascontiguousarray(library[[10, 2000, 3999]].astype(np.float32))
    shapes = np.full((4000, 2), 12, dtype=np.int64)
    i, j, summed = find_library_matches(
        Thumbnails.of(queries, shapes[:3]),
        Thumbnails.of(library, shapes),
        Criteria(5.0),
        64,
    )
    assert (i.tolist(), j.tolist()) == ([0, 1, 2], [10, 2000, 3999])
    assert summed < 100  # of 12,000 pairs


@SETTINGS
@given(cases)
def test_library_groups_are_keyed_by_a_library_image(case):
    tensors, shapes, mse, new, library, max_mse = _split(case)
    rotate, same_dim = case["rotate"], case["same_dim"]
    _, which = reference_mse_and_symmetry(tensors, rotate, case["flip"])
    sizes = np.random.default_rng(0).integers(1, 4, len(tensors)).astype(np.int64)
    numbers = np.concatenate([new, library])  # image number -> index in tensors
    pairs = [
        (a, b)
        for a in range(len(numbers))
        for b in range(a + 1, len(numbers))
        if a < len(new)  # never two library images
        and mse[numbers[a], numbers[b]] <= max_mse
        and comparable(shapes, numbers[a], numbers[b], same_dim)
    ]
    i = np.asarray([a for a, _ in pairs], dtype=np.int64)
    j = np.asarray([b for _, b in pairs], dtype=np.int64)
    mses = cross_mse(
        np.ascontiguousarray(tensors[new]),
        np.ascontiguousarray(tensors[library]),
        Criteria(max_mse, rotate, same_dim, case["flip"]),
    )
    symmetries = {}
    found = library_groups(len(new), i, j, mses, shapes[numbers], sizes[numbers], None, symmetries)
    n_new = len(new)
    for key, members, member_mses in found:
        assert members and all(m < n_new for m in members)  # library images are never members
        linked = {key, *members}
        assert not any(m >= n_new for m in members)
        library_linked = [
            m for a, b in pairs if a in linked or b in linked for m in (a, b) if m >= n_new
        ]
        if library_linked:
            assert key >= n_new
        for m, value in zip(members, member_mses, strict=True):
            expected = mse[numbers[key], numbers[m]]
            assert value == pytest.approx(expected, rel=1e-6, abs=1e-6)
            # The symmetry of the key that gave the MSE (only k != 0 are noted).
            assert symmetries.get(m, 0) == which[numbers[key], numbers[m]]
    # A group of new images alone is keyed as a search within one set keys it.
    for key, members, _ in found:
        if key < n_new:
            group = [key, *members]
            assert key == reference_key(group, shapes[numbers], sizes[numbers])


@settings(max_examples=60, deadline=None)
@given(
    st.integers(0, 40),
    st.integers(10, 70),
    st.sampled_from(["uint8", "float32"]),
    st.sampled_from(["random", "white", "black", "checkerboard"]),
    st.integers(1, 7),
)
def test_the_builds_block_means_are_the_kernels_bit_for_bit(n, px, dtype, kind, chunk):
    """In NumPy, for a build (no Numba threads); integer-valued thumbnails as a build makes."""
    rng = np.random.default_rng(n * px)
    values = {
        "random": rng.integers(0, 256, (n, px, px, 3)),
        "white": np.full((n, px, px, 3), 255),
        "black": np.zeros((n, px, px, 3)),
        "checkerboard": np.indices((n, px, px, 3)).sum(axis=0) % 2 * 255,
    }[kind]
    tensors = np.ascontiguousarray(values.astype(dtype))
    found = repository_block_means(tensors, chunk)
    np.testing.assert_array_equal(found.grids, block_means(tensors, grid_side(px)))
    np.testing.assert_array_equal(found.means, block_means(tensors, 1))
    assert not found.grids.flags.writeable and not found.means.flags.writeable
