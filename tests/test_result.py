"""Moves that survive kill -9, and symbolic links moved as links (fastdif.actions).

A mover killed at any point of any move leaves a manifest (its journal) from
which ``undo_move`` puts every file back, and never a partial file under a
final name. The kills are exact: a child process runs ``move_files`` with a
hook that sends itself SIGKILL at one step of one file's move.
"""

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import images
import pytest

import fastdif
from fastdif import actions
from fastdif.cli import main

# Runs move_files(sources, dest), or with a manifest undo_move(manifest), and
# kills itself at `point` of the move of sources[victim] (there or back).
# `links`: "cross" raises EXDEV for a hard link between two folders (another
# filesystem; the copy's own link beside its name works), "none" for every
# hard link (a filesystem without them).
CHILD = textwrap.dedent(
    """
    import errno, json, os, shutil, signal, sys, time
    from fastdif import actions

    sources, dest, point, victim, links, manifest = json.loads(sys.argv[1])
    target = sources[victim] if victim is not None else None
    if manifest is not None:  # the file moves back from where it was moved to
        entries = json.load(open(manifest, encoding="utf-8"))["moved"]
        target = {e["source"]: e["destination"] for e in entries}[target]
    real_link, real_unlink, real_replace = os.link, os.unlink, os.replace
    real_copy = shutil.copyfileobj

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def link(src, dst, **kwargs):
        if point == "before" and src == target:
            die()
        if point == "slow":
            time.sleep(0.005)  # time for the test to kill it midway
        across = os.path.dirname(os.fspath(src)) != os.path.dirname(os.fspath(dst))
        if links == "none" or (links == "cross" and across):
            raise OSError(errno.EXDEV if links == "cross" else errno.EPERM, "no link")
        return real_link(src, dst, **kwargs)

    def unlink(path, **kwargs):
        if point == "linked" and os.fspath(path) == target:
            die()  # the file has its new name; its old one is still there
        return real_unlink(path, **kwargs)

    def replace(src, dst, **kwargs):
        if point == "claimed" and os.path.basename(dst) == os.path.basename(target):
            die()  # the name is claimed by an empty file, the copy not renamed yet
        return real_replace(src, dst, **kwargs)

    def copy(src, out, *args):
        copying = os.readlink(f"/proc/self/fd/{src.fileno()}")
        if point == "copying" and copying == target:
            out.write(src.read(os.fstat(src.fileno()).st_size // 2))
            out.flush()
            die()
        return real_copy(src, out, *args)

    os.link, os.unlink, os.replace, shutil.copyfileobj = link, unlink, replace, copy
    print("moving", flush=True)
    if manifest is None:
        actions.move_files(sources, dest)
    else:
        actions.undo_move(manifest)
    """
)


def make_sources(folder, count, size=50_000):
    """``count`` files of distinct bytes in ``folder``; returns ``{path: bytes}``."""
    os.makedirs(folder)
    contents = {}
    for k in range(count):
        path = os.path.join(folder, f"photo_{k:03d}.jpg")
        data = bytes([k % 251]) * 7 + os.urandom(size)
        with open(path, "wb") as out:
            out.write(data)
        contents[path] = data
    return contents


def run_child(sources, dest, point, victim, links="same", kill_after_lines=None, manifest=None):
    """Run CHILD; with ``kill_after_lines`` the test kills it once the journal has that many."""
    args = json.dumps([sources, dest, point, victim, links, manifest])
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout.readline().strip() == "moving"
        if kill_after_lines is not None:
            while proc.poll() is None and journal_lines(dest) < kill_after_lines:
                time.sleep(0.002)
            proc.kill()
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, err[-2000:]


def journal_lines(dest):
    names = os.listdir(dest) if os.path.isdir(dest) else []
    manifests = [n for n in names if n.startswith(actions.MANIFEST_PREFIX)]
    if not manifests:
        return 0
    with open(os.path.join(dest, manifests[0]), "rb") as f:
        return f.read().count(b"\n")


def the_manifest(dest):
    [name] = [n for n in os.listdir(dest) if n.startswith(actions.MANIFEST_PREFIX)]
    return os.path.join(dest, name)


def assert_no_partial_file_under_a_final_name(dest, contents, claimed=False):
    # ``claimed``: without hard links a name is claimed by an empty file,
    # then the whole copy renamed onto it; a kill in between leaves it empty.
    whole = set(contents.values()) | ({b""} if claimed else set())
    for name in os.listdir(dest):
        if name.startswith((".", actions.MANIFEST_PREFIX)):
            continue  # hidden: a copy still being made
        with open(os.path.join(dest, name), "rb") as f:
            assert f.read() in whole, f"{name} is not a whole file"


