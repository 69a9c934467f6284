"""Reliability: bad inputs, dying and hanging decoders, Ctrl-C, and actions that never lose data.

Each test builds its own files in tmp_path. Fault tests substitute the
misbehaving decoder of ``faults.py`` for ``fastdif.io.decode.decode_file``.
"""

import errno
import json
import os
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import zlib

import faults
import images
import numpy as np
import pytest
from faults import other_filesystem
from PIL import Image

import fastdif
import fastdif.pipelines.build
from fastdif import actions
from fastdif.backends import pool as decode_pool
from fastdif.cli import main
from fastdif.io import decode

pytestmark = [pytest.mark.slow]

TESTS = os.path.dirname(__file__)


def png_header_only(width, height):
    """A PNG that declares ``width`` x ``height`` but holds one tiny compressed row."""

    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    idat = zlib.compress(b"\x00" + b"\x00" * 30)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")


def one_line(reason):
    return isinstance(reason, str) and reason and "\n" not in reason


# --------------------------------------------------------------------------- bad files


@pytest.fixture
def bad_folder(tmp_path):
    """A folder of bad and odd files; returns (folder, {name: path}, bad names)."""
    folder = tmp_path / "mixed"
    p = {}
    p["good"] = images.save_photo(1, folder / "good.jpg")
    p["good_copy"] = images.copy_bytes(p["good"], folder / "good_copy.jpg")
    p["png_named_jpg"] = images.save_photo(2, folder / "png_named.jpg", format="PNG")
    p["png_twin"] = images.save_photo(2, folder / "png_twin.png")
    p["one_pixel"] = images.save(np.full((1, 1, 3), 90, np.uint8), folder / "one_pixel.png")
    p["wide"] = images.save(images.photo(3, 20000, 1), folder / "wide.png")
    p["tall_jpeg"] = images.save(images.photo(4, 1, 20000), folder / "tall.jpg")
    bad = {
        "zero.jpg": b"",
        "text.jpg": b"just some text\n",
        "script.jpg": b"#!/bin/sh\necho hello\n",
        # The start of a real executable (ELF or whatever runs this test).
        "program.jpg": open(sys.executable, "rb").read(4096),
        "bomb.png": png_header_only(30000, 30000),
    }
    for ext in ("jpg", "png"):
        full = images.save_photo(5, folder / f"full_{ext}.{ext}")
        data = open(full, "rb").read()
        os.remove(full)
        bad[f"truncated.{ext}"] = data[: len(data) // 2]
    for name, data in bad.items():
        (folder / name).write_bytes(data)
        p[name] = str(folder / name)
    return folder, p, set(bad)


@pytest.mark.parametrize("pool", [False, True], ids=["in-process", "workers"])
def test_bad_files_are_reported_and_the_rest_completes(bad_folder, find, groups, monkeypatch, pool):
    folder, p, bad = bad_folder
    if pool:  # the same files through the worker processes
        monkeypatch.setattr(decode_pool, "MIN_FILES_FOR_POOL", 2)

    se = find(folder, processes=2 if pool else 1)

    logs = se.stats["invalid_files"]["logs"]
    assert set(logs) == {p[name] for name in bad}
    assert all(one_line(reason) for reason in logs.values())
    assert logs[p["bomb.png"]].startswith("Decompression bomb refused")
    assert se.stats["total_files"] == len(p)
    assert groups(se.result) == {
        frozenset([p["good"], p["good_copy"]]),
        frozenset([p["png_named_jpg"], p["png_twin"]]),
    }
    dif = fastdif.build(folder, show_progress=False, processes=1)
    shapes = dict(zip(dif.paths, dif.shapes.tolist(), strict=True))
    assert shapes[p["one_pixel"]] == [1, 1]
    assert shapes[p["wide"]] == [20000, 1]
    assert shapes[p["tall_jpeg"]] == [1, 20000]
    assert np.isfinite(dif.tensors).all()
    json.dumps(se.stats)


def test_decompression_bomb_is_refused_before_any_pixel_is_decoded(tmp_path, monkeypatch):
    path = tmp_path / "bomb.png"
    path.write_bytes(png_header_only(20000, 10000))  # 200 MP: 600 MB if decoded

    def no_decoding(*args, **kwargs):
        raise AssertionError("a bomb must be refused before decoding")

    monkeypatch.setattr(Image.Image, "load", no_decoding)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", None)  # a caller switched Pillow's check off

    decoded = decode.decode_file(str(path), 50)

    assert decoded.thumbnail is None
    assert decoded.reason.startswith("Decompression bomb refused")
    assert str(decode.MAX_PIXELS) in decoded.reason


def test_images_between_pillows_warning_and_error_limits_are_decoded(tmp_path, monkeypatch):
    # Pillow warns above MAX_IMAGE_PIXELS and refuses above twice that; a
    # warning alone (a 100 MP camera photo by default) is not a refusal.
    path = images.save_photo(6, tmp_path / "big.png", 200, 150)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20_000)  # 30,000 pixels: warning range
    assert decode.decode_file(path, 20).reason is None
    monkeypatch.setattr(decode, "MAX_PIXELS", 29_999)
    assert decode.decode_file(path, 20).reason.startswith("Decompression bomb refused")


