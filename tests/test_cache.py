"""The incremental thumbnail cache: reuse, invalidation, pruning, damage, concurrency, CLI."""

import os
import sqlite3
import subprocess
import sys
import textwrap
import time

import images
import numpy as np
import pytest

import fastdif
from fastdif.backends import local as local_backend
from fastdif.cli import main
from fastdif.io import cache as cache_module
from fastdif.io import decode as decode_module
from fastdif.io.decode import Decoded, Failure


@pytest.fixture
def pics(tmp_path):
    """Five photos (one exact copy among them) and one file that is not an image."""
    folder = tmp_path / "pics"
    for seed in range(4):
        images.save_photo(seed, folder / f"p{seed}.jpg")
    images.copy_bytes(folder / "p0.jpg", folder / "sub" / "p0_copy.jpg")
    (folder / "broken.png").write_bytes(b"not an image at all")
    return folder


@pytest.fixture
def decoded_paths(monkeypatch):
    """Record the paths each build sends to the decoder (one list per build)."""
    calls = []
    real = local_backend.decode_all

    def recording(paths, *args, **kwargs):
        calls.append(sorted(os.path.basename(p) for p in paths))
        return real(paths, *args, **kwargs)

    monkeypatch.setattr(local_backend, "decode_all", recording)
    return calls


def build(*paths, **kwargs):
    return fastdif.build(*paths, show_progress=False, processes=1, **kwargs)


def assert_same_repository(a, b):
    assert a.paths == b.paths
    np.testing.assert_array_equal(a.tensors, b.tensors)
    np.testing.assert_array_equal(a.shapes, b.shapes)
    np.testing.assert_array_equal(a.file_sizes, b.file_sizes)
    np.testing.assert_array_equal(a.mtimes_ns, b.mtimes_ns)
    assert a.groups == b.groups
    assert a.stats["invalid_files"] == b.stats["invalid_files"]


def cache_stats(dif):
    return dif.stats["process"]["build"]["cache"]


def rows(cache_file):
    with sqlite3.connect(cache_file) as db:
        paths = db.execute("SELECT path FROM thumbnails").fetchall()
    return sorted(os.path.basename(os.fsdecode(p)) for (p,) in paths)


# --------------------------------------------------------------------------- reuse


def test_unchanged_files_are_not_decoded_again(pics, tmp_path, decoded_paths):
    cache_file = tmp_path / "cache.sqlite3"
    first = build(pics, cache=cache_file)
    second = build(pics, cache=cache_file)

    names = ["broken.png", "p0.jpg", "p1.jpg", "p2.jpg", "p3.jpg"]  # p0_copy.jpg: p0's bytes
    assert decoded_paths == [names, []]
    assert cache_stats(first)["decoded"] == 6 and cache_stats(first)["stored"] == 6
    assert cache_stats(second) == {
        "path": str(cache_file),
        "hits": 6,
        "decoded": 0,
        "stored": 0,
        "pruned": 0,
        "warnings": [],
    }
    uncached = build(pics)
    assert "cache" not in uncached.stats["process"]["build"]
    assert_same_repository(second, uncached)
    assert_same_repository(first, uncached)
    assert second.stats["invalid_files"]["logs"] == {
        str(pics / "broken.png"): uncached.stats["invalid_files"]["logs"][str(pics / "broken.png")]
    }
    se = fastdif.search(second, show_progress=False, processes=1)
    assert se.result == {str(pics / "p0.jpg"): [[str(pics / "sub" / "p0_copy.jpg"), 0.0]]}


def test_added_file_alone_is_decoded(pics, tmp_path, decoded_paths):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    images.save_photo(9, pics / "new.png")

    dif = build(pics, cache=cache_file)

    assert decoded_paths[1] == ["new.png"]
    assert cache_stats(dif)["hits"] == 6
    assert_same_repository(dif, build(pics))


def test_modified_file_with_same_size_is_decoded_again(tmp_path, decoded_paths):
    # BMP files of one size have one file size, whatever the pixels.
    folder = tmp_path / "bmp"
    path = images.save_photo(1, folder / "a.bmp")
    images.save_photo(2, folder / "b.bmp")
    cache_file = tmp_path / "cache.sqlite3"
    before = build(folder, cache=cache_file)
    size, mtime = os.path.getsize(path), os.stat(path).st_mtime_ns

    images.save_photo(3, path)
    os.utime(path, ns=(mtime + 10**9, mtime + 10**9))
    after = build(folder, cache=cache_file)

    assert os.path.getsize(path) == size
    assert decoded_paths[1] == ["a.bmp"]
    assert after.mtimes_ns[0] == mtime + 10**9
    assert images.mse(before.tensors[0], after.tensors[0]) > 100
    assert_same_repository(after, build(folder))
    assert rows(cache_file) == ["a.bmp", "b.bmp"]  # replaced, not added


