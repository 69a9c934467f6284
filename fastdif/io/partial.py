"""A store being built: thumbnails streamed to disk, with a journal to resume from.

``build(..., store=STORE)`` without a scheduler writes into the folder
``.STORE.partial`` beside ``STORE`` (the name of :func:`partial_folder`),
which a build creates with its ``build.json`` in one rename. A link there,
or anything that is not a folder holding fastdif's ``build.json``, is
refused before anything is written, and no file in it is opened through
a link:

``build.json``
    ``format`` ("fastdif-partial-build"), ``format_version`` and
    ``settings`` (:func:`fastdif.io.cache.decoding_settings`: the thumbnail
    side and definition). A resumed build must have the same settings.
``tensors.npy``
    uint8 (capacity, px, px, 3): thumbnails in the order they were decoded,
    written with plain writes whose every count is checked (never mapped, so
    they are page cache, not this process's memory; a full disk is an
    OSError, never a short row). The header is always :data:`HEADER_BYTES`
    long, so the capacity can grow or shrink in place.
``journal.bin``
    One record per finished file, appended: a CRC-32, the thumbnail's row
    (-1 for a file that failed), width, height, file size, modification
    time, ``(st_dev, st_ino)``, the failure kind and the lengths of the path
    and the reason, then the path and the reason. Records are written only
    after the rows they name were handed to the operating system (and
    ``fdatasync`` reached the disk), so a build killed at any point (SIGKILL,
    Ctrl-C, a power cut, a full disk) leaves a journal whose every record is
    true; a torn or damaged tail is ignored, and cut off before a resumed
    build appends to it.

A build run again with the same store reuses every journaled file whose
size, modification time and ``(st_dev, st_ino)`` are unchanged and decodes
the rest. When it ends, the thumbnails of the files kept are put in
discovery order (in place when they already are, the usual case) and the
folder becomes the saved repository (:mod:`fastdif.io.store`), by a rename
that never replaces anything (:func:`fastdif.io.store.publish`).
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import stat
import struct
import time
import zlib
from dataclasses import dataclass

import numpy as np

try:
    import fcntl
except ImportError:  # Windows: no advisory lock
    fcntl = None

from .decode import Decoded, Failure
from .store import (
    NOFOLLOW,
    REPOSITORY_FILES,
    array_file,
    rename_noreplace,
    staging_folder,
    write_all,
)

FORMAT = "fastdif-partial-build"
FORMAT_VERSION = 1
INFO_FILE = "build.json"
JOURNAL_FILE = "journal.bin"

#: Length of the ``tensors.npy`` header: the rows start here, whatever the capacity.
HEADER_BYTES = 128

#: crc32, row, width, height, size, mtime_ns, st_dev, st_ino, failure, path and reason lengths.
_RECORD = struct.Struct("<Iqiiqqqqbii")

#: Failure kinds by their code in the journal (0: none).
_FAILURES = (None, *Failure)

#: Seconds between journal writes (each after an ``fdatasync`` of the rows).
FLUSH_SECONDS = 1.0


class PartialBuildError(ValueError):
    """An unfinished build in the store's partial folder that this build cannot resume."""


@dataclass(frozen=True)
class Finished:
    """A journaled file: its thumbnail's row (-1: failed) and what it was decoded from."""

    row: int
    width: int
    height: int
    size: int
    mtime_ns: int
    identity: tuple[int, int]
    reason: str | None = None
    failure: Failure | None = None

    @property
    def decoded(self) -> Decoded:
        """The :class:`Decoded` this record stands for, without its thumbnail."""
        return Decoded(None, self.width, self.height, self.reason, self.failure)


def partial_folder(target: str) -> str:
    """The folder an unfinished build of the store ``target`` is written in."""
    return os.path.join(os.path.dirname(target), f".{os.path.basename(target)}.partial")


