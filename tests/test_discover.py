"""fastdif.io.discover: walking folders, links, hidden files, extensions, input validation."""

import os
import socket
from pathlib import Path

import images
import pytest

from fastdif.io.discover import (
    NOT_A_FILE,
    UNSUPPORTED,
    discover,
    image_extensions,
    validate_directories,
)


def touch_png(path, seed=0):
    return images.save_photo(seed, path, 40, 30)


def test_order_is_sorted_within_folders_and_independent_of_creation_order(tmp_path):
    names = [
        "c.png",
        "sub2/x.png",
        "a.png",
        "B.png",
        "sub1/y.png",
        "b.png",
        "a_dir/z.png",
        "sub1/a.png",
    ]
    trees = []
    for label, order in (("one", names), ("two", names[::-1])):
        root = tmp_path / label
        for name in order:
            touch_png(root / name)
        found = discover([str(root)], recursive=True, limit_extensions=True)
        trees.append([os.path.relpath(p, root) for p in found.files])
        assert found.files == discover([str(root)], True, True).files  # same on a second walk
        assert found.invalid == {}

    assert trees[0] == trees[1]
    order = trees[0]
    assert sorted(order) == sorted(names)
    # Files of one folder come in sorted order; folders are visited in sorted order.
    for folder in {os.path.dirname(n) for n in names}:
        in_folder = [n for n in order if os.path.dirname(n) == folder]
        assert in_folder == sorted(in_folder)
    first_seen = list(dict.fromkeys(os.path.dirname(n) for n in order))
    assert first_seen == sorted(first_seen)


def test_folders_list_each_files_folder(tmp_path):
    a = touch_png(tmp_path / "a.png")
    b = touch_png(tmp_path / "sub" / "b.png")
    single = touch_png(tmp_path / "other" / "c.png")

    found = discover([str(tmp_path / "sub"), str(tmp_path), single], True, True)

    assert dict(zip(found.files, found.folders, strict=True)) == {
        b: str(tmp_path / "sub"),
        a: str(tmp_path),
        single: str(tmp_path / "other"),
    }


def test_inputs_are_searched_in_sorted_order(tmp_path, build):
    touch_png(tmp_path / "a" / "1.png", 1)
    touch_png(tmp_path / "b" / "2.png", 2)
    forward = build(tmp_path / "a", tmp_path / "b")
    backward = build(tmp_path / "b", tmp_path / "a")
    assert (
        forward.paths
        == backward.paths
        == (
            str(tmp_path / "a" / "1.png"),
            str(tmp_path / "b" / "2.png"),
        )
    )


def test_symlink_loop_terminates_and_lists_each_file_once(tmp_path, build):
    a = touch_png(tmp_path / "a.png", 1)
    b = touch_png(tmp_path / "sub" / "b.png", 2)
    os.symlink(tmp_path, tmp_path / "sub" / "loop")  # a folder link to its parent
    os.symlink(tmp_path / "sub", tmp_path / "sub" / "self")  # and to itself

    found = discover([str(tmp_path)], recursive=True, limit_extensions=True)

    assert found.files == [a, b]
    assert found.invalid == {}
    dif = build(tmp_path)
    assert dif.paths == (a, b)
    assert dif.stats["total_files"] == 2


def test_a_file_reached_through_a_link_is_kept_once(tmp_path, find):
    a = touch_png(tmp_path / "a.png", 1)
    os.symlink(a, tmp_path / "b_link.png")
    os.symlink(tmp_path, tmp_path / "z_dir_link")

    found = discover([str(tmp_path)], True, True)
    assert found.files == [a]

    se = find(tmp_path)
    assert se.result == {}  # the picture is never its own duplicate
    assert se.stats["process"]["search"]["files_searched"] == 1


