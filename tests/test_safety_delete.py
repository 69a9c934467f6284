"""Deleting never loses a library file, the last copy, the other frames, or a user's file
beside the cache (issue 24, items 14 to 17).

14: a library saved before inodes were recorded, reached through a link in
the searched folder; 15: two runs at once with opposite keep rules; 16:
multi-page TIFFs and animated GIFs beside exports of their first frame; 17:
a user's ``NAME-wal``, ``NAME-shm`` and ``NAME-journal`` beside ``--cache NAME``.
"""

import json
import os
import subprocess
import sys
import threading
import time

import images
import numpy as np
import pytest
from faults import without_inodes
from PIL import Image

import fastdif
from fastdif import actions, verify
from fastdif.cli import main
from fastdif.engine.keep import Facts, choose
from fastdif.io import cache
from fastdif.io.decode import decode_file
from fastdif.io.metadata import frame_count
from fastdif.params import check_keep


def read(path):
    with open(path, "rb") as f:
        return f.read()


def contents(folder):
    """{relative path: bytes} of every file under ``folder`` (links followed)."""
    found = {}
    for root, _, files in os.walk(folder, followlinks=True):
        for name in files:
            path = os.path.join(root, name)
            found[os.path.relpath(path, folder)] = read(path)
    return found


def quiet(*args, **kwargs):
    return fastdif.build(*args, show_progress=False, processes=1, **kwargs)


def find(dif, **kwargs):
    return fastdif.search(dif, show_progress=False, processes=1, **kwargs)


# --------------------------------------------------------------------------- 14: library


def library_without_inodes(folder, saved):
    """Save the repository of ``folder`` to ``saved`` as a fastdif before inodes would have."""
    path = quiet(folder).save(saved)
    without_inodes(path)
    library = fastdif.load(path)
    assert not library.inodes.any()
    return library


@pytest.fixture
def linked_library(tmp_path):
    """A library ``lib`` (a.png and its copy b.png) saved without inodes, and a new
    folder ``new`` holding a link to the library's folder and one picture of its own."""
    lib = tmp_path / "lib"
    a = images.save_photo(1, lib / "a.png")
    images.copy_bytes(a, lib / "b.png")
    library = library_without_inodes(lib, tmp_path / "saved")
    new = tmp_path / "new"
    new.mkdir()
    (new / "linked").symlink_to(lib, target_is_directory=True)
    images.save_photo(2, new / "other.png")
    se = find(quiet(new, reference=library))
    members = {path for path, _ in se.result[str(lib / "a.png")]}
    # The library's files, reached through the link, are new images to this search.
    assert members == {str(new / "linked" / "a.png"), str(new / "linked" / "b.png")}
    return lib, new, se


def test_a_library_file_reached_through_a_link_is_never_deleted(linked_library):
    lib, new, se = linked_library
    before = contents(lib)
    twin = str(new / "linked" / "b.png")

    dry = se.delete(dry_run=True)
    assert dry["would_delete"] == []
    report = se.delete(silent_del=True)
    assert report["deleted"] == []
    assert report["failed"][twin] == (
        f"same-file check failed: it is the same file as the library image "
        f"{str(lib / 'b.png')!r}, which is kept"
    )
    assert contents(lib) == before


def test_a_library_file_reached_through_a_link_is_never_moved_or_trashed(linked_library, tmp_path):
    lib, new, se = linked_library
    before = contents(lib)
    moved = se.move_to(tmp_path / "dest")
    assert moved["moved"] == {} and moved["manifest"] is None
    trashed = se.delete(silent_del=True, trash=True)
    assert trashed["trashed"] == {} and trashed["moved"] == {}
    assert all(r.startswith("same-file check failed") for r in trashed["failed"].values())
    assert contents(lib) == before


def test_kept_files_are_known_by_what_the_disk_says_now(tmp_path):
    lib_image = images.save_photo(1, tmp_path / "lib" / "a.png")
    key = images.save_photo(2, tmp_path / "src" / "key.png")
    member = images.save_photo(3, tmp_path / "src" / "member.png")
    os.link(key, tmp_path / "src" / "hard.png")
    (tmp_path / "src" / "linked").symlink_to(tmp_path / "lib", target_is_directory=True)
    kept = verify.KeptFiles([lib_image], [key])
    through_link = str(tmp_path / "src" / "linked" / "a.png")
    hard = str(tmp_path / "src" / "hard.png")
    assert kept.holding(through_link, os.stat(through_link)) == f"the library image {lib_image!r}"
    assert kept.holding(hard, os.stat(hard)) == f"the key {key!r}"
    assert kept.holding(member, os.stat(member)) is None


