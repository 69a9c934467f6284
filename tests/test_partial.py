"""The local streamed build (``build(..., store=...)``): same repository, resume, progress."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from faults import counting_decoder
from images import copy_bytes, photo_image, reencode, rotated, save, save_photo

import fastdif
from fastdif import progress
from fastdif.cli import main
from fastdif.io import decode, partial
from fastdif.io.partial import JOURNAL_FILE, PartialBuild, PartialBuildError, partial_folder
from fastdif.pipelines import build as building

ARRAYS = ("tensors", "shapes", "file_sizes", "mtimes_ns", "inodes")


def same_repository(a, b):
    """Assert two repositories hold the same images, thumbnails, metadata and block means."""
    assert a.paths == b.paths
    for name in ARRAYS:
        assert np.array_equal(getattr(a, name), getattr(b, name)), name
    assert np.array_equal(a.block_means.grids, b.block_means.grids)
    assert np.array_equal(a.block_means.means, b.block_means.means)
    assert a.groups == b.groups and a.folders == b.folders
    assert a.stats["invalid_files"] == b.stats["invalid_files"]


@pytest.fixture
def mixed(tmp_path):
    """Photos, textures as PNG, copies, a rotation, an unreadable file, two sub-folders."""
    root = tmp_path / "photos"
    for k in range(12):
        folder = root / ("a" if k % 2 else "b")
        save_photo(k, folder / f"p{k:02d}.jpg", width=120 + 8 * k, height=90, quality=90)
    save(photo_image(3, 200, 100).effect_spread(4), root / "a" / "texture.png")
    copy_bytes(root / "a" / "p01.jpg", root / "b" / "copy.jpg")
    reencode(root / "a" / "p03.jpg", root / "b" / "again.jpg", quality=70)
    rotated(root / "b" / "p02.jpg", root / "a" / "turned.png", 90)
    (root / "a" / "broken.jpg").write_bytes(b"\xff\xd8 not really")
    return str(root)


def test_streamed_build_is_the_in_memory_build(mixed, tmp_path):
    memory = fastdif.build(mixed, show_progress=False, processes=1)
    store = tmp_path / "store"
    streamed = fastdif.build(mixed, show_progress=False, processes=1, store=store)
    assert streamed.tensors.dtype == np.uint8 and memory.tensors.dtype == np.float32
    same_repository(memory, streamed)
    same_repository(streamed, fastdif.load(store))
    assert sorted(os.listdir(tmp_path)) == ["photos", "store"]  # no journal or partial left
    assert JOURNAL_FILE not in os.listdir(store)
    assert streamed.stats["process"]["build"]["store"] == {
        "path": str(store),
        "resumed": 0,
        "reused": 0,
        "decoded": len(memory) + 1,
    }
    for similarity in ("duplicates", "similar"):
        want = fastdif.search(memory, similarity, show_progress=False, processes=1)
        got = fastdif.search(streamed, similarity, show_progress=False, processes=1)
        assert got.result == want.result and got.lower_quality == want.lower_quality
        assert want.result  # the copies were found


def test_streamed_build_in_folder_and_through_the_pool(mixed, tmp_path):
    memory = fastdif.build(mixed, show_progress=False, processes=2, in_folder="subfolders")
    streamed = fastdif.build(
        mixed, show_progress=False, processes=2, in_folder="subfolders", store=tmp_path / "s"
    )
    same_repository(memory, streamed)
    assert streamed.in_folder == "subfolders"


def test_a_store_is_never_overwritten(mixed, tmp_path):
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match='"store"'):
        fastdif.build(mixed, show_progress=False, store=tmp_path / "taken")
    assert (tmp_path / "taken" / "mine.txt").read_text() == "keep me"
    assert not os.path.exists(partial_folder(str(tmp_path / "taken")))


KILLED_BUILD = """
import sys, time, fastdif
from fastdif.io import decode
import faults
real = decode.decode_file

def napping(path, px_size, time_limit=None):
    time.sleep(0.3)
    return real(path, px_size, time_limit)

# nap* files take 0.3 s each: in the workers (which import faults), or here.
decode.decode_file = faults.decode if sys.argv[3] != "1" else napping
fastdif.build(sys.argv[1], store=sys.argv[2], show_progress=False, processes=int(sys.argv[3]))
"""


def journaled(store) -> dict:
    """The files recorded in the journal of ``store``'s unfinished build."""
    return partial._read_journal(os.path.join(partial_folder(str(store)), JOURNAL_FILE))


