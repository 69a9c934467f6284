"""SearchResult.move_to / delete and fastdif.actions: never lose a user's picture."""

import errno
import json
import os
import pickle

import images
import pytest

from fastdif import actions, verify


def read(path):
    with open(path, "rb") as f:
        return f.read()


def pictures(folder):
    """Sorted names in ``folder``, without the move manifest (checked: exactly one)."""
    names = sorted(os.listdir(folder))
    manifests = [n for n in names if n.startswith(actions.MANIFEST_PREFIX)]
    assert len(manifests) == 1, names
    return [n for n in names if n not in manifests]


def test_move_to_moves_lower_quality_and_keeps_keys(tmp_path, dup_set, find):
    src, p = dup_set
    se = find(src)
    assert set(se.result) == {p["a"], p["b"]}
    assert sorted(se.lower_quality) == sorted([p["a1"], p["a2"], p["b1"]])
    content = {path: read(path) for path in se.lower_quality}
    dest = tmp_path / "dest" / "new"  # created when missing

    report = se.move_to(str(dest))

    assert report["failed"] == {}
    assert set(report["moved"]) == set(content)
    for source, target in report["moved"].items():
        assert not os.path.exists(source)
        assert os.path.dirname(target) == str(dest)
        assert read(target) == content[source]
    # Two files named a_copy.png from different folders: two distinct files.
    assert pictures(dest) == ["a_copy.png", "a_copy_1.png", "b_copy.png"]
    assert sorted(se.lower_quality) == sorted(report["moved"].values())
    for key in (p["a"], p["b"], p["c"]):
        assert os.path.isfile(key)


def test_move_to_never_overwrites_an_existing_file(tmp_path, dup_set, find):
    src, p = dup_set
    dest = tmp_path / "dest"
    dest.mkdir()
    (dest / "b_copy.png").write_bytes(b"someone else's file")
    (dest / "a_copy.png").write_bytes(b"another one")
    (dest / "a_copy_1.png").write_bytes(b"and another")
    se = find(src)

    report = se.move_to(dest)  # pathlib.Path accepted

    assert report["failed"] == {}
    assert read(dest / "b_copy.png") == b"someone else's file"
    assert read(dest / "a_copy.png") == b"another one"
    assert read(dest / "a_copy_1.png") == b"and another"
    assert report["moved"][p["b1"]] == str(dest / "b_copy_1.png")
    assert sorted(report["moved"][s] for s in (p["a1"], p["a2"])) == [
        str(dest / "a_copy_2.png"),
        str(dest / "a_copy_3.png"),
    ]
    assert len(pictures(dest)) == 6
    assert sorted(se.lower_quality) == sorted(report["moved"].values())


def test_move_to_reports_a_vanished_file_and_moves_the_rest(tmp_path, dup_set, find):
    src, p = dup_set
    se = find(src)
    os.remove(p["b1"])

    report = se.move_to(tmp_path / "dest")

    assert list(report["failed"]) == [p["b1"]]
    assert set(report["moved"]) == {p["a1"], p["a2"]}
    assert p["b1"] in se.lower_quality  # not moved: keeps its old path


def test_move_to_rejects_a_non_path_destination(dup_set, find):
    src, _ = dup_set
    se = find(src)
    with pytest.raises(TypeError, match="destination"):
        se.move_to(42)


def test_move_across_filesystems_copies_then_removes(tmp_path, dup_set, find, monkeypatch):
    src, p = dup_set
    se = find(src)
    content = {path: read(path) for path in se.lower_quality}

    def no_link(source, target, **kwargs):
        raise OSError(errno.EXDEV, "Invalid cross-device link")

    monkeypatch.setattr(actions.os, "link", no_link)
    report = se.move_to(tmp_path / "dest")

    assert report["failed"] == {}
    for source, target in report["moved"].items():
        assert not os.path.exists(source)
        assert read(target) == content[source]
    assert pictures(tmp_path / "dest") == ["a_copy.png", "a_copy_1.png", "b_copy.png"]


