"""Near features made by the build and kept with the thumbnails: cache, store, saved repository.

Whatever path a repository takes (a fresh or a cached build, a resumed or an
updated store, a saved repository, a library), its near features are
``near_features`` of its thumbnails; stored features that are stale, forged
or damaged are made again, and a search finds the same near copies.
"""

import collections
import json
import os
import sqlite3
import warnings

import images
import numpy as np
import pytest
from faults import interrupted_decoding
from PIL import Image

import fastdif
from fastdif.engine import near
from fastdif.io import cache as cache_module
from fastdif.io import store
from fastdif.pipelines import build as building
from fastdif.pipelines import search as searching


@pytest.fixture
def folder(tmp_path):
    """Four photos, a crop of the first (a near copy), a re-encoded second."""
    root = tmp_path / "photos"
    original = images.save_photo(5, root / "p0.jpg", 400, 300, quality=98)
    for k in range(1, 4):
        images.save_photo(5 + k, root / f"p{k}.jpg", 400, 300)
    with Image.open(original) as image:
        w, h = image.size
        images.save(image.crop((20, 15, w - 10, h - 12)), root / "cropped.jpg", quality=92)
    images.reencode(root / "p1.jpg", root / "again.jpg", quality=80)
    return str(root)


def held(dif) -> near.NearFeatures | None:
    """The features ``dif`` holds, without computing any."""
    return dif._near_features


def assert_same(features, expected):
    assert features is not None and features.arrays().keys() == expected.arrays().keys()
    for name, array in features.arrays().items():
        other = expected.arrays()[name]
        assert array.dtype == other.dtype and np.array_equal(array, other), name


def assert_features_of_thumbnails(features, dif):
    assert_same(features, near.near_features(dif.tensors))


def near_result(dif):
    found = fastdif.search(dif, similarity="near", show_progress=False, processes=1)
    return found.result


def no_computing(monkeypatch):
    """Make the build's own computing of features fail: they must come from what is stored."""

    def refused(tensors, chunk=256):
        raise AssertionError(f"{len(tensors)} features computed")

    monkeypatch.setattr(building, "near_features", refused)


def build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def test_a_build_makes_the_features_and_a_near_search_uses_them(folder, monkeypatch):
    dif = build(folder)
    assert_features_of_thumbnails(held(dif), dif)
    given = []
    real = searching.find_near

    def spy(tensors, shapes, rotate=True, flip=False, features=None, **kwargs):
        given.append(features)
        return real(tensors, shapes, rotate, flip, features, **kwargs)

    monkeypatch.setattr(searching, "find_near", spy)
    result = near_result(dif)
    assert len(given) == 1
    assert_same(given[0], held(dif))
    cropped = os.path.join(folder, "cropped.jpg")
    assert any(cropped in dict(members) for members in result.values())
    # The same search, find_near computing the features itself (as before they were kept).
    monkeypatch.setattr(
        searching, "find_near", lambda *args, features=None, **kwargs: real(*args, **kwargs)
    )
    assert near_result(dif) == result
    bare = fastdif.from_arrays(np.array(dif.tensors), dif.paths, dif.shapes)
    assert held(bare) is None
    assert set(near_result(bare)) | set(result) == {
        os.path.join(folder, n) for n in ("p0.jpg", "p1.jpg", "again.jpg")
    }


def test_the_pool_build_makes_the_same_features(folder):
    dif = fastdif.build(folder, show_progress=False, processes=2)
    assert_features_of_thumbnails(held(dif), dif)


def features_rows(cache) -> list:
    db = sqlite3.connect(cache)
    try:
        return db.execute("SELECT path, definition, data, checksum FROM features").fetchall()
    finally:
        db.close()


