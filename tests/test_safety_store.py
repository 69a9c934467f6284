"""A store and a save publish only what they wrote, never over anything (issue 24, items 7-10).

A build into ``--store S`` writes in ``.S.partial`` (refused when it is a
link or not fastdif's), publishes by a rename that never replaces, and
checks every write, so a full disk is an error and a resume afterwards
gives the clean build's repository.
"""

import errno
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest
from faults import counting_decoder, interrupted_decoding
from images import copy_bytes, save_photo

import fastdif
from fastdif.cli import main
from fastdif.io import partial, store
from fastdif.io.cache import decoding_settings
from fastdif.io.partial import JOURNAL_FILE, PartialBuild, PartialBuildError, partial_folder
from fastdif.pipelines import build as building

ARRAYS = ("tensors", "shapes", "file_sizes", "mtimes_ns", "inodes")

#: A user's files with the names a store writes, and their contents.
USER_FILES = {
    "tensors.npy": b"my tensors, not fastdif's",
    "shapes.npy": b"my shapes",
    "repository.json": b'{"mine": true}',
    "journal.bin": b"my journal",
}


def same_repository(a, b):
    """Assert two repositories hold the same images, thumbnails and metadata."""
    assert a.paths == b.paths
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.block_means.grids, b.block_means.grids)
    assert a.groups == b.groups and a.folders == b.folders


def groups(dif) -> dict:
    return fastdif.search(dif, show_progress=False, processes=1).result


@pytest.fixture
def pairs(tmp_path):
    """24 photos, each with an exact copy: 24 groups."""
    root = tmp_path / "photos"
    for k in range(24):
        save_photo(k, root / f"p{k:02d}.png", width=64 + k, height=48)
        copy_bytes(root / f"p{k:02d}.png", root / f"q{k:02d}.png")
    return str(root)


def user_folder(path):
    path.mkdir()
    for name, data in USER_FILES.items():
        (path / name).write_bytes(data)
    return path


def assert_user_folder(path):
    assert sorted(os.listdir(path)) == sorted(USER_FILES)
    for name, data in USER_FILES.items():
        assert (path / name).read_bytes() == data, name


def build(folder, target, **kwargs):
    return fastdif.build(folder, store=target, show_progress=False, processes=1, **kwargs)


# Item 7: the partial folder is fastdif's own, never reached through a link.


def plant_link(tmp_path, target):
    os.symlink(user_folder(tmp_path / "mine"), partial_folder(str(target)))


def plant_folder(tmp_path, target):
    user_folder(tmp_path / f".{target.name}.partial")


def plant_folder_with_a_build_json(tmp_path, target):
    folder = user_folder(tmp_path / f".{target.name}.partial")
    (folder / "build.json").write_text('{"my": "build settings"}')


def plant_file(tmp_path, target):
    (tmp_path / f".{target.name}.partial").write_bytes(b"my file")


def plant_linked_tensors(tmp_path, target):
    PartialBuild(str(target), 50, decoding_settings(50)).close()  # fastdif's own, just begun
    rows = os.path.join(partial_folder(str(target)), "tensors.npy")
    os.remove(rows)
    os.symlink(user_folder(tmp_path / "mine") / "tensors.npy", rows)


def snapshot(folder) -> dict:
    """Every path under ``folder`` (links not followed): a link's target, a file's bytes."""
    found = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            if os.path.islink(path):
                found[path] = ("link", os.readlink(path))
            elif os.path.isfile(path):
                found[path] = ("file", open(path, "rb").read())
            else:
                found[path] = ("folder", None)
    return found


@pytest.mark.parametrize(
    ("plant", "match"),
    [
        (plant_link, "is a symbolic link"),
        (plant_folder, "is not one"),
        (plant_folder_with_a_build_json, "is not one"),
        (plant_file, "is not a folder"),
        (plant_linked_tensors, 'tensors.npy" is a symbolic link'),
    ],
)
def test_a_partial_folder_that_is_not_fastdifs_is_refused_untouched(pairs, tmp_path, plant, match):
    target = tmp_path / "store"
    plant(tmp_path, target)
    before = snapshot(tmp_path)
    with pytest.raises(PartialBuildError, match=match) as error:
        build(pairs, target)
    assert partial_folder(str(target)) in str(error.value)
    assert snapshot(tmp_path) == before  # not a byte written, moved or removed
    assert not os.path.lexists(target)


def test_command_line_refuses_a_linked_partial_folder(pairs, tmp_path, capsys):
    target = tmp_path / "store"
    plant_link(tmp_path, target)
    assert main([pairs, "-q", "-Z", str(tmp_path / "out"), "--store", str(target)]) == 2
    assert "is a symbolic link" in capsys.readouterr().err
    assert_user_folder(tmp_path / "mine")
    assert not os.path.lexists(target)


# Item 8: a folder that appears at the store while it is built is left as it was.


def appearing_at(monkeypatch, module, target):
    """Make ``module.write`` (the last step before publishing) end by creating a user's folder."""
    real = module.write

    def write_then_appear(*args, **kwargs):
        real(*args, **kwargs)
        user_folder(target)

    monkeypatch.setattr(module, "write", write_then_appear)