def run_and_stop(folder, store, processes, how, after_records):
    """Run a build in a new process and stop it by signal ``how`` once the journal has records."""
    env = dict(os.environ, PYTHONPATH=os.path.dirname(__file__))
    child = subprocess.Popen(
        [sys.executable, "-c", KILLED_BUILD, folder, str(store), str(processes)],
        env=env,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while len(journaled(store)) < after_records:
        assert child.poll() is None, child.stderr.read().decode()
        assert time.monotonic() < deadline
        time.sleep(0.05)
    child.send_signal(how)
    child.wait(60)
    return child


@pytest.mark.slow
@pytest.mark.parametrize(
    ("how", "processes"),
    [(signal.SIGKILL, 1), (signal.SIGKILL, 2), (signal.SIGINT, 1), (signal.SIGINT, 2)],
)
def test_a_killed_build_resumes_and_decodes_only_the_rest(tmp_path, monkeypatch, how, processes):
    folder = tmp_path / "naps"
    for k in range(40):
        save_photo(k, folder / f"nap{k:02d}.png", width=64 + k, height=48)
    save_photo(3, folder / "nap_copy.png", width=67, height=48)
    (folder / "nap_bad.jpg").write_bytes(b"broken")
    store = tmp_path / "store"
    child = run_and_stop(str(folder), store, processes, how, after_records=8)
    assert child.returncode != 0  # it was stopped, not finished
    assert not store.exists()
    first = journaled(store)
    assert 8 <= len(first) < 42
    seen = counting_decoder(monkeypatch)
    resumed = fastdif.build(str(folder), store=store, show_progress=False, processes=1)
    done = resumed.stats["process"]["build"]["store"]
    assert done["resumed"] == len(first) and done["decoded"] == 42 - len(first) == len(seen)
    assert not set(seen) & set(first)  # nothing finished is decoded again
    monkeypatch.undo()
    whole = fastdif.build(str(folder), show_progress=False, processes=1)
    same_repository(whole, resumed)
    same_repository(whole, fastdif.load(store))
    assert not os.path.exists(partial_folder(str(store)))


def interrupted_build(folder, store, stop_after):
    """Run a build of ``folder`` into ``store`` in this process and stop it with Ctrl-C."""
    count = []

    def tick(*_):
        count.append(1)
        if len(count) == stop_after:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        api_build_with_tick(folder, store, tick)


def api_build_with_tick(folder, store, tick):
    real = decode.decode_file

    def ticking(path, px_size, time_limit=None):
        tick()
        return real(path, px_size, time_limit)

    decode.decode_file = ticking
    try:
        return fastdif.build(folder, store=store, show_progress=False, processes=1)
    finally:
        decode.decode_file = real


def test_resume_after_files_changed_appeared_and_vanished(mixed, tmp_path, monkeypatch):
    store = tmp_path / "store"
    interrupted_build(mixed, store, stop_after=12)
    first = journaled(store)
    assert len(first) == 12  # the twelfth decode was interrupted; copy.jpg needs none
    changed, vanished = sorted(first)[0], sorted(first)[1]
    save_photo(99, changed, width=100, height=100)  # new content, later mtime
    os.remove(vanished)
    save_photo(98, os.path.join(mixed, "a", "new.jpg"))
    seen = counting_decoder(monkeypatch)
    resumed = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    assert changed in seen and vanished not in seen
    assert not set(seen) & (set(first) - {changed})
    assert resumed.stats["process"]["build"]["store"]["resumed"] == len(first) - 2
    monkeypatch.undo()
    same_repository(fastdif.build(mixed, show_progress=False, processes=1), resumed)
    assert not os.path.exists(partial_folder(str(store)))


def test_a_torn_journal_tail_is_decoded_again(mixed, tmp_path):
    store = tmp_path / "store"
    interrupted_build(mixed, store, stop_after=9)
    journal = os.path.join(partial_folder(str(store)), JOURNAL_FILE)
    data = open(journal, "rb").read()
    whole = journaled(store)
    with open(journal, "wb") as out:  # the last record cut, then garbage
        out.write(data[:-5] + b"\x00" * 50)
    assert len(journaled(store)) == len(whole) - 1
    resumed = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    assert resumed.stats["process"]["build"]["store"]["resumed"] == len(whole) - 1
    same_repository(fastdif.build(mixed, show_progress=False, processes=1), resumed)


def test_an_unfinished_build_with_other_settings_is_not_resumed(mixed, tmp_path):
    store = tmp_path / "store"
    interrupted_build(mixed, store, stop_after=5)
    with pytest.raises(PartialBuildError, match="other settings.*delete"):
        fastdif.build(mixed, store=store, px_size=32, show_progress=False, processes=1)
    assert len(journaled(store)) == 4  # left as it was
    resumed = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    assert resumed.stats["process"]["build"]["store"]["resumed"] == 4


def test_two_builds_never_write_one_store(tmp_path):
    target = str(tmp_path / "store")
    first = PartialBuild(target, 50, "settings")
    try:
        with pytest.raises(PartialBuildError, match="Another build"):
            PartialBuild(target, 50, "settings")
    finally:
        first.close()
    PartialBuild(target, 50, "settings").close()  # free again


def test_a_store_build_reads_and_fills_the_cache(mixed, tmp_path):
    cache = tmp_path / "cache.db"
    one = fastdif.build(mixed, store=tmp_path / "one", cache=cache, show_progress=False)
    two = fastdif.build(mixed, store=tmp_path / "two", cache=cache, show_progress=False)
    assert two.stats["process"]["build"]["cache"]["decoded"] == 0
    same_repository(one, two)


def test_an_in_memory_build_too_large_asks_for_a_store(mixed, tmp_path, monkeypatch):
    count = len(fastdif.build(mixed, show_progress=False)) + 1  # the broken file counts
    needed = count * 50 * 50 * 3 * 4
    monkeypatch.setattr(building, "_physical_memory", lambda: 2 * needed - 1)
    with pytest.raises(MemoryError, match='store="FOLDER"'):
        fastdif.build(mixed, show_progress=False)
    assert fastdif.build(mixed, show_progress=False, store=tmp_path / "s")  # streams instead
    monkeypatch.setattr(building, "_physical_memory", lambda: 2 * needed)
    assert fastdif.build(mixed, show_progress=False)
    monkeypatch.setattr(building, "_physical_memory", lambda: None)  # unknown: no limit
    assert fastdif.build(mixed, show_progress=False)


def test_long_runs_log_progress_lines_when_stderr_is_not_a_terminal(mixed, capsys, monkeypatch):
    fastdif.build(mixed, processes=1)  # a short run: quiet
    assert capsys.readouterr().err == ""
    monkeypatch.setattr(progress, "LOG_AFTER", 0.0)
    monkeypatch.setattr(progress, "LOG_EVERY", 0.0)
    fastdif.build(mixed, processes=1)
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.startswith("fastdif: Building ") for line in lines)
    assert "files (" in lines[-1] and " files/s, " in lines[-1] and lines[-1].endswith(" left")
    fastdif.build(mixed, processes=1, show_progress=False)
    assert capsys.readouterr().err == ""


