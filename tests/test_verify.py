"""delete and move_to trust only what is on disk now (issue 14, items 1 to 4).

Each attack makes a search report a file that must not be touched; the
checks of :mod:`fastdif.verify` keep it.
"""

import json
import os
import sqlite3
import zlib

import images
import numpy as np
import pytest
from faults import without_inodes
from PIL import Image

import fastdif
import fastdif.pipelines.build
from fastdif import verify
from fastdif.cli import main
from fastdif.engine import kernels
from fastdif.io import cache


def read(path):
    with open(path, "rb") as f:
        return f.read()


@pytest.fixture
def pair(tmp_path):
    """``src/a.png`` and its byte copy ``src/b.png``: a is the key, b the member."""
    a = images.save_photo(1, tmp_path / "src" / "a.png")
    b = images.copy_bytes(a, tmp_path / "src" / "b.png")
    return tmp_path / "src", a, b


def assert_kept(report, path, check):
    reason = report["failed"][path]
    assert reason.startswith(f"{check} check failed: ") and "\n" not in reason
    assert os.path.exists(path)


# --------------------------------------------------------------------------- 1: stale repository


def test_stale_repository_keeps_a_member_replaced_by_another_picture(pair, tmp_path, build, search):
    src, a, b = pair
    saved = build(src).save(tmp_path / "repo")
    images.save_photo(2, b)  # a new, unique picture where the copy was
    new = read(b)

    se = search(fastdif.load(saved))
    assert se.result == {a: [[b, 0.0]]}  # the saved thumbnails still say "copy"

    dry = se.delete(dry_run=True)
    assert dry["would_delete"] == []
    assert_kept(dry, b, "identity")
    report = se.delete(silent_del=True)
    assert report["deleted"] == []
    assert_kept(report, b, "identity")
    moved = se.move_to(tmp_path / "dest")
    assert moved["moved"] == {} and moved["manifest"] is None
    assert_kept(moved, b, "identity")
    assert read(b) == new and se.lower_quality == [b]


