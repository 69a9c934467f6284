"""color=False and normalize=True: the transform, the flat-image guard, and exact searches.

The search with either option must return exactly the pairs a comparison of
all pairs of transformed thumbnails returns (tests/reference.py's
``reference_transform``), on the classic and the chunked path and at
threshold 0, and the re-check before a delete or move must apply the same
transform.
"""

import dataclasses
import os

import images
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
    reference_matches,
    reference_mse_matrix,
    reference_transform,
)
from PIL import Image, ImageEnhance

import fastdif
from fastdif import verify
from fastdif.backends.local import LocalSearcher
from fastdif.cli import main
from fastdif.engine import matching
from fastdif.engine import transforms as transforms_module
from fastdif.engine.transforms import compared, transform
from fastdif.model import Criteria

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

MODES = [(False, False), (True, True), (False, True)]

#: Kinds of copies :func:`edited_images` adds: a greyscale copy (luma
#: replicated), a darker or brighter copy, a contrast edit, and a plain copy.
EDITS = ("grey", "scale", "contrast", "copy")


def edited_images(spec, edits, seed):
    """``planted_images(*spec)`` plus edited copies of its images: (tensors, shapes, planted)."""
    tensors, shapes, planted = planted_images(*spec)
    rng = np.random.default_rng(seed)
    extra, extra_shapes = [], []
    for kind, parent in edits:
        parent %= len(tensors)
        source = tensors[parent].astype(np.float64)
        if kind == "grey":
            luma = source @ np.array([0.299, 0.587, 0.114])
            image = np.repeat(luma[:, :, None], 3, axis=2)
        elif kind == "scale":
            image = source * rng.choice([0.7, 0.8, 1.25])
        elif kind == "contrast":
            mean = source.mean()
            image = mean + (source - mean) * rng.choice([0.7, 1.3])
        else:
            image = source
        extra.append(np.clip(np.rint(image), 0, 255))
        extra_shapes.append(shapes[parent])
        planted.append((parent, len(tensors) + len(extra) - 1))
    if extra:
        tensors = np.concatenate([tensors, np.asarray(extra, dtype=np.float32)])
        shapes = np.concatenate([shapes, np.asarray(extra_shapes, dtype=np.int64)])
    return np.ascontiguousarray(tensors), shapes, planted


cases = st.fixed_dictionaries(
    {
        "spec": image_specs(max_n=16),
        "edits": st.lists(
            st.tuples(st.sampled_from(EDITS), st.integers(0, 100)), min_size=0, max_size=6
        ),
        "seed": st.integers(0, 2**16),
        "mode": st.sampled_from(MODES),
        "rotate": st.booleans(),
        "same_dim": st.booleans(),
        "choice": st.sampled_from(THRESHOLDS),
        "random_value": st.floats(0, 200),
        "which": st.integers(0, 100),
        "uint8": st.booleans(),
    }
)


def _setup(case):
    tensors, shapes, planted = edited_images(case["spec"], case["edits"], case["seed"])
    if case["uint8"]:
        tensors = tensors.astype(np.uint8)
    color, normalize = case["mode"]
    rotate, same_dim = case["rotate"], case["same_dim"]
    mse = reference_mse_matrix(reference_transform(tensors, color, normalize), rotate)
    max_mse = pick_threshold(
        case["choice"], case["random_value"], mse, planted, shapes, same_dim, case["which"]
    )
    criteria = Criteria(max_mse, rotate, same_dim, color=color, normalize=normalize)
    expected = reference_matches(tensors, shapes, max_mse, rotate, same_dim, mse)
    return tensors, shapes, criteria, mse, expected


