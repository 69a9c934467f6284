"""Where Numba keeps the compiled kernels: a folder chosen before Numba loads.

A kernel declared with ``cache=True`` is compiled once and then loaded from
disk. Left to itself Numba writes beside the source (``__pycache__`` inside
the installed package) or else under ``~/.cache/numba``, and where it can
write neither (a service account whose home is ``/nonexistent``, a read-only
container) it refuses to define the kernel: ``import fastdif`` failed.

``fastdif/__init__.py`` imports this module first, and it sets
``NUMBA_CACHE_DIR`` (unless the user did) to :func:`user_folder`, beside the
thumbnail cache. Where that cannot be written, a folder private to the user
in the system's temporary folder serves (:func:`private_temp_folder`); where
neither can, the kernels are not cached (:data:`ENABLED` is false, each run
compiles them again) and one line on stderr says so. Child processes (Dask
workers on this machine) inherit the variable, and so does Numba code of the
program's own that is cached.
"""

from __future__ import annotations

import contextlib
import os
import stat
import sys
import tempfile

try:
    import fcntl
except ImportError:  # Windows: no lock, as Numba itself
    fcntl = None

#: The environment variable Numba reads its cache folder from.
VARIABLE = "NUMBA_CACHE_DIR"

#: The file every save of a kernel to Numba's cache holds locked, in its folder.
SAVE_LOCK = "fastdif-saves.lock"


def user_folder() -> str:
    """``$XDG_CACHE_HOME/fastdif/numba``, or ``~/.cache/fastdif/numba``.

    ``XDG_CACHE_HOME`` counts only as an absolute path (the XDG base
    directory rule).
    """
    base = os.environ.get("XDG_CACHE_HOME", "")
    if not os.path.isabs(base):
        base = os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "fastdif", "numba")


def private_temp_folder() -> str | None:
    """``<temporary folder>/fastdif-numba-<uid>``, created if missing; None if not private.

    Numba unpickles the index files it finds there, so a folder another user
    made, or can write into, would let them run code in this process: such a
    folder (or a link in its place) is refused, never used.
    """
    uid = os.getuid() if hasattr(os, "getuid") else None  # Windows: a per-user temp folder
    name = "fastdif-numba" if uid is None else f"fastdif-numba-{uid}"
    folder = os.path.join(tempfile.gettempdir(), name)
    try:
        os.mkdir(folder, 0o700)
    except FileExistsError:
        pass
    except OSError:
        return None
    try:
        info = os.lstat(folder)
    except OSError:
        return None
    if not stat.S_ISDIR(info.st_mode):
        return None
    if uid is not None and (info.st_uid != uid or info.st_mode & 0o022):
        return None
    return folder


def _writable(folder: str) -> bool:
    """Whether ``folder`` exists, or can be created, and takes a new file: Numba's own test."""
    try:
        os.makedirs(folder, exist_ok=True)
        tempfile.TemporaryFile(dir=folder).close()
    except OSError:
        return False
    return True


def choose() -> tuple[str | None, str]:
    """The folder for compiled kernels, and what to tell the user.

    The folder is the user's ``NUMBA_CACHE_DIR``, else :func:`user_folder`,
    else :func:`private_temp_folder`: the first that can be written. Where
    none can, it is None and the note (empty otherwise) says so in one line.
    """
    again = "; each run compiles the kernels again"
    given = os.environ.get(VARIABLE)
    if given:
        if _writable(given):
            return given, ""
        return None, f"fastdif: note: cannot write {VARIABLE}={given!r}{again}"
    first = user_folder()
    if _writable(first):
        return first, ""
    folder = private_temp_folder()
    if folder is not None and _writable(folder):
        return folder, ""
    return None, f"fastdif: note: cannot write {first!r} nor a private temporary folder{again}"


def serialise_saves(*dispatchers) -> None:
    """Make every save of ``dispatchers`` (Numba kernels) to the cache hold :data:`SAVE_LOCK`.

    Numba adds a signature to a kernel's cache by reading its index, choosing
    a data file name and writing both: two processes doing it at once can
    leave the index naming another signature's code (numba issues 4807 and
    10128). With the lock they save one after the other.
    """
    if fcntl is None or FOLDER is None:
        return
    for dispatcher in dispatchers:
        cache = dispatcher._cache
        cache.save_overload = _locked(cache.save_overload)


def _locked(save):
    def locked_save(sig, data):
        with _save_lock():
            save(sig, data)

    return locked_save


@contextlib.contextmanager
def _save_lock():
    try:
        lock = os.open(os.path.join(FOLDER, SAVE_LOCK), os.O_RDWR | os.O_CREAT, 0o600)
    except OSError:  # the folder went away: Numba's own save fails quietly too
        yield
        return
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        yield
    finally:
        os.close(lock)


#: The folder Numba caches fastdif's kernels in; None when they are not cached.
FOLDER, _NOTE = choose()

#: The ``cache`` flag of every kernel: false when no folder can be written.
ENABLED = FOLDER is not None

if FOLDER is None:
    print(_NOTE, file=sys.stderr)
else:
    os.environ[VARIABLE] = FOLDER
    if "numba" in sys.modules:  # imported before fastdif: make it read the variable again
        sys.modules["numba"].core.config.reload_config()