def test_a_folder_that_appears_at_the_store_during_the_build_is_left_alone(
    pairs, tmp_path, monkeypatch
):
    target = tmp_path / "store"
    appearing_at(monkeypatch, building, target)
    with pytest.raises(FileExistsError, match="was left as it was") as error:
        build(pairs, target)
    assert_user_folder(target)
    folder = partial_folder(str(target))
    assert f'finished store is in "{folder}"' in str(error.value)
    assert "run the same command again" in str(error.value)
    assert [p for p in os.listdir(tmp_path) if ".tmp-" in p or ".old-" in p] == []
    monkeypatch.undo()
    # Once the name is free, the same build publishes what it finished, decoding nothing.
    os.rename(target, tmp_path / "mine")
    seen = counting_decoder(monkeypatch)
    resumed = build(pairs, target)
    assert seen == [] and resumed.stats["process"]["build"]["store"]["decoded"] == 0
    monkeypatch.undo()
    clean = fastdif.build(pairs, show_progress=False, processes=1)
    same_repository(clean, fastdif.load(target))
    assert groups(resumed) == groups(clean) and len(groups(clean)) == 24
    assert not os.path.lexists(folder)
    assert_user_folder(tmp_path / "mine")


def test_command_line_leaves_a_folder_that_appears_at_the_store(pairs, tmp_path, monkeypatch):
    target = tmp_path / "store"
    appearing_at(monkeypatch, building, target)
    assert main([pairs, "-q", "-Z", str(tmp_path / "out"), "--store", str(target)]) == 2
    assert_user_folder(target)


@pytest.mark.parametrize("kind", ["empty folder", "folder", "file", "link"])
def test_publish_never_replaces_what_is_at_the_target(tmp_path, kind):
    tmp = tmp_path / "finished"
    tmp.mkdir()
    (tmp / "repository.json").write_text("{}")
    target = tmp_path / "target"
    if kind == "empty folder":
        target.mkdir()
    elif kind == "folder":
        user_folder(target)
    elif kind == "file":
        target.write_bytes(b"my file")
    else:
        target.symlink_to(user_folder(tmp_path / "mine"))
    with pytest.raises(FileExistsError):
        store.publish(str(tmp), str(target))
    assert os.listdir(tmp) == ["repository.json"]  # the finished folder is kept
    if kind == "empty folder":
        assert os.listdir(target) == []
    elif kind == "folder":
        assert_user_folder(target)
    elif kind == "file":
        assert target.read_bytes() == b"my file"
    else:
        assert os.readlink(target) == str(tmp_path / "mine")
        assert_user_folder(tmp_path / "mine")


# Item 9: Repository.save publishes the same way.


@pytest.fixture
def small(tmp_path):
    folder = tmp_path / "few"
    for k in range(3):
        save_photo(k, folder / f"p{k}.png", width=60, height=40)
    return fastdif.build(str(folder), show_progress=False, processes=1)


def test_save_never_replaces_a_folder_that_appears_while_it_writes(small, tmp_path, monkeypatch):
    target = tmp_path / "saved"
    appearing_at(monkeypatch, store, target)
    with pytest.raises(FileExistsError, match="was left as it was"):
        small.save(target)
    assert_user_folder(target)
    assert sorted(os.listdir(tmp_path)) == ["few", "saved"]  # no leftovers


def test_save_overwrite_replaces_only_a_repository(small, tmp_path, monkeypatch):
    target = tmp_path / "saved"
    small.save(target)
    real = store.write

    def swap_then_write(*args, **kwargs):
        real(*args, **kwargs)
        # The repository checked at the start is gone; a user's folder took its name.
        os.rename(target, tmp_path / "old repository")
        user_folder(target)

    monkeypatch.setattr(store, "write", swap_then_write)
    with pytest.raises(FileExistsError, match="not a saved fastdif repository"):
        small.save(target, overwrite=True)
    assert_user_folder(target)
    assert sorted(os.listdir(tmp_path)) == ["few", "old repository", "saved"]  # no leftovers


def test_save_overwrite_refuses_a_folder_that_only_looks_like_a_repository(small, tmp_path):
    target = user_folder(tmp_path / "saved")  # has a repository.json, not fastdif's
    with pytest.raises(FileExistsError, match="not a saved fastdif repository"):
        small.save(target, overwrite=True)
    assert_user_folder(target)
    link = tmp_path / "link"
    small.save(tmp_path / "real")
    link.symlink_to(tmp_path / "real")  # a link to a repository is not one
    with pytest.raises(FileExistsError, match="not a saved fastdif repository"):
        small.save(link, overwrite=True)
    assert os.path.islink(link)