def test_delete_files_compares_the_files_on_disk_not_their_names(tmp_path):
    a = images.save_photo(1, tmp_path / "a.png")
    os.link(a, tmp_path / "hard.png")
    deleted, failed = actions.delete_files(
        [str(tmp_path / "hard.png")], {str(tmp_path / "hard.png"): a}
    )
    assert deleted == [] and failed == {str(tmp_path / "hard.png"): "is its group's key"}
    assert os.path.exists(tmp_path / "hard.png")


# --------------------------------------------------------------------------- 15: two runs at once


def dated_pairs(folder, n):
    """``n`` pairs of identical small pictures: ``NNNa.bmp`` older than ``NNNb.bmp``."""
    os.makedirs(folder)
    for i in range(n):
        pixels = np.random.default_rng(i).integers(0, 256, (16, 16, 3), dtype=np.uint8)
        for suffix, mtime in (("a", 10**18), ("b", 2 * 10**18)):
            path = os.path.join(folder, f"{i:03d}{suffix}.bmp")
            Image.fromarray(pixels).save(path)
            os.utime(path, ns=(mtime, mtime))


def survivors(folder, n):
    """Pair numbers with at least one copy left."""
    return {
        i
        for i in range(n)
        for suffix in "ab"
        if os.path.exists(os.path.join(folder, f"{i:03d}{suffix}.bmp"))
    }


@pytest.fixture
def opposite_runs(tmp_path, monkeypatch):
    """Two searches of one pair: ``newest`` keeps b and deletes a; ``oldest`` the reverse."""
    dated_pairs(tmp_path / "src", 1)
    dif = quiet(tmp_path / "src")
    newest, oldest = find(dif, keep="newest"), find(dif, keep="oldest")
    a, b = str(tmp_path / "src" / "000a.bmp"), str(tmp_path / "src" / "000b.bmp")
    assert newest.lower_quality == [a] and oldest.lower_quality == [b]
    monkeypatch.setattr(verify, "LOCK_TIMEOUT_S", 0.2)
    return newest, oldest, a, b


def test_a_second_run_cannot_act_between_the_first_ones_check_and_act(opposite_runs, monkeypatch):
    # The other run gets its turn at the worst moment: after this run checked
    # the pair, just before it removes its member.
    newest, oldest, a, b = opposite_runs
    remove = os.remove
    other = {}

    def interleaved(path, *args, **kwargs):
        if path == a and not other:
            other["report"] = oldest.delete(silent_del=True)
        return remove(path, *args, **kwargs)

    monkeypatch.setattr(os, "remove", interleaved)
    report = newest.delete(silent_del=True)

    assert report == {"deleted": [a], "failed": {}}
    assert other["report"]["deleted"] == []
    assert other["report"]["failed"][b].startswith("lock check failed: another fastdif run")
    assert os.path.exists(b)


def test_a_run_refuses_after_a_bounded_wait_then_acts_once_the_lock_is_free(opposite_runs):
    newest, _, a, b = opposite_runs
    with verify.acting_on(b) as refusal:  # another run acting on the key
        assert refusal is None
        start = time.monotonic()
        report = newest.delete(silent_del=True)
        assert time.monotonic() - start < 5
    assert report["deleted"] == []
    assert report["failed"][a] == (
        "lock check failed: another fastdif run acted on it or its key for 0.2 s; try again later"
    )
    assert os.path.exists(a)
    assert newest.delete(silent_del=True) == {"deleted": [a], "failed": {}}


@pytest.mark.timeout(60)
def test_a_run_waits_for_the_lock_and_then_acts(opposite_runs, monkeypatch):
    newest, _, a, b = opposite_runs
    monkeypatch.setattr(verify, "LOCK_TIMEOUT_S", 30.0)
    held, release = threading.Event(), threading.Event()

    def other_run():
        with verify.acting_on(a, b):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=other_run)
    thread.start()
    try:
        assert held.wait(10)
        threading.Timer(0.3, release.set).start()
        start = time.monotonic()
        report = newest.delete(silent_del=True)
        assert time.monotonic() - start >= 0.25  # it waited for the other run
    finally:
        release.set()
        thread.join(10)
    assert report == {"deleted": [a], "failed": {}}


