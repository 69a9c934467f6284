"""Saving a repository and loading it back: equality, memory mapping, errors."""

import json
import os

import images
import numpy as np
import pytest

import fastdif
from fastdif.io import store


@pytest.fixture
def photos(tmp_path):
    """Photos in two folders: exact copies, a re-encode, a rotation, an invalid file."""
    folder = tmp_path / "photos"
    a = images.save_photo(1, folder / "a.jpg")
    images.copy_bytes(a, folder / "x" / "a_copy.jpg")
    images.reencode(a, folder / "x" / "a_q80.jpg", quality=80)
    images.rotated(a, folder / "a_rot.png", 90)
    b = images.save_photo(2, folder / "b.png")
    images.copy_bytes(b, folder / "x" / "b copy é.png")
    images.save_photo(3, folder / "c.webp")
    (folder / "x" / "bad.jpg").write_bytes(b"\xff\xd8 truncated")
    return folder


def build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def searches(dif):
    """Results, lower_quality and search stats (less timings) of several searches."""
    out = []
    for similarity, rotate, same_dim in (
        ("duplicates", True, True),
        ("similar", True, False),
        (200.0, False, False),
    ):
        se = fastdif.search(dif, similarity, rotate, same_dim, show_progress=False, processes=1)
        stats = se.stats["process"]["search"]
        out.append((se.result, se.lower_quality, stats["matches_found"], stats["parameters"]))
    return out


@pytest.mark.parametrize("in_folder", [False, True])
def test_round_trip_keeps_everything_and_searches_the_same(photos, tmp_path, in_folder):
    dif = build(photos, in_folder=in_folder)
    target = tmp_path / "photos.fastdif"

    assert dif.save(target) == str(target)
    loaded = fastdif.load(target)

    assert loaded.paths == dif.paths and len(loaded) == 7
    for name in ("tensors", "shapes", "file_sizes", "mtimes_ns", "inodes"):
        saved, back = getattr(dif, name), getattr(loaded, name)
        assert back.dtype == saved.dtype and back.shape == saved.shape
        np.testing.assert_array_equal(back, saved)
        assert not back.flags.writeable
    assert loaded.mtimes_ns.min() > 0 and loaded.inodes[:, 1].min() != 0
    assert loaded.groups == dif.groups and loaded.folders == dif.folders
    assert loaded.in_folder is in_folder and loaded.px_size == 50
    assert loaded.stats == dif.stats
    assert json.loads(json.dumps(loaded.stats)) == loaded.stats
    assert searches(loaded) == searches(dif)
    assert any(searches(dif)[1][0])  # the searches compared do find matches


def test_tensors_are_memory_mapped_from_the_file(photos, tmp_path):
    target = build(photos).save(tmp_path / "r")
    loaded = fastdif.load(target, verify=False)
    assert isinstance(loaded.tensors.base, np.memmap)
    assert os.path.samefile(loaded.tensors.base.filename, target + "/tensors.npy")
    assert type(loaded.tensors) is np.ndarray  # what search gets from build too


def test_on_disk_format_is_documented_json_and_npy(photos, tmp_path):
    dif = build(photos, px_size=20)
    target = dif.save(tmp_path / "r")
    assert sorted(os.listdir(target)) == [
        "file_sizes.npy",
        "grids.npy",
        "inodes.npy",
        "means.npy",
        "mtimes_ns.npy",
        "near_features.npy",
        "repository.json",
        "shapes.npy",
        "tensors.npy",
    ]
    with open(os.path.join(target, "repository.json"), encoding="utf-8") as src:
        meta = json.load(src)
    assert meta["format"] == "fastdif-repository" and meta["format_version"] == 1
    assert meta["fastdif_version"] == fastdif.__version__
    assert meta["count"] == 7 and meta["px_size"] == 20
    assert meta["stats"]["process"]["build"]["parameters"]["px_size"] == 20
    assert meta["arrays"]["tensors"]["shape"] == [7, 20, 20, 3]
    tensors = np.load(os.path.join(target, "tensors.npy"), allow_pickle=False)
    np.testing.assert_array_equal(tensors, dif.tensors)
    # The block means a library search reads, as the build computed them.
    loaded = fastdif.load(target)
    for name in ("grids", "means"):
        saved = np.load(os.path.join(target, f"{name}.npy"), allow_pickle=False)
        np.testing.assert_array_equal(saved, getattr(dif.block_means, name))
        np.testing.assert_array_equal(getattr(loaded.block_means, name), saved)
    assert meta["arrays"]["grids"]["shape"] == [7, 10, 10, 3]
    assert meta["arrays"]["means"]["shape"] == [7, 1, 1, 3]


def test_a_repository_without_block_means_saves_and_loads_without_them(tmp_path):
    dif = fastdif.from_arrays(np.zeros((3, 20, 20, 3), dtype=np.uint8))
    assert dif.block_means is None
    loaded = fastdif.load(dif.save(tmp_path / "r"))
    assert loaded.block_means is None
    assert not os.path.exists(tmp_path / "r" / "grids.npy")


