"""Mirrored copies (``flip``) and which symmetry matched each member.

The kernels' matches with ``flip`` are checked against the NumPy reference
in tests/test_kernels.py, test_pruning.py, test_search_internals.py and
test_library.py (their hypothesis cases draw ``flip``); here: the symmetry
each MSE came from, the search end to end on PNG files, the CSV, report
data and command line, and the re-check before delete.
"""

import csv
import io
import json

import images
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from naive import (
    image_specs,
    planted_images,
    reference_mse_and_symmetry,
    symmetry,
    symmetry_indices,
)

import fastdif
from fastdif import report
from fastdif.cli import main
from fastdif.engine import kernels
from fastdif.engine.grouping import unit_groups
from fastdif.engine.matching import SYMMETRY_NAMES, unit_mse
from fastdif.model import Criteria

SETTINGS = settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])

FLIPPED = "flipped horizontally"
FLIPPED_TURNED = "flipped horizontally and rotated 90 degrees counter-clockwise"


# ----------------------------------------------------------------- kernels and grouping


def test_symmetry_range_lists_the_documented_symmetries():
    for rotate in (False, True):
        for flip in (False, True):
            stop, step = kernels.symmetry_range(rotate, flip)
            assert list(range(0, stop, step)) == symmetry_indices(rotate, flip)


@SETTINGS
@given(spec=image_specs(max_n=12), rotate=st.booleans(), flip=st.booleans(), seed=st.integers())
def test_pair_mse_gives_the_references_mse_and_symmetry(spec, rotate, flip, seed):
    tensors, _, _ = planted_images(*spec)
    n = tensors.shape[0]
    rng = np.random.default_rng(abs(seed))
    left = rng.integers(0, n, 3 * n).astype(np.int64)
    right = rng.integers(0, n, 3 * n).astype(np.int64)
    mse, which = kernels.pair_mse(tensors, left, right, rotate, flip)
    expected, expected_which = reference_mse_and_symmetry(tensors, rotate, flip)
    # Integer-valued thumbnails: sums are exact, so are ties (the lowest k wins).
    assert mse.tolist() == expected[left, right].tolist()
    assert which.tolist() == expected_which[left, right].tolist()
    assert set(which.tolist()) <= set(symmetry_indices(rotate, flip))


@pytest.mark.parametrize("k", range(8))
def test_pair_mse_names_the_symmetry_that_takes_the_key_to_the_member(k):
    image = np.random.default_rng(k).integers(0, 256, (9, 9, 3)).astype(np.float32)
    tensors = np.ascontiguousarray(np.stack([image, symmetry(image, k)]))
    pairs = np.array([0], np.int64), np.array([1], np.int64)
    mse, which = kernels.pair_mse(tensors, *pairs, True, True)
    assert (mse[0], which[0]) == (0.0, k)
    mse, which = kernels.pair_mse(tensors, *pairs, True, False)
    assert (mse[0] == 0.0) == (k < 4)
    mse, which = kernels.pair_mse(tensors, *pairs, False, True)
    assert (mse[0] == 0.0) == (k in (0, 4))


def test_unit_groups_note_the_symmetry_of_each_member():
    image = np.random.default_rng(1).integers(0, 256, (8, 8, 3)).astype(np.float32)
    tensors = np.ascontiguousarray(np.stack([image, symmetry(image, 4), symmetry(image, 1)]))
    index = np.arange(3, dtype=np.int64)
    i, j = np.array([0, 0], np.int64), np.array([1, 2], np.int64)
    noted = {}
    groups = unit_groups(
        index,
        i,
        j,
        unit_mse(tensors, index, Criteria(0.0, True, True, True)),
        np.full((3, 2), 8),
        np.array([3, 2, 1]),  # image 0 is the key (largest file)
        symmetries=noted,
    )
    assert groups == [(0, [1, 2], [0.0, 0.0])]
    assert noted == {1: 4, 2: 1}
    assert [SYMMETRY_NAMES[k] for k in (4, 1)] == [FLIPPED, "rotated 90 degrees counter-clockwise"]


# --------------------------------------------------------------------------- end to end


@pytest.fixture
def mirrored(tmp_path):
    """A textured photo, its mirror image, its mirror turned 90 degrees, an unrelated one."""
    folder = tmp_path / "pics"
    pixels = np.asarray(images.texture("foliage", 1, 160, 120))
    paths = {
        "original": images.save(pixels, folder / "original.png"),
        "mirror": images.save(np.fliplr(pixels), folder / "mirror.png"),
        "turned": images.save(np.rot90(np.fliplr(pixels), 1), folder / "turned.png"),
        "other": images.save(np.asarray(images.texture("gravel", 2, 160, 120)), folder / "x.png"),
    }
    return folder, paths


@pytest.mark.parametrize("similarity", ["duplicates", "similar"])
def test_a_mirrored_copy_is_a_duplicate_with_flip_and_not_without(
    mirrored, build, groups, similarity
):
    folder, paths = mirrored
    dif = build(folder)
    kwargs = {"similarity": similarity, "show_progress": False, "processes": 1}

    plain = fastdif.search(dif, **kwargs)
    unturned = fastdif.search(dif, rotate=False, **kwargs)
    flipped = fastdif.search(dif, flip=True, **kwargs)
    only_flip = fastdif.search(dif, flip=True, rotate=False, **kwargs)

    # The mirror and the turned mirror are rotations of each other, not of the original.
    assert groups(plain.result) == {frozenset([paths["mirror"], paths["turned"]])}
    assert len(plain.stats["process"]["search"]["transforms"]) == 1
    assert groups(unturned.result) == set()
    assert unturned.stats["process"]["search"]["transforms"] == {}
    trio = frozenset([paths["original"], paths["mirror"], paths["turned"]])
    assert groups(flipped.result) == {trio}
    assert all(mse == 0 for members in flipped.result.values() for _, mse in members)
    # Without rotate only the mirror image itself counts.
    assert groups(only_flip.result) == {frozenset([paths["original"], paths["mirror"]])}
    search = flipped.stats["process"]["search"]
    assert search["parameters"]["flip"] is True
    json.dumps(flipped.stats)  # plain data