def test_replaced_with_same_size_and_mtime_is_caught_by_the_content_check(tmp_path, build, search):
    # BMP files of one size have one file size; the mtime is set back too.
    a = images.save_photo(1, tmp_path / "src" / "a.bmp")
    b = images.copy_bytes(a, tmp_path / "src" / "b.bmp")
    saved = build(tmp_path / "src").save(tmp_path / "repo")
    before = os.stat(b)
    images.save_photo(2, b)
    os.utime(b, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert os.stat(b).st_size == before.st_size and os.stat(b).st_ino == before.st_ino

    se = search(fastdif.load(saved))
    report = se.delete(silent_del=True)

    assert report["deleted"] == []
    assert_kept(report, b, "content")
    assert "threshold" in report["failed"][b]


def test_a_replaced_key_keeps_its_members(pair, tmp_path, build, search):
    src, a, b = pair
    se = search(build(src))
    images.save_photo(3, a)  # the kept picture is no longer the copy's twin

    report = se.delete(silent_del=True)

    assert_kept(report, b, "identity")
    assert "its key" in report["failed"][b]


def test_true_duplicates_of_a_saved_repository_are_still_deleted(pair, tmp_path, build, search):
    src, a, b = pair
    se = search(fastdif.load(build(src).save(tmp_path / "repo")))
    assert se.delete(silent_del=True) == {"deleted": [b], "failed": {}}
    assert os.path.isfile(a) and not os.path.exists(b)


def test_repository_saved_without_inodes_loads_and_still_checks(pair, tmp_path, build, search):
    # Saved before inodes were recorded: size, mtime, same-file and content still apply.
    src, a, b = pair
    folder = build(src).save(tmp_path / "repo")
    without_inodes(folder)

    dif = fastdif.load(folder)
    assert not dif.inodes.any() and dif.inodes.shape == (2, 2)
    se = search(dif)
    assert se.delete(dry_run=True)["would_delete"] == [b]
    images.save_photo(2, b)
    assert_kept(se.delete(silent_del=True), b, "identity")


# --------------------------------------------------------------------------- 2: hostile repository


def forge(folder, index, path, st):
    """Make entry ``index`` of the saved repository in ``folder`` name ``path`` with stat ``st``.

    The arrays are rewritten with the file's true size, mtime and inode and
    their checksums recomputed, as a careful attacker would.
    """
    meta_file = os.path.join(folder, "repository.json")
    meta = json.loads(read(meta_file))
    meta["paths"][index] = path
    values = {
        "file_sizes": st.st_size,
        "mtimes_ns": st.st_mtime_ns,
        "inodes": np.array([st.st_dev, st.st_ino], dtype=np.uint64).view(np.int64),
    }
    for name, value in values.items():
        if name not in meta["arrays"]:
            continue
        file = os.path.join(folder, f"{name}.npy")
        data = np.load(file, allow_pickle=False).copy()
        data[index] = value
        np.save(file, data, allow_pickle=False)
        meta["arrays"][name]["crc32"] = zlib.crc32(data)
    with open(meta_file, "w", encoding="utf-8") as out:
        json.dump(meta, out)


def test_hostile_repository_cannot_delete_a_file_outside(
    pair, tmp_path, build, search, monkeypatch
):
    src, a, b = pair
    victim = tmp_path / "elsewhere" / "victim.txt"
    victim.parent.mkdir()
    victim.write_text("a unique, precious file")
    folder = build(src).save(tmp_path / "repo")
    cwd = tmp_path / "x" / "y"
    cwd.mkdir(parents=True)
    monkeypatch.chdir(cwd)
    hostile = "../../elsewhere/victim.txt"
    forge(folder, 1, hostile, os.stat(victim))  # b's entry, with a's thumbnail

    se = search(fastdif.load(folder))
    assert se.result == {a: [[hostile, 0.0]]}

    assert_kept(se.delete(dry_run=True), hostile, "content")
    assert_kept(se.delete(silent_del=True), hostile, "content")
    assert_kept(se.move_to(tmp_path / "dest"), hostile, "content")
    assert victim.read_text() == "a unique, precious file"


def test_hostile_repository_naming_a_different_photo_cannot_delete_it(
    pair, tmp_path, build, search
):
    src, a, b = pair
    other = images.save_photo(5, tmp_path / "elsewhere" / "other.png")
    folder = build(src).save(tmp_path / "repo")
    forge(folder, 1, other, os.stat(other))

    se = search(fastdif.load(folder))
    [member] = se.lower_quality  # the larger file is the key: a or the outside photo
    assert_kept(se.delete(silent_del=True), member, "content")
    assert os.path.isfile(a) and os.path.isfile(other)


# --------------------------------------------------------------------------- 3: forged cache row


def forge_cache_row(cache_file, victim, model):
    """Give ``victim``'s cache row ``model``'s thumbnail and dimensions, checksum recomputed."""
    with sqlite3.connect(cache_file) as db:
        found = {
            os.path.basename(os.fsdecode(path)): (path, width, height, thumb)
            for path, width, height, thumb in db.execute(
                "SELECT path, width, height, thumbnail FROM thumbnails"
            )
        }
        _, width, height, thumb = found[os.path.basename(model)]
        checksum = cache._checksum(width, height, thumb, None)
        assert checksum == zlib.crc32(thumb, zlib.crc32(f"{width}x{height}".encode()))
        db.execute(
            "UPDATE thumbnails SET width = ?, height = ?, thumbnail = ?, checksum = ? "
            "WHERE path = ?",
            (width, height, thumb, checksum, found[os.path.basename(victim)][0]),
        )


def test_forged_cache_row_cannot_make_the_cli_delete_a_unique_photo(tmp_path, capsys):
    pics = tmp_path / "pics"
    x = images.save_photo(1, pics / "x.png")
    y = images.save_photo(2, pics / "y.png")
    content = {path: read(path) for path in (x, y)}
    cache_file = tmp_path / "thumbs.sqlite3"
    out = tmp_path / "out"
    out.mkdir()
    common = [str(pics), "-Z", str(out), "-p", "false", "-proc", "1", "--cache", str(cache_file)]
    assert main(common) == 0
    forge_cache_row(cache_file, y, x)
    capsys.readouterr()

    main([*common, "-d", "true", "--permanent", "-sd", "true"])

    printed = capsys.readouterr().out
    assert "deleted 0 files, 1 kept" in printed
    assert "content check failed" in printed
    assert {path: read(path) for path in (x, y)} == content


def test_forged_cache_row_cannot_make_move_to_move_a_unique_photo(tmp_path, build, search):
    pics = tmp_path / "pics"
    x = images.save_photo(1, pics / "x.png")
    y = images.save_photo(2, pics / "y.png")
    cache_file = tmp_path / "thumbs.sqlite3"
    build(pics, cache=cache_file)
    forge_cache_row(cache_file, y, x)

    se = search(build(pics, cache=cache_file))
    assert len(se.lower_quality) == 1
    [member] = se.lower_quality
    report = se.move_to(tmp_path / "dest")

    assert report["moved"] == {} and report["manifest"] is None
    assert_kept(report, member, "content")
    assert os.path.isfile(x) and os.path.isfile(y)


# --------------------------------------------------------------------------- 4: one file, two paths


@pytest.fixture
def two_paths(tmp_path, monkeypatch):
    """``src/a.png`` and ``src/b.png``, one file (a hard link), both found by discovery.

    A hard link stands for a bind mount: two paths ``realpath`` cannot
    unify. Discovery may count such a file once; here it is made to list
    both, as a repository saved by a fastdif that did not would.
    """
    a = images.save_photo(1, tmp_path / "src" / "a.png")
    b = str(tmp_path / "src" / "b.png")
    os.link(a, b)
    real = fastdif.pipelines.build.discover

    def both(paths, *args):
        found = real(paths, *args)
        if b not in found.files:
            found.files.append(b)
            found.folders.append(os.path.dirname(b))
        return found

    monkeypatch.setattr(fastdif.pipelines.build, "discover", both)
    return tmp_path / "src", a, b


def test_one_file_through_two_paths_is_not_deleted(two_paths, build, search):
    src, a, b = two_paths
    se = search(build(src))
    assert se.result == {a: [[b, 0.0]]}

    assert_kept(se.delete(dry_run=True), b, "same-file")
    report = se.delete(silent_del=True)

    assert report["deleted"] == []
    assert_kept(report, b, "same-file")
    assert os.path.samefile(a, b)


def test_one_file_through_two_paths_is_not_moved(two_paths, tmp_path, build, search):
    src, a, b = two_paths
    se = search(build(src))

    report = se.move_to(tmp_path / "dest")

    assert report["moved"] == {} and report["manifest"] is None
    assert_kept(report, b, "same-file")
    assert os.path.samefile(a, b)


def test_one_file_through_two_paths_in_a_loaded_repository(two_paths, tmp_path, build, search):
    src, a, b = two_paths
    dif = build(src)
    assert dif.inodes[0].tolist() == dif.inodes[1].tolist() != [0, 0]
    se = search(fastdif.load(dif.save(tmp_path / "repo")))

    assert_kept(se.delete(silent_del=True), b, "same-file")
    assert os.path.samefile(a, b)


# --------------------------------------------------------------------------- the rule, in detail


def test_a_similar_member_beyond_the_threshold_of_its_key_is_kept(tmp_path, build, search):
    # a ~ b and b ~ c within MSE 5, but c is 16 from the key a: c is no copy of what is kept.
    def flat(value, side, name):
        path = tmp_path / "src" / name
        return images.save(np.full((side, side, 3), value, np.uint8), path)

    a = flat(100, 60, "a.png")  # the key: largest
    b = flat(102, 50, "b.png")
    c = flat(104, 50, "c.png")
    se = search(build(tmp_path / "src"), similarity="similar", same_dim=False)
    assert se.result == {a: [[b, 4.0]]} and se.lower_quality == [b]  # c is listed apart
    assert se.stats["process"]["search"]["chained"] == {c: {"key": a, "through": b, "mse": 16.0}}
    # A result edited to list c anyway: the re-check still refuses it.
    se.result[a].append([c, 16.0])
    se.lower_quality.append(c)

    report = se.delete(silent_del=True)

    assert report["deleted"] == [b]
    assert_kept(report, c, "content")


def test_moved_files_are_checked_again_where_they_are(pair, tmp_path, build, search):
    src, a, b = pair
    se = search(build(src))
    first = se.move_to(tmp_path / "one")
    second = se.move_to(tmp_path / "two")
    assert first["failed"] == {} and second["failed"] == {}
    [moved] = se.lower_quality
    assert os.path.dirname(moved) == str(tmp_path / "two") and read(moved) == read(a)
    Image.new("RGB", (8, 8)).save(moved, format="PNG")
    assert_kept(se.move_to(tmp_path / "three"), moved, "identity")


def test_results_of_from_arrays_are_never_acted_on(pair, search):
    src, a, b = pair
    thumbs = np.zeros((2, 10, 10, 3), np.uint8)
    se = search(fastdif.from_arrays(thumbs, paths=[a, b]))
    report = se.delete(silent_del=True)
    assert_kept(report, b, "identity")
    assert "nothing recorded" in report["failed"][b]


def test_min_mse_matches_the_search_kernel():
    rng = np.random.default_rng(0)
    tensors = rng.integers(0, 256, (6, 7, 7, 3)).astype(np.float32)
    left, right = np.array([0, 1, 2, 3, 4]), np.array([5, 4, 3, 2, 1])
    tensors[5] = np.fliplr(tensors[0])
    for rotate in (False, True):
        for flip in (False, True):
            expected = kernels.pair_mse(tensors, left, right, rotate, flip)[0]
            got = [
                verify.min_mse(tensors[i], tensors[j], rotate, flip)
                for i, j in zip(left, right, strict=True)
            ]
            assert got == expected.tolist()
    turned = np.rot90(tensors[0], 3)
    assert verify.min_mse(tensors[0], turned, True) == 0.0
    assert verify.min_mse(tensors[0], turned, False) > 0
    mirrored = np.rot90(np.fliplr(tensors[0]), 1)
    assert verify.min_mse(tensors[0], mirrored, True, True) == 0.0
    assert verify.min_mse(tensors[0], mirrored, True, False) > 0
    assert verify.min_mse(tensors[0], np.fliplr(tensors[0]), False, True) == 0.0


def test_recorded_inodes_keep_unsigned_64_bit_values():
    values = [2**64 - 1, 2**63 + 5]
    stored = np.array([values], dtype=np.uint64).view(np.int64)
    assert verify.Identity.recorded(1, 2, *stored[0]) == verify.Identity(1, 2, *values)