def test_deleted_file_drops_out_and_is_pruned(pics, tmp_path, decoded_paths):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    os.remove(pics / "p2.jpg")

    dif = build(pics, cache=cache_file)

    assert str(pics / "p2.jpg") not in dif.paths and len(dif) == 4
    assert decoded_paths[1] == []
    assert cache_stats(dif)["pruned"] == 1
    assert "p2.jpg" not in rows(cache_file)
    assert_same_repository(dif, build(pics))


def test_renamed_file_appears_under_its_new_name(pics, tmp_path, decoded_paths):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    os.rename(pics / "p1.jpg", pics / "sub" / "renamed.jpg")

    dif = build(pics, cache=cache_file)

    assert str(pics / "sub" / "renamed.jpg") in dif.paths
    assert str(pics / "p1.jpg") not in dif.paths
    assert decoded_paths[1] == ["renamed.jpg"]  # a new path is a new file
    assert cache_stats(dif)["pruned"] == 1
    assert "p1.jpg" not in rows(cache_file) and "renamed.jpg" in rows(cache_file)
    assert_same_repository(dif, build(pics))


def test_overlapping_folders_and_other_spellings_share_the_cache(pics, tmp_path, decoded_paths):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    link = tmp_path / "link"
    os.symlink(pics, link)

    sub = build(pics / "sub", cache=cache_file)
    via_link = build(link, pics / "sub" / "p0_copy.jpg", cache=cache_file)

    assert decoded_paths[1:] == [[], []]
    assert cache_stats(sub)["hits"] == 1 and cache_stats(via_link)["hits"] == 6
    assert_same_repository(via_link, build(link, pics / "sub" / "p0_copy.jpg"))


def test_names_that_are_not_utf8_are_cached(tmp_path, decoded_paths):
    folder = tmp_path / "pics"
    original = images.save_photo(11, folder / "a.png")
    with open(original, "rb") as src:
        data = src.read()
    for name in (b"caf\xe9.png", b"bad\xff.png"):
        with open(os.path.join(os.fsencode(folder), name), "wb") as out:
            out.write(data if name.startswith(b"caf") else b"garbage")
    cache_file = tmp_path / "cache.sqlite3"

    first = build(folder, cache=cache_file)
    second = build(folder, cache=cache_file)

    assert decoded_paths[1] == []
    assert_same_repository(second, first)
    assert os.fsencode(second.paths[1]) == os.path.join(os.fsencode(folder), b"caf\xe9.png")
    os.remove(os.path.join(os.fsencode(folder), b"caf\xe9.png"))
    assert cache_stats(build(folder, cache=cache_file))["pruned"] == 1


def test_only_the_searched_folders_are_pruned(pics, tmp_path):
    cache_file = tmp_path / "cache.sqlite3"
    other = tmp_path / "other"
    images.save_photo(7, other / "x.jpg")
    build(pics, other, cache=cache_file)
    os.remove(other / "x.jpg")

    dif = build(pics, cache=cache_file, recursive=False)

    # Not searched (other) or not walked (pics/sub): rows stay.
    assert cache_stats(dif)["pruned"] == 0
    assert "x.jpg" in rows(cache_file) and "p0_copy.jpg" in rows(cache_file)


# --------------------------------------------------------------------------- keys


def test_px_size_and_decoding_settings_never_mix(pics, tmp_path, decoded_paths, monkeypatch):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file, px_size=50)
    small = build(pics, cache=cache_file, px_size=20)
    again = build(pics, cache=cache_file, px_size=50)

    assert [len(call) for call in decoded_paths] == [5, 5, 0]  # the copy's bytes decoded once
    assert small.px_size == 20 and cache_stats(small)["hits"] == 0
    assert_same_repository(small, build(pics, px_size=20))
    assert_same_repository(again, build(pics, px_size=50))

    # A new thumbnail definition, or a new version of a decoder, decodes again.
    monkeypatch.setattr(decode_module, "THUMBNAIL_VERSION", decode_module.THUMBNAIL_VERSION + 1)
    assert cache_stats(build(pics, cache=cache_file))["hits"] == 0
    monkeypatch.setattr(decode_module.simplejpeg, "__version__", "0.0.1")
    assert cache_stats(build(pics, cache=cache_file))["hits"] == 0