def _engine_pairs(tensors, shapes, criteria, tile_rows):
    """Every matching pair (i, j), i < j, as the searcher finds them on ``compared``."""
    dif = fastdif.from_arrays(tensors, shapes=shapes)
    units = list(matching.comparable_units(dif, criteria.same_dim))
    with pytest.MonkeyPatch.context() as mp:
        # 0: every unit takes the chunked path, tile_rows rows at a time.
        mp.setattr(matching, "CLASSIC_MAX_IMAGES", 0 if tile_rows else 10**9)
        with LocalSearcher(compared(dif, criteria), 1) as searcher:
            found = list(searcher.pairs(units, criteria, tile_rows or 1, lambda rows: None))
    pairs = []
    for (_, index), (i, j, _) in zip(units, found, strict=True):
        a, b = index[i], index[j]
        pairs += zip(np.minimum(a, b).tolist(), np.maximum(a, b).tolist(), strict=True)
    return sorted(pairs)


# ------------------------------------------------------------------------ the transform


@pytest.mark.slow
@SETTINGS
@given(image_specs(max_n=8), st.sampled_from(MODES + [(True, False)]), st.booleans())
def test_transform_is_the_reference_bit_for_bit(spec, mode, uint8):
    tensors = planted_images(*spec)[0]
    if uint8:
        tensors = tensors.astype(np.uint8)
    got = transform(tensors, *mode)
    assert got.dtype == np.float32 and got.flags.c_contiguous
    np.testing.assert_array_equal(got, reference_transform(tensors, *mode))
    # Values are multiples of 1/256: sums of squared differences are exact.
    assert np.array_equal(got * 256, np.rint(got * 256))


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("integral", [True, False])
def test_transform_commutes_with_rotations_and_flips(mode, integral):
    """Bit for bit: the transform of a turned or mirrored image is the turned or mirrored
    transform, so a lossless rotation is still a duplicate (MSE 0) in every mode."""
    rng = np.random.default_rng(3)
    images_ = rng.integers(0, 256, (4, 12, 12, 3)).astype(np.float32)
    images_[1] = images_[1] * 0.2 + 100  # low contrast, still above the floor
    if not integral:
        images_ += rng.uniform(-0.5, 0.5, images_.shape).astype(np.float32)
    base = transform(images_, *mode)
    for move in (
        lambda x: np.rot90(x, 1, axes=(1, 2)),
        lambda x: np.rot90(x, 2, axes=(1, 2)),
        lambda x: x[:, :, ::-1],
        lambda x: np.swapaxes(x, 1, 2),
    ):
        got = transform(np.ascontiguousarray(move(images_)), *mode)
        np.testing.assert_array_equal(got, move(base))


def test_transform_of_an_image_does_not_depend_on_its_neighbours():
    rng = np.random.default_rng(4)
    whole = rng.integers(0, 256, (5, 10, 10, 3)).astype(np.float32)
    mixed = whole.copy()
    mixed[2] += 0.25  # one non-integer image among integer ones
    for mode in MODES:
        alone = np.concatenate([transform(mixed[k : k + 1], *mode) for k in range(5)])
        np.testing.assert_array_equal(transform(mixed, *mode), alone)
        np.testing.assert_array_equal(transform(whole, *mode, chunk=2), transform(whole, *mode))


def _mse(a, b):
    return float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))


def test_luma_uses_pillows_weights_and_a_grey_copy_is_its_luma():
    rng = np.random.default_rng(5)
    colour = rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)
    grey = np.asarray(Image.fromarray(colour).convert("L"))
    grey3 = np.repeat(grey[:, :, None], 3, axis=2)
    pair = transform(np.stack([colour, grey3]), False, False)
    # Channel 0 holds the luma; Pillow rounds it to integers, within half a level.
    assert np.abs(pair[0, :, :, 0] - pair[1, :, :, 0]).max() <= 0.5 + 1 / 512
    np.testing.assert_array_equal(pair[1, :, :, 0], grey)  # a grey image is its own luma
    exact = (colour.astype(np.float64) @ [0.299, 0.587, 0.114]) - grey
    assert abs(_mse(pair[0], pair[1]) - np.mean(exact**2)) < 2 * 0.5 / 256 + 1 / 256**2


