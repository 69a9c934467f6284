"""fastdif.io.files: the one atomic-write helper every writer uses."""

import errno
import os
import stat

import pytest

from fastdif.io import files


def put(data: bytes):
    return lambda out: out.write(data)


def listing(folder) -> list[str]:
    return sorted(os.listdir(folder))


@pytest.fixture
def old(tmp_path):
    path = tmp_path / "out.json"
    path.write_bytes(b"old")
    return str(path)


def test_a_new_file_gets_its_name_and_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        path = files.write_atomic(str(tmp_path / "new.txt"), put(b"new"))
    finally:
        os.umask(previous)
    assert open(path, "rb").read() == b"new"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert listing(tmp_path) == ["new.txt"]


@pytest.mark.parametrize("replace", [False, True])
def test_a_failure_mid_write_leaves_the_old_file_and_no_temporary_file(old, replace):
    def half_then_fail(out):
        out.write(b"ha")
        out.flush()
        raise RuntimeError("the writer failed")

    with pytest.raises(RuntimeError):
        files.write_atomic(old, half_then_fail, replace=replace)

    assert open(old, "rb").read() == b"old"
    assert listing(os.path.dirname(old)) == ["out.json"]


def test_a_full_disk_leaves_the_old_file_and_no_temporary_file(old):
    def full_disk(out):
        out.write(b"partial")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.raises(OSError) as raised:
        files.write_atomic(old, full_disk, replace=True)

    assert raised.value.errno == errno.ENOSPC
    assert open(old, "rb").read() == b"old"
    assert listing(os.path.dirname(old)) == ["out.json"]


def test_the_recheck_sees_the_whole_file_and_can_refuse(old):
    seen = []

    def ready(temp):
        seen.append(open(temp, "rb").read())
        raise FileExistsError("not ours any more")

    with pytest.raises(FileExistsError):
        files.write_atomic(old, put(b"new"), replace=True, ready=ready)

    assert seen == [b"new"]
    assert open(old, "rb").read() == b"old"
    assert listing(os.path.dirname(old)) == ["out.json"]


def test_replace_replaces_the_file(old):
    assert files.write_atomic(old, put(b"new"), replace=True) == old
    assert open(old, "rb").read() == b"new"
    assert listing(os.path.dirname(old)) == ["out.json"]


def test_without_replace_a_taken_name_is_never_replaced(old):
    with pytest.raises(FileExistsError):
        files.write_atomic(old, put(b"new"))
    assert open(old, "rb").read() == b"old"
    assert listing(os.path.dirname(old)) == ["out.json"]


def test_numbered_takes_the_first_free_name(old):
    first = files.write_atomic(old, put(b"one"), numbered=True)
    second = files.write_atomic(old, put(b"two"), numbered=True)

    folder = os.path.dirname(old)
    assert (first, second) == (
        os.path.join(folder, "out_1.json"),
        os.path.join(folder, "out_2.json"),
    )
    assert [open(p, "rb").read() for p in (old, first, second)] == [b"old", b"one", b"two"]


@pytest.mark.parametrize("dangling", [False, True])
def test_a_link_at_the_target_is_never_followed(tmp_path, dangling):
    victim = tmp_path / "victim.txt"
    if not dangling:
        victim.write_bytes(b"precious")
    link = tmp_path / "out.txt"
    link.symlink_to(victim)

    with pytest.raises(FileExistsError):
        files.write_atomic(str(link), put(b"new"))
    assert os.path.islink(link) and os.readlink(link) == str(victim)

    # Replacing replaces the link itself, never the file it points to.
    files.write_atomic(str(link), put(b"new"), replace=True)
    assert not os.path.islink(link) and link.read_bytes() == b"new"
    assert victim.read_bytes() == b"precious" if not dangling else not victim.exists()


def test_without_hard_links_the_name_is_claimed_and_never_replaced(old, monkeypatch):
    def no_link(src, dst, **kwargs):
        raise OSError(errno.EPERM, "no hard links here")

    monkeypatch.setattr(os, "link", no_link)
    path = files.write_atomic(old, put(b"new"), numbered=True)

    assert open(old, "rb").read() == b"old" and open(path, "rb").read() == b"new"
    assert listing(os.path.dirname(old)) == ["out.json", "out_1.json"]


def test_a_given_temporary_name_stays_a_second_name_until_then_returns(tmp_path):
    temp = str(tmp_path / ".move.partial")
    target = str(tmp_path / "moved.jpg")
    seen = []

    def then(path):
        seen.append((path, os.path.samefile(path, temp)))

    files.write_atomic(target, put(b"photo"), temp=temp, then=then)

    assert seen == [(target, True)]
    assert listing(tmp_path) == ["moved.jpg"]


def test_a_taken_temporary_name_is_an_error_and_left_alone(tmp_path):
    temp = tmp_path / ".move.partial"
    temp.write_bytes(b"someone else's")

    with pytest.raises(FileExistsError):
        files.write_atomic(str(tmp_path / "moved.jpg"), put(b"photo"), temp=str(temp))

    assert temp.read_bytes() == b"someone else's"
    assert listing(tmp_path) == [".move.partial"]
