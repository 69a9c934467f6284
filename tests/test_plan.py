"""The engine's plans: what they visit, their pieces, and every backend running them alike."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import fastdif
from fastdif.backends.dask import DaskSearcher
from fastdif.backends.local import LocalSearcher
from fastdif.engine import kernels, matching
from fastdif.model import Criteria

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@st.composite
def channel_means(draw, min_n=0, max_n=50):
    """(N, 1, 1, 3) channel means: spread, clustered on a few values, or on cell edges."""
    n = draw(st.integers(min_n, max_n))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    kind = draw(st.sampled_from(["spread", "clustered", "steps"]))
    if kind == "spread":
        values = rng.uniform(0, 255, (n, 3))
    elif kind == "clustered":
        values = rng.choice(rng.uniform(0, 255, (3, 3)).ravel(), (n, 3))
    else:  # multiples of the window radius: on the cells' and the windows' edges
        values = 100 + matching.window_radius(5.0) * rng.integers(-4, 5, (n, 3))
    return values.astype(np.float32).reshape(n, 1, 1, 3)


def _visits(plan):
    """Every (row, candidate) the plan's tiles visit, in image ids, and the tiles' weights."""
    seen, weight = [], 0
    for tile in plan.tiles():
        for row, b, e in zip(
            tile.rows.tolist(), tile.begins.tolist(), tile.stops.tolist(), strict=True
        ):
            seen += [(row, int(plan.order[p])) for p in range(b, e)]
        weight += tile.weight
    return seen, weight


def _piece_visits(plan, side):
    """:func:`_visits` through the tiles' pieces, checking each piece's size and weights."""
    seen = []
    for tile in plan.tiles():
        pieces = tile.pieces(plan.order, side, plan.within)
        for piece in pieces:
            assert np.array_equal(piece.row_ids, np.unique(piece.row_ids))
            assert piece.row_ids.size <= side
            # What a task holds: the rows, and candidates that are not among them.
            ids = [piece.row_ids, piece.candidate_ids + (0 if plan.within else 10**6)]
            assert np.unique(np.concatenate(ids)).size <= 2 * side
            rows = piece.row_ids[piece.rows].tolist()
            for row, b, e in zip(rows, piece.begins.tolist(), piece.stops.tolist(), strict=True):
                assert 0 <= b < e <= piece.candidate_ids.size
                seen += [(row, int(c)) for c in piece.candidate_ids[b:e]]
        if pieces:
            assert sum(piece.weight for piece in pieces) == pytest.approx(tile.weight)
        else:  # no pair to visit: nothing is lost
            assert not (tile.stops > tile.begins).any()
    return seen


def _kept_by_channel_bound(means, max_mse):
    """The pairs (a, b), a < b, that the kernel's channel-mean bound does not skip."""
    flat = means.reshape(-1, 3).astype(np.float64)
    size = 3.0  # the kernel's test, for any thumbnail size: channel * (size / 3) > skip
    limit = max_mse * size * (1.0 + 1e-9) + 1e-9
    skip = limit * (1.0 + kernels.BOUND_SLACK) + kernels.BOUND_SLACK * size
    n = flat.shape[0]
    return {
        (a, b)
        for a in range(n)
        for b in range(a + 1, n)
        if np.sum((flat[a] - flat[b]) ** 2) * (size / 3.0) <= skip
    }


# --------------------------------------------------------------------------- plans


@SETTINGS
@given(
    channel_means(),
    st.sampled_from([0.5, 5.0, 50.0]),
    st.integers(1, 60),
    st.booleans(),
    st.integers(1, 9),
)
def test_a_unit_plan_visits_each_pair_the_bound_allows_once(
    means, max_mse, tile_rows, chunked, side
):
    n = means.shape[0]
    plan = matching.chunked_plan(means, max_mse, tile_rows) if chunked else matching.classic_plan(n)
    seen, weight = _visits(plan)
    pairs = [(min(a, b), max(a, b)) for a, b in seen]

    assert all(a != b for a, b in seen)  # never an image with itself
    assert len(pairs) == len(set(pairs))  # each pair at most once
    if chunked:
        assert set(pairs) >= _kept_by_channel_bound(means, max_mse)
    else:
        assert set(pairs) == {(a, b) for a in range(n) for b in range(a + 1, n)}
    assert weight == n  # progress: every row once
    # Tasks on other machines: the same visits, in pieces of bounded size.
    assert sorted(_piece_visits(plan, side)) == sorted(seen)


@SETTINGS
@given(
    channel_means(min_n=1),
    channel_means(min_n=1),
    st.sampled_from([0.5, 5.0, 50.0]),
    st.integers(1, 60),
    st.integers(1, 9),
)
def test_a_library_plan_visits_each_pair_in_the_window_once(
    queries, library, max_mse, tile_rows, side
):
    plan = matching.library_plan(queries, library, max_mse, tile_rows)
    seen, weight = _visits(plan)

    centres = matching.overall_means(queries)
    overall = matching.overall_means(library)
    radius = matching.window_radius(max_mse)
    window = {
        (q, m)
        for q in range(centres.size)
        for m in range(overall.size)
        if centres[q] - radius <= overall[m] <= centres[q] + radius
    }
    assert sorted(seen) == sorted(window)  # each pair of the window once, no other
    assert weight == centres.size
    assert sorted(_piece_visits(plan, side)) == sorted(seen)