def test_empty_repository_round_trip(tmp_path):
    (tmp_path / "empty").mkdir()
    dif = build(tmp_path / "empty")
    loaded = fastdif.load(dif.save(tmp_path / "r"))
    assert len(loaded) == 0 and loaded.tensors.shape == (0, 50, 50, 3)
    assert fastdif.search(loaded, show_progress=False).result == {}


def test_save_never_replaces_what_it_should_not(photos, tmp_path):
    dif = build(photos)
    target = tmp_path / "r"
    dif.save(target)
    with pytest.raises(FileExistsError, match="overwrite=True"):
        dif.save(target)
    smaller = build(photos / "x")
    smaller.save(target, overwrite=True)
    assert fastdif.load(target).paths == smaller.paths
    assert [p for p in os.listdir(tmp_path) if p.startswith(".r.")] == []  # no leftovers

    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError, match="not a saved fastdif repository"):
        dif.save(precious, overwrite=True)
    assert os.listdir(precious) == ["keep.txt"]


def test_incompatible_format_version_is_a_clear_error(photos, tmp_path):
    target = build(photos).save(tmp_path / "r")
    meta_file = os.path.join(target, "repository.json")
    with open(meta_file, encoding="utf-8") as src:
        meta = json.load(src)
    meta["format_version"], meta["fastdif_version"] = 2, "9.0.0"
    with open(meta_file, "w", encoding="utf-8") as out:
        json.dump(meta, out)

    with pytest.raises(store.RepositoryFormatError) as error:
        fastdif.load(target)
    message = str(error.value)
    assert "format 2" in message and "fastdif 9.0.0" in message
    assert f"reads format {store.FORMAT_VERSION}" in message


def corrupt(target, name, change):
    path = os.path.join(target, name)
    with open(path, "rb") as src:
        data = bytearray(src.read())
    with open(path, "wb") as out:
        out.write(change(data))


@pytest.mark.parametrize(
    ("name", "change", "match"),
    [
        ("tensors.npy", lambda d: d[: len(d) // 2], "tensors.npy is corrupt"),
        ("tensors.npy", lambda d: d[:-1] + bytes([d[-1] ^ 1]), "checksum mismatch"),
        ("shapes.npy", lambda d: b"garbage" + d[7:], "shapes.npy is corrupt"),
        ("repository.json", lambda d: d[:-10], "repository.json is corrupt"),
        ("repository.json", lambda d: d.replace(b'"count": 7', b'"count": 6'), "corrupt"),
    ],
)
def test_corrupt_files_are_clear_errors(photos, tmp_path, name, change, match):
    target = build(photos).save(tmp_path / "r")
    corrupt(target, name, change)
    with pytest.raises(store.RepositoryFormatError, match=match):
        fastdif.load(target)


def test_checksum_can_be_skipped(photos, tmp_path):
    dif = build(photos)
    target = dif.save(tmp_path / "r")
    corrupt(target, "tensors.npy", lambda d: d[:-1] + bytes([d[-1] ^ 1]))
    loaded = fastdif.load(target, verify=False)
    assert loaded.tensors[-1, -1, -1, -1] != dif.tensors[-1, -1, -1, -1]


def test_pickled_arrays_are_refused_not_loaded(photos, tmp_path):
    target = build(photos).save(tmp_path / "r")
    shapes = np.empty((7, 2), dtype=object)
    np.save(os.path.join(target, "shapes.npy"), shapes, allow_pickle=True)
    with pytest.raises(store.RepositoryFormatError, match="shapes.npy is corrupt"):
        fastdif.load(target)


def test_missing_repository(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a saved fastdif repository"):
        fastdif.load(tmp_path)
    with pytest.raises(TypeError, match="Repository"):
        fastdif.model.save("not a repository", tmp_path / "r")


def test_names_that_are_not_utf8_round_trip(tmp_path):
    folder = tmp_path / "pics"
    original = images.save_photo(11, folder / "a.png")
    with (
        open(original, "rb") as src,
        open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as out,
    ):
        out.write(src.read())
    dif = build(folder)
    loaded = fastdif.load(dif.save(tmp_path / "r"))
    assert loaded.paths == dif.paths
    assert os.fsencode(loaded.paths[1]).endswith(b"caf\xe9.png")
    assert searches(loaded) == searches(dif)


def test_uint8_repository_from_arrays_keeps_its_dtype(tmp_path):
    rng = np.random.default_rng(5)
    tensors = rng.integers(0, 256, (6, 12, 12, 3), dtype=np.uint8)
    tensors[4] = tensors[1]
    dif = fastdif.from_arrays(tensors, paths=[f"img{k}" for k in range(6)])
    loaded = fastdif.load(dif.save(tmp_path / "r"))
    assert loaded.tensors.dtype == np.uint8
    np.testing.assert_array_equal(loaded.tensors, tensors)
    assert os.path.getsize(tmp_path / "r" / "tensors.npy") < tensors.nbytes + 200
    assert searches(loaded) == searches(dif)
    assert searches(dif)[0][0] == {"img1": [["img4", 0.0]]}