@pytest.mark.parametrize(
    ("point", "links"),
    [
        ("before", "same"),  # recorded, not started
        ("linked", "same"),  # hard-linked to its new name, old name not yet removed
        ("copying", "cross"),  # half copied to another filesystem
        ("linked", "cross"),  # copy complete and named, source not yet removed
        ("copying", "none"),  # no hard links there either
        ("claimed", "none"),  # the name claimed, the copy not yet renamed onto it
    ],
)
def test_killed_mid_move_undo_restores_every_file(tmp_path, point, links):
    contents = make_sources(str(tmp_path / "src"), 6)
    sources = sorted(contents)
    dest = str(tmp_path / "dest")

    run_child(sources, dest, point, victim=3, links=links)

    assert_no_partial_file_under_a_final_name(dest, contents, claimed=point == "claimed")
    moved_away = [p for p in sources if not os.path.exists(p)]
    assert moved_away[:3] == sources[:3] and set(moved_away) <= set(sources[:4])
    manifest = the_manifest(dest)
    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {}
    assert set(undone["restored"].values()) <= set(sources)
    assert len(undone["restored"]) + len(undone["not_moved"]) == 4
    for path, data in contents.items():
        with open(path, "rb") as f:
            assert f.read() == data
    assert os.listdir(dest) == [os.path.basename(manifest)]  # no copy, no partial file
    again = fastdif.undo_move(manifest)  # harmless a second time
    assert again["restored"] == {}
    assert all(open(p, "rb").read() == d for p, d in contents.items())


def test_killed_at_any_moment_of_many_moves_undo_restores_every_file(tmp_path):
    contents = make_sources(str(tmp_path / "src"), 300, size=2_000)
    dest = str(tmp_path / "dest")

    run_child(sorted(contents), dest, "slow", None, kill_after_lines=120)

    lost = [p for p in contents if not os.path.exists(p)]
    assert 0 < len(lost) < 300  # killed midway
    undone = fastdif.undo_move(the_manifest(dest))
    assert undone["failed"] == {}
    for path, data in contents.items():
        with open(path, "rb") as f:
            assert f.read() == data
    assert len(os.listdir(dest)) == 1


@pytest.mark.parametrize("point", ["copying", "linked"])
def test_an_undo_killed_midway_is_finished_by_the_next(tmp_path, point):
    contents = make_sources(str(tmp_path / "src"), 4)
    sources = sorted(contents)
    dest = str(tmp_path / "dest")
    moved, failed, manifest = actions.move_files(sources, dest)
    assert failed == {}

    run_child(sources, dest, point, victim=1, links="cross", manifest=manifest)

    # Undone from the last: sources[3] and [2] are back, [1] was on its way.
    assert os.path.exists(sources[3]) and not os.path.exists(sources[0])
    undone = fastdif.undo_move(manifest)
    assert undone["restored"] == {moved[p]: p for p in sources[:2]}
    assert set(undone["failed"]) == {moved[p] for p in sources[2:]}  # back already
    for path, data in contents.items():
        with open(path, "rb") as f:
            assert f.read() == data
    assert os.listdir(dest) == [os.path.basename(manifest)]
    assert sorted(os.listdir(tmp_path / "src")) == [os.path.basename(p) for p in sources]


def test_journal_is_on_disk_before_each_move(tmp_path, monkeypatch):
    contents = make_sources(str(tmp_path / "src"), 3)
    dest = tmp_path / "dest"
    seen = []
    real_link = os.link

    def link(src, dst, **kwargs):
        # When a move starts, the journal already names it.
        text = open(the_manifest(dest), encoding="utf-8").read()
        seen.append(json.dumps(os.path.abspath(dst)) in text)
        return real_link(src, dst, **kwargs)

    monkeypatch.setattr(actions.os, "link", link)
    moved, failed, manifest = actions.move_files(sorted(contents), dest)

    assert seen == [True, True, True] and failed == {}
    data = json.loads(open(manifest, encoding="utf-8").read())  # one JSON document at the end
    assert data["format"] == actions.MANIFEST_FORMAT
    assert [e["source"] for e in data["moved"]] == sorted(contents)
    names = [os.path.basename(manifest), *map(os.path.basename, moved.values())]
    assert sorted(os.listdir(dest)) == sorted(names)


