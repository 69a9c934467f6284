"""delete(trash=True) and the command line's -d: to the system trash, else .fastdif-trash.

Every test that reaches a system trash points HOME and XDG_DATA_HOME into
tmp_path first (the ``home_trash`` fixture), and an autouse fixture checks
after each test that the real user's home trash is as it was.
"""

import os
import subprocess
import sys
from urllib.parse import unquote

import images
import pytest

import fastdif
from fastdif import actions, trash
from fastdif.cli import main

if sys.platform in ("darwin", "win32"):
    pytest.skip("the freedesktop.org trash (Linux, BSD)", allow_module_level=True)

from send2trash import plat_other  # noqa: E402  (its import fails on Windows)

#: The real user's home trash, read before any test changes the environment.
REAL_HOME_TRASH = trash.home_trash()


def listing(folder):
    """Every path under ``folder`` with its size and modification time; None if absent."""
    if folder is None or not os.path.lexists(folder):
        return None
    found = {}
    for top, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(top, name)
            st = os.lstat(path)
            found[path] = (st.st_size, st.st_mtime_ns)
    return found


@pytest.fixture(autouse=True)
def real_trash_untouched():
    before = listing(REAL_HOME_TRASH)
    yield
    assert listing(REAL_HOME_TRASH) == before, f"{REAL_HOME_TRASH} changed"


@pytest.fixture
def home_trash(tmp_path, monkeypatch):
    """HOME and XDG_DATA_HOME in tmp_path, seen as a fresh process sees them.

    send2trash reads XDG_DATA_HOME once, at import: its copy is set too.
    Returns the home trash folder (not created).
    """
    home = tmp_path / "home"
    home.mkdir()
    data = tmp_path / "xdg-data"
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DATA_HOME", str(data))
    hometrash = os.path.join(os.fsencode(data), b"Trash")
    monkeypatch.setattr(plat_other, "XDG_DATA_HOME", os.fsencode(data))
    monkeypatch.setattr(plat_other, "HOMETRASH_B", hometrash)
    monkeypatch.setattr(plat_other, "HOMETRASH", os.fsdecode(hometrash))
    return data / "Trash"


@pytest.fixture
def no_system_trash(monkeypatch):
    """No system trash takes any file: delete(trash=True) uses .fastdif-trash."""
    monkeypatch.setattr(trash.SystemTrash, "folder_for", lambda self, path: None)


def read(path):
    with open(path, "rb") as f:
        return f.read()


def trash_contents(folder):
    """``{original path: bytes}`` of the files in a freedesktop trash folder."""
    found = {}
    for name in os.listdir(folder / "info"):
        assert name.endswith(".trashinfo"), name
        lines = (folder / "info" / name).read_text().splitlines()
        assert lines[0] == "[Trash Info]"
        [original] = [unquote(line[5:]) for line in lines if line.startswith("Path=")]
        found[original] = read(folder / "files" / name[: -len(".trashinfo")])
    return found


def no_question(prompt=""):
    raise AssertionError(f"no question expected, got {prompt!r}")


# ---------------------------------------------------------------- system trash


def test_trash_sends_lower_quality_to_the_home_trash(home_trash, dup_set, find):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    content = {path: read(path) for path in lower}
    keys = {k: read(p[k]) for k in ("a", "b", "c")}

    report = se.delete(silent_del=True, trash=True)

    assert report == {
        "trashed": dict.fromkeys(lower, str(home_trash)),
        "moved": {},
        "manifests": [],
        "failed": {},
    }
    assert not any(os.path.lexists(path) for path in lower)
    # A .trashinfo with the original path for each; the two a_copy.png both kept.
    assert trash_contents(home_trash) == content
    assert {k: read(p[k]) for k in keys} == keys
    assert se.lower_quality == []
    assert not (src / trash.FASTDIF_TRASH).exists()


def test_trash_keeps_a_file_changed_after_the_search(home_trash, dup_set, find):
    src, p = dup_set
    se = find(src)
    images.save_photo(9, p["b1"])  # another picture under the member's name

    report = se.delete(silent_del=True, trash=True)

    assert list(report["failed"]) == [p["b1"]]
    assert report["failed"][p["b1"]].startswith("identity check failed")
    assert set(report["trashed"]) == {p["a1"], p["a2"]}
    assert os.path.isfile(p["b1"])
    assert set(trash_contents(home_trash)) == {p["a1"], p["a2"]}
    assert se.lower_quality == [p["b1"]]