def test_the_normalised_mse_is_the_reference_contrast_squared_times_two_minus_twice_r():
    """MSE of normalised luma = S^2 (2 - 2r), r the correlation; Q and rounding move it
    by rounding only."""
    rng = np.random.default_rng(6)
    base = rng.integers(30, 220, (20, 20, 3)).astype(np.float64)
    other = np.clip(base * 0.6 + rng.integers(0, 90, base.shape), 0, 255)
    pair = np.rint(np.stack([base, other])).astype(np.float32)
    luma = pair.astype(np.float64) @ [0.299, 0.587, 0.114]
    r = np.corrcoef(luma[0].ravel(), luma[1].ravel())[0, 1]
    s = transforms_module.REFERENCE_CONTRAST
    out = transform(pair, False, True)
    assert abs(_mse(out[0], out[1]) - s * s * (2 - 2 * r)) < 0.01
    # Brightness and contrast edits give the same normalised thumbnail.
    edited = np.rint(np.clip(pair[:1].astype(np.float64) * 0.8 + 10, 0, 255)).astype(np.float32)
    for color in (True, False):
        both = transform(np.concatenate([pair[:1], edited]), color, True)
        assert _mse(both[0], both[1]) < 0.5


def test_flat_images_are_compared_as_they_are():
    flat = np.full((2, 10, 10, 3), 90, dtype=np.float32)
    flat[1, 5:] += (8, 4, 2)  # a luma standard deviation of 2.7: flat
    np.testing.assert_array_equal(transform(flat, False, False)[..., 0], flat[..., 0])
    mse = _mse(flat[0], flat[1])
    for mode in MODES:
        out = transform(flat, *mode)
        # Every thumbnail is moved by the same isometry: MSEs stay, up to rounding
        # (each value within 1/512, so each difference within 1/256).
        assert abs(_mse(out[0], out[1]) - mse) <= 2 * np.sqrt(mse) / 256 + 1 / 256**2


def test_normalised_thumbnails_carry_their_region_contrasts_in_their_channel_means():
    rng = np.random.default_rng(8)
    images_ = rng.integers(0, 256, (6, 16, 16, 3)).astype(np.float32)
    plain = reference_transform(images_, True, True)  # with the swap
    means = plain.reshape(6, -1, 3).mean(axis=1)
    assert means.std(axis=0).min() > 1  # no longer all 128: the search's bounds can prune
    # The swap is an isometry commuting with the symmetries: MSEs are kept.
    raw = transform(images_, True, True)
    for i in range(1, 6):
        assert abs(_mse(raw[0], raw[i]) - _mse(plain[0], plain[i])) == 0


# --------------------------------------------------------------------- exact searches


@pytest.mark.slow
@settings(SETTINGS, max_examples=150)
@given(cases)
def test_search_pairs_equal_reference_on_classic_and_chunked_paths(case):
    tensors, shapes, criteria, _, expected = _setup(case)
    n = len(tensors)

    def groups(pairs):
        return reference_groups(n, [a for a, _ in pairs], [b for _, b in pairs])

    for tile_rows in (None, 1, 2, 5):
        got = _engine_pairs(tensors, shapes, criteria, tile_rows)
        if criteria.max_mse == 0:
            # Hashing links each image to the first identical one: the same groups.
            assert groups(got) == groups(expected), f"criteria={criteria}"
        else:
            assert got == expected, f"tile_rows={tile_rows}, criteria={criteria}"