def test_wrong_extension_is_read_with_limit_extensions_false(tmp_path, find, groups):
    jpeg = images.save_photo(7, tmp_path / "photo.jpg")
    disguised = images.copy_bytes(jpeg, tmp_path / "photo.backup")
    misnamed = images.copy_bytes(jpeg, tmp_path / "photo_as.png")  # JPEG bytes, .png name

    limited = find(tmp_path)
    assert groups(limited.result) == {frozenset([jpeg, misnamed])}
    assert limited.stats["invalid_files"]["logs"] == {disguised: "Unsupported file type"}

    everything = find(tmp_path, limit_extensions=False)
    assert groups(everything.result) == {frozenset([jpeg, misnamed, disguised])}
    assert everything.stats["invalid_files"]["count"] == 0


def test_exif_orientations_one_to_eight_are_duplicates_of_the_upright_picture(tmp_path, find):
    upright = images.photo_image(8, 200, 150)
    key = images.save(upright, tmp_path / "a_upright.png", compress_level=0)  # largest: the key
    twins = []
    for orientation in range(1, 9):
        stored = upright if orientation == 1 else upright.transpose(images.EXIF_STORED[orientation])
        exif = Image.Exif()
        exif[0x0112] = orientation
        twins.append(images.save(stored, tmp_path / f"b_{orientation}.png", exif=exif.tobytes()))

    # rotate=False: only correctly oriented thumbnails can match, and flips
    # (2, 4, 5, 7) never match by rotation anyway.
    se = find(tmp_path, similarity="duplicates", rotate=False)

    assert se.result == {key: [[twin, 0.0] for twin in twins]}


def test_multi_page_tiff_uses_the_first_page(tmp_path, find):
    first, second = images.photo_image(9, 80, 60), images.photo_image(10, 80, 60)
    tiff = str(tmp_path / "pages.tif")
    first.save(tiff, save_all=True, append_images=[second])
    with Image.open(tiff) as opened:
        assert opened.n_frames == 2
    page_one = images.save(first, tmp_path / "page_one.png")
    images.save(second, tmp_path / "page_two.png")

    se = find(tmp_path)

    assert {frozenset([k, *(m for m, _ in v)]) for k, v in se.result.items()} == {
        frozenset([tiff, page_one])
    }


def test_names_with_spaces_non_ascii_and_non_utf8_bytes(tmp_path, find, monkeypatch, capsys):
    folder = tmp_path / "odd names"
    original = images.save_photo(11, folder / "a photo.png")
    names = [b"b \xc3\xa9t\xc3\xa9 \xe5\x86\x99\xe7\x9c\x9f.png", b"c caf\xe9 \xff.png"]
    for raw in names:  # the second is Latin-1: not valid UTF-8
        with open(os.path.join(os.fsencode(folder), raw), "wb") as out:
            out.write(open(original, "rb").read())
    expected = [os.fsdecode(os.path.join(os.fsencode(folder), raw)) for raw in names]

    se = find(folder)

    assert se.result == {original: [[expected[0], 0.0], [expected[1], 0.0]]}
    # The CLI writes JSON that gives back the exact bytes, and prints the summary.
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main([str(folder), "-Z", str(out), "-p", "false", "-proc", "1", "--no-cache"]) == 0
    [results] = [f for f in os.listdir(out) if f.endswith("_results.json")]
    text = (out / results).read_bytes().decode("utf-8")  # valid UTF-8
    assert "\\udcff" in text
    written = json.loads(text)
    members = [os.fsencode(path) for path, _ in written[original]]
    assert [os.path.basename(m) for m in members] == names
    assert "1 groups, 2 duplicates" in capsys.readouterr().out

    # Moving and undoing work on such names too.
    report = se.move_to(tmp_path / "dupes")
    assert report["failed"] == {}
    undone = fastdif.undo_move(report["manifest"])
    assert undone["failed"] == {}
    assert sorted(os.listdir(os.fsencode(folder))) == sorted([b"a photo.png", *names])


def test_cli_with_its_default_cache_reads_non_utf8_names(tmp_path, monkeypatch):
    # The thumbnail cache (on by default in the CLI) stores such paths too.
    folder = tmp_path / "pics"
    original = images.save_photo(11, folder / "a.png")
    with open(os.path.join(os.fsencode(folder), b"caf\xe9.png"), "wb") as out:
        out.write(open(original, "rb").read())
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert main([str(folder), "-Z", str(tmp_path), "-p", "false", "-proc", "1"]) == 0