@pytest.mark.parametrize(
    ("failure", "cached"),
    [
        (None, True),
        (Failure.CONTENT, True),
        (Failure.SYSTEM, False),
        (Failure.TIME_LIMIT, False),
        (Failure.SIZE_LIMIT, False),
        (Failure.WORKER_DIED, False),
    ],
)
def test_which_failures_are_cached(failure, cached):
    thumbnail = b"\0" * 12 if failure is None else None
    reason = None if failure is None else "any text: the kind decides, not the words"
    assert cache_module._cacheable(Decoded(thumbnail, 2, 2, reason, failure)) is cached


def test_failures_from_the_system_are_tried_again(pics, tmp_path, decoded_paths, monkeypatch):
    recording = local_backend.decode_all
    denied = Decoded(None, 0, 0, "PermissionError: [Errno 13] Permission denied", Failure.SYSTEM)

    def denying(paths, *args, **kwargs):
        for path, result in zip(paths, recording(paths, *args, **kwargs), strict=True):
            yield denied if path.endswith("p3.jpg") else result

    monkeypatch.setattr(local_backend, "decode_all", denying)
    cache_file = tmp_path / "cache.sqlite3"
    first = build(pics, cache=cache_file)
    second = build(pics, cache=cache_file)

    assert decoded_paths[1] == ["p3.jpg"]  # broken.png's content failure stays cached
    assert cache_stats(first)["stored"] == 5 and cache_stats(second)["hits"] == 5
    logs = second.stats["invalid_files"]["logs"]
    assert logs[str(pics / "p3.jpg")] == denied.reason
    assert logs[str(pics / "broken.png")].startswith("UnidentifiedImageError")


# --------------------------------------------------------------------------- damage


def test_corrupt_cache_file_is_moved_aside_rebuilt_and_reported(pics, tmp_path):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    damaged = damage_all_but_the_schema(cache_file)

    with pytest.warns(cache_module.CacheWarning, match="corrupt"):
        dif = build(pics, cache=cache_file)

    [message] = cache_stats(dif)["warnings"]
    assert "moved it to" in message
    aside = [p for p in os.listdir(tmp_path) if p.startswith("cache.sqlite3.bad-")]
    assert len(aside) == 1 and (tmp_path / aside[0]).read_bytes() == damaged
    assert cache_stats(dif)["decoded"] == 6 and cache_stats(dif)["stored"] == 6
    assert_same_repository(dif, build(pics))
    assert cache_stats(build(pics, cache=cache_file))["hits"] == 6  # rebuilt


def damage_all_but_the_schema(cache_file) -> bytes:
    """Overwrite every page but the first, which names the tables (so the file
    is still recognisably fastdif's cache: only such a file is moved aside)."""
    data = bytearray(cache_file.read_bytes())
    page = int.from_bytes(data[16:18], "big")
    data[page:] = b"\xa5" * (len(data) - page)
    cache_file.write_bytes(bytes(data))
    return bytes(data)


def test_damaged_thumbnail_is_detected_and_decoded_again(pics, tmp_path):
    cache_file = tmp_path / "cache.sqlite3"
    first = build(pics, cache=cache_file)
    index = first.paths.index(str(pics / "p1.jpg"))
    stored = first.tensors[index].astype(np.uint8).tobytes()
    data = bytearray(cache_file.read_bytes())
    at = data.find(stored[:200])
    assert at > 0
    data[at + 100] ^= 0xFF
    cache_file.write_bytes(bytes(data))

    with pytest.warns(cache_module.CacheWarning, match="1 damaged entries"):
        dif = build(pics, cache=cache_file)

    assert cache_stats(dif)["decoded"] == 1 and cache_stats(dif)["hits"] == 5
    assert_same_repository(dif, build(pics))
    assert cache_stats(build(pics, cache=cache_file))["hits"] == 6


@pytest.fixture
def fetches(monkeypatch):
    """Read cached rows 2 at a time; record each batch read, with the files yielded by then."""
    monkeypatch.setattr(cache_module, "READ_BATCH", 2)
    calls, yielded = [], []
    real = cache_module.CachedDecoder._fetch

    def recording(self, db, batch, expected):
        calls.append((len(yielded), list(batch)))
        return real(self, db, batch, expected)

    monkeypatch.setattr(cache_module.CachedDecoder, "_fetch", recording)
    return calls, yielded


