"""The near verifier's crop search batched over many searches (fastdif.engine.near._best_crops).

The batched search must compute, bit for bit, what the sequential search
computed one symmetry of one pair at a time: a plain NumPy reference of
that search (dense area matrices, one image, one crop list per call) is kept
here. find_near, which batches the searches of many candidates, must find
what verify_near finds one candidate at a time.
"""

import dataclasses

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.data.thumbnails import photo_thumbnails
from fastdif.engine import near

# --- the sequential reference (the search before it was batched) ----------------------


def dense_area_matrix(n_src, lo, hi, n_dst):
    """area_matrix computed for every pixel of every row."""
    lo, hi = np.asarray(lo, np.float64)[..., None], np.asarray(hi, np.float64)[..., None]
    edges = (lo + (hi - lo) * (np.arange(n_dst + 1) / n_dst)) * n_src
    start, stop = edges[..., :-1, None], edges[..., 1:, None]
    pixels = np.arange(n_src)
    overlap = np.minimum(stop, pixels + 1) - np.maximum(start, pixels)
    return np.clip(overlap, 0.0, None) / (stop - start)


def reference_alignment(source, copy, crops):
    """(K,) alignment errors of crops (K, 4) of one source (n, n) against one copy (GRID, GRID)."""
    n = source.shape[0]
    ys = dense_area_matrix(n, crops[:, 2], 1.0 - crops[:, 3], near.GRID)
    xs = dense_area_matrix(n, crops[:, 0], 1.0 - crops[:, 1], near.GRID).transpose(0, 2, 1)
    regions = (ys @ source @ xs).reshape(len(crops), -1)
    regions = regions - regions.mean(axis=1, keepdims=True)
    regions = regions / np.maximum(regions.std(axis=1, keepdims=True), 1e-6)
    seen = copy.reshape(1, -1) - copy.mean()
    seen = seen / np.maximum(seen.std(axis=1, keepdims=True), 1e-6)
    errors = (regions - seen) ** 2
    drop = int(near.OVERLAY_MAX * errors.shape[1])
    kept = np.partition(errors, errors.shape[1] - drop - 1, axis=1)[:, : errors.shape[1] - drop]
    return kept.mean(axis=1)


def reference_feasible(crops, limits):
    crops = np.clip(crops, 0.0, near.MAX_CROP)
    for axis, limit in enumerate(limits):
        pair = crops[:, 2 * axis : 2 * axis + 2]
        total = pair.sum(axis=1, keepdims=True)
        scale = np.where(total > limit, limit / np.maximum(total, 1e-12), 1.0)
        crops[:, 2 * axis : 2 * axis + 2] = pair * scale
    return crops


def reference_search(source, copy, starts, limits):
    """(cost, crop): the best of ``starts`` (made feasible, distinct), then coordinate steps."""
    feasible = np.unique(reference_feasible(starts, limits), axis=0)
    costs = reference_alignment(source, copy, feasible)
    k = int(np.argmin(costs))
    best, best_cost = feasible[k], costs[k]
    if max(limits) * len(source) < 0.5:
        return float(best_cost), best
    step = 0.02
    while step >= 0.0025:
        trial = reference_feasible(best + np.concatenate([np.eye(4), -np.eye(4)]) * step, limits)
        costs = reference_alignment(source, copy, trial)
        k = int(np.argmin(costs))
        if costs[k] < best_cost - 1e-9:
            best, best_cost = trial[k], costs[k]
        else:
            step /= 2
    return float(best_cost), best


# --- cases -------------------------------------------------------------------------------

THUMBNAILS = photo_thumbnails(24)


def search_case(rng, source, copy_of=None):
    """(source luma, copy on the grid, starts, limits): the copy a crop of the source or another."""
    lumas = near.luma(THUMBNAILS)
    if copy_of is None:  # a true crop, turned back: the search has somewhere to go
        crop = rng.uniform(0.0, near.MAX_CROP, 4)
        copy = near._regions(lumas[source], crop[None])[0]
    else:
        copy = near._pooled(lumas[copy_of])
    limits = tuple(float(v) for v in rng.choice([0.0, 0.004, 0.05, 0.13, 0.2], 2))
    starts = near._FRAMINGS if rng.random() < 0.5 else rng.uniform(0.0, 0.12, (1, 4))
    return lumas[source], copy, starts, limits


def batched(cases):
    """near._best_crops of the cases, as _posed frames them."""
    searches = []
    for source, copy, starts, limits in cases:
        framing = near._Framing(
            (0, False), None, None, copy, limits, np.unique(near._feasible(starts, limits), axis=0)
        )
        searches.append((source, framing))
    return near._best_crops(searches)


def test_area_matrix_is_the_dense_formula_bit_for_bit():
    rng = np.random.default_rng(0)
    for n_src, n_dst in [(50, 25), (64, 25), (25, 25), (7, 3), (3, 5), (50, 1)]:
        lo = rng.uniform(-0.05, 0.3, (6, 8))
        hi = 1.0 - rng.uniform(-0.05, 0.3, (6, 8))
        assert np.array_equal(
            near.area_matrix(n_src, lo, hi, n_dst), dense_area_matrix(n_src, lo, hi, n_dst)
        )
    assert np.array_equal(near.area_matrix(50, 0.0, 1.0, 25), dense_area_matrix(50, 0.0, 1.0, 25))