def test_copy_then_remove_keeps_content_and_mtime(tmp_path):
    source = tmp_path / "src" / "photo.jpg"
    images.save_photo(4, source)
    data = read(source)
    os.utime(source, (1_000_000_000, 1_234_567_890))
    folder = tmp_path / "other"
    folder.mkdir()
    (folder / "photo.jpg").write_bytes(b"existing")

    target = actions._copy_then_remove(str(source), str(folder), "photo.jpg")

    assert target == str(folder / "photo_1.jpg")
    assert not source.exists()
    assert read(target) == data
    assert os.stat(target).st_mtime == pytest.approx(1_234_567_890, abs=1e-3)
    assert read(folder / "photo.jpg") == b"existing"


def test_copy_then_remove_leaves_nothing_behind_on_failure(tmp_path):
    folder = tmp_path / "dest"
    folder.mkdir()
    with pytest.raises(OSError):
        actions._copy_then_remove(str(tmp_path / "missing.jpg"), str(folder), "missing.jpg")
    assert os.listdir(folder) == []


def test_free_name_numbers_after_the_stem(tmp_path):
    assert actions.free_name(str(tmp_path), "x.tar.gz") == str(tmp_path / "x.tar.gz")
    (tmp_path / "x.png").write_bytes(b"")
    (tmp_path / "x_1.png").write_bytes(b"")
    assert actions.free_name(str(tmp_path), "x.png") == str(tmp_path / "x_2.png")
    (tmp_path / "noext").write_bytes(b"")
    assert actions.free_name(str(tmp_path), "noext") == str(tmp_path / "noext_1")
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling.png")  # a dangling link is taken too
    assert actions.free_name(str(tmp_path), "dangling.png") == str(tmp_path / "dangling_1.png")


def test_delete_silent_removes_only_lower_quality(dup_set, find):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)

    report = se.delete(silent_del=True)

    assert sorted(report["deleted"]) == sorted(lower)
    assert report["failed"] == {}
    for path in lower:
        assert not os.path.exists(path)
    for key in (p["a"], p["b"], p["c"]):
        assert os.path.isfile(key)
    assert se.lower_quality == []


def test_delete_asks_and_no_means_no(dup_set, find, monkeypatch):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    prompts = []

    def answer_no(prompt=""):
        prompts.append(prompt)
        return "n"

    monkeypatch.setattr("builtins.input", answer_no)
    report = se.delete()

    assert len(prompts) == 1
    assert report == {"deleted": [], "failed": {}, "cancelled": True}
    assert all(os.path.isfile(path) for path in lower)
    assert se.lower_quality == lower


def test_delete_asks_and_yes_deletes(dup_set, find, monkeypatch):
    src, p = dup_set
    se = find(src)
    lower = list(se.lower_quality)
    monkeypatch.setattr("builtins.input", lambda prompt="": " Y ")

    report = se.delete(silent_del=False)

    assert sorted(report["deleted"]) == sorted(lower)
    assert not any(os.path.exists(path) for path in lower)
    assert all(os.path.isfile(p[k]) for k in ("a", "b", "c"))


def test_delete_with_nothing_found_does_not_fail(tmp_path, find, monkeypatch):
    images.save_photo(5, tmp_path / "a.png")
    images.save_photo(6, tmp_path / "b.png")
    se = find(tmp_path)
    assert se.result == {}

    def no_question(prompt=""):
        raise AssertionError("nothing to delete: no question expected")

    monkeypatch.setattr("builtins.input", no_question)
    assert se.delete() == {"deleted": [], "failed": {}}
    assert se.delete(silent_del=True) == {"deleted": [], "failed": {}}
    assert sorted(os.listdir(tmp_path)) == ["a.png", "b.png"]


def test_delete_keeps_a_file_whose_key_is_gone(dup_set, find):
    src, p = dup_set
    se = find(src)
    os.remove(p["a"])  # the key of group a vanished meanwhile

    report = se.delete(silent_del=True)

    assert set(report["failed"]) == {p["a1"], p["a2"]}
    assert all(reason and "\n" not in reason for reason in report["failed"].values())
    assert os.path.isfile(p["a1"]) and os.path.isfile(p["a2"])
    assert report["deleted"] == [p["b1"]]
    assert not os.path.exists(p["b1"])
    assert sorted(se.lower_quality) == sorted([p["a1"], p["a2"]])