def test_a_cached_build_takes_the_features_from_the_cache(folder, tmp_path, monkeypatch):
    cache = str(tmp_path / "cache.sqlite3")
    cold = build(folder, cache=cache)
    assert_features_of_thumbnails(held(cold), cold)
    rows = features_rows(cache)
    assert len(rows) == len(cold) and {r[1] for r in rows} == {building.NearRecords().definition}
    no_computing(monkeypatch)
    warm = build(folder, cache=cache)
    assert warm.stats["process"]["build"]["cache"]["hits"] == len(cold)
    assert_features_of_thumbnails(held(warm), warm)


def counting_features(monkeypatch, before=None):
    """Count, wherever near_features is called, the thumbnails it is given (as bytes).

    ``before``: called at the first call with thumbnails, before computing.
    """
    given = collections.Counter()
    real = near.near_features

    def counting(tensors, chunk=256):
        if before is not None and len(tensors) and not given:
            before()
        given.update(np.asarray(t, np.uint8).tobytes() for t in tensors)
        return real(tensors, chunk)

    monkeypatch.setattr(near, "near_features", counting)
    monkeypatch.setattr(building, "near_features", counting)
    return given


def thumbnails(dif) -> collections.Counter:
    return collections.Counter(np.asarray(t, np.uint8).tobytes() for t in dif.tensors)


def test_a_build_with_a_fresh_cache_computes_each_thumbnails_features_once(
    folder, tmp_path, monkeypatch
):
    cache = str(tmp_path / "cache.sqlite3")
    given = counting_features(monkeypatch)
    cold = build(folder, cache=cache)
    assert cold.stats["process"]["build"]["cache"]["decoded"] == len(cold) == 6
    assert given == thumbnails(cold)  # each once, by the build
    assert_features_of_thumbnails(held(cold), cold)
    # What the cache stored is each thumbnail's features.
    expected = building.NearRecords().records(near.near_features(cold.tensors))
    row = {os.fsencode(os.path.realpath(path)): n for n, path in enumerate(cold.paths)}
    rows = features_rows(cache)
    assert sorted(row[path] for path, *_ in rows) == list(range(len(cold)))
    for path, _, data, _ in rows:
        assert data == expected[row[path]].tobytes()
    given.clear()
    warm = build(folder, cache=cache)
    assert warm.stats["process"]["build"]["cache"]["hits"] == len(cold)
    assert not given
    # A new file: its features alone are computed, once, and stored.
    images.save_photo(20, os.path.join(folder, "new.jpg"), 400, 300)
    update = build(folder, cache=cache)
    assert sum(given.values()) == 1 and len(features_rows(cache)) == len(update) == 7
    assert_features_of_thumbnails(held(warm), warm)
    assert_features_of_thumbnails(held(update), update)


@pytest.mark.parametrize("how", ["foreign", "cleared", "locked"])
def test_a_cache_that_cannot_take_the_features_never_fails_the_build(
    folder, tmp_path, monkeypatch, how
):
    cache = tmp_path / "cache.sqlite3"

    def meanwhile():  # after the thumbnails are stored, before the features are
        if how == "locked":
            monkeypatch.setattr(cache_module, "_connect", locked)
            return
        for name in cache_module.clear_cache(cache):
            assert not os.path.exists(name)
        if how == "foreign":
            cache.write_bytes(b"a user's file")

    def locked(path):
        raise sqlite3.OperationalError("database is locked")

    given = counting_features(monkeypatch, meanwhile)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        dif = build(folder, cache=str(cache))
    assert given == thumbnails(dif)
    assert_features_of_thumbnails(held(dif), dif)
    said = [str(w.message) for w in caught if w.category is cache_module.CacheWarning]
    assert said == dif.stats["process"]["build"]["cache"]["warnings"]
    if how == "foreign":
        assert len(said) == 1 and "not a fastdif cache" in said[0]
        assert cache.read_bytes() == b"a user's file"
    elif how == "cleared":  # not made again to hold features alone
        assert said == [] and not os.path.exists(cache)
    else:
        assert len(said) == 1 and "database is locked" in said[0]
        assert features_rows(str(cache)) == []