def test_move_and_trash_take_the_same_locks(opposite_runs, tmp_path):
    newest, _, a, b = opposite_runs
    with verify.acting_on(a):
        moved = newest.move_to(tmp_path / "dest")
        trashed = newest.delete(silent_del=True, trash=True)
    assert moved["moved"] == {} and moved["failed"][a].startswith("lock check failed")
    assert trashed["trashed"] == {} and trashed["failed"][a].startswith("lock check failed")
    assert os.path.exists(a) and os.path.exists(b)


def test_the_lock_folder_falls_back_to_a_private_temporary_folder(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))  # no folder can be made below a file
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    folder = verify.lock_folder()
    assert os.path.dirname(folder) == str(tmp_path / "tmp") and os.path.isdir(folder)
    if hasattr(os, "geteuid"):
        assert os.stat(folder).st_uid == os.geteuid()
    with verify.acting_on(str(blocker)) as refusal:
        assert refusal is None


def test_a_key_gone_just_after_its_member_was_deleted_is_reported_loudly(
    opposite_runs, monkeypatch
):
    newest, _, a, b = opposite_runs
    remove = os.remove

    def also_the_key(path, *args, **kwargs):
        remove(path, *args, **kwargs)
        if path == a:
            remove(b)  # another program, at the same moment

    monkeypatch.setattr(os, "remove", also_the_key)
    with pytest.warns(verify.LostKeyWarning, match="no other copy of it may remain"):
        newest.delete(silent_del=True)


def test_a_member_moved_while_its_key_vanished_is_put_back(opposite_runs, tmp_path, monkeypatch):
    newest, _, a, b = opposite_runs
    content = read(a)
    move_file = actions.move_file

    def key_goes_meanwhile(path, *args, **kwargs):
        os.rename(b, tmp_path / "elsewhere.bmp")  # another program takes the key away
        return move_file(path, *args, **kwargs)

    monkeypatch.setattr(actions, "move_file", key_goes_meanwhile)
    report = newest.move_to(tmp_path / "dest")
    assert report["moved"] == {}
    assert report["failed"][a].startswith(f"put back: its key {b!r} is gone")
    assert read(a) == content and newest.lower_quality == [a]


CHILD = r"""
import json, os, sys, time
import fastdif

folder, keep, ready, lockstep = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4] == "1"
other = "oldest" if keep == "newest" else "newest"
if lockstep:
    # Each run reaches its act on a pair only when the other has reached
    # its own, or after a bounded wait: the worst interleaving, every time.
    remove = os.remove

    def remove_in_step(path, *args, **kwargs):
        pair = os.path.basename(path)[:3]
        open(f"{folder}.{pair}.{keep}", "w").close()
        deadline = time.monotonic() + (1.0 if pair == "000" else 0.05)
        while not os.path.exists(f"{folder}.{pair}.{other}") and time.monotonic() < deadline:
            time.sleep(0.001)
        return remove(path, *args, **kwargs)

    os.remove = remove_in_step
se = fastdif.search(
    fastdif.build(folder, show_progress=False, processes=1),
    show_progress=False, processes=1, keep=keep,
)
se.delete(dry_run=True)  # everything loaded: both runs start their deletes together
open(ready, "w").close()
sys.stdin.readline()
report = se.delete(silent_del=True)
print(json.dumps({"deleted": len(report["deleted"]), "failed": len(report["failed"])}))
"""


def race(folder, lockstep):
    """Run ``delete()`` with ``keep="newest"`` and ``"oldest"`` at once over ``folder``."""
    runs = []
    try:
        for keep in ("newest", "oldest"):
            ready = f"{folder}.ready-{keep}"
            command = [sys.executable, "-c", CHILD, str(folder), keep, ready, str(int(lockstep))]
            runs.append(
                (
                    subprocess.Popen(
                        command,
                        stdin=subprocess.PIPE,
                        stdout=subprocess.PIPE,
                        text=True,
                        cwd=os.path.dirname(folder),
                    ),
                    ready,
                )
            )
        deadline = time.monotonic() + 90
        while not all(os.path.exists(ready) for _, ready in runs):
            assert all(run.poll() is None for run, _ in runs), "a run ended early"
            assert time.monotonic() < deadline, "the runs did not get ready"
            time.sleep(0.01)
        for run, _ in runs:
            run.stdin.write("go\n")
            run.stdin.flush()
        return [json.loads(run.communicate(timeout=90)[0]) for run, _ in runs]
    finally:
        for run, _ in runs:
            if run.poll() is None:
                run.kill()
                run.wait(10)