@SETTINGS
@given(cases, st.sampled_from([None, 1, 3]))
def test_search_groups_and_mses_equal_reference(case, chunksize):
    tensors, shapes, criteria, mse, expected = _setup(case)
    dif = fastdif.from_arrays(tensors, shapes=shapes)
    with pytest.MonkeyPatch.context() as mp:
        if chunksize is not None:
            mp.setattr(matching, "CLASSIC_MAX_IMAGES", 0)
        se = fastdif.search(
            dif,
            similarity=criteria.max_mse,
            rotate=criteria.rotate,
            same_dim=criteria.same_dim,
            color=criteria.color,
            normalize=criteria.normalize,
            chunksize=chunksize,
            show_progress=False,
            processes=1,
        )
    i = np.array([a for a, _ in expected], dtype=np.int64)
    j = np.array([b for _, b in expected], dtype=np.int64)
    want = {frozenset(str(k) for k in g) for g in reference_groups(len(tensors), i, j)}
    apart = se.stats["process"]["search"]["chained"]
    got = {
        frozenset(
            [key, *(p for p, _ in members), *(p for p, c in apart.items() if c["key"] == key)]
        )
        for key, members in se.result.items()
    }
    assert got == want  # a group is every image linked by matches
    for key, members in se.result.items():
        for path, value in members:  # listed: within the threshold of the key
            assert value == mse[int(key), int(path)] <= criteria.max_mse
    for path, c in apart.items():  # apart: linked through another member
        assert c["mse"] == mse[int(c["key"]), int(path)] > criteria.max_mse
    assert se.stats["process"]["search"]["parameters"]["color"] is criteria.color
    assert se.stats["process"]["search"]["parameters"]["normalize"] is criteria.normalize


@SETTINGS
@given(cases)
def test_duplicates_search_hashes_the_transformed_thumbnails(case):
    tensors, shapes, criteria, mse, _ = _setup(case)
    criteria = dataclasses.replace(criteria, max_mse=0.0)
    expected = reference_matches(tensors, shapes, 0.0, criteria.rotate, criteria.same_dim, mse)
    dif = fastdif.from_arrays(tensors, shapes=shapes)
    units = list(matching.comparable_units(dif, criteria.same_dim))
    with LocalSearcher(compared(dif, criteria), 1) as searcher:
        found = list(searcher.pairs(units, criteria, 1, lambda rows: None))
    # Hashing links each image to the first identical one: compare the groups.
    pairs = [
        (index[a], index[b])
        for (_, index), (i, j, _) in zip(units, found, strict=True)
        for a, b in zip(i.tolist(), j.tolist(), strict=True)
    ]
    n = len(tensors)
    groups = reference_groups(n, [a for a, _ in pairs], [b for _, b in pairs])
    want = reference_groups(n, [a for a, _ in expected], [b for _, b in expected])
    assert groups == want


# ---------------------------------------------------------------- the guard, measured


def _thumb(pixels):
    """The 50 x 50 uint8 thumbnail of a uint8 (height, width, 3) array."""
    return images.thumbnail(Image.fromarray(pixels)).astype(np.uint8)


def _photo(seed):
    return _thumb(images.photo(seed))


def _wall(colour, ramp=0.0, seed=0):
    """A flat wall thumbnail: one colour, a vertical gradient of ``ramp`` levels, noise."""
    rng = np.random.default_rng(seed)
    gradient = np.linspace(-ramp / 2, ramp / 2, 50)[:, None, None]
    pixels = np.asarray(colour, np.float64) + gradient + rng.normal(0, 0.7, (50, 50, 3))
    return np.clip(np.rint(pixels), 0, 255).astype(np.uint8)


def _search_arrays(thumbs, similarity="similar", **options):
    dif = fastdif.from_arrays(np.ascontiguousarray(np.stack(thumbs)))
    se = fastdif.search(dif, similarity=similarity, show_progress=False, processes=1, **options)
    return {frozenset([key, *(p for p, _ in members)]) for key, members in se.result.items()}


def test_walls_of_one_luma_in_two_hues_do_not_match_without_colour():
    red = np.array([180.0, 60.0, 60.0])
    luma = red @ [0.299, 0.587, 0.114]
    blue = np.array([60.0, 96.0, (luma - 0.299 * 60 - 0.587 * 96) / 0.114])
    walls = [_wall(red, 6, 1), _wall(np.full(3, luma), 6, 2), _wall(blue, 6, 3)]
    # Without the guard their luma would match: the same picture within MSE 5.
    lumas = [w.astype(np.float64) @ [0.299, 0.587, 0.114] for w in walls]
    assert max(np.mean((lumas[0] - lumas[k]) ** 2) for k in (1, 2)) < 5
    assert max(y.std() for y in lumas) < transforms_module.FLAT_CONTRAST
    assert _search_arrays(walls, color=False) == set()
    assert _search_arrays(walls, color=False, normalize=True) == set()