def test_hits_are_read_lazily_in_bounded_batches(pics, tmp_path, fetches):
    calls, yielded = fetches
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    images.save_photo(9, pics / "new.png")  # a miss among the hits
    paths = sorted(str(p) for p in pics.rglob("*") if p.is_file())
    ticks = []

    def decode(files, progress):
        return local_backend.decode_all(files, 50, 1, progress)

    decoder = cache_module.CachedDecoder(str(cache_file), 50, decode, lambda: ticks.append(1))

    for item in decoder.decode(paths):
        yielded.append(item)

    # broken.png, new.png, p0.jpg, p1.jpg, p2.jpg, p3.jpg, sub/p0_copy.jpg:
    # each batch is read when its first file is due, never sooner.
    assert calls == [(0, [0, 2]), (3, [3, 4]), (5, [5, 6])]
    assert decoder.stats["hits"] == 6 and decoder.stats["decoded"] == 1
    assert len(ticks) == 7
    assert yielded == list(cache_module.CachedDecoder(None, 50, decode).decode(paths))


def test_damaged_row_found_in_a_later_batch_is_decoded_again(
    pics, tmp_path, decoded_paths, fetches
):
    cache_file = tmp_path / "cache.sqlite3"
    first = build(pics, cache=cache_file)
    images.save_photo(9, pics / "new.png")
    stored = first.tensors[first.paths.index(str(pics / "p3.jpg"))].astype(np.uint8).tobytes()
    data = bytearray(cache_file.read_bytes())
    at = data.find(stored[:200])
    data[at + 100] ^= 0xFF
    cache_file.write_bytes(bytes(data))

    with pytest.warns(cache_module.CacheWarning, match="1 damaged entries") as caught:
        dif = build(pics, cache=cache_file)

    assert len(caught) == 1
    assert [batch for _, batch in fetches[0]] == [[0, 2], [3, 4], [5, 6]]  # not all in one
    assert decoded_paths[1:] == [["new.png"], ["p3.jpg"]]
    assert cache_stats(dif)["hits"] == 5 and cache_stats(dif)["decoded"] == 2
    assert cache_stats(dif)["stored"] == 2
    assert_same_repository(dif, build(pics))
    assert cache_stats(build(pics, cache=cache_file))["hits"] == 7


def test_row_gone_after_the_lookup_is_decoded_again(pics, tmp_path, decoded_paths, monkeypatch):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    lookup = cache_module.CachedDecoder._lookup

    def then_another_build_deletes_a_row(self, infos):
        hits = lookup(self, infos)
        with sqlite3.connect(cache_file) as db:
            db.execute("DELETE FROM thumbnails WHERE path = ?", (os.fsencode(pics / "p2.jpg"),))
        return hits

    monkeypatch.setattr(cache_module.CachedDecoder, "_lookup", then_another_build_deletes_a_row)

    dif = build(pics, cache=cache_file)

    assert decoded_paths[1:] == [[], ["p2.jpg"]]
    assert cache_stats(dif)["hits"] == 5 and cache_stats(dif)["warnings"] == []
    assert_same_repository(dif, build(pics))


def test_cache_of_another_schema_version_is_replaced(pics, tmp_path):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    with sqlite3.connect(cache_file) as db:
        db.execute("UPDATE meta SET value = '999' WHERE name = 'schema_version'")

    with pytest.warns(cache_module.CacheWarning, match="schema version 999"):
        dif = build(pics, cache=cache_file)

    assert cache_stats(dif)["hits"] == 0
    assert_same_repository(dif, build(pics))
    with sqlite3.connect(cache_file) as db:
        assert db.execute("SELECT value FROM meta").fetchall() == [("1",)]