def test_command_line_store(mixed, tmp_path, capsys):
    out_memory, out_store = tmp_path / "memory", tmp_path / "streamed"
    store = tmp_path / "store"
    assert main([mixed, "-Z", str(out_memory), "-q", "-s", "similar", "--no-cache"]) == 0
    assert main([mixed, "-Z", str(out_store), "-q", "-s", "similar", "--store", str(store)]) == 0
    same_repository(fastdif.build(mixed, show_progress=False), fastdif.load(store))

    def results(folder):
        (name,) = [f for f in os.listdir(folder) if f.endswith("_results.json")]
        return (folder / name).read_text()

    assert results(out_store) == results(out_memory) != "{}"
    # The store resumes by itself: the default cache is not written.
    assert not os.path.exists(os.path.join(os.environ["XDG_CACHE_HOME"], "fastdif"))
    # The same command again updates the store: nothing changed, nothing decoded
    # (the broken file, never stored, is tried again).
    capsys.readouterr()
    assert main([mixed, "-Z", str(out_store), "-p", "false", "--store", str(store)]) == 0
    assert f"store {store}: reused 16, decoded 1" in capsys.readouterr().out
    same_repository(fastdif.build(mixed, show_progress=False), fastdif.load(store))


def test_command_line_ctrl_c_says_how_to_resume(mixed, tmp_path, monkeypatch, capsys):
    def stopped(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("fastdif.cli.build", stopped)
    store = tmp_path / "store"
    assert main([mixed, "-Z", str(tmp_path), "-q", "--store", str(store)]) == 130
    err = capsys.readouterr().err
    assert "interrupted; run the same command again to resume the build of" in err
    assert str(store) in err
    assert main([mixed, "-Z", str(tmp_path), "-q"]) == 130
    assert capsys.readouterr().err.strip().endswith("interrupted")


# ---------------------------------------------------------------- a store you keep


def test_a_finished_store_is_updated_by_the_same_build(mixed, tmp_path, monkeypatch):
    """New and changed files decoded, vanished ones dropped, the rest copied from the store."""
    store = tmp_path / "store"
    first = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    paths = list(first.paths)
    del first
    changed, vanished = paths[0], paths[1]
    save_photo(99, changed, width=100, height=100)  # new content, later mtime
    os.remove(vanished)
    added = save_photo(98, os.path.join(mixed, "a", "new.jpg"))
    seen = counting_decoder(monkeypatch)
    updated = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    broken = os.path.join(mixed, "a", "broken.jpg")  # invalid: not in the store, tried again
    assert sorted(seen) == sorted([changed, added, broken])
    assert updated.stats["process"]["build"]["store"] == {
        "path": str(store),
        "resumed": 0,
        "reused": len(paths) - 2,
        "decoded": 3,
    }
    monkeypatch.undo()
    same_repository(fastdif.build(mixed, show_progress=False, processes=1), updated)
    same_repository(updated, fastdif.load(store))
    assert sorted(os.listdir(tmp_path)) == ["photos", "store"]  # nothing aside or partial left


def test_an_update_killed_at_any_point_leaves_the_old_store_and_resumes(mixed, tmp_path):
    store = tmp_path / "store"
    fastdif.build(mixed, store=store, show_progress=False, processes=1)
    before = fastdif.load(store)
    for k in range(6):  # six files change: the update has work to stop in
        save_photo(50 + k, os.path.join(mixed, "b", f"p{2 * k:02d}.jpg"), width=96, height=96)
    interrupted_build(mixed, store, stop_after=3)
    same_repository(before, fastdif.load(store))  # untouched until the update is published
    updated = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    done = updated.stats["process"]["build"]["store"]
    # Two changed files were decoded before the stop, and copies journaled with them.
    assert done["decoded"] == 4 + 1  # the broken file: again
    assert done["resumed"] >= 2 and done["resumed"] + done["reused"] == len(updated) - 4
    same_repository(fastdif.build(mixed, show_progress=False, processes=1), updated)
    assert sorted(os.listdir(tmp_path)) == ["photos", "store"]


def test_an_update_never_follows_a_link_at_the_store(mixed, tmp_path):
    real = tmp_path / "real"
    fastdif.build(mixed, store=real, show_progress=False, processes=1)
    link = tmp_path / "link"
    link.symlink_to(real)
    before = sorted(os.listdir(real))
    with pytest.raises(FileExistsError, match="is not a fastdif store"):
        fastdif.build(mixed, store=link, show_progress=False, processes=1)
    assert os.path.islink(link) and sorted(os.listdir(real)) == before
    assert not os.path.exists(partial_folder(str(link)))


def test_a_store_of_other_settings_is_never_replaced(mixed, tmp_path):
    store = tmp_path / "store"
    fastdif.build(mixed, store=store, px_size=32, show_progress=False, processes=1)
    with pytest.raises(FileExistsError, match="32 px"):
        fastdif.build(mixed, store=store, show_progress=False, processes=1)
    assert fastdif.load(store).px_size == 32
    assert not os.path.exists(partial_folder(str(store)))


def test_a_store_given_as_an_input_is_loaded_as_one(mixed, tmp_path, monkeypatch, capsys):
    store = tmp_path / "store"
    built = fastdif.build(mixed, store=store, show_progress=False, processes=1)
    want = fastdif.search(built, "similar", show_progress=False, processes=1)
    seen = counting_decoder(monkeypatch)
    again = fastdif.build(str(store), show_progress=False, processes=1)
    assert seen == []
    assert not [p for p in again.stats["invalid_files"]["logs"] if p.endswith(".npy")]
    assert again.paths == built.paths
    saved = again.stats["process"]["build"]["saved"]
    assert saved == {"paths": [str(store)], "reused": len(built), "decoded": 0}
    got = fastdif.search(again, "similar", show_progress=False, processes=1)
    assert got.result == want.result
    # Mixed with a folder: one search of both, the new file matching a stored one.
    new = tmp_path / "new"
    copy_bytes(os.path.join(mixed, "a", "p01.jpg"), new / "p01_copy.jpg")
    both = fastdif.build(str(store), str(new), show_progress=False, processes=1)
    assert seen == [str(new / "p01_copy.jpg")]
    assert len(both) == len(built) + 1 and list(both.paths) == sorted(both.paths)
    assert both.stats["process"]["build"]["saved"]["decoded"] == 1
    group = fastdif.search(both, show_progress=False, processes=1).result
    assert any(str(new / "p01_copy.jpg") in [m for m, _ in members] + [key]
               for key, members in group.items())  # fmt: skip
    monkeypatch.undo()
    assert main([str(store), "-Z", str(tmp_path / "out"), "-p", "false"]) == 0
    assert f"saved repositories {store}: reused {len(built)}, decoded 0" in capsys.readouterr().out