class PartialBuild:
    """The partial folder of the store ``target``: created, or opened to resume.

    Parameters
    ----------
    target : str
        The store (absolute path); it must not exist.
    px_size : int
    settings : str
        :func:`~fastdif.io.cache.decoding_settings` of this build.

    Raises
    ------
    PartialBuildError
        The folder is a link, not a folder, or not a build of fastdif's (no
        ``build.json`` of its own; nothing in it is then written or
        removed), a file in it is a link, it holds a build with other
        settings, or another build is writing it. The message names the path.
    """

    def __init__(self, target: str, px_size: int, settings: str):
        self.target = target
        self.folder = partial_folder(target)
        self.px_size = px_size
        self.row_bytes = px_size * px_size * 3
        self._lock = self._rows = None
        self._pending: list[bytes] = []
        self._flushed = time.monotonic()
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": settings}
        _create(self.folder, target, info)
        self._identity = _own_folder(self.folder, target, info)
        try:
            journal = os.path.join(self.folder, JOURNAL_FILE)
            self._lock = _lock(journal)
            self.finished, self._journal_size = _parse_journal(_read_all(self._lock))
            # A torn tail would hide every record appended after it.
            os.ftruncate(self._lock, self._journal_size)
            self._rows = _open_regular(array_file(self.folder, "tensors"), os.O_RDWR | os.O_CREAT)
            size = os.fstat(self._rows).st_size
            self.capacity = max(0, (size - HEADER_BYTES) // self.row_bytes)
        except BaseException:
            self.close()
            raise
        # Rows past the file (cut off when an earlier build finished) are gone.
        self.finished = {p: f for p, f in self.finished.items() if f.row < self.capacity}
        self.next_row = 1 + max((f.row for f in self.finished.values()), default=-1)

    def reusable(self, path: str) -> Finished | None:
        """The journal's record of ``path`` if the file is unchanged since, else None."""
        record = self.finished.get(path)
        if record is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        if (st.st_size, st.st_mtime_ns, (st.st_dev, st.st_ino)) != (
            record.size,
            record.mtime_ns,
            record.identity,
        ):
            return None
        return record

    def reserve(self, rows: int) -> None:
        """Make room for ``rows`` more thumbnails after :attr:`next_row`."""
        needed = self.next_row + rows
        if needed > self.capacity:
            self._resize(needed)

    def add(self, path: str, decoded: Decoded, size: int, mtime_ns: int, identity) -> int:
        """Write one decoded file: its thumbnail into the next row, then its journal record.

        Returns the row, or -1 for a failure. Failures whose kind may not
        happen again (a time limit, a dead worker) are not journaled: a
        resumed build tries them again.
        """
        row = -1
        if decoded.reason is None:
            row = self.next_row
            if row >= self.capacity:
                self._resize(max(row + 1, 2 * self.capacity))
            # Every count checked: a row the disk took only part of is never journaled.
            write_all(self._rows, decoded.thumbnail, HEADER_BYTES + row * self.row_bytes)
            self.next_row += 1
        elif not decoded.failure.lasting:
            return row
        self._pending.append(_record(path, row, decoded, size, mtime_ns, identity))
        if time.monotonic() - self._flushed >= FLUSH_SECONDS:
            self.flush()
        return row

    def flush(self) -> None:
        """Make the rows written so far durable, then journal the files they belong to."""
        self._flushed = time.monotonic()
        if not self._pending:
            return
        _datasync(self._rows)
        records = b"".join(self._pending)
        try:
            write_all(self._lock, records, self._journal_size)
        except OSError:
            # A full disk: cut the torn record off, so later appends are read.
            os.ftruncate(self._lock, self._journal_size)
            raise
        self._journal_size += len(records)
        self._pending.clear()

    def finish(self, rows: np.ndarray) -> str:
        """Write the thumbnails ``rows`` (rows of this file, in order) as a ``tensors.npy``.

        Returns the folder that holds it: this one, with the file cut to
        ``n`` rows in place, when ``rows`` is ``0 .. n-1`` (the usual case);
        else a new folder beside the store, the rows copied there in slices
        (this folder stays as it was until the store is published).
        """
        self.flush()
        n = len(rows)
        if np.array_equal(rows, np.arange(n)):
            self._resize(n)
            _datasync(self._rows)  # the new header: on disk before the folder is published
            return self.folder
        folder = staging_folder(self.target)
        try:
            self._copy(rows, array_file(folder, "tensors"))
        except BaseException:
            shutil.rmtree(folder, ignore_errors=True)  # this call's own new folder
            raise
        return folder

    def _copy(self, rows: np.ndarray, path: str) -> None:
        """Write the thumbnails ``rows`` of this file, in order, as the new ``.npy`` ``path``."""
        n = len(rows)
        source = np.memmap(
            array_file(self.folder, "tensors"),
            dtype=np.uint8,
            mode="r",
            offset=HEADER_BYTES,
            shape=(self.capacity, self.px_size, self.px_size, 3),
        )
        out = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW, 0o666)
        try:
            write_all(out, _header((n, self.px_size, self.px_size, 3)), 0)
            step = max(1, (64 << 20) // self.row_bytes)
            for a in range(0, n, step):
                chunk = np.ascontiguousarray(source[rows[a : a + step]])
                write_all(out, chunk, HEADER_BYTES + a * self.row_bytes)
            _datasync(out)
        finally:
            os.close(out)
            del source

    def close(self) -> None:
        """Journal what was written and release the folder (also after an error).

        A journal that cannot be written now (a full disk) loses nothing:
        the files it would name are decoded again by the next build.
        """
        if self._lock is not None:
            if self._rows is not None:
                with contextlib.suppress(OSError):
                    self.flush()
            os.close(self._lock)
            self._lock = None
        if self._rows is not None:
            os.close(self._rows)
            self._rows = None

    def remove(self) -> None:
        """Remove what is left of this build once its store is published.

        Published in place, the store is this very folder: its journal and
        ``build.json`` go. Otherwise this folder, if it is still the one this
        build opened, loses the files a build writes there and goes when
        nothing else is in it. Nothing else is ever removed.
        """
        if _identity(self.target) == self._identity:
            folder, names = self.target, (INFO_FILE, JOURNAL_FILE)
        elif _identity(self.folder) == self._identity:
            folder, names = self.folder, (INFO_FILE, JOURNAL_FILE, *REPOSITORY_FILES)
        else:
            return
        for name in names:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(folder, name))
        if folder == self.folder:
            with contextlib.suppress(OSError):
                os.rmdir(folder)

    def _resize(self, capacity: int) -> None:
        """Set the file to ``capacity`` rows: a new header, then the new length."""
        header = _header((capacity, self.px_size, self.px_size, 3))
        if capacity >= self.capacity:  # a longer file first: the header never names missing rows
            os.ftruncate(self._rows, HEADER_BYTES + capacity * self.row_bytes)
        write_all(self._rows, header, 0)
        os.ftruncate(self._rows, HEADER_BYTES + capacity * self.row_bytes)
        self.capacity = capacity