def test_dangling_symlink_is_reported_invalid(tmp_path, find):
    a = touch_png(tmp_path / "a.png", 1)
    copy = images.copy_bytes(a, tmp_path / "copy.png")
    ghost = tmp_path / "ghost.png"
    os.symlink(tmp_path / "missing.png", ghost)

    found = discover([str(tmp_path)], True, True)
    assert found.files == [a, copy]
    assert list(found.invalid) == [str(ghost)]
    reason = found.invalid[str(ghost)]
    assert isinstance(reason, str) and reason and "\n" not in reason

    se = find(tmp_path)
    assert se.result == {a: [[copy, 0.0]]}
    assert list(se.stats["invalid_files"]["logs"]) == [str(ghost)]
    assert se.stats["invalid_files"]["count"] == 1


def test_hidden_files_and_folders_are_included(tmp_path, find, groups):
    visible = touch_png(tmp_path / "photo.png", 1)
    hidden = images.copy_bytes(visible, tmp_path / ".photo.png")
    in_hidden_dir = images.copy_bytes(visible, tmp_path / ".cache" / "photo.png")

    found = discover([str(tmp_path)], True, True)
    assert sorted(found.files) == sorted([visible, hidden, in_hidden_dir])

    se = find(tmp_path)
    assert groups(se.result) == {frozenset([visible, hidden, in_hidden_dir])}


@pytest.mark.parametrize("folder", ["[2024] trip", "a[b]c", "star*and?mark", "x[!y]"])
def test_folder_names_with_glob_characters_work(tmp_path, find, folder):
    root = tmp_path / folder
    a = touch_png(root / "a.png", 1)
    b = images.copy_bytes(a, root / "[b].png")  # "[" sorts before "a"

    assert discover([str(root)], True, True).files == [b, a]
    assert find(root).result == {b: [[a, 0.0]]}
    assert find(a, b).result == {b: [[a, 0.0]]}


def test_extension_filter(tmp_path):
    upper = touch_png(tmp_path / "A.PNG", 1)
    jpeg = images.save_photo(2, tmp_path / "b.JPEG", 40, 30)
    text = tmp_path / "c.txt"
    text.write_text("hello")
    no_ext = tmp_path / "README"
    no_ext.write_text("hello")

    limited = discover([str(tmp_path)], True, True)
    assert limited.files == [upper, jpeg]
    assert limited.invalid == {str(no_ext): UNSUPPORTED, str(text): UNSUPPORTED}
    assert UNSUPPORTED == "Unsupported file type"

    everything = discover([str(tmp_path)], True, False)
    assert sorted(everything.files) == sorted([upper, jpeg, str(text), str(no_ext)])
    assert everything.invalid == {}


def test_image_extensions_cover_common_formats():
    extensions = image_extensions()
    for ext in (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp"):
        assert ext in extensions
    assert ".txt" not in extensions
    assert all(ext == ext.lower() and ext.startswith(".") for ext in extensions)


def test_recursive_false_skips_sub_folders(tmp_path):
    a = touch_png(tmp_path / "a.png")
    touch_png(tmp_path / "sub" / "b.png")

    found = discover([str(tmp_path)], recursive=False, limit_extensions=True)

    assert found.files == [a]
    assert found.invalid == {}


def test_overlapping_inputs_list_a_file_once(tmp_path):
    a = touch_png(tmp_path / "a.png", 1)
    b = touch_png(tmp_path / "sub" / "b.png", 2)

    paths = validate_directories((str(tmp_path), [a, str(tmp_path / "sub")]))
    found = discover(paths, True, True)

    assert sorted(found.files) == sorted([a, b])
    assert len(found.files) == len(set(found.files)) == 2


def test_validate_directories(tmp_path):
    a = touch_png(tmp_path / "x" / "a.png")
    (tmp_path / "y").mkdir()

    assert validate_directories((Path(tmp_path / "y"), [str(tmp_path / "x"), Path(a)])) == sorted(
        [str(tmp_path / "y"), str(tmp_path / "x"), a]
    )
    with pytest.raises(ValueError, match="directory"):
        validate_directories(())
    with pytest.raises(FileNotFoundError, match="nope"):
        validate_directories((str(tmp_path / "nope"),))
    with pytest.raises(ValueError, match="directory"):
        validate_directories((str(tmp_path / "x"), str(tmp_path / "y" / ".." / "x")))
    os.symlink(tmp_path / "x", tmp_path / "x_link")
    with pytest.raises(ValueError, match="directory"):
        validate_directories((str(tmp_path / "x"), str(tmp_path / "x_link")))
    with pytest.raises(TypeError, match="directory"):
        validate_directories((b"bytes-path",))


def test_named_pipes_and_sockets_are_reported_never_opened(tmp_path, find):
    # Opening a named pipe blocks until something writes to it: a build that
    # tried would hang.
    a = touch_png(tmp_path / "a.png", 1)
    copy = images.copy_bytes(a, tmp_path / "b.png")
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    sock_path = tmp_path / "s.jpg"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(sock_path))
    try:
        found = discover([str(tmp_path)], True, True)
        assert found.files == [a, copy]
        assert found.invalid == {str(fifo): NOT_A_FILE, str(sock_path): NOT_A_FILE}

        se = find(tmp_path / "a.png", fifo)  # a pipe given directly
        assert se.stats["invalid_files"]["logs"] == {str(fifo): NOT_A_FILE}
        assert find(tmp_path).result == {a: [[copy, 0.0]]}
    finally:
        server.close()