@pytest.mark.slow
@pytest.mark.timeout(300)
@pytest.mark.parametrize(
    ("lockstep", "pairs", "rounds"), [(False, 150, 2), (True, 12, 1)], ids=["free", "lockstep"]
)
def test_two_processes_with_opposite_keep_rules_never_lose_both_copies(
    tmp_path, lockstep, pairs, rounds
):
    for number in range(rounds):
        folder = tmp_path / f"round{number}"
        dated_pairs(folder, pairs)
        reports = race(folder, lockstep)
        assert survivors(folder, pairs) == set(range(pairs))
        assert sum(r["deleted"] for r in reports) == pairs  # one copy of each pair went


# --------------------------------------------------------------------------- 16: frames


@pytest.fixture
def multi_frame(tmp_path):
    """A 3-page TIFF and a 3-frame GIF, and later PNG exports of their first frame."""
    src = tmp_path / "src"
    src.mkdir()
    pages = [images.photo_image(seed) for seed in (1, 2, 3)]
    tif = str(src / "scan.tif")
    pages[0].save(tif, save_all=True, append_images=pages[1:])
    frames = [images.photo_image(seed).quantize(64) for seed in (4, 5, 6)]
    gif = str(src / "anim.gif")
    frames[0].save(gif, save_all=True, append_images=frames[1:], duration=100, loop=0)
    exports = {}
    for original in (tif, gif):
        os.utime(original, ns=(10**18, 10**18))  # older: "newest" would keep the export
        with Image.open(original) as image:
            exports[original] = str(src / (os.path.basename(original) + ".png"))
            image.convert("RGB").save(exports[original])
    return src, exports


def test_frame_count_reads_headers(multi_frame, tmp_path):
    _, exports = multi_frame
    for original, export in exports.items():
        assert frame_count(original) == 3 and frame_count(export) == 1
    garbage = tmp_path / "garbage.gif"
    garbage.write_bytes(b"GIF89a not really")
    assert frame_count(str(garbage)) == 1 and frame_count(str(tmp_path / "missing.gif")) == 1


@pytest.mark.timeout(30)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="named pipes are POSIX")
def test_frame_count_never_blocks_on_a_named_pipe(tmp_path):
    os.mkfifo(tmp_path / "pipe.gif")
    assert frame_count(str(tmp_path / "pipe.gif")) == 1


@pytest.mark.parametrize("keep", [["newest"], None, ["oldest"]])
def test_a_multi_frame_file_is_kept_over_a_copy_of_its_first_frame(multi_frame, keep):
    src, exports = multi_frame
    before = {original: read(original) for original in exports}
    se = find(quiet(src), keep=keep)
    assert se.result == {original: [[export, 0.0]] for original, export in exports.items()}
    reasons = se.stats["process"]["search"]["keep"]["reasons"]
    assert reasons == dict.fromkeys(exports, "kept: more frames (3 vs 1)")

    report = se.delete(silent_del=True)
    assert sorted(report["deleted"]) == sorted(exports.values())
    assert {original: read(original) for original in exports} == before


def test_delete_refuses_a_member_with_more_frames_than_its_library_key(multi_frame, tmp_path):
    # A library's image is always the key; the frames check keeps the rest.
    src, exports = multi_frame
    lib = tmp_path / "lib"
    lib.mkdir()
    for export in exports.values():
        os.replace(export, lib / os.path.basename(export))
    se = find(quiet(src, reference=quiet(lib)), keep=["newest"])
    assert {path for members in se.result.values() for path, _ in members} == set(exports)
    before = {original: read(original) for original in exports}

    report = se.delete(silent_del=True)
    assert report["deleted"] == []
    for original in exports:
        reason = report["failed"][original]
        assert reason.startswith("frames check failed: it has 3 frames or pages, its key ")
        assert reason.endswith(" 1: the others would exist nowhere else")
    assert se.move_to(tmp_path / "dest")["moved"] == {}
    assert {original: read(original) for original in exports} == before


def test_more_frames_comes_before_every_keep_criterion():
    big = Facts(width=4000, height=3000, size=10**7, mtime_ns=2)
    animated = Facts(width=10, height=10, size=10, mtime_ns=1, frames=3)
    for rule in (None, "newest", "size", "resolution"):
        assert choose(check_keep(rule), [big, animated]) == (1, "kept: more frames (3 vs 1)")
    assert choose(check_keep("newest"), [big, Facts(mtime_ns=1)])[1].startswith("kept: newest")