def _header(shape) -> bytes:
    """A ``.npy`` (version 1.0) header for uint8 ``shape``, padded to :data:`HEADER_BYTES`."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        out, {"descr": "|u1", "fortran_order": False, "shape": tuple(int(s) for s in shape)}
    )
    header = out.getvalue()
    if len(header) > HEADER_BYTES:
        raise ValueError(f"no room for the shape {shape} in a {HEADER_BYTES}-byte header")
    # Pad the dict with spaces before its closing newline, as NumPy does.
    body = header[10:-1] + b" " * (HEADER_BYTES - len(header)) + b"\n"
    return header[:8] + struct.pack("<H", len(body)) + body


def _record(path: str, row: int, decoded: Decoded, size, mtime_ns, identity) -> bytes:
    name = os.fsencode(path)
    reason = b"" if decoded.reason is None else decoded.reason.encode("utf-8", "surrogatepass")
    failure = _FAILURES.index(decoded.failure)
    fields = (
        row,
        decoded.width,
        decoded.height,
        size,
        mtime_ns,
        # st_dev and st_ino are unsigned: kept bit for bit in int64.
        *np.array(identity, dtype=np.uint64).view(np.int64).tolist(),
        failure,
        len(name),
        len(reason),
    )
    body = _RECORD.pack(0, *fields)[4:] + name + reason
    return struct.pack("<I", zlib.crc32(body)) + body


def _read_journal(path: str) -> dict[str, Finished]:
    """The files the journal at ``path`` records, by path (the last record of each counts).

    Reading stops at the first torn or damaged record: everything after it
    is decoded again.
    """
    try:
        with open(path, "rb") as src:
            return _parse_journal(src.read())[0]
    except FileNotFoundError:
        return {}


def _parse_journal(data: bytes) -> tuple[dict[str, Finished], int]:
    """The records in the journal ``data`` (see :func:`_read_journal`) and the bytes they take."""
    finished: dict[str, Finished] = {}
    at, size = 0, _RECORD.size
    while at + size <= len(data):
        crc, row, width, height, fsize, mtime, dev, ino, failure, plen, rlen = _RECORD.unpack_from(
            data, at
        )
        end = at + size + plen + rlen
        if end > len(data) or failure >= len(_FAILURES) or zlib.crc32(data[at + 4 : end]) != crc:
            break
        name = os.fsdecode(data[at + size : at + size + plen])
        reason = data[at + size + plen : end].decode("utf-8", "surrogatepass") or None
        kind = _FAILURES[failure]
        if (reason is None) == (kind is None) and (row >= 0) == (kind is None):
            identity = tuple(np.array([dev, ino], dtype=np.int64).view(np.uint64).tolist())
            finished[name] = Finished(row, width, height, fsize, mtime, identity, reason, kind)
        at = end
    return finished, at


def _read_all(fd: int) -> bytes:
    """All of the file ``fd``, read from its start."""
    os.lseek(fd, 0, os.SEEK_SET)
    chunks = []
    while chunk := os.read(fd, 1 << 24):
        chunks.append(chunk)
    return b"".join(chunks)


def _create(folder: str, target: str, info: dict) -> None:
    """Create ``folder`` holding ``info`` as its ``build.json``, in one rename; or leave it be.

    The folder is made under a new name and renamed into place only where
    nothing is (:func:`~fastdif.io.store.rename_noreplace`), so a partial
    folder always holds its ``build.json``. Whatever is there already, a
    link or not, is left for :func:`_own_folder` to judge.
    """
    if os.path.lexists(folder):
        return
    new = staging_folder(target)
    try:
        with open(os.path.join(new, INFO_FILE), "x", encoding="utf-8") as out:
            json.dump(info, out)
        rename_noreplace(new, folder)
        new = None
    except FileExistsError:  # another build made it first
        pass
    finally:
        if new is not None:
            with contextlib.suppress(OSError):
                os.unlink(os.path.join(new, INFO_FILE))
            with contextlib.suppress(OSError):
                os.rmdir(new)


def _own_folder(folder: str, target: str, info: dict) -> tuple[int, int]:
    """Check that ``folder`` is a build of ``target`` with ``info``; its ``(st_dev, st_ino)``.

    Raises PartialBuildError, naming the path, for a link, a file, a folder
    without fastdif's ``build.json``, or a build with other settings.
    Nothing is written before this check passes.
    """
    st = os.lstat(folder)
    if stat.S_ISLNK(st.st_mode) or not stat.S_ISDIR(st.st_mode):
        what = "a symbolic link" if stat.S_ISLNK(st.st_mode) else "not a folder"
        raise PartialBuildError(
            f'Cannot build "{target}": "{folder}", where its unfinished build is written, is '
            f"{what}. fastdif writes only into a folder it made; move it away, then build again."
        )
    try:
        with open(_open_regular(os.path.join(folder, INFO_FILE), os.O_RDONLY), "rb") as src:
            found = json.load(src)
    except (OSError, ValueError):  # none, a link, not a file, not JSON: not fastdif's
        found = None
    if not isinstance(found, dict) or found.get("format") != FORMAT:
        raise PartialBuildError(
            f'Cannot build "{target}": "{folder}", where its unfinished build is written, is not '
            f"one (it has no fastdif {INFO_FILE}); it was left as it was. Move it away, then "
            "build again."
        )
    if found != info:
        raise PartialBuildError(
            f'"{folder}" holds an unfinished build made with other settings '
            f"({found.get('settings', found)}; this build: {info['settings']}). "
            "Build with the same px_size and fastdif version to resume it, or delete "
            "that folder to start again."
        )
    return st.st_dev, st.st_ino


def _open_regular(path: str, flags: int) -> int:
    """Open ``path`` with ``flags``; a link (never followed) or a non-regular file is refused."""
    try:
        fd = os.open(path, flags | NOFOLLOW, 0o666)
    except OSError as exc:
        if not os.path.islink(path):
            raise
        raise PartialBuildError(
            f'"{path}" is a symbolic link, not a file of an unfinished build; move the folder '
            f'"{os.path.dirname(path)}" away, then build again.'
        ) from exc
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise PartialBuildError(
            f'"{path}" is not a regular file, so not a file of an unfinished build; move the '
            f'folder "{os.path.dirname(path)}" away, then build again.'
        )
    return fd


def _identity(path: str) -> tuple[int, int] | None:
    """``(st_dev, st_ino)`` of ``path`` itself (a link is not followed), or None."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return st.st_dev, st.st_ino


def _datasync(fd: int) -> None:
    """Flush ``fd``'s data to the disk (``fdatasync``, or ``fsync`` where there is none)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _lock(path: str) -> int:
    """Hold an exclusive lock on ``path`` (created) so that two builds never write one store."""
    fd = _open_regular(path, os.O_RDWR | os.O_CREAT)
    if fcntl is None:
        return fd
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise PartialBuildError(
            f'Another build is writing "{os.path.dirname(path)}"; wait for it to end.'
        ) from None
    return fd