def test_very_long_paths(tmp_path, find):
    # A deep folder with names of 255 bytes (the usual limit for one name),
    # then a folder nested beyond PATH_MAX (4096 bytes), made with dir_fd.
    deep = tmp_path
    for k in range(6):
        deep = deep / (f"{k}" * 200)
    long_name = "p" * 251 + ".png"
    original = images.save_photo(12, deep / long_name)
    copy = images.copy_bytes(original, tmp_path / "short.png")
    fd = os.open(deep, os.O_RDONLY)
    try:
        for _ in range(16):
            os.mkdir("d" * 250, dir_fd=fd)
            inner = os.open("d" * 250, os.O_RDONLY, dir_fd=fd)
            os.close(fd)
            fd = inner
    finally:
        os.close(fd)

    se = find(tmp_path)

    assert se.result == {copy: [[original, 0.0]]} or se.result == {original: [[copy, 0.0]]}
    logs = se.stats["invalid_files"]["logs"]
    assert len(logs) == 1  # the first folder whose path is too long, and nothing below it
    [(folder, reason)] = logs.items()
    assert len(os.fsencode(folder)) > 4000 and "too long" in reason

    # Moving a 255-byte name next to a file of that name needs a longer name:
    # the move fails cleanly and the file stays where it was.
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / long_name).write_bytes(b"taken")
    lower = se.lower_quality[0]
    report = se.move_to(dest)
    if os.path.basename(lower) == long_name:
        assert list(report["failed"]) == [lower] and os.path.isfile(lower)
    else:
        assert report["failed"] == {}


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("tensors.npy", "pipe"),
        ("mtimes_ns.npy", "pipe"),
        ("repository.json", "pipe"),
        ("shapes.npy", "device"),
    ],
)
def test_load_refuses_a_pipe_or_device_instead_of_hanging(tmp_path, build, name, kind):
    a = images.save_photo(14, tmp_path / "pics" / "a.png")
    images.copy_bytes(a, tmp_path / "pics" / "b.png")
    target = build(tmp_path / "pics").save(tmp_path / "r")
    path = os.path.join(target, name)
    os.unlink(path)
    if kind == "pipe":
        os.mkfifo(path)  # opening it to read blocks until a writer comes
    else:
        os.symlink("/dev/zero", path)  # endless
    outcome = []

    def load():
        try:
            outcome.append(fastdif.load(target))
        except BaseException as exc:
            outcome.append(exc)

    loader = threading.Thread(target=load, daemon=True)
    loader.start()
    loader.join(20)
    hung = loader.is_alive()
    if hung and kind == "pipe":  # let the blocked open go
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
        loader.join(5)
    assert not hung
    [error] = outcome
    assert isinstance(error, fastdif.io.store.RepositoryFormatError), error
    assert name in str(error) and "not a regular file" in str(error)


def test_unreadable_file_and_folder():
    # Root reads everything: to deny for real, a forked child drops to "nobody"
    # (its interpreter and modules are already loaded) before it builds. The
    # folder is outside pytest's private (0700) temporary folder.
    root = tempfile.mkdtemp(prefix="fastdif-perm-")
    try:
        os.chmod(root, 0o755)
        a = images.save_photo(13, os.path.join(root, "a.png"))
        a_copy = images.copy_bytes(a, os.path.join(root, "a_copy.png"))
        secret = images.copy_bytes(a, os.path.join(root, "secret.png"))
        locked = os.path.join(root, "locked")
        images.copy_bytes(a, os.path.join(locked, "inside.png"))
        fastdif.build(root, show_progress=False, processes=1)  # load every module first
        os.chmod(secret, 0o000)
        os.chmod(locked, 0o000)
        result = json.loads(build_in_child_as_nobody(root))
    finally:
        for path in (os.path.join(root, "secret.png"), os.path.join(root, "locked")):
            if os.path.exists(path):
                os.chmod(path, 0o755)
        shutil.rmtree(root)
    assert result["paths"] == [a, a_copy]
    assert set(result["logs"]) == {secret, locked}
    assert "Permission denied" in result["logs"][secret]
    assert result["logs"][locked] == "Cannot read folder: Permission denied"


