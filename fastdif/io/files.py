"""Opening a file fastdif did not write, to read it: a regular file only, and never a wait.

A path found at build may name anything when it is read again (a decision
hash, a keep rule's header, the report's thumbnail, a re-check before a
delete): a named pipe put in a photo's place would block a plain ``open``
until some writer comes, and a device may never end. Every such read opens
the file through :func:`open_regular`.
"""

from __future__ import annotations

import errno
import os
import stat
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