def test_save_overwrite_keeps_files_the_old_repository_did_not_write(small, tmp_path):
    target = tmp_path / "saved"
    small.save(target)
    (target / "notes.txt").write_text("mine")
    with pytest.warns(UserWarning, match="held other files") as caught:
        small.save(target, overwrite=True)
    (kept,) = [p for p in os.listdir(tmp_path) if p.startswith(".saved.old-")]
    assert str(tmp_path / kept / "repository") in str(caught[0].message)
    assert (tmp_path / kept / "repository" / "notes.txt").read_text() == "mine"
    assert os.listdir(tmp_path / kept / "repository") == ["notes.txt"]
    assert fastdif.load(target).paths == small.paths
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        small.save(target, overwrite=True)  # nothing else in it now: no warning, no leftovers
    assert sorted(os.listdir(tmp_path)) == sorted(["few", "saved", kept])


# Item 10: every write is checked; a full disk is an error, and a resume is exact.


def failing_pwrite(monkeypatch, row_bytes, at_call):
    """Make the ``at_call``-th write of a row short and the next fail, as a full disk does."""
    real = os.pwrite
    calls = []

    def pwrite(fd, data, offset):
        if len(data) == row_bytes or calls and calls[-1] == "short":
            calls.append("row")
            if len(calls) == at_call:
                calls[-1] = "short"
                return real(fd, bytes(data)[: len(data) // 2], offset)
            if len(calls) > at_call:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)


def test_a_short_write_on_a_full_disk_is_an_error_and_the_resume_is_exact(
    pairs, tmp_path, monkeypatch
):
    target = tmp_path / "store"
    failing_pwrite(monkeypatch, 50 * 50 * 3, at_call=20)
    with pytest.raises(OSError, match="run the same command again") as error:
        build(pairs, target)
    assert error.value.errno == errno.ENOSPC
    assert partial_folder(str(target)) in str(error.value)
    monkeypatch.undo()
    journaled = partial._read_journal(os.path.join(partial_folder(str(target)), JOURNAL_FILE))
    assert len(journaled) == 19  # the row the disk took half of is not journaled
    resumed = build(pairs, target)
    assert resumed.stats["process"]["build"]["store"]["resumed"] == 19
    clean = fastdif.build(pairs, show_progress=False, processes=1)
    same_repository(clean, resumed)
    same_repository(clean, fastdif.load(target))
    assert groups(resumed) == groups(clean) and len(groups(clean)) == 24


def test_short_writes_are_completed(pairs, tmp_path, monkeypatch):
    real = os.pwrite
    monkeypatch.setattr(os, "pwrite", lambda fd, data, at: real(fd, bytes(data)[:1000], at))
    streamed = build(pairs, tmp_path / "store")
    monkeypatch.undo()
    same_repository(fastdif.build(pairs, show_progress=False, processes=1), streamed)


def test_no_room_for_the_block_means_is_an_error_not_a_crash(pairs, tmp_path, monkeypatch):
    def full(fd, offset, length):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
    with pytest.raises(OSError, match="run the same command again"):
        build(pairs, tmp_path / "store")
    monkeypatch.undo()
    resumed = build(pairs, tmp_path / "store")
    assert resumed.stats["process"]["build"]["store"]["decoded"] == 0
    same_repository(fastdif.build(pairs, show_progress=False, processes=1), resumed)


def test_a_journal_write_the_disk_cut_short_hides_no_later_record(pairs, tmp_path, monkeypatch):
    target = str(tmp_path / "store")
    PartialBuild(target, 50, decoding_settings(50)).close()
    journal = os.path.join(partial_folder(target), JOURNAL_FILE)
    with open(journal, "ab") as out:
        out.write(b"\x01\x02\x03 torn")  # what a full disk left of a record
    monkeypatch.setattr(partial, "FLUSH_SECONDS", 0.0)
    interrupted_decoding(monkeypatch, after=10)
    with pytest.raises(KeyboardInterrupt):
        build(pairs, target)
    # The torn bytes were cut off, so the records appended since are read.
    assert len(partial._read_journal(journal)) == 9


def mount_tmpfs(folder, size):
    folder.mkdir()
    try:
        done = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
            capture_output=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.skip(f"cannot mount a tmpfs: {exc}")
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs: {done.stderr.decode().strip()}")


@pytest.mark.timeout(120)
@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() != 0 or shutil.which("mount") is None,
    reason="a small file system to fill needs root to mount a tmpfs",
)
def test_a_disk_that_fills_during_the_build_then_frees_resumes_exactly(
    pairs, tmp_path, monkeypatch
):
    monkeypatch.setattr(partial, "FLUSH_SECONDS", 0.0)  # journal each file, as a long build does
    disk = tmp_path / "disk"
    mount_tmpfs(disk, "160k")  # room for about 15 of the 48 thumbnails
    try:
        target = disk / "store"
        with pytest.raises(OSError) as error:
            build(pairs, target)
        assert error.value.errno == errno.ENOSPC
        remount = ["mount", "-o", "remount,size=16m", str(disk)]
        subprocess.run(remount, check=True, timeout=30)
        resumed = build(pairs, target)
        assert 0 < resumed.stats["process"]["build"]["store"]["resumed"] < 48
        clean = fastdif.build(pairs, show_progress=False, processes=1)
        assert groups(resumed) == groups(clean) and len(groups(clean)) == 24
        same_repository(clean, resumed)
        del resumed
        assert "run the same command again" in str(error.value)
    finally:
        subprocess.run(["umount", "-l", str(disk)], timeout=30)