def test_a_journal_cut_short_by_a_crash_is_read(tmp_path):
    contents = make_sources(str(tmp_path / "src"), 2)
    dest = str(tmp_path / "dest")
    run_child(sorted(contents), dest, "before", victim=1)
    manifest = the_manifest(dest)
    with open(manifest, "ab") as f:
        f.write(b'{"source": "/nowhere", "desti')  # a line the crash cut

    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {} and list(undone["restored"].values()) == sorted(contents)[:1]
    [(destination, reason)] = undone["not_moved"].items()
    assert os.path.basename(destination) == os.path.basename(sorted(contents)[1])
    assert "never left" in reason
    assert all(open(p, "rb").read() == d for p, d in contents.items())


def test_an_empty_destination_is_an_error(tmp_path):
    source = images.save_photo(1, tmp_path / "a.jpg")
    with pytest.raises(ValueError, match="must not be empty"):
        actions.move_files([source], "")
    assert os.path.exists(source)


def test_the_command_line_lists_a_move_that_never_started(tmp_path, capsys):
    contents = make_sources(str(tmp_path / "src"), 2)
    dest = str(tmp_path / "dest")
    run_child(sorted(contents), dest, "before", victim=1)

    assert main(["--undo_move", the_manifest(dest)]) == 0

    out = capsys.readouterr().out.splitlines()
    assert out[0] == "restored 1 files, 0 not restored, 1 never moved"
    assert out[1].startswith("  never moved: ") and "never left" in out[1]
    assert all(open(p, "rb").read() == d for p, d in contents.items())


# --------------------------------------------------------------------------- links


def relative_link_tree(tmp_path):
    """pics/b.png, a relative link to ../other/photo.png; returns (link, target, data)."""
    target = images.save_photo(21, tmp_path / "other" / "photo.png")
    (tmp_path / "pics").mkdir()
    link = tmp_path / "pics" / "b.png"
    os.symlink(os.path.join("..", "other", "photo.png"), link)
    return str(link), target, open(target, "rb").read()


@pytest.mark.parametrize("links", ["same", "cross"])
def test_a_relative_link_is_moved_as_a_link_and_undone(tmp_path, monkeypatch, links):
    link, target, data = relative_link_tree(tmp_path)
    if links == "cross":

        def no_link(*args, **kwargs):
            raise OSError(errno.EXDEV, "Invalid cross-device link")

        monkeypatch.setattr(actions.os, "link", no_link)
    dest = tmp_path / "dest" / "deeper"

    moved, failed, manifest = actions.move_files([link], dest)

    assert failed == {}
    new = moved[link]
    assert os.path.islink(new) and os.path.isabs(os.readlink(new))
    assert os.path.samefile(new, target) and open(new, "rb").read() == data
    assert not os.path.lexists(link)
    assert open(target, "rb").read() == data  # the file linked to stays where it is

    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {} and undone["restored"] == {new: link}
    assert os.path.islink(link) and os.readlink(link) == os.path.join("..", "other", "photo.png")
    assert open(link, "rb").read() == data
    assert os.listdir(dest) == [os.path.basename(manifest)]


def test_move_to_moves_a_link_member_as_a_link(tmp_path, find):
    link, target, data = relative_link_tree(tmp_path)
    key = images.copy_bytes(target, tmp_path / "pics" / "a.png")
    se = find(tmp_path / "pics")
    assert se.result == {key: [[link, 0.0]]}

    report = se.move_to(tmp_path / "dest" / "deeper")

    assert report["failed"] == {}
    new = report["moved"][link]
    assert os.path.islink(new) and open(new, "rb").read() == data
    assert open(key, "rb").read() == data and open(target, "rb").read() == data
    undone = fastdif.undo_move(report["manifest"])
    assert undone["failed"] == {}
    assert os.readlink(link) == os.path.join("..", "other", "photo.png")


def test_undo_leaves_a_link_that_changed(tmp_path):
    link, target, data = relative_link_tree(tmp_path)
    moved, failed, manifest = actions.move_files([link], tmp_path / "dest")
    new = moved[link]
    os.unlink(new)
    os.symlink(os.path.join(tmp_path, "elsewhere.png"), new)

    undone = fastdif.undo_move(manifest)

    assert "changed" in undone["failed"][new]
    assert not os.path.lexists(link) and os.path.islink(new)
