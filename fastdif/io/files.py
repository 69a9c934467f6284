"""Files fastdif reads and writes: reading what it did not write, writing atomically.

A path found at build may name anything when it is read again (a decision
hash, a keep rule's header, the report's thumbnail, a re-check before a
delete): a named pipe put in a photo's place would block a plain ``open``
until some writer comes, and a device may never end. Every such read opens
the file through :func:`open_regular`.

Every file fastdif writes for the user (results, manifests, the report, a
decision file, a file moved across file systems) is written through
:func:`write_atomic`: a temporary file beside it, on disk before it gets its
name, so a reader or a crash never meets a partial file.
"""

from __future__ import annotations

import errno
import os
import secrets
import stat
from collections.abc import Callable
from typing import BinaryIO

# O_NONBLOCK: opening a named pipe returns at once instead of waiting for a
# writer (on a regular file it changes nothing: its reads never wait).
# O_NOCTTY: a terminal is never made this process's controlling one.
# O_BINARY: no newline translation on Windows (which has no named pipes to wait on).
_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_NONBLOCK", 0)
    | getattr(os, "O_NOCTTY", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | getattr(os, "O_BINARY", 0)
)

NOT_REGULAR = "Not a regular file (named pipe, socket, device or folder)"


def open_regular(path) -> BinaryIO:
    """Open the regular file at ``path`` to read its bytes; a link is followed to it.

    The path is checked before it is opened (opening a device may act on it)
    and what was opened is checked again, so a file swapped for a pipe in
    between is refused too, and the open itself never waits.

    Parameters
    ----------
    path : str, bytes or os.PathLike

    Returns
    -------
    BinaryIO
        The open file, buffered; closing it closes its descriptor.

    Raises
    ------
    OSError
        It cannot be opened, or it is not a regular file (``errno.EINVAL``,
        :data:`NOT_REGULAR`): a named pipe, a socket, a device or a folder.
    """
    if not stat.S_ISREG(os.stat(path).st_mode):
        raise OSError(errno.EINVAL, NOT_REGULAR, os.fspath(path))
    fd = os.open(path, _FLAGS)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise OSError(errno.EINVAL, NOT_REGULAR, os.fspath(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


# A hard link is not possible here: the name is claimed another way, or the file copied.
NO_LINK = (errno.EXDEV, errno.EPERM, errno.ENOTSUP, errno.EMLINK)

# O_EXCL: a new file, never one already there nor through a link put there.
_NEW_FILE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def write_atomic(
    path: str,
    write: Callable[[BinaryIO], object],
    *,
    replace: bool = False,
    numbered: bool = False,
    temp: str | None = None,
    ready: Callable[[str], object] | None = None,
    then: Callable[[str], object] | None = None,
) -> str:
    """Write a new file at ``path`` so that a reader sees the old file or the whole new one.

    ``write`` puts the bytes into a temporary file in ``path``'s folder; it is
    flushed to disk, ``ready`` (a last check, or last touches) is called with
    its name, and only then does it get its name: with ``replace``,
    ``os.replace``, which replaces a file or a link at ``path`` (a link is
    replaced, never followed); else :func:`link_new`, which never replaces
    anything. The folder is flushed to disk after (where the system allows).
    On any failure, an interrupt included, the temporary file is removed and
    ``path`` is as it was (without ``replace``, a name given just before the
    folder flush failed is taken back).

    Parameters
    ----------
    path : str
        The file to write.
    write : callable
        ``write(file)`` writes the content to ``file``, a binary file open for writing.
    replace : bool, default False
        Replace what is at ``path``: the caller has checked it may (``ready``
        can check again just before).
    numbered : bool, default False
        Without ``replace``: if ``path`` is taken, ``stem_1.ext``,
        ``stem_2.ext``, ... are tried in turn.
    temp : str, optional
        The temporary file's name, in ``path``'s folder (created anew, never
        through a link: FileExistsError if taken); by default a fresh
        ``.fastdif-<random>.tmp`` (:func:`create_temp`).
    ready : callable, optional
        Called with the temporary file's name once its data is on disk and it
        is closed, before it gets its name; raise to give up.
    then : callable, optional
        Called with the path written while the temporary name is still a
        second name of it (a hard link), before that name is removed. A
        failure there is the caller's to undo.

    Returns
    -------
    str
        The path written (with ``numbered``, maybe another name).

    Raises
    ------
    FileExistsError
        Without ``replace`` (and ``numbered``): ``path`` is taken.
    OSError
        The file cannot be written (a full disk: ``errno.ENOSPC``).
    """
    folder = os.path.dirname(os.path.abspath(path))
    if temp is None:
        fd, temp = create_temp(folder)
    else:
        fd = os.open(temp, _NEW_FILE, 0o666)
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        if ready is not None:
            ready(temp)
        if replace:
            os.replace(temp, path)
        else:
            path = _link_free(temp, path, numbered)
        try:
            sync_folder(folder)  # the new name is on disk before the caller goes on
        except BaseException:
            if not replace:
                os.unlink(path)
            raise
        if then is not None:
            then(path)
    finally:
        if os.path.lexists(temp):
            os.unlink(temp)
    return path


def create_temp(folder: str) -> tuple[int, str]:
    """Create a new empty file ``folder/.fastdif-<random>.tmp``; return ``(fd, path)``.

    Opened for writing with ``O_EXCL`` and mode 0666, so the umask sets its
    permissions as for any other new file (``tempfile.mkstemp`` makes 0600,
    which the name it is given later would keep).
    """
    while True:
        path = os.path.join(folder, f".fastdif-{secrets.token_hex(8)}.tmp")
        try:
            return os.open(path, _NEW_FILE, 0o666), path
        except FileExistsError:
            continue


def _link_free(temp: str, path: str, numbered: bool) -> str:
    """:func:`link_new` ``temp`` to ``path``, or with ``numbered`` to its first free variant."""
    stem, ext = os.path.splitext(path)
    number = 0
    while True:
        target = path if number == 0 else f"{stem}_{number}{ext}"
        try:
            link_new(temp, target)
            return target
        except FileExistsError:
            if not numbered:
                raise
            number += 1


def link_new(temp: str, target: str) -> None:
    """Give the complete file ``temp`` the name ``target``, which must not exist.

    A hard link claims the name atomically and never replaces anything (a
    link at ``target`` included); ``temp`` stays a second name. Where the
    file system has no hard links, the name is claimed by an empty file and
    ``temp`` renamed onto it in one step: a reader sees an empty file or the
    whole one.

    Raises
    ------
    FileExistsError
        ``target`` exists.
    """
    try:
        os.link(temp, target)
    except OSError as exc:
        if isinstance(exc, FileExistsError) or exc.errno not in NO_LINK:
            raise
        os.close(os.open(target, _NEW_FILE, 0o666))
        try:
            os.replace(temp, target)
        except BaseException:
            if os.path.lexists(temp):  # not replaced: give the claimed name back
                os.unlink(target)
            raise


def sync_folder(folder: str) -> None:
    """Flush ``folder``'s entries to disk, so a new name survives a power cut, where possible.

    A folder cannot be opened on Windows, and not every file system flushes
    one: then this does nothing.
    """
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