@pytest.mark.parametrize("damage", ["version", "forged", "checksum", "no table", "thumbnail"])
def test_stale_or_damaged_cached_features_are_made_again(folder, tmp_path, monkeypatch, damage):
    cache = str(tmp_path / "cache.sqlite3")
    cold = build(folder, cache=cache)
    expected = near_result(cold)
    db = sqlite3.connect(cache)
    if damage == "version":
        monkeypatch.setattr(near, "FEATURES_VERSION", near.FEATURES_VERSION + 1)
    elif damage == "forged":  # other features, of the right length, that no checksum vouches for
        db.execute("UPDATE features SET data = zeroblob(length(data))")
    elif damage == "checksum":
        db.execute("UPDATE features SET checksum = checksum + 1")
    elif damage == "no table":  # a cache written by a fastdif without them (same schema)
        db.execute("DROP TABLE features")
    else:  # a sound thumbnail row replaced (by a fastdif that keeps no features)
        first, other = sorted(path for (path,) in db.execute("SELECT path FROM thumbnails"))[:2]
        db.execute(
            "UPDATE thumbnails SET (width, height, thumbnail, checksum) = (SELECT width, "
            "height, thumbnail, checksum FROM thumbnails WHERE path = ?) WHERE path = ?",
            (other, first),
        )
    db.commit()
    db.close()
    warm = build(folder, cache=cache)
    assert warm.stats["process"]["build"]["cache"]["hits"] == len(cold)
    assert_features_of_thumbnails(held(warm), warm)
    if damage != "thumbnail":  # else the cache holds another picture for the first file
        assert near_result(warm) == expected
    rows = features_rows(cache)  # stored again, sound
    assert len(rows) == len(cold)
    assert {r[1] for r in rows} == {building.NearRecords().definition}
    no_computing(monkeypatch)
    again = build(folder, cache=cache)
    assert_features_of_thumbnails(held(again), again)


def test_saved_and_loaded_features(folder, tmp_path, monkeypatch):
    dif = build(folder)
    path = dif.save(tmp_path / "saved")
    assert os.path.isfile(os.path.join(path, store.NEAR_FILE))
    loaded = fastdif.load(path)
    assert_features_of_thumbnails(held(loaded), loaded)
    # A repository without features (from_arrays) has them computed when saved.
    bare = fastdif.from_arrays(np.array(dif.tensors), dif.paths, dif.shapes)
    again = fastdif.load(bare.save(tmp_path / "bare"))
    assert_features_of_thumbnails(held(again), again)


def forge(path, how: str) -> None:
    """Damage the near features of the saved repository ``path`` as ``how`` says."""
    meta_file = os.path.join(path, store.META_FILE)
    file = os.path.join(path, store.NEAR_FILE)
    with open(meta_file, encoding="utf-8") as src:
        meta = json.load(src)
    records = np.load(file)
    if how == "absent":  # saved by a fastdif before them
        del meta["near_features"]
        os.remove(file)
    elif how == "file missing":
        os.remove(file)
    elif how == "version":
        meta["near_features"]["definition"] = meta["near_features"]["definition"].replace(
            f"near {near.FEATURES_VERSION} ", f"near {near.FEATURES_VERSION + 1} "
        )
    elif how == "checksum":
        records["contrast" if "contrast" in records.dtype.names else records.dtype.names[0]] += 1
        np.save(file, records)
    elif how == "length":
        np.save(file, records[:-1])
    elif how == "dtype":
        np.save(file, np.zeros(len(records), [("hashes", "<u4"), ("contrast", "<f8")]))
    elif how == "plain array":
        np.save(file, np.zeros(len(records), np.uint64))
    elif how == "garbage":
        with open(file, "wb") as out:
            out.write(b"\x93NUMPY not really")
    elif how == "huge header":
        header = {"descr": records.dtype.descr, "fortran_order": False, "shape": (10**12,)}
        with open(file, "wb") as out:
            np.lib.format.write_array_header_1_0(out, header)
    elif how == "pipe":
        os.remove(file)
        os.mkfifo(file)
    elif how == "meta":
        meta["near_features"] = ["not", "a", "dict"]
    with open(meta_file, "w", encoding="utf-8") as out:
        json.dump(meta, out)