def test_trash_never_takes_a_library_image(home_trash, tmp_path, find):
    library = tmp_path / "library"
    new = tmp_path / "new"
    kept = images.save_photo(4, library / "t.png")
    other = images.save_photo(5, library / "u.png")
    copy = images.copy_bytes(kept, new / "t_copy.png")
    se = find(new, reference=str(library))
    assert se.lower_quality == [copy]
    # A result edited to list a library image as a member.
    se.result[kept].append([other, 0.0])
    se.lower_quality.append(other)

    report = se.delete(silent_del=True, trash=True)

    assert report["failed"] == {other: "a reference (library) image is never moved or deleted"}
    assert list(report["trashed"]) == [copy]
    assert os.path.isfile(kept) and os.path.isfile(other)


def test_trash_asks_first_and_no_keeps_everything(home_trash, dup_set, find, monkeypatch):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    prompts = []

    def answer_no(prompt=""):
        prompts.append(prompt)
        return "n"

    monkeypatch.setattr("builtins.input", answer_no)
    report = se.delete(trash=True)

    assert prompts == ["Move 3 lower quality files to the trash? (y/n) "]
    assert report == {"trashed": {}, "moved": {}, "manifests": [], "failed": {}, "cancelled": True}
    assert all(os.path.isfile(path) for path in lower)
    assert not home_trash.exists()


def test_trash_dry_run_lists_and_touches_nothing(home_trash, dup_set, find, monkeypatch):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    os.remove(p["b"])  # the key of group b is gone: b1 would be kept
    monkeypatch.setattr("builtins.input", no_question)

    report = se.delete(dry_run=True, trash=True)

    assert report["would_trash"] == {p["a1"]: str(home_trash), p["a2"]: str(home_trash)}
    assert list(report["failed"]) == [p["b1"]]
    assert report["trashed"] == {} and report["manifests"] == []
    assert all(os.path.isfile(path) for path in lower)
    assert se.lower_quality == lower
    assert not home_trash.exists()
    assert not (src / trash.FASTDIF_TRASH).exists()


def test_delete_without_trash_is_permanent_and_keeps_its_shape(home_trash, dup_set, find):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)

    report = se.delete(silent_del=True)

    assert report == {"deleted": lower, "failed": {}}
    assert not any(os.path.lexists(path) for path in lower)
    assert not home_trash.exists()


def test_trash_rejects_a_non_bool(dup_set, find):
    src, p = dup_set
    with pytest.raises(TypeError, match='"trash"'):
        find(src).delete(silent_del=True, trash="yes")
    assert all(os.path.isfile(path) for path in p.values())


# ------------------------------------------------- when the system has no trash


def test_an_unusable_home_trash_falls_back_to_fastdif_trash(home_trash, dup_set, find):
    src, p = dup_set
    home_trash.parent.mkdir()
    home_trash.write_bytes(b"not a folder")  # no trash can be made here
    se = find(src)
    assert trash.SystemTrash().folder_for(p["a1"]) is None

    report = se.delete(silent_del=True, trash=True)

    folder = str(src / trash.FASTDIF_TRASH)
    assert report["trashed"] == dict.fromkeys([p["a1"], p["a2"], p["b1"]], folder)
    assert len(report["manifests"]) == 1
    assert read(home_trash) == b"not a folder"


def test_fallback_moves_with_a_manifest_and_undo_restores_every_file(
    no_system_trash, dup_set, find
):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    content = {path: read(path) for path in lower}

    report = se.delete(silent_del=True, trash=True)

    folder = src / trash.FASTDIF_TRASH
    assert report["failed"] == {}
    assert report["trashed"] == dict.fromkeys(lower, str(folder))
    assert set(report["moved"]) == set(lower)
    [manifest] = report["manifests"]
    assert os.path.dirname(manifest) == str(folder)
    assert os.path.basename(manifest).startswith(actions.MANIFEST_PREFIX)
    for source, target in report["moved"].items():
        assert not os.path.lexists(source)
        assert os.path.dirname(target) == str(folder)
        assert read(target) == content[source]
    assert se.lower_quality == []
    assert all(os.path.isfile(p[k]) for k in ("a", "b", "c"))

    undone = fastdif.undo_move(manifest)

    assert undone["failed"] == {} and undone["not_moved"] == {}
    assert {path: read(path) for path in lower} == content
    assert sorted(os.listdir(folder)) == [os.path.basename(manifest)]