def test_batched_alignment_is_each_pair_s_alone():
    rng = np.random.default_rng(1)
    lumas = near.luma(THUMBNAILS[:6])
    copies = np.stack([near._pooled(v) for v in near.luma(THUMBNAILS[6:12])])
    crops = rng.uniform(0.0, near.MAX_CROP, (6, 9, 4))
    together = near._alignment(lumas, copies, crops)
    for k in range(6):
        assert np.array_equal(together[k], reference_alignment(lumas[k], copies[k], crops[k]))


def test_batched_search_is_the_sequential_search_bit_for_bit():
    rng = np.random.default_rng(2)
    cases = [search_case(rng, k % 24, None if k % 3 else (k + 5) % 24) for k in range(36)]
    costs, crops = batched(cases)
    for case, cost, crop in zip(cases, costs, crops, strict=True):
        expected_cost, expected_crop = reference_search(*case)
        assert cost == expected_cost
        assert np.array_equal(crop, expected_crop)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(1, 5))
def test_batched_search_property(seed, k):
    rng = np.random.default_rng(seed)
    cases = [
        search_case(
            rng, int(rng.integers(24)), None if rng.random() < 0.5 else int(rng.integers(24))
        )
        for _ in range(k)
    ]
    costs, crops = batched(cases)
    for case, cost, crop in zip(cases, costs, crops, strict=True):
        expected_cost, expected_crop = reference_search(*case)
        assert cost == expected_cost
        assert np.array_equal(crop, expected_crop)


def test_every_symmetry_searched_as_before():
    """Without a hint, verify_near searches each allowed symmetry whose aspect fits."""
    for a, b, shape_b in [(0, 1, (760, 570)), (2, 2, (800, 600)), (3, 7, (570, 760))]:
        posed = near._posed(THUMBNAILS[a], THUMBNAILS[b], (800, 600), shape_b, True, True, None)
        assert len(posed.framings) == 4  # the turns that keep the aspect, mirrored or not
        costs, crops = near._best_crops([(posed.src_luma, f) for f in posed.framings])
        for f, cost, crop in zip(posed.framings, costs, crops, strict=True):
            expected_cost, expected_crop = reference_search(
                posed.src_luma, f.seen_luma, near._FRAMINGS, f.limits
            )
            assert cost == expected_cost
            assert np.array_equal(crop, expected_crop)


def mixed_shapes(n, seed=0):
    """Shapes of a library mixing two cameras of one aspect and a portrait one."""
    choices = np.array([[800, 600], [1600, 1200], [4032, 3024], [600, 800]])
    return choices[np.random.default_rng(seed).integers(0, len(choices), n)]


def test_find_near_is_verify_near_one_by_one_on_mixed_shapes():
    tensors = photo_thumbnails(600)
    shapes = mixed_shapes(600)
    features = near.near_features(tensors)
    candidates = near.near_candidates(features)
    expected = {}
    for k in np.flatnonzero(near.screened(tensors, shapes, candidates)):
        i, j, src = int(candidates.i[k]), int(candidates.j[k]), int(candidates.source[k])
        other = j if src == i else i
        hint = (candidates.crop[k], candidates.symmetry[k])
        match = near.verify_near(
            tensors[src], tensors[other], shapes[src], shapes[other], hint=hint
        )
        if match is not None:
            expected[i, j] = near._swapped(match) if src != i else match
    i, j, matches = near.find_near(tensors, shapes, features=features)
    found = {(int(a), int(b)): m for a, b, m in zip(i, j, matches, strict=True)}
    assert expected, "the set has near pairs to find"
    assert found.keys() == expected.keys()
    for key, match in found.items():
        assert dataclasses.asdict(match) == dataclasses.asdict(expected[key])


def reference_moves(source, copy, crop):
    """The camera-move check of one pair, a plain loop over its framings (padded as _moves)."""
    pad = int(np.ceil(near._PAST_EDGE * source.shape[0]))
    errors = near._cell_errors(source, copy, crop[None])[0]
    kept = near._kept(errors)
    steps = np.concatenate([-np.array(near.MOVES[::-1]), [0.0], near.MOVES])
    tried = [(x, y) for y in steps for x in steps if x or y]
    costs = [
        near._cell_errors(source, copy, (crop + near._shift(np.array([x]), np.array([y]))), pad)[0][
            kept
        ].mean()
        for x, y in tried
    ]
    bx, by = tried[int(np.argmin(costs))]
    fine = near.MOVES[0] / 2 * np.array([-1, 0, 1])
    finer = [
        near._cell_errors(
            source, copy, crop + near._shift(np.array([bx + x]), np.array([by + y])), pad
        )[0][kept].mean()
        for y in fine
        for x in fine
    ]
    return float(errors[kept].mean()), float(min(min(costs), min(finer)))


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 2**31 - 1), st.integers(1, 15))
def test_moves_of_many_pairs_are_each_pair_s_alone(seed, k):
    rng = np.random.default_rng(seed)
    thumbs = photo_thumbnails(40)
    sources = [near.luma(thumbs[i].astype(np.float64)) for i in rng.integers(0, 40, k)]
    copies = [near._pooled(near.luma(thumbs[i].astype(np.float64))) for i in rng.integers(0, 40, k)]
    # Crops at the edge (framings past it) and away from it, mixed in one batch.
    crops = [rng.choice([0.0, 0.005, 0.03, 0.08], 4) for _ in range(k)]
    together = near._moves(sources, copies, crops)
    assert together == [
        near._moves([s], [c], [r])[0] for s, c, r in zip(sources, copies, crops, strict=True)
    ]
    assert together[0] == pytest.approx(reference_moves(sources[0], copies[0], crops[0]), abs=1e-9)