def test_a_file_reached_through_two_unrelated_paths_is_kept_once(tmp_path, find):
    # A hard link stands in for a bind mount: two paths realpath cannot unify,
    # one device and inode. The first path in the walk's order is kept.
    a = touch_png(tmp_path / "a" / "photo.png", 1)
    second = tmp_path / "b" / "same.png"
    second.parent.mkdir()
    os.link(a, second)
    assert os.path.realpath(a) != os.path.realpath(second)
    text = tmp_path / "a" / "0.txt"  # found first, under an unsupported name
    os.link(a, text)
    other = touch_png(tmp_path / "b" / "other.png", 2)

    found = discover([str(tmp_path)], True, True)

    assert found.files == [a, other]
    assert found.invalid == {str(text): UNSUPPORTED}
    assert discover([str(second), a], True, True).files == [str(second)]
    se = find(tmp_path / "b", tmp_path / "a")
    assert se.result == {}  # never its own duplicate: nothing to delete or move
    assert se.stats["process"]["search"]["files_searched"] == 2


def remove_tree(top):
    """Remove a folder tree of any depth (Python 3.11's shutil.rmtree recurses
    once per level, and pytest's clean-up of old temporary folders uses it)."""
    pending = [str(top)]
    while pending:
        folder = pending[-1]
        with os.scandir(folder) as entries:
            subfolders = [e.path for e in entries if e.is_dir(follow_symlinks=False)]
        if subfolders:
            pending.extend(subfolders)
            continue
        with os.scandir(folder) as entries:
            for entry in entries:
                os.unlink(entry.path)
        os.rmdir(pending.pop())


def test_a_tree_deeper_than_the_recursion_limit_is_walked(tmp_path, find):
    top = tmp_path / "deep"
    folder = top
    top.mkdir()
    try:
        for _ in range(1200):  # os.makedirs itself recurses, one call per folder
            folder = folder / "d"
            folder.mkdir()
        a = touch_png(folder / "a.png", 1)
        copy = images.copy_bytes(a, top / "copy.png")
        beside = touch_png(top / "d" / "e" / "b.png", 2)  # a sibling after the deep branch

        found = discover([str(top)], True, True)

        assert found.files == [copy, a, beside]
        assert found.invalid == {}
        assert find(top).result == {copy: [[a, 0.0]]}
    finally:
        remove_tree(top)


def test_walk_order_is_depth_first_with_files_before_sub_folders(tmp_path):
    names = ["z.png", "a/b/y.png", "a/x.png", "a/b/c/w.png", "a/d/v.png", "b/u.png"]
    for name in names:
        touch_png(tmp_path / name)
    os.symlink(tmp_path / "a" / "b", tmp_path / "a" / "a_link")  # reached first as a_link

    found = discover([str(tmp_path)], True, True)

    relative = [os.path.relpath(p, tmp_path) for p in found.files]
    assert relative == [
        "z.png",
        "a/x.png",
        "a/a_link/y.png",
        "a/a_link/c/w.png",
        "a/d/v.png",
        "b/u.png",
    ]