def test_each_member_says_how_it_matched_its_key(mirrored, build):
    folder, paths = mirrored
    se = fastdif.search(build(folder), flip=True, show_progress=False, processes=1)

    ((key, members),) = se.result.items()
    transforms = se.stats["process"]["search"]["transforms"]
    assert set(transforms) == {path for path, _ in members}
    # The flips are their own inverses: the text holds whichever file is the key.
    expected = {
        frozenset([paths["original"], paths["mirror"]]): FLIPPED,
        frozenset([paths["original"], paths["turned"]]): FLIPPED_TURNED,
        frozenset([paths["mirror"], paths["turned"]]): "rotated 90 degrees counter-clockwise",
    }
    for path, _ in members:
        name = expected[frozenset([key, path])]
        if key == paths["turned"] and path == paths["mirror"]:
            name = "rotated 90 degrees clockwise"
        assert transforms[path] == name, (key, path)

    rows = list(csv.DictReader(io.StringIO(report.to_csv(se))))
    assert list(rows[0]) == list(report.CSV_COLUMNS) and report.CSV_COLUMNS[-1] == "transform"
    assert {row["path"]: row["transform"] for row in rows} == {key: "", **transforms}
    images_data = report.groups(se)[0]["images"]
    assert {im["path"]: im["transform"] for im in images_data} == {key: "", **transforms}


def test_a_rotation_names_its_direction_from_the_key(tmp_path):
    folder = tmp_path / "pics"
    original = images.save_photo(5, folder / "originals" / "a.png", 120, 80)
    turned = images.rotated(original, folder / "copies" / "a.png", 90)  # counter-clockwise
    dif = fastdif.build(folder, show_progress=False, processes=1)

    for keep, key, member, name in (
        ("prefer:originals", original, turned, "rotated 90 degrees counter-clockwise"),
        ("prefer:copies", turned, original, "rotated 90 degrees clockwise"),
    ):
        se = fastdif.search(dif, keep=keep, show_progress=False, processes=1)
        assert list(se.result) == [key]
        assert se.stats["process"]["search"]["transforms"] == {member: name}
        # flip changes nothing for a plain rotation.
        se = fastdif.search(dif, keep=keep, flip=True, show_progress=False, processes=1)
        assert se.stats["process"]["search"]["transforms"] == {member: name}


def test_a_mirrored_copy_matches_a_library_with_flip(mirrored, tmp_path):
    folder, paths = mirrored
    library = fastdif.build(paths["original"], show_progress=False, processes=1)
    new = fastdif.build(paths["mirror"], paths["other"], show_progress=False, processes=1)
    kwargs = {"reference": library, "show_progress": False, "processes": 1}

    assert fastdif.search(new, **kwargs).result == {}
    se = fastdif.search(new, flip=True, **kwargs)

    assert se.result == {paths["original"]: [[paths["mirror"], 0.0]]}
    assert se.stats["process"]["search"]["transforms"] == {paths["mirror"]: FLIPPED}


def test_delete_rechecks_with_flip(mirrored, tmp_path):
    """The re-check before delete compares the same symmetries as the search."""
    folder, paths = mirrored
    dif = fastdif.build(paths["original"], paths["mirror"], show_progress=False, processes=1)
    se = fastdif.search(dif, flip=True, rotate=False, show_progress=False, processes=1)
    member = se.lower_quality[0]

    done = se.delete(silent_del=True)

    assert done == {"deleted": [member], "failed": {}}


def test_flip_is_checked_by_name():
    dif = fastdif.from_arrays(np.zeros((2, 10, 10, 3), np.uint8))
    with pytest.raises(TypeError, match='"flip"'):
        fastdif.search(dif, flip="yes", show_progress=False)
    assert Criteria(5.0).flip is False


@pytest.mark.parametrize("flag", [[], ["--flip", "false"], ["-fl", "true"]])
def test_the_command_line_flag(mirrored, tmp_path, flag):
    folder, paths = mirrored
    out = tmp_path / "out"
    args = [str(folder), "-Z", str(out), "-q", "-p", "false", "--no-cache", "-s", "similar"]

    assert main(args + ["--format", "csv"] + flag) == 0

    (stats,) = out.glob("*_stats.json")
    search = json.loads(stats.read_text())["process"]["search"]
    assert search["parameters"]["flip"] is (flag == ["-fl", "true"])
    (table,) = out.glob("*_results.csv")
    rows = list(csv.DictReader(io.StringIO(table.read_text())))
    found = {row["path"] for row in rows}
    if flag != ["-fl", "true"]:
        assert found == {paths["mirror"], paths["turned"]}  # rotations of each other
        return
    assert found == {paths["original"], paths["mirror"], paths["turned"]}
    members = [row for row in rows if row["role"] == "member"]
    assert {row["path"]: row["transform"] for row in members} == search["transforms"]
    assert all(row["transform"] in SYMMETRY_NAMES[1:] for row in members)
