"""undo_move takes its manifest as a request, never as an authority (issue 24, items 1
to 6), and every copy keeps its owner, group, mode and times (item 20).

A manifest is forged here as a download would ship it: the manifest and its
files in one folder, naming paths outside it. Undo may act only on direct
children of the manifest's folder and on the original paths it records; it
restores a file only when the file is the one fastdif moved (its inode, kept
in the manifest), and removes a file only when it is provably a second name
or a byte-identical copy of one that stays.
"""

import errno
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile

import images
import pytest
from faults import other_filesystem

import fastdif
from fastdif import actions

ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


def read(path):
    with open(path, "rb") as f:
        return f.read()


def forge(folder, entries, journal=False):
    """A manifest in ``folder`` listing ``entries``: one JSON document, or a journal."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, f"{actions.MANIFEST_PREFIX}20260101000000.json")
    if journal:
        header = {"format": actions.JOURNAL_FORMAT, "created": "2026-01-01T00:00:00"}
        text = "".join(json.dumps(line) + "\n" for line in [header, *entries])
    else:
        document = {"format": actions.MANIFEST_FORMAT, "created": "x", "moved": entries}
        text = json.dumps(document)
    with open(path, "w", encoding="utf-8") as out:
        out.write(text)
    return path


@pytest.fixture
def photo(tmp_path):
    """A user's only copy of a photo, ``home/pics/photo.jpg``; returns (path, bytes)."""
    path = images.save_photo(7, tmp_path / "home" / "pics" / "photo.jpg")
    return path, read(path)


@pytest.fixture
def download(tmp_path):
    """The folder a forged manifest comes in."""
    folder = tmp_path / "download"
    folder.mkdir()
    return str(folder)


def no_restoration(undone, count=1):
    assert undone["restored"] == {}
    assert len(undone["failed"]) == count and all(undone["failed"].values())


def across_folders(monkeypatch):
    """Make a hard link between two folders fail as across file systems (EXDEV)."""
    real_link = os.link

    def link(src, dst, **kwargs):
        if os.path.dirname(os.fspath(src)) != os.path.dirname(os.fspath(dst)):
            raise OSError(errno.EXDEV, "Invalid cross-device link")
        return real_link(src, dst, **kwargs)

    monkeypatch.setattr(actions.os, "link", link)


# ------------------------------------------------------------- 1 to 4: forged manifests


@pytest.mark.parametrize("journal", [False, True], ids=["manifest", "journal"])
def test_an_entry_moving_a_photo_onto_itself_deletes_nothing(photo, download, journal):
    path, data = photo
    inside = images.copy_bytes(path, os.path.join(download, "inside.jpg"))  # a photo there too
    entries = [
        {"source": p, "destination": p, "size": len(data), "inode": os.stat(p).st_ino}
        for p in (path, inside)
    ]
    manifest = forge(download, entries, journal)

    undone = fastdif.undo_move(manifest)

    no_restoration(undone, count=2)
    assert "the moved file itself" in undone["failed"][inside]
    assert read(path) == data and read(inside) == data


@pytest.mark.timeout(120)
def test_the_command_line_never_says_restored_for_a_forged_entry(photo, download):
    path, data = photo
    manifest = forge(download, [{"source": path, "destination": path, "size": len(data)}])

    run = subprocess.run(
        [sys.executable, "-m", "fastdif", "--undo_move", manifest],
        capture_output=True,
        text=True,
        timeout=100,
    )

    assert run.returncode == 1, run.stderr
    lines = run.stdout.splitlines()
    assert lines[0] == "restored 0 files, 1 not restored, 0 never moved"
    assert lines[1].startswith("  not restored: ")
    assert read(path) == data


@pytest.mark.parametrize("journal", [False, True], ids=["manifest", "journal"])
def test_a_shipped_link_to_a_photo_as_source_deletes_nothing(photo, download, journal):
    path, data = photo
    link = os.path.join(download, "photo.jpg")
    os.symlink(path, link)
    other = images.copy_bytes(path, os.path.join(download, "other.jpg"))
    entries = [
        {"source": link, "destination": path, "size": len(data)},
        {"source": link, "destination": other, "size": len(data)},
    ]
    manifest = forge(download, entries, journal)

    undone = fastdif.undo_move(manifest)

    no_restoration(undone, count=2)
    assert read(path) == data and os.path.islink(link) and read(other) == data