def test_one_wall_at_two_exposures_does_not_match_when_normalised():
    wall = np.array([120.0, 118.0, 112.0])
    shots = [_wall(wall, 12, 1), _wall(wall * 0.8, 12 * 0.8, 2), _wall(wall * 1.2, 14, 3)]
    for color in (True, False):
        assert _search_arrays(shots, normalize=True, color=color) == set()


def test_dark_and_low_contrast_pictures_of_different_scenes_do_not_match():
    dark = [np.rint(_photo(seed) * 0.12).astype(np.uint8) for seed in (11, 12, 13)]
    foggy = [np.rint(_photo(seed) * 0.1 + 190).astype(np.uint8) for seed in (14, 15, 16)]
    for options in ({}, {"color": False}, {"normalize": True}, {"color": False, "normalize": True}):
        assert _search_arrays(dark + foggy, **options) == set(), options


def test_grey_copies_match_without_colour_and_edits_match_when_normalised():
    original = images.photo(21)
    grey = np.repeat(np.asarray(Image.fromarray(original).convert("L"))[:, :, None], 3, axis=2)
    darker = np.asarray(ImageEnhance.Brightness(Image.fromarray(original)).enhance(0.7))
    flatter = np.asarray(ImageEnhance.Contrast(Image.fromarray(original)).enhance(0.7))
    other = images.photo(22)
    thumbs = [_thumb(x) for x in (original, grey, darker, flatter, other)]
    assert _search_arrays(thumbs) == set()
    assert _search_arrays(thumbs, color=False) == {frozenset({"0", "1"})}
    assert _search_arrays(thumbs, normalize=True) == {frozenset({"0", "2", "3"})}
    assert _search_arrays(thumbs, color=False, normalize=True) == {frozenset({"0", "1", "2", "3"})}


def test_flat_images_still_match_their_copies_in_every_mode():
    wall = _wall([200.0, 190.0, 170.0], 4, 1)
    copy = wall.copy()
    copy[0, 0] += 3
    for options in ({}, {"color": False}, {"normalize": True}, {"color": False, "normalize": True}):
        assert _search_arrays([wall, copy], **options) == {frozenset({"0", "1"})}


# ------------------------------------------------------------------- on files, and safety


@pytest.fixture
def grey_set(tmp_path):
    """A photo, its greyscale copy (JPEG) and its darker copy, and another photo."""
    folder = tmp_path / "photos"
    folder.mkdir()
    original = images.photo_image(31)
    images.save(original, folder / "a.png")
    original.convert("L").save(folder / "a_grey.jpg", quality=92)
    ImageEnhance.Brightness(original).enhance(0.7).save(folder / "a_dark.jpg", quality=92)
    images.save_photo(32, folder / "b.png")
    return folder


def _names(result):
    return {
        frozenset(os.path.basename(p) for p in [k, *(m for m, _ in v)]) for k, v in result.items()
    }


def test_build_and_search_files(grey_set, build, search):
    dif = build(grey_set)
    assert _names(search(dif, "similar").result) == set()
    se = fastdif.search(dif, "similar", color=False, show_progress=False, processes=1)
    assert _names(se.result) == {frozenset({"a.png", "a_grey.jpg"})}
    se = fastdif.search(dif, "similar", normalize=True, show_progress=False, processes=1)
    assert _names(se.result) == {frozenset({"a.png", "a_dark.jpg"})}
    se = fastdif.search(
        dif, "similar", color=False, normalize=True, show_progress=False, processes=1
    )
    assert _names(se.result) == {frozenset({"a.png", "a_grey.jpg", "a_dark.jpg"})}