# --------------------------------------------------------------------------- 17: cache siblings


SIBLINGS = ("-wal", "-shm", "-journal")


@pytest.fixture
def pictures(tmp_path):
    src = tmp_path / "src"
    a = images.save_photo(1, src / "a.png")
    images.copy_bytes(a, src / "b.png")
    return src


def user_files(name, suffixes):
    """A user's files ``name + suffix``, not SQLite's; ``{path: bytes}``."""
    files = {}
    for suffix in suffixes:
        path = f"{name}{suffix}"
        files[path] = f"a user's notes, named {suffix} by chance\n".encode() * 50
        with open(path, "wb") as out:
            out.write(files[path])
    return files


@pytest.mark.parametrize("suffixes", [SIBLINGS, ("-wal",), ("-shm",), ("-journal",)])
def test_a_cache_beside_a_users_files_is_refused_and_they_stay(pictures, tmp_path, suffixes):
    name = str(tmp_path / "NAME")
    files = user_files(name, suffixes)
    with pytest.raises(ValueError, match="SQLite did not make for it") as raised:
        quiet(pictures, cache=name)
    for path in files:
        assert f'"{path}"' in str(raised.value)
    assert {path: read(path) for path in files} == files
    assert not os.path.exists(name)


def test_the_command_line_refuses_it_too(pictures, tmp_path, capsys):
    name = str(tmp_path / "NAME")
    files = user_files(name, SIBLINGS)
    out = ["-Z", str(tmp_path / "out")]  # where a regression's result files would go
    status = main([str(pictures), "--cache", name, "-p", "false", "-proc", "1", *out])
    assert status == 2
    err = capsys.readouterr().err
    assert all(f'"{path}"' in err for path in files)
    assert {path: read(path) for path in files} == files


def test_a_users_files_beside_a_fastdif_cache_are_never_cleared_nor_moved(pictures, tmp_path):
    name = str(tmp_path / "NAME")
    quiet(pictures, cache=name)  # a real cache, closed: no siblings left
    assert cache.cache_file_kind(name) is cache.CacheFile.FASTDIF
    files = user_files(name, ("-wal", "-shm"))
    with pytest.raises(ValueError, match="not clearing the cache: files beside"):
        cache.clear_cache(name)
    # They appear after the build checked its cache parameter: the cache is not used.
    picture = str(pictures / "a.png")
    decoder = cache.CachedDecoder(
        name, 50, lambda paths, progress: (decode_file(path, 50) for path in paths)
    )
    with pytest.warns(cache.CacheWarning, match="cache not used for this build: files beside"):
        [found] = decoder.decode([picture], [str(pictures)])
    assert found.decoded.reason is None and decoder.stats["hits"] == 0
    assert {path: read(path) for path in files} == files and os.path.exists(name)


def test_a_link_named_like_a_sibling_is_refused(pictures, tmp_path):
    name = str(tmp_path / "NAME")
    photo = images.save_photo(3, tmp_path / "photo.png")
    before = read(photo)
    os.symlink(photo, name + "-wal")
    with pytest.raises(ValueError, match="SQLite did not make for it"):
        quiet(pictures, cache=name)
    assert read(photo) == before and os.path.islink(name + "-wal")


def test_sqlites_own_siblings_are_accepted(pictures, tmp_path):
    # A build killed while writing leaves the log and index: still fastdif's.
    name = str(tmp_path / "NAME")
    db = cache._connect(name)
    try:
        db.execute("BEGIN IMMEDIATE")
        db.execute("INSERT INTO meta VALUES ('note', 'x')")
        db.execute("COMMIT")
        assert os.path.getsize(name + "-wal") > 0 and os.path.getsize(name + "-shm") > 0
        assert cache.foreign_siblings(name) == []
        for suffix in SIBLINGS:  # empty: nothing to lose, and SQLite makes them so
            assert cache.foreign_siblings(str(tmp_path / "other")) == []
            open(str(tmp_path / "other") + suffix, "wb").close()
        assert cache.foreign_siblings(str(tmp_path / "other")) == []
        assert cache.resolve_cache(name) == name
    finally:
        db.close()
    dif = quiet(pictures, cache=name)
    assert dif.stats["process"]["build"]["cache"]["warnings"] == []