FORGERIES = [
    "absent", "file missing", "version", "checksum", "length", "dtype", "plain array",
    "garbage", "huge header", "meta",
] + (["pipe"] if hasattr(os, "mkfifo") else [])  # fmt: skip


@pytest.mark.parametrize("how", FORGERIES)
def test_forged_saved_features_are_made_again_with_no_error(folder, tmp_path, how):
    dif = build(folder)
    expected = near_result(dif)
    path = dif.save(tmp_path / "saved")
    forge(path, how)
    loaded = fastdif.load(path)
    assert held(loaded) is None  # not trusted: made again when first asked for
    assert_features_of_thumbnails(loaded.near_features, loaded)
    assert near_result(loaded) == expected
    # Saved again over it, the features are sound again.
    resaved = fastdif.load(loaded.save(path, overwrite=True))
    assert_features_of_thumbnails(held(resaved), resaved)


def test_store_build_resumed_build_and_update(folder, tmp_path, monkeypatch):
    target = str(tmp_path / "store")
    decoding_again = interrupted_decoding(monkeypatch, after=4)
    with pytest.raises(KeyboardInterrupt):
        build(folder, store=target)
    decoding_again()
    resumed = build(folder, store=target)
    assert resumed.stats["process"]["build"]["store"]["resumed"] == 3
    assert_features_of_thumbnails(held(resumed), resumed)
    loaded = fastdif.load(target)
    assert_features_of_thumbnails(held(loaded), loaded)
    del resumed, loaded
    # An update: unchanged files' features are the store's, the new file's computed.
    images.save_photo(20, os.path.join(folder, "new.jpg"), 400, 300)
    computed = []
    real_features = building.near_features

    def counting(tensors, chunk=256):
        computed.append(len(tensors))
        return real_features(tensors, chunk)

    monkeypatch.setattr(building, "near_features", counting)
    updated = build(folder, store=target)
    assert updated.stats["process"]["build"]["store"]["reused"] == 6
    assert computed == [1]
    assert_features_of_thumbnails(held(updated), updated)


def test_an_update_of_a_store_with_stale_features_makes_them_again(folder, tmp_path):
    target = str(tmp_path / "store")
    build(folder, store=target)
    forge(target, "version")
    updated = build(folder, store=target)
    assert updated.stats["process"]["build"]["store"]["reused"] == 6
    assert_features_of_thumbnails(held(updated), updated)
    loaded = fastdif.load(target)
    assert_features_of_thumbnails(held(loaded), loaded)


def test_a_library_and_joined_repositories_hold_their_features(folder, tmp_path):
    other = tmp_path / "other"
    other.mkdir()
    for k in (10, 11):
        images.save_photo(k, other / f"q{k}.jpg", 400, 300)
    dif = build(str(other), reference=folder)
    assert_features_of_thumbnails(held(dif), dif)
    assert_features_of_thumbnails(held(dif.reference), dif.reference)
    saved = build(folder).save(tmp_path / "saved")
    joined = build(saved, str(other))
    assert len(joined) == 8
    assert_features_of_thumbnails(held(joined), joined)


def test_held_features_must_match_the_thumbnails(folder):
    dif = build(folder)
    with pytest.raises(ValueError, match="near features"):
        dif.near_features = dif.near_features.take(np.arange(2))


@pytest.mark.slow
@pytest.mark.dask
def test_a_dask_store_holds_the_features(client, folder, tmp_path):
    target = tmp_path / "store"
    dif = fastdif.build(folder, show_progress=False, scheduler=client, store=target)
    assert_features_of_thumbnails(held(dif), dif)
    loaded = fastdif.load(target)
    assert_features_of_thumbnails(held(loaded), loaded)