def test_the_recheck_applies_the_transform(grey_set, build, tmp_path):
    dif = build(grey_set)
    se = fastdif.search(dif, "similar", color=False, show_progress=False, processes=1)
    key = str(grey_set / "a.png")
    member = str(grey_set / "a_grey.jpg")
    records = {
        path: verify.Identity.recorded(dif.file_sizes[i], dif.mtimes_ns[i], *dif.inodes[i])
        for i, path in enumerate(dif.paths)
    }
    luma = Criteria(5.0, color=False)
    assert verify.check_pair(key, member, records[key], records[member], luma, 50) is None
    refused = verify.check_pair(key, member, records[key], records[member], Criteria(5.0), 50)
    assert refused is not None and refused.check is verify.Check.CONTENT
    # min_mse gives the MSE the search reported.
    a = verify.thumbnail(key, 50)
    b = verify.thumbnail(member, 50)
    reported = dict(se.result[key])[member]
    assert verify.min_mse(a, b, True, color=False) == reported
    assert verify.min_mse(a, b, True) > 5
    moved = se.move_to(tmp_path / "moved")
    assert sorted(os.path.basename(p) for p in moved["moved"]) == ["a_grey.jpg"]


def test_a_library_search_transforms_the_library_not_its_saved_block_means(grey_set, tmp_path):
    library = fastdif.build(grey_set / "a.png", show_progress=False, processes=1)
    saved = library.save(tmp_path / "library.fastdif")
    library = fastdif.load(saved)
    before = library.block_means.grids.copy()
    new = tmp_path / "new"
    new.mkdir()
    Image.open(grey_set / "a_grey.jpg").save(new / "grey.jpg")
    dif = fastdif.build(new, show_progress=False, processes=1)
    plain = fastdif.search(dif, "similar", reference=library, show_progress=False, processes=1)
    assert plain.result == {}
    se = fastdif.search(
        dif, "similar", reference=library, color=False, show_progress=False, processes=1
    )
    assert list(se.result) == [library.paths[0]]
    np.testing.assert_array_equal(library.block_means.grids, before)
    # And the repository's own block means are not replaced by transformed ones.
    rebuilt = fastdif.build(new, show_progress=False, processes=1)
    np.testing.assert_array_equal(dif.block_means.grids, rebuilt.block_means.grids)


def test_a_memory_mapped_repository_is_searched_and_left_unchanged(tmp_path):
    thumbs = np.stack([_photo(42), _photo(44)])
    thumbs[1] = np.repeat(
        (thumbs[0].astype(np.float64) @ [0.299, 0.587, 0.114]).round()[:, :, None], 3, axis=2
    )
    path = tmp_path / "thumbs.npy"
    np.save(path, thumbs)
    mapped = np.load(path, mmap_mode="r")
    dif = fastdif.from_arrays(mapped)
    se = fastdif.search(dif, "similar", color=False, show_progress=False, processes=1)
    assert set(se.result) == {"0"}
    np.testing.assert_array_equal(np.load(path), thumbs)


@pytest.mark.parametrize("name", ["color", "normalize"])
def test_the_options_are_checked(name):
    dif = fastdif.from_arrays(np.zeros((2, 10, 10, 3), np.uint8))
    with pytest.raises(TypeError, match=f'"{name}"'):
        fastdif.search(dif, show_progress=False, **{name: "yes"})


def test_command_line_flags(grey_set, tmp_path, capsys):
    out = tmp_path / "out"
    status = main(
        [str(grey_set), "-s", "similar", "--color", "false", "-Z", str(out), "-q", "--no-cache"]
    )
    assert status == 0
    (stats,) = [p for p in os.listdir(out) if p.endswith("_stats.json")]
    text = (out / stats).read_text()
    assert '"color": false' in text and '"normalize": false' in text
    (results,) = [p for p in os.listdir(out) if p.endswith("_results.json")]
    assert "a_grey.jpg" in (out / results).read_text()
    with pytest.raises(SystemExit):
        main([str(grey_set), "--normalize", "maybe"])
    assert "--normalize" in capsys.readouterr().err