def build_in_child_as_nobody(root):
    """JSON of the paths and invalid files a forked child (uid 65534 if root) builds."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(read_end)
            if os.geteuid() == 0:
                os.setgroups([])
                os.setresgid(65534, 65534, 65534)
                os.setresuid(65534, 65534, 65534)
            dif = fastdif.build(root, show_progress=False, processes=1)
            data = {"paths": dif.paths, "logs": dif.stats["invalid_files"]["logs"]}
        except BaseException as exc:  # reported to the parent's assertion
            data = {"error": repr(exc)}
        finally:
            os.write(write_end, json.dumps(data).encode())
            os._exit(status if "error" in data else 0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, data
    return data


@pytest.mark.parametrize("pool", [False, True], ids=["in-process", "workers"])
def test_files_deleted_or_replaced_between_discovery_and_decoding(
    tmp_path, find, monkeypatch, pool
):
    a = images.save_photo(14, tmp_path / "a.png")
    b = images.save_photo(15, tmp_path / "b.png")
    gone = images.save_photo(16, tmp_path / "gone.png")
    garbage = images.save_photo(17, tmp_path / "garbage.png")
    swapped = images.save_photo(18, tmp_path / "swapped.png")
    real_discover = fastdif.pipelines.build.discover

    def discover_then_change(*args, **kwargs):
        found = real_discover(*args, **kwargs)
        assert {gone, garbage, swapped} <= set(found.files)
        os.remove(gone)
        with open(garbage, "wb") as out:
            out.write(b"\x89PNG\r\n\x1a\n" + b"\x00" * 100)
        images.copy_bytes(b, swapped)  # now a copy of b
        return found

    monkeypatch.setattr(fastdif.pipelines.build, "discover", discover_then_change)
    if pool:
        monkeypatch.setattr(decode_pool, "MIN_FILES_FOR_POOL", 2)

    se = find(tmp_path, processes=2 if pool else 1)

    logs = se.stats["invalid_files"]["logs"]
    assert set(logs) == {gone, garbage}
    assert "No such file" in logs[gone]
    assert se.result == {b: [[swapped, 0.0]]}
    assert a not in se.lower_quality


def test_one_image_and_only_invalid_files_give_clean_results(tmp_path, find, monkeypatch):
    one = tmp_path / "one"
    images.save_photo(19, one / "only.jpg")
    invalid = tmp_path / "invalid"
    invalid.mkdir()
    (invalid / "a.jpg").write_bytes(b"")
    (invalid / "b.png").write_text("text")
    (invalid / "c.txt").write_text("text")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    for folder, n_valid, n_invalid in ((one, 1, 0), (invalid, 0, 3)):
        se = find(folder)
        assert se.result == {} and se.lower_quality == []
        assert se.stats["total_files"] == n_valid + n_invalid
        assert se.stats["invalid_files"]["count"] == n_invalid
        assert se.stats["process"]["search"]["files_searched"] == n_valid
        assert se.delete(silent_del=True) == {"deleted": [], "failed": {}}
        moved = se.move_to(tmp_path / "dest")
        assert moved == {"moved": {}, "failed": {}, "manifest": None}
        out = tmp_path / f"out_{folder.name}"
        out.mkdir()
        assert main([str(folder), "-Z", str(out), "-p", "false", "-proc", "1"]) == 0
        assert len(os.listdir(out)) == 3
    assert not (tmp_path / "dest").exists() or os.listdir(tmp_path / "dest") == []


# --------------------------------------------------------------------------- parameters


@pytest.fixture
def small_result(tmp_path, find):
    a = images.save_photo(20, tmp_path / "src" / "a.png")
    images.copy_bytes(a, tmp_path / "src" / "b.png")
    return find(tmp_path / "src")


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"processes": "2"}, TypeError, "processes"),
        ({"processes": 2.0}, TypeError, "processes"),
        ({"processes": True}, TypeError, "processes"),
        ({"px_size": True}, TypeError, "px_size"),
        ({"px_size": 50.0}, TypeError, "px_size"),
        ({"px_size": None}, TypeError, "px_size"),
        ({"recursive": None}, TypeError, "recursive"),
        ({"in_folder": None}, TypeError, "in_folder"),
        ({"limit_extensions": 0}, TypeError, "limit_extensions"),
        ({"show_progress": 1}, TypeError, "show_progress"),
    ],
)
def test_build_rejects_wrong_types_naming_the_parameter(tmp_path, kwargs, error, name):
    images.save_photo(21, tmp_path / "a.png")
    kwargs = {"show_progress": False, "processes": 1, **kwargs}
    with pytest.raises(error, match=f'"{name}"'):
        fastdif.build(tmp_path, **kwargs)


@pytest.mark.parametrize("directory", [None, 3.5, b"/tmp", {"a": 1}, [None]])
def test_build_rejects_wrong_directory_types(directory):
    with pytest.raises(TypeError, match="directory"):
        fastdif.build(directory, show_progress=False, processes=1)


@pytest.mark.parametrize(
    ("kwargs", "error", "name"),
    [
        ({"similarity": [5]}, ValueError, "similarity"),
        ({"similarity": True}, ValueError, "similarity"),
        ({"similarity": float("inf") * -1}, ValueError, "similarity"),
        ({"rotate": None}, TypeError, "rotate"),
        ({"same_dim": "true"}, TypeError, "same_dim"),
        ({"show_progress": None}, TypeError, "show_progress"),
        ({"processes": "1"}, TypeError, "processes"),
        ({"chunksize": 2.5}, TypeError, "chunksize"),
        ({"chunksize": True}, TypeError, "chunksize"),
    ],
)
def test_search_rejects_wrong_types_naming_the_parameter(small_result, kwargs, error, name):
    dif = fastdif.build(small_result.stats["directory"], show_progress=False, processes=1)
    kwargs = {"show_progress": False, "processes": 1, **kwargs}
    with pytest.raises(error, match=name):
        fastdif.search(dif, **kwargs)


def test_actions_reject_wrong_types_naming_the_parameter(small_result, tmp_path):
    for bad in (None, 42, [str(tmp_path)]):
        with pytest.raises(TypeError, match="destination_path"):
            small_result.move_to(bad)
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    with pytest.raises(NotADirectoryError, match="destination_path"):
        small_result.move_to(a_file)
    with pytest.raises(ValueError, match="is not a folder"):  # as difPy raises
        small_result.move_to(str(a_file))
    for bad in (None, 1, "yes"):
        with pytest.raises(TypeError, match="dry_run"):
            small_result.delete(dry_run=bad)
    with pytest.raises(TypeError, match="manifest"):
        fastdif.undo_move(42)
    with pytest.raises(FileNotFoundError, match="missing.json"):
        fastdif.undo_move(tmp_path / "missing.json")
    for text in ("{not json", '{"moved": []}', "[1, 2]", '{"format": "x"}'):
        (tmp_path / "m.json").write_text(text)
        with pytest.raises(ValueError, match="manifest"):
            fastdif.undo_move(tmp_path / "m.json")
    assert len(small_result.lower_quality) == 1 and os.path.isfile(small_result.lower_quality[0])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        *[
            ([flag, "maybe"], f"argument {flag}/")
            for flag in ("-r", "-i", "-le", "-ro", "-dim", "-d", "-sd", "-p")
        ],
        (["--dry_run", "maybe"], "argument --dry_run"),
        (["-px", "abc"], "argument -px/--px_size"),
        (["-px", "1.5"], "argument -px/--px_size"),
        (["-proc", "two"], "argument -proc/--processes"),
        (["-ch", "x"], "argument -ch/--chunksize"),
        (["-s", "nan"], "argument -s/--similarity"),
        (["-px", "9"], '"px_size" parameter'),
        (["-proc", "-1"], '"processes" parameter'),
        (["-mv", "a.png"], '"destination_path" parameter'),
        (["--undo_move", "missing.json"], 'Manifest "missing.json" does not exist'),
        (["--undo_move", "a.png"], '"manifest" parameter'),
    ],
)
def test_cli_rejects_every_bad_flag_value_naming_it(tmp_path, monkeypatch, capsys, args, message):
    images.save_photo(22, tmp_path / "a.png")
    images.copy_bytes(tmp_path / "a.png", tmp_path / "b.png")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    try:
        status = main([".", "-p", "false", *args])
    except SystemExit as exit_info:  # argparse's own errors
        status = exit_info.code
    assert status == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert sorted(f for f in os.listdir(tmp_path) if f != "cache") == ["a.png", "b.png"]


# --------------------------------------------------------------------------- faults


def _proc_stats():
    """(pid, fields of /proc/PID/stat after the command name) of every live pid."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as f:
                    yield int(entry), f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue


def children_of(pid):
    """Pids whose parent is ``pid`` (from /proc)."""
    return [child for child, fields in _proc_stats() if int(fields[1]) == pid]


def decode_workers():
    """Pids of this process's children that are spawned workers (not the resource tracker)."""
    out = []
    for pid in children_of(os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                if b"spawn_main" in f.read():
                    out.append(pid)
        except OSError:
            continue
    return out


def session_members(sid):
    """Pids of live (not zombie) processes in session ``sid``."""
    return [pid for pid, fields in _proc_stats() if int(fields[3]) == sid and fields[0] != "Z"]


@pytest.fixture
def pool_of_two(monkeypatch):
    """Use worker processes for any number of files, with the faulty decoder."""
    monkeypatch.setattr(decode_pool, "MIN_FILES_FOR_POOL", 2)
    monkeypatch.setattr(decode, "decode_file", faults.decode)


def test_a_dying_worker_costs_only_its_file(tmp_path, pool_of_two):
    names = ["a.png", "exit_b.png", "c.png", "kill_d.png", "once_e.png", "f.png"]
    paths = [images.save_photo(30 + k, tmp_path / name, 40, 30) for k, name in enumerate(names)]

    results = list(decode_pool.decode_all(paths, 16, 2))

    reasons = {os.path.basename(p): r.reason for p, r in zip(paths, results, strict=True)}
    assert reasons["exit_b.png"] == "Decoder process died on this file twice (exit code 3)"
    assert reasons["kill_d.png"] == "Decoder process died on this file twice (killed by SIGKILL)"
    assert os.path.exists(paths[4] + ".died")  # it did die once, then decoded on the retry
    for name, path, result in zip(names, paths, results, strict=True):
        if name in ("a.png", "c.png", "once_e.png", "f.png"):
            assert result.reason is None, name
            assert result.thumbnail == decode.load_thumbnail(path, 16)[0].tobytes()
    assert decode_workers() == []


def test_workers_that_cannot_start_raise_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setattr(decode_pool, "MIN_FILES_FOR_POOL", 2)
    monkeypatch.setattr(decode_pool, "_worker_main", faults.cannot_start)
    paths = [images.save_photo(40 + k, tmp_path / f"{k}.png", 40, 30) for k in range(3)]
    start = time.monotonic()
    with pytest.raises(RuntimeError, match="fail to start"):
        list(decode_pool.decode_all(paths, 16, 2))
    assert time.monotonic() - start < 30
    assert decode_workers() == []


def test_a_hanging_decoder_is_bounded(tmp_path, pool_of_two, monkeypatch):
    monkeypatch.setattr(decode, "FILE_TIME_LIMIT", 1.0)
    monkeypatch.setattr(decode_pool, "KILL_GRACE", 0.5)
    names = ["a.png", "hang_b.png", "slow_c.png", "d.png"]
    paths = [images.save_photo(50 + k, tmp_path / name, 40, 30) for k, name in enumerate(names)]
    start = time.monotonic()

    results = list(decode_pool.decode_all(paths, 16, 2))

    assert time.monotonic() - start < 15  # not 600 s (hang) or 10 s (slow) in a row
    reasons = [r.reason for r in results]
    assert reasons[0] is None and reasons[3] is None
    # Stuck in "C code": killed by the parent. Slow in Python: the worker's timer.
    assert reasons[1] == reasons[2] == "Timed out: decoding took more than 1 s"
    assert decode_workers() == []


def test_a_stuck_worker_lets_the_others_run_only_max_ahead_files_ahead(
    tmp_path, pool_of_two, monkeypatch
):
    monkeypatch.setattr(decode, "FILE_TIME_LIMIT", 1.0)
    monkeypatch.setattr(decode_pool, "KILL_GRACE", 0.5)
    monkeypatch.setattr(decode_pool, "MAX_AHEAD", 4)
    names = ["a.png", "hang_b.png", "once_c.png"] + [f"{k:02d}.png" for k in range(30)]
    paths = [images.save_photo(60 + k, tmp_path / name, 40, 30) for k, name in enumerate(names)]
    results, ahead = [], []
    assign = decode_pool._Worker.assign

    def recording(worker, index, path):
        # The pool's next_out is the number of results the caller has had.
        ahead.append(index - len(results))
        return assign(worker, index, path)

    monkeypatch.setattr(decode_pool._Worker, "assign", recording)

    for result in decode_pool.decode_all(paths, 16, 2):
        results.append(result)

    # Results held (waiting or in flight) lie in next_out ... next_out + 3.
    assert max(ahead) == 3
    assert results[1].reason == "Timed out: decoding took more than 1 s"
    assert os.path.exists(paths[2] + ".died")  # retried within the bound
    for name, path, result in zip(names, paths, results, strict=True):
        if name != "hang_b.png":
            assert result.thumbnail == decode.load_thumbnail(path, 16)[0].tobytes(), name
    assert decode_workers() == []


def test_the_time_limit_applies_in_process_too(tmp_path, find, monkeypatch):
    good = images.save_photo(60, tmp_path / "good.png")
    copy = images.copy_bytes(good, tmp_path / "copy.png")
    slow = images.save_photo(61, tmp_path / "slow.png")
    real = decode.load_thumbnail

    def load(path, px_size):
        if path == slow:
            time.sleep(30)
        return real(path, px_size)

    monkeypatch.setattr(decode, "load_thumbnail", load)
    monkeypatch.setattr(decode, "FILE_TIME_LIMIT", 0.3)
    start = time.monotonic()

    se = find(tmp_path, processes=1)

    assert time.monotonic() - start < 10
    assert se.stats["invalid_files"]["logs"] == {slow: "Timed out: decoding took more than 0.3 s"}
    assert se.result == {copy: [[good, 0.0]]}
    assert signal.getsignal(signal.SIGALRM) == signal.SIG_DFL  # the timer is cleaned up


@pytest.mark.parametrize("phase", ["starting", "decoding"])
def test_ctrl_c_during_build_stops_workers_and_writes_nothing(tmp_path, phase):
    folder = tmp_path / "pics"
    # 40 files x 0.3 s on 2 workers: about 6 s of work. Distinct: a copy is not decoded.
    for k in range(40):
        images.save_photo(70 + k, folder / f"nap_{k:03d}.png", 40, 30)
    out = tmp_path / "out"
    out.mkdir()
    script = textwrap.dedent(
        f"""
        import sys
        sys.path.insert(0, {TESTS!r})
        import faults
        import fastdif.io.decode
        from fastdif.cli import main
        fastdif.io.decode.decode_file = faults.decode
        sys.exit(main([{str(folder)!r}, "-Z", {str(out)!r}, "-p", "false", "-proc", "2"]))
        """
    )
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,  # its own process group, as a terminal's job
    )
    try:
        deadline = time.monotonic() + 60

        def ready():
            if phase == "starting":  # workers exist, probably still importing
                return len(children_of(proc.pid)) >= 2
            return any(name.endswith(".started") for name in os.listdir(folder))

        while not ready() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert ready() and proc.poll() is None
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C: the whole group gets SIGINT
        sent = time.monotonic()
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - sent < 5
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 130
    assert "interrupted" in err and "Traceback" not in err
    deadline = time.monotonic() + 5
    while session_members(proc.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert session_members(proc.pid) == []  # no orphaned worker
    assert os.listdir(out) == []  # no partial output


def test_ctrl_c_during_search_raises_keyboard_interrupt(tmp_path):
    script = textwrap.dedent(
        """
        import sys
        import numpy as np
        import fastdif
        from fastdif.engine import numpy_kernels
        numpy_kernels.MAX_VALUES = 0  # the kernels, whatever Numba's cache holds
        thumbs = np.random.default_rng(0).integers(0, 256, (2000, 10, 10, 3), dtype=np.uint8)
        dif = fastdif.from_arrays(thumbs)
        fastdif.search(dif, similarity=8000, same_dim=False, show_progress=False)  # compiled
        print("searching", flush=True)
        try:
            while True:  # long enough for the signal to land inside a kernel call
                fastdif.search(dif, similarity=8000, same_dim=False, show_progress=False)
        except KeyboardInterrupt:
            sys.exit(130)
        """
    )
    returncode, _, err = interrupt_script([script], "searching", 1.5)
    assert returncode == 130, err[-2000:]


def interrupt_script(args: list[str], ready: str, delay: float) -> tuple[int, str, str]:
    """Run ``python -c *args`` in its own process group; once it prints the
    line ``ready``, wait ``delay`` s and send SIGINT to the group. Returns
    (exit status, rest of stdout, stderr); the group is killed if it hangs."""
    proc = subprocess.Popen(
        [sys.executable, "-c", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == ready
        time.sleep(delay)
        os.killpg(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode, out, err


# A search whose kernel calls, once armed, run back to back for a second and
# print "kernel" and "returned" around it; SIGINT handled as argv[1] says.
SEARCH_WITH_SLOW_KERNEL = textwrap.dedent(
    """
    import importlib, signal, sys, time
    import numpy as np
    import fastdif
    from fastdif.engine import matching as search_module
    from fastdif.engine import numpy_kernels

    numpy_kernels.MAX_VALUES = 0  # the kernels, whatever Numba's cache holds
    kind = sys.argv[1]
    in_kernel, calls = [False], []
    if kind == "custom":
        signal.signal(signal.SIGINT, lambda signum, frame: calls.append(in_kernel[0]))
    elif kind == "ignore":
        signal.signal(signal.SIGINT, signal.SIG_IGN)
    real, armed = search_module.match_ranges, [False]

    def kernel(*args):
        if not armed[0]:
            return real(*args)
        armed[0] = False
        print("kernel", flush=True)
        in_kernel[0] = True
        start = time.monotonic()
        while time.monotonic() - start < 1.0:
            result = real(*args)
        in_kernel[0] = False
        print("returned", flush=True)
        return result

    search_module.match_ranges = kernel
    thumbs = np.random.default_rng(0).integers(0, 256, (1500, 10, 10, 3), dtype=np.uint8)
    dif = fastdif.from_arrays(thumbs)
    fastdif.search(dif, similarity=8000, same_dim=False, show_progress=False)  # compiled
    armed[0] = True
    try:
        fastdif.search(dif, similarity=8000, same_dim=False, show_progress=False)
    except KeyboardInterrupt:
        print("interrupted", flush=True)
        sys.exit(130)
    print("done", calls, flush=True)
    """
)


@pytest.mark.parametrize("kind", ["default", "custom", "ignore"])
def test_ctrl_c_inside_a_kernel_goes_to_the_handler_after_it_returns(kind):
    returncode, out, err = interrupt_script([SEARCH_WITH_SLOW_KERNEL, kind], "kernel", 0.3)
    assert "Traceback" not in err, err[-2000:]
    lines = out.split()
    if kind == "default":  # KeyboardInterrupt, once the kernel has returned
        assert returncode == 130 and lines == ["returned", "interrupted"]
    else:  # the program's own handler, called after the kernel; or nothing
        assert returncode == 0, err[-2000:]
        assert out.split("\n")[:2] == ["returned", f"done {[False] if kind == 'custom' else []}"]


def test_ctrl_c_during_search_or_writing_leaves_no_output(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "pics"
    a = images.save_photo(71, folder / "a.png")
    images.copy_bytes(a, folder / "b.png")
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    cli = sys.modules["fastdif.cli"]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(cli, "search", interrupted)
        assert main([str(folder), "-Z", str(out), "-p", "false", "-proc", "1"]) == 130
    assert os.listdir(out) == []

    # Interrupted while the second file is being written: the first is whole,
    # the second does not exist, no temporary file is left.
    real_dump = json.dumps
    calls = []

    def dump_twice(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real_dump(*args, **kwargs)

    monkeypatch.setattr(json, "dumps", dump_twice)
    assert main([str(folder), "-Z", str(out), "-p", "false", "-proc", "1"]) == 130
    [written] = os.listdir(out)
    assert written.endswith("_results.json")
    assert json.loads((out / written).read_text())
    assert "interrupted" in capsys.readouterr().err


def test_write_json_is_atomic_and_never_replaces(tmp_path):
    target = actions.write_json(str(tmp_path), "r.json", {"a": 1})
    assert target == str(tmp_path / "r.json")
    second = actions.write_json(str(tmp_path), "r.json", {"a": 2})
    assert second == str(tmp_path / "r_1.json")
    assert json.loads((tmp_path / "r.json").read_text()) == {"a": 1}
    with pytest.raises(TypeError):
        actions.write_json(str(tmp_path), "bad.json", {"a": object()})
    assert sorted(os.listdir(tmp_path)) == ["r.json", "r_1.json"]  # no partial or temp file


# --------------------------------------------------------------------------- actions


@pytest.fixture
def dupes(tmp_path, find):
    src = tmp_path / "src"
    a = images.save_photo(80, src / "a.png")
    lower = [images.copy_bytes(a, src / "a_copy.png"), images.copy_bytes(a, src / "sub" / "a.png")]
    for k, path in enumerate(lower):
        os.utime(path, (1_000_000_000, 1_200_000_000 + k))
    return find(src), a, lower


@pytest.mark.parametrize("across", [False, True], ids=["same-fs", "other-fs"])
def test_move_writes_a_manifest_and_undo_restores_everything(tmp_path, dupes, monkeypatch, across):
    se, key, lower = dupes
    content = {path: open(path, "rb").read() for path in lower}
    mtimes = {path: os.stat(path).st_mtime for path in lower}
    if across:
        other = other_filesystem(tmp_path)
        if other is None:  # no second filesystem here: make hard links fail as across one

            def no_link(*args, **kwargs):
                raise OSError(errno.EXDEV, "Invalid cross-device link")

            monkeypatch.setattr(actions.os, "link", no_link)
            dest = tmp_path / "dest"
        else:
            dest = tempfile.mkdtemp(dir=other, prefix="fastdif-test-")
    else:
        dest = tmp_path / "dest"
    try:
        report = se.move_to(dest)

        assert report["failed"] == {}
        manifest = report["manifest"]
        assert os.path.dirname(manifest) == str(dest)
        assert os.path.basename(manifest).startswith("fastdif_moved_")
        data = json.loads(open(manifest).read())
        assert data["format"] == actions.MANIFEST_FORMAT
        assert [(e["source"], e["destination"]) for e in data["moved"]] == list(
            report["moved"].items()
        )
        for source, target in report["moved"].items():
            assert not os.path.exists(source)
            assert open(target, "rb").read() == content[source]
            assert os.stat(target).st_mtime == pytest.approx(mtimes[source], abs=1e-3)

        undone = fastdif.undo_move(manifest)

        assert undone["failed"] == {}
        assert undone["restored"] == {t: s for s, t in report["moved"].items()}
        for path in lower:
            assert open(path, "rb").read() == content[path]
            assert os.stat(path).st_mtime == pytest.approx(mtimes[path], abs=1e-3)
        assert os.listdir(dest) == [os.path.basename(manifest)]
        again = fastdif.undo_move(manifest)  # harmless a second time
        assert again["restored"] == {} and set(again["failed"]) == set(undone["restored"])
        assert all(open(p, "rb").read() == content[p] for p in lower)
    finally:
        if across and other_filesystem(tmp_path):
            shutil.rmtree(dest)


def test_undo_never_overwrites_and_skips_changed_files(tmp_path, dupes):
    se, key, lower = dupes
    report = se.move_to(tmp_path / "dest")
    first, second = lower
    with open(first, "wb") as f:
        f.write(b"a new file at the old path")
    with open(report["moved"][second], "ab") as f:
        f.write(b"edited after the move")

    undone = fastdif.undo_move(report["manifest"])

    assert undone["restored"] == {}
    assert "exists" in undone["failed"][report["moved"][first]]
    assert "changed" in undone["failed"][report["moved"][second]]
    assert open(first, "rb").read() == b"a new file at the old path"
    assert os.path.isfile(report["moved"][first]) and os.path.isfile(report["moved"][second])


def test_interrupted_move_still_writes_its_manifest(tmp_path, dupes, monkeypatch):
    se, key, lower = dupes
    real = actions.move_file
    calls = []

    def interrupt_second(source, folder, journal):
        calls.append(source)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(source, folder, journal)

    monkeypatch.setattr(actions, "move_file", interrupt_second)
    with pytest.raises(KeyboardInterrupt):
        se.move_to(tmp_path / "dest")
    [manifest] = [f for f in os.listdir(tmp_path / "dest") if f.startswith("fastdif_moved_")]
    moved = json.loads((tmp_path / "dest" / manifest).read_text())["moved"]
    assert [e["source"] for e in moved] == [calls[0]]
    assert os.path.isfile(calls[1])  # never touched

    assert fastdif.undo_move(tmp_path / "dest" / manifest)["failed"] == {}
    assert all(os.path.isfile(path) for path in lower)


@pytest.mark.parametrize("failure", ["copy", "short", "unlink"])
def test_a_failed_move_leaves_the_file_at_its_source(tmp_path, monkeypatch, failure):
    source = images.save_photo(81, tmp_path / "src" / "photo.png")
    data = open(source, "rb").read()
    dest = tmp_path / "dest"

    def no_link(*args, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    def copy_half_then_fail(src, out):
        out.write(src.read(100))
        raise OSError(errno.ENOSPC, "No space left on device")

    def copy_half(src, out):
        out.write(src.read(100))

    real_unlink = os.unlink

    def unlink_source_fails(path):
        if os.fspath(path) == source:
            raise PermissionError(errno.EACCES, "Permission denied")
        real_unlink(path)

    if failure == "unlink":  # linked, but the source cannot be removed
        monkeypatch.setattr(actions.os, "unlink", unlink_source_fails)
    else:
        monkeypatch.setattr(actions.os, "link", no_link)
        replacement = copy_half_then_fail if failure == "copy" else copy_half
        monkeypatch.setattr(actions.shutil, "copyfileobj", replacement)

    moved, failed, manifest = actions.move_files([source], dest)

    assert moved == {} and manifest is None
    assert list(failed) == [source] and one_line(failed[source])
    assert open(source, "rb").read() == data
    assert os.listdir(dest) == []


def test_delete_dry_run_lists_and_removes_nothing(dupes, monkeypatch):
    se, key, lower = dupes

    def no_question(prompt=""):
        raise AssertionError("a dry run asks nothing")

    monkeypatch.setattr("builtins.input", no_question)
    report = se.delete(dry_run=True)

    assert report == {"deleted": [], "failed": {}, "would_delete": lower}
    assert all(os.path.isfile(path) for path in lower)
    assert se.lower_quality == lower
    os.remove(key)  # the same checks as a real run: the key must exist
    kept = se.delete(dry_run=True)
    assert kept["would_delete"] == [] and set(kept["failed"]) == set(lower)
    assert all(os.path.isfile(path) for path in lower)


def test_cli_dry_run_and_undo_move(tmp_path, dupes, monkeypatch, capsys):
    se, key, lower = dupes
    src = os.path.dirname(key)
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    common = [src, "-Z", str(out), "-p", "false", "-proc", "1"]

    assert main([*common, "-d", "true", "--permanent", "--dry_run", "true"]) == 0
    text = capsys.readouterr().out
    assert "would delete 2 files" in text
    assert all(f"would delete: {path}" in text for path in lower)
    assert all(os.path.isfile(path) for path in lower)

    assert main([*common, "-mv", str(tmp_path / "dupes")]) == 0
    text = capsys.readouterr().out
    [manifest] = [
        f for f in os.listdir(tmp_path / "dupes") if f.startswith(actions.MANIFEST_PREFIX)
    ]
    manifest = str(tmp_path / "dupes" / manifest)
    assert f"--undo_move {manifest}" in text
    assert not any(os.path.exists(path) for path in lower)

    assert main(["--undo_move", manifest]) == 0
    assert "restored 2 files, 0 not restored" in capsys.readouterr().out
    assert all(os.path.isfile(path) for path in lower)
    assert main(["--undo_move", manifest]) == 1  # nothing left to restore: reported