def test_undo_of_the_fallback_never_overwrites(no_system_trash, dup_set, find):
    src, p = dup_set
    se = find(src)
    report = se.delete(silent_del=True, trash=True)
    [manifest] = report["manifests"]
    with open(p["b1"], "wb") as out:
        out.write(b"a new file under the old name")

    undone = fastdif.undo_move(manifest)

    moved_b1 = report["moved"][p["b1"]]
    assert list(undone["failed"]) == [moved_b1]
    assert read(p["b1"]) == b"a new file under the old name"
    assert os.path.isfile(moved_b1)
    assert sorted(undone["restored"].values()) == sorted([p["a1"], p["a2"]])


def test_a_file_the_system_trash_refuses_goes_to_fastdif_trash(
    home_trash, dup_set, find, monkeypatch
):
    src, p = dup_set
    se = find(src)

    def refuse(self, path):
        if path == p["b1"]:
            raise PermissionError(13, "Permission denied", path)
        return real_send(self, path)

    real_send = trash.SystemTrash.send
    monkeypatch.setattr(trash.SystemTrash, "send", refuse)
    report = se.delete(silent_del=True, trash=True)

    assert report["trashed"] == {
        p["a1"]: str(home_trash),
        p["a2"]: str(home_trash),
        p["b1"]: str(src / trash.FASTDIF_TRASH),
    }
    assert list(report["moved"]) == [p["b1"]]
    assert set(trash_contents(home_trash)) == {p["a1"], p["a2"]}


def test_fallback_goes_to_each_groups_folder_with_in_folder(no_system_trash, tmp_path, find):
    x = images.save_photo(7, tmp_path / "x" / "a.png")
    x1 = images.copy_bytes(x, tmp_path / "x" / "b.png")
    y = images.copy_bytes(x, tmp_path / "y" / "a.png")
    y1 = images.copy_bytes(x, tmp_path / "y" / "b.png")
    se = find(tmp_path, in_folder="subfolders")

    report = se.delete(silent_del=True, trash=True)

    assert report["trashed"] == {
        x1: str(tmp_path / "x" / trash.FASTDIF_TRASH),
        y1: str(tmp_path / "y" / trash.FASTDIF_TRASH),
    }
    assert sorted(os.path.dirname(m) for m in report["manifests"]) == sorted(
        set(report["trashed"].values())
    )
    assert os.path.isfile(x) and os.path.isfile(y)


def test_fallback_dry_run_creates_no_folder(no_system_trash, dup_set, find):
    src, p = dup_set
    se = find(src)
    report = se.delete(dry_run=True, trash=True)
    assert report["would_trash"] == dict.fromkeys(
        [p["a1"], p["a2"], p["b1"]], str(src / trash.FASTDIF_TRASH)
    )
    assert not (src / trash.FASTDIF_TRASH).exists()


def test_a_search_does_not_enter_trash_folders(tmp_path, find, groups):
    src = tmp_path / "src"
    a = images.save_photo(1, src / "a.png")
    for folder in (trash.FASTDIF_TRASH, ".Trash", ".Trash-1000", ".Trashes", "$RECYCLE.BIN"):
        images.copy_bytes(a, src / folder / "a.png")
    kept = images.copy_bytes(a, src / ".Trash-me" / "a.png")  # not a trash folder's name
    assert groups(find(src).result) == {frozenset({a, kept})}
    # Given as an input, a trash folder is searched.
    assert len(find(src / trash.FASTDIF_TRASH, src / ".Trash").lower_quality) == 1


def test_a_search_does_not_enter_the_home_trash(home_trash, tmp_path, find, groups):
    a = images.save_photo(1, tmp_path / "home" / "a.png")
    thrown = images.copy_bytes(a, home_trash / "files" / "a.png")
    other = images.copy_bytes(a, tmp_path / "home" / "Trash" / "a.png")  # not the home trash
    se = find(tmp_path)
    assert groups(se.result) == {frozenset({a, other})}
    assert thrown not in se.repository.paths


# ----------------------------------------------------------------- the real trash