@pytest.mark.parametrize("journal", [False, True], ids=["manifest", "journal"])
def test_a_destination_outside_the_manifest_folder_is_never_moved(
    photo, download, tmp_path, journal
):
    path, data = photo
    info = os.stat(path)
    taken = str(tmp_path / "attacker" / "new" / "deeper" / "x.jpg")
    entry = {"source": taken, "destination": path, "size": len(data), "inode": info.st_ino}
    manifest = forge(download, [entry], journal)

    undone = fastdif.undo_move(manifest)

    no_restoration(undone)
    assert "not in the manifest's folder" in undone["failed"][path]
    assert read(path) == data
    assert not os.path.lexists(tmp_path / "attacker")  # no folder created either


@pytest.mark.parametrize("journal", [False, True], ids=["manifest", "journal"])
def test_shipped_files_and_links_are_never_planted(tmp_path, download, journal):
    home = tmp_path / "home"
    (home / ".ssh").mkdir(parents=True)  # an existing folder is no licence either
    shipped = images.copy_bytes(__file__, os.path.join(download, "x.desktop"))
    keys = images.copy_bytes(__file__, os.path.join(download, "keys"))
    guessed = images.copy_bytes(__file__, os.path.join(download, "guessed"))
    link = os.path.join(download, "k")
    os.symlink(keys, link)
    size = os.path.getsize(shipped)
    autostart = str(home / ".config" / "autostart" / "x.desktop")
    authorized = str(home / ".ssh" / "authorized_keys")
    rc = str(home / ".ssh" / "rc")
    entries = [
        {"source": autostart, "destination": shipped, "size": size},
        {"source": authorized, "destination": link, "link": keys, "link_moved": keys},
        # A guessed inode, off by one: the file fastdif moved has its own.
        {"source": rc, "destination": guessed, "size": size, "inode": os.stat(guessed).st_ino + 1},
    ]
    manifest = forge(download, entries, journal)

    undone = fastdif.undo_move(manifest)

    no_restoration(undone, count=3)
    assert "no identity" in undone["failed"][shipped]
    assert "not the file fastdif moved" in undone["failed"][guessed]
    assert not os.path.lexists(home / ".config")
    assert os.listdir(home / ".ssh") == []
    assert os.path.isfile(shipped) and os.path.islink(link) and os.path.isfile(guessed)


def test_a_manifest_without_file_identities_restores_nothing(tmp_path, photo):
    path, data = photo
    moved, failed, manifest = actions.move_files([path], tmp_path / "dest")
    document = json.loads(read(manifest))
    for entry in document["moved"]:
        entry.pop("inode")
    os.unlink(manifest)
    manifest = forge(tmp_path / "dest", document["moved"])

    undone = fastdif.undo_move(manifest)

    no_restoration(undone)
    assert "no identity" in undone["failed"][moved[path]]
    assert read(moved[path]) == data and not os.path.lexists(path)


@pytest.mark.skipif(not ROOT, reason="only root can give a manifest to another user")
def test_a_manifest_of_another_user_is_refused(tmp_path, photo):
    path, data = photo
    moved, failed, manifest = actions.move_files([path], tmp_path / "dest")
    os.chown(manifest, 12345, 12345)

    with pytest.raises(PermissionError, match="another user"):
        fastdif.undo_move(manifest)

    assert read(moved[path]) == data and not os.path.lexists(path)


# ------------------------------------------------------------- 5, 6: the user's own changes


def test_a_link_at_the_old_place_to_the_moved_file_keeps_the_file(tmp_path, photo):
    path, data = photo
    moved, failed, manifest = actions.move_files([path], tmp_path / "dest")
    os.symlink(moved[path], path)

    undone = fastdif.undo_move(manifest)

    no_restoration(undone)
    assert "exists" in undone["failed"][moved[path]]
    assert read(moved[path]) == data
    assert os.path.islink(path) and read(path) == data


def test_an_old_folder_turned_into_a_link_to_the_destination_keeps_the_file(tmp_path, photo):
    path, data = photo
    dest = tmp_path / "dest"
    moved, failed, manifest = actions.move_files([path], dest)
    os.rmdir(os.path.dirname(path))
    os.symlink(dest, os.path.dirname(path))

    undone = fastdif.undo_move(manifest)

    no_restoration(undone)
    assert "the moved file itself" in undone["failed"][moved[path]]
    assert read(moved[path]) == data