def test_unusable_cache_location_warns_and_builds(pics, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.warns(cache_module.CacheWarning, match="not used"):
        dif = build(pics, cache=blocker / "cache.sqlite3")

    assert_same_repository(dif, build(pics))


# --------------------------------------------------------------------------- concurrency

WORKER = textwrap.dedent(
    """
    import os, sys, time
    import fastdif
    from fastdif.io import cache
    cache.WRITE_BATCH = 2  # many short write transactions, to interleave them
    start, cache_file, *folders = sys.argv[1:]
    open(f"{start}.ready-{os.getpid()}", "w").close()
    while not os.path.exists(start):
        time.sleep(0.005)
    for round in range(3):
        dif = fastdif.build(folders, cache=cache_file, show_progress=False, processes=1)
        stats = dif.stats["process"]["build"]["cache"]
        assert not stats["warnings"], stats
    print(len(dif), stats["hits"])
    """
)


def test_two_processes_share_one_cache(tmp_path):
    folders = [tmp_path / name for name in ("a", "b", "c")]
    for n, folder in enumerate(folders):
        for seed in range(12):
            images.save_photo(100 * n + seed, folder / f"{seed}.png", 96, 72)
    cache_file = tmp_path / "cache.sqlite3"
    start = tmp_path / "start"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(start), str(cache_file), *map(str, pair)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for pair in ((folders[0], folders[1]), (folders[1], folders[2]))
    ]
    # Both processes imported and waiting: their builds start together.
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("start.ready-*"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    start.write_text("go")
    outputs = [proc.communicate(timeout=120) for proc in procs]

    for proc, (out, err) in zip(procs, outputs, strict=True):
        assert proc.returncode == 0, err
        assert out.split() == ["24", "24"]  # the last round found everything cached
    with sqlite3.connect(cache_file) as db:
        assert db.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert db.execute("SELECT count(*) FROM thumbnails").fetchone() == (36,)
    dif = build(*folders, cache=cache_file)
    assert cache_stats(dif)["hits"] == 36
    assert_same_repository(dif, build(*folders))


# --------------------------------------------------------------------------- parameters


def test_cache_parameter(tmp_path, user_cache_folder):
    default = user_cache_folder / "fastdif" / cache_module.CACHE_FILE
    assert cache_module.resolve_cache(True) == str(default)
    assert cache_module.resolve_cache(None) is None
    assert cache_module.resolve_cache(False) is None
    assert cache_module.resolve_cache(tmp_path) == str(tmp_path / cache_module.CACHE_FILE)
    assert cache_module.resolve_cache(tmp_path / "x.db") == str(tmp_path / "x.db")
    with pytest.raises(TypeError, match='"cache" parameter'):
        build(tmp_path, cache=3)


def test_library_does_not_cache_unless_asked(pics, user_cache_folder):
    build(pics)
    assert not os.path.exists(user_cache_folder / "fastdif")
    dif = build(pics, cache=True)
    assert cache_stats(dif)["path"] == str(user_cache_folder / "fastdif" / cache_module.CACHE_FILE)


def test_clear_cache_removes_the_database_files(pics, tmp_path):
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    (tmp_path / "cache.sqlite3-wal").write_bytes(b"")

    removed = cache_module.clear_cache(cache_file)

    assert sorted(removed) == [str(cache_file), str(cache_file) + "-wal"]
    assert cache_module.clear_cache(cache_file) == []


# --------------------------------------------------------------------------- command line


def cli(*args, capsys):
    status = main([*map(str, args), "-p", "false", "-proc", "1"])
    return status, capsys.readouterr()


def test_cli_caches_by_default_in_the_user_cache_folder(pics, tmp_path, capsys, user_cache_folder):
    out = tmp_path / "out"
    out.mkdir()
    default = user_cache_folder / "fastdif" / cache_module.CACHE_FILE

    first = cli(pics, "-Z", out, capsys=capsys)
    second = cli(pics, "-Z", out, capsys=capsys)

    assert first[0] == 0 and second[0] == 0
    assert f"cache {default}: 0 reused, 6 decoded" in first[1].out
    assert f"cache {default}: 6 reused, 0 decoded" in second[1].out
    assert "6 files, 1 invalid, 1 groups, 1 duplicates" in second[1].out


def test_cli_cache_path_no_cache_and_clear_cache(pics, tmp_path, capsys, user_cache_folder):
    out = tmp_path / "out"
    out.mkdir()
    cache_file = tmp_path / "mine.sqlite3"

    assert cli(pics, "-Z", out, "--no-cache", capsys=capsys)[0] == 0
    assert not os.path.exists(user_cache_folder / "fastdif")
    status, printed = cli(pics, "-Z", out, "--cache", cache_file, capsys=capsys)
    assert status == 0 and f"cache {cache_file}: 0 reused" in printed.out
    assert os.path.isfile(cache_file) and not os.path.exists(user_cache_folder / "fastdif")

    written = sorted(os.listdir(out))
    status, printed = cli("--clear-cache", "--cache", cache_file, capsys=capsys)
    assert status == 0 and str(cache_file) in printed.out
    assert not os.path.exists(cache_file)
    assert sorted(os.listdir(out)) == written  # cleared, searched nothing

    with pytest.raises(SystemExit) as exit_info:
        main([str(pics), "--cache", str(cache_file), "--no-cache"])
    assert exit_info.value.code == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_cli_reports_a_corrupt_cache_on_one_line(pics, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    cache_file = tmp_path / "cache.sqlite3"
    build(pics, cache=cache_file)
    damage_all_but_the_schema(cache_file)

    status, printed = cli(pics, "-Z", out, "--cache", cache_file, capsys=capsys)

    assert status == 0
    [line] = printed.err.splitlines()
    assert line.startswith("fastdif: warning: cache ") and "corrupt" in line