def test_an_environment_changed_after_import_gets_no_system_trash(tmp_path, dup_set, find):
    # conftest points XDG_DATA_HOME at a fresh folder after send2trash read the
    # real one: sending would reach the real trash, so fastdif uses none.
    src, p = dup_set
    assert os.environ["XDG_DATA_HOME"] != os.fsdecode(plat_other.XDG_DATA_HOME)
    assert trash.SystemTrash().folder_for(p["a1"]) is None

    report = find(src).delete(silent_del=True, trash=True)

    assert set(report["trashed"].values()) == {str(src / trash.FASTDIF_TRASH)}
    assert not os.path.exists(os.path.join(os.environ["XDG_DATA_HOME"], "Trash"))


# ------------------------------------------------------------------ command line


def run_cli(*args, env):
    return subprocess.run(
        [sys.executable, "-m", "fastdif", *map(str, args), "-p", "false"],
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
        env={**os.environ, **env},
    )


@pytest.fixture
def cli_env(tmp_path):
    """HOME and XDG_DATA_HOME for a command line run: its send2trash reads them fresh."""
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    data = tmp_path / "xdg-data"
    return {"HOME": str(home), "XDG_DATA_HOME": str(data)}, data / "Trash"


def test_cli_delete_trashes_by_default(dup_set, tmp_path, cli_env):
    src, p = dup_set
    env, home_trash = cli_env
    lower = [p["a1"], p["a2"], p["b1"]]
    content = {path: read(path) for path in lower}

    proc = run_cli(src, "-Z", tmp_path, "-d", "true", "-sd", "true", env=env)

    assert proc.returncode == 0, proc.stderr
    assert "trashed 3 files, 0 kept" in proc.stdout
    assert f"  3 to the system trash ({home_trash})" in proc.stdout
    assert trash_contents(home_trash) == content
    assert all(os.path.isfile(p[k]) for k in ("a", "b", "c"))


def test_cli_dry_run_lists_where_each_file_would_go(dup_set, tmp_path, cli_env):
    src, p = dup_set
    env, home_trash = cli_env
    proc = run_cli(src, "-Z", tmp_path, "-d", "true", "--dry_run", "true", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "dry run: would trash 3 files" in proc.stdout
    assert f"  would trash: {p['a1']} -> {home_trash}" in proc.stdout
    assert all(os.path.isfile(path) for path in p.values())
    assert not home_trash.exists()


def test_cli_permanent_deletes_for_good(dup_set, tmp_path, cli_env):
    src, p = dup_set
    env, home_trash = cli_env
    lower = [p["a1"], p["a2"], p["b1"]]

    proc = run_cli(src, "-Z", tmp_path, "-d", "true", "--permanent", env=env)  # asks: no answer
    assert proc.returncode == 0, proc.stderr
    assert "Delete 3 lower quality files? (y/n)" in proc.stdout
    assert all(os.path.isfile(path) for path in lower)

    proc = run_cli(src, "-Z", tmp_path, "-d", "true", "--permanent", "-sd", "true", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "deleted 3 files, 0 kept" in proc.stdout
    assert not any(os.path.lexists(path) for path in lower)
    assert not home_trash.exists()


def test_cli_permanent_needs_delete(dup_set, capsys):
    src, _ = dup_set
    with pytest.raises(SystemExit) as exit_info:
        main([str(src), "--permanent"])
    assert exit_info.value.code == 2
    assert '"--permanent" only goes with "-d true"' in capsys.readouterr().err


def test_cli_fallback_prints_the_undo_command(no_system_trash, dup_set, tmp_path, capsys):
    src, p = dup_set
    lower = [p["a1"], p["a2"], p["b1"]]
    content = {path: read(path) for path in lower}
    common = [str(src), "-Z", str(tmp_path), "-p", "false", "-proc", "1"]

    assert main([*common, "-d", "true", "-sd", "true"]) == 0

    out = capsys.readouterr().out
    assert "trashed 3 files, 0 kept" in out
    assert f"  3 to {src / trash.FASTDIF_TRASH}" in out
    [undo] = [line for line in out.splitlines() if "undo with:" in line]
    manifest = undo.split("--undo_move ", 1)[1]
    assert not any(os.path.lexists(path) for path in lower)
    assert main(["--undo_move", manifest]) == 0
    assert {path: read(path) for path in lower} == content