@pytest.mark.parametrize("links", ["same", "cross"])
def test_the_moves_fastdif_made_are_still_undone(tmp_path, photo, monkeypatch, links):
    path, data = photo
    if links == "cross":
        across_folders(monkeypatch)
    moved, failed, manifest = actions.move_files([path], tmp_path / "dest")
    os.rmdir(os.path.dirname(path))  # re-created: the file is proven to be the one moved

    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {} and undone["restored"] == {moved[path]: path}
    assert read(path) == data


# ------------------------------------------------------------- 20: owner, group, mode, times


def assert_same_metadata(path, expected):
    info = os.stat(path)
    assert (info.st_uid, info.st_gid) == (expected.st_uid, expected.st_gid)
    assert stat.S_IMODE(info.st_mode) == stat.S_IMODE(expected.st_mode)
    assert info.st_mtime_ns == expected.st_mtime_ns


@pytest.mark.skipif(not ROOT, reason="only root can give a file to another user")
@pytest.mark.parametrize("device", ["simulated", "real"])
def test_a_copy_across_file_systems_keeps_owner_group_mode_and_times(
    tmp_path, photo, monkeypatch, device
):
    path, data = photo
    os.chown(path, 12345, 12346)
    os.chmod(path, 0o640)
    os.utime(path, ns=(1_000_000_000_000_000_000, 1_234_567_890_123_456_789))
    expected = os.stat(path)
    if device == "simulated":
        across_folders(monkeypatch)
        dest = str(tmp_path / "dest")
    else:
        other = other_filesystem(tmp_path)
        if other is None:
            pytest.skip("no second writable file system (/dev/shm) here")
        dest = tempfile.mkdtemp(dir=other, prefix="fastdif-test-")
    try:
        moved, failed, manifest = actions.move_files([path], dest)

        assert failed == {}
        assert read(moved[path]) == data
        assert_same_metadata(moved[path], expected)

        undone = fastdif.undo_move(manifest)

        assert undone["restored"] == {moved[path]: path}
        assert read(path) == data
        assert_same_metadata(path, expected)
    finally:
        if device == "real":
            shutil.rmtree(dest)


@pytest.mark.skipif(not ROOT, reason="only root can give a file to another user")
def test_a_copy_that_cannot_keep_its_owner_drops_set_id_bits(tmp_path, monkeypatch):
    source = images.save_photo(9, tmp_path / "src" / "photo.jpg")
    os.chown(source, 12345, 12346)
    os.chmod(source, 0o6755)

    def refuse(*args):
        raise PermissionError(errno.EPERM, "Operation not permitted")

    monkeypatch.setattr(actions.os, "fchown", refuse)  # as for a user other than root
    across_folders(monkeypatch)
    moved, failed, manifest = actions.move_files([source], tmp_path / "dest")

    assert failed == {}
    info = os.stat(moved[source])
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o755


# ------------------------------------------------------------- journals a kill left


@pytest.mark.parametrize("kind", ["same", "cross", "link"])
def test_a_journal_without_done_lines_restores_by_the_inodes_it_records(
    tmp_path, photo, monkeypatch, kind
):
    path, data = photo
    if kind == "cross":
        across_folders(monkeypatch)
    if kind == "link":
        os.rename(path, path + ".real")
        os.symlink(path + ".real", path)
    # Killed after the moves, before the journal became a manifest or said "done".
    monkeypatch.setattr(actions._Journal, "finish", lambda self: os.close(self._fd) or self.path)
    moved, failed, manifest = actions.move_files([path], tmp_path / "dest")
    with open(manifest, encoding="utf-8") as f:
        lines = [line for line in f if '"done"' not in line]
    with open(manifest, "w", encoding="utf-8") as out:
        out.writelines(lines)
    assert json.loads(lines[0])["format"] == actions.JOURNAL_FORMAT
    assert any('"identity"' in line for line in lines) == (kind != "same")

    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {} and undone["restored"] == {moved[path]: path}
    assert read(path) == data and os.path.islink(path) == (kind == "link")