def test_units_up_to_the_classic_size_take_the_classic_plan(monkeypatch):
    means = np.random.default_rng(0).uniform(0, 255, (40, 1, 1, 3)).astype(np.float32)
    classic = matching.unit_plan(means, 5.0, 8)
    assert len(list(classic.tiles())) == 1 and np.array_equal(classic.order, np.arange(40))
    monkeypatch.setattr(matching, "CLASSIC_MAX_IMAGES", 39)
    chunked = matching.unit_plan(means, 5.0, 8)
    assert len(list(chunked.tiles())) == 5  # 8 rows a tile, in cell-window order
    assert sorted(chunked.order.tolist()) == list(range(40))


# --------------------------------------------------------------------------- backends


def _thumbnails(n, seed, px=12, dtype=np.uint8):
    """``n`` random thumbnails, the second half noisy copies of the first, one turned."""
    rng = np.random.default_rng(seed)
    tensors = rng.integers(0, 256, (n, px, px, 3), dtype=np.uint8)
    noise = rng.integers(-3, 4, (n // 2, px, px, 3))
    tensors[n // 2 :] = np.clip(tensors[: n // 2].astype(int) + noise, 0, 255)
    tensors[1] = np.rot90(tensors[n // 2 + 3])
    return tensors.astype(dtype)


def _unit_pairs(searcher, dif, criteria, tile_rows):
    """Each unit's (i, j, exact MSEs) as ``searcher`` finds them, and the pairs it summed."""
    units = list(matching.comparable_units(dif, criteria.same_dim))
    with searcher:
        found = [
            (i, j, mse(i, j))
            for i, j, mse in searcher.pairs(units, criteria, tile_rows, lambda rows: None)
        ]
    return found, searcher.summed


@pytest.mark.slow
@pytest.mark.dask
@pytest.mark.parametrize("chunked", [False, True], ids=["classic", "chunked"])
def test_local_and_dask_searchers_give_the_same_pairs_and_mses(client, monkeypatch, chunked):
    if chunked:  # the plans are made in this process: every unit takes the chunked plan
        monkeypatch.setattr(matching, "CLASSIC_MAX_IMAGES", 0)
    tensors = _thumbnails(240, 3)
    # Three shapes, two units with same_dim: 40 x 30 and 30 x 40, and 50 x 50.
    shapes = np.array([[40, 30], [30, 40], [50, 50]])[np.arange(240) % 3]
    dif = fastdif.from_arrays(tensors, shapes=shapes)
    criteria = Criteria(6.0, rotate=True, same_dim=True)

    local, local_summed = _unit_pairs(LocalSearcher(dif, 1), dif, criteria, 16)
    dist, dist_summed = _unit_pairs(DaskSearcher(client, dif), dif, criteria, 16)

    assert sum(i.size for i, _, _ in local) > 100
    assert dist_summed == local_summed
    for (i, j, mse), (di, dj, dmse) in zip(local, dist, strict=True):
        np.testing.assert_array_equal(di, i)
        np.testing.assert_array_equal(dj, j)
        np.testing.assert_array_equal(dmse, mse)  # bit for bit


def _library_search(dif, library, **kwargs):
    return fastdif.search(
        dif, 6.0, reference=library, show_progress=False, same_dim=False, **kwargs
    )


@pytest.mark.slow
@pytest.mark.dask
@pytest.mark.parametrize(
    "library_dtype, mapped, color",
    [(np.uint8, True, True), (np.float32, False, True), (np.uint8, False, False)],
    ids=["by-path", "scattered-float32", "luma"],
)
def test_a_library_search_with_a_scheduler_gives_the_local_result(
    client, tmp_path, library_dtype, mapped, color
):
    tensors = _thumbnails(300, 7)
    new, kept = tensors[:100], tensors[100:].astype(library_dtype)  # copies of new in kept
    if mapped:
        np.save(tmp_path / "library.npy", kept)
        kept = np.load(tmp_path / "library.npy", mmap_mode="r")
    library = fastdif.from_arrays(kept)
    dif = fastdif.from_arrays(new)

    local = _library_search(dif, library, color=color, processes=1)
    dist = _library_search(dif, library, color=color, scheduler=client, chunksize=8)

    assert len(local.result) > 20
    assert dist.result == local.result
    assert dist.lower_quality == local.lower_quality
    a, b = local.stats["process"]["search"], dist.stats["process"]["search"]
    assert b["pairs_compared_exactly"] == a["pairs_compared_exactly"]
    assert b["matches_found"] == a["matches_found"]
    assert b["reference"] == a["reference"]
    assert b["dask"]["tasks"] > 3


def test_reference_is_still_refused_with_in_folder(tmp_path):
    dif = fastdif.from_arrays(np.zeros((2, 10, 10, 3), np.uint8))
    dif.in_folder = True
    library = fastdif.from_arrays(np.zeros((2, 10, 10, 3), np.uint8))
    with pytest.raises(ValueError, match='"reference" cannot be combined with "in_folder"'):
        _library_search(dif, library)