def test_delete_rejects_a_non_bool(dup_set, find):
    src, p = dup_set
    se = find(src)
    with pytest.raises(TypeError, match="silent_del"):
        se.delete(silent_del="yes")
    assert all(os.path.isfile(path) for path in p.values())


def test_delete_with_in_folder_results(tmp_path, find):
    x = images.save_photo(7, tmp_path / "x" / "a.png")
    x1 = images.copy_bytes(x, tmp_path / "x" / "b.png")
    y = images.copy_bytes(x, tmp_path / "y" / "a.png")
    y1 = images.copy_bytes(x, tmp_path / "y" / "b.png")
    se = find(tmp_path, in_folder="subfolders")
    assert se.result == {
        str(tmp_path / "x"): {x: [[x1, 0.0]]},
        str(tmp_path / "y"): {y: [[y1, 0.0]]},
    }

    report = se.delete(silent_del=True)

    assert sorted(report["deleted"]) == sorted([x1, y1])
    assert os.path.isfile(x) and os.path.isfile(y)


def test_delete_with_overlapping_inputs_keeps_the_only_copy(tmp_path, find):
    # difPy 4.2.1 lets a file given twice match itself, and delete() then
    # removes the only copy. Here the file is counted once.
    a = images.save_photo(8, tmp_path / "a.png")
    b = images.copy_bytes(a, tmp_path / "sub" / "b.png")
    lonely = images.save_photo(9, tmp_path / "lonely.png")

    se = find(tmp_path, lonely, tmp_path / "sub")
    report = se.delete(silent_del=True)

    assert report["deleted"] == [b]
    assert os.path.isfile(a) and os.path.isfile(lonely)


def test_delete_files_refuses_a_key_listed_as_its_own_member(tmp_path):
    a = images.save_photo(10, tmp_path / "a.png")
    deleted, failed = actions.delete_files([a], {a: a})
    assert deleted == [] and list(failed) == [a]
    assert os.path.isfile(a)


# ------------------------------------------------------- failed reasons carry their kind


def test_a_refused_move_carries_its_kind_next_to_the_text(tmp_path, build, search):
    a = images.save_photo(1, tmp_path / "src" / "a.png")
    b = images.copy_bytes(a, tmp_path / "src" / "b.png")
    se = search(build(tmp_path / "src"))
    images.save_photo(2, b)  # another picture where the copy was: identity and content differ

    report = se.move_to(tmp_path / "dest")

    reason = report["failed"][b]
    assert reason.kind is actions.ActionFailure.IDENTITY
    assert reason.startswith("identity check failed: ")  # difPy-style text, as before
    assert json.loads(json.dumps(report["failed"])) == {b: str(reason)}
    assert pickle.loads(pickle.dumps(reason)).kind is actions.ActionFailure.IDENTITY
    assert report["moved"] == {} and se.lower_quality == [b]


def test_a_refused_delete_carries_its_kind(tmp_path, build, search):
    a = images.save_photo(1, tmp_path / "src" / "a.png")
    b = images.copy_bytes(a, tmp_path / "src" / "b.png")
    se = search(build(tmp_path / "src"))
    os.remove(a)  # the key is gone: its copy is the last one

    report = se.delete(silent_del=True)

    assert report["deleted"] == [] and os.path.exists(b)
    assert report["failed"][b].kind is actions.ActionFailure.IDENTITY
    deleted, failed = actions.delete_files([b], {b: a})
    assert deleted == [] and failed[b].kind is actions.ActionFailure.KEY_GONE
    assert failed[b] == f"kept: the group's key {a!r} no longer exists"


def test_every_check_of_verify_is_a_kind_of_action_failure():
    assert {check.value for check in verify.Check} <= {kind.value for kind in actions.ActionFailure}
