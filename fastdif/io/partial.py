"""A store being built: thumbnails streamed to disk, with a journal to resume from.

``build(..., store=STORE)`` without a scheduler writes into the folder
``.STORE.partial`` beside ``STORE`` (the name of :func:`partial_folder`):

``build.json``
    ``format`` ("fastdif-partial-build"), ``format_version`` and
    ``settings`` (:func:`fastdif.io.cache.decoding_settings`: the thumbnail
    side and definition). A resumed build must have the same settings.
``tensors.npy``
    uint8 (capacity, px, px, 3): thumbnails in the order they were decoded,
    written with plain writes (never mapped, so they are page cache, not this
    process's memory). The header is always :data:`HEADER_BYTES` long, so
    the capacity can grow or shrink in place.
``journal.bin``
    One record per finished file, appended: a CRC-32, the thumbnail's row
    (-1 for a file that failed), width, height, file size, modification
    time, ``(st_dev, st_ino)``, the failure kind and the lengths of the path
    and the reason, then the path and the reason. Records are written only
    after the rows they name were handed to the operating system (and
    ``fdatasync`` reached the disk), so a build killed at any point (SIGKILL,
    Ctrl-C, a power cut) leaves a journal whose every record is true; a torn
    or damaged tail is ignored.

A build run again with the same store reuses every journaled file whose
size, modification time and ``(st_dev, st_ino)`` are unchanged and decodes
the rest. When it ends, the thumbnails of the files kept are put in
discovery order (in place when they already are, the usual case) and the
folder becomes the saved repository (:mod:`fastdif.io.store`).
"""

from __future__ import annotations

import io
import json
import os
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
from .store import array_file, staging_folder

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
        The folder holds a build with other settings, or another build is
        writing it.
    """

    def __init__(self, target: str, px_size: int, settings: str):
        self.target = target
        self.folder = partial_folder(target)
        self.px_size = px_size
        self.row_bytes = px_size * px_size * 3
        os.makedirs(self.folder, exist_ok=True)
        self._lock = _lock(os.path.join(self.folder, JOURNAL_FILE))
        info_path = os.path.join(self.folder, INFO_FILE)
        info = {"format": FORMAT, "format_version": FORMAT_VERSION, "settings": settings}
        if os.path.exists(info_path):
            self._check(info_path, info)
            self.finished = _read_journal(os.path.join(self.folder, JOURNAL_FILE))
        else:
            self.finished = {}
            with open(info_path, "w", encoding="utf-8") as out:
                json.dump(info, out)
        rows_path = array_file(self.folder, "tensors")
        if not os.path.exists(rows_path):
            open(rows_path, "xb").close()
        self._rows = open(rows_path, "r+b", buffering=0)
        size = os.fstat(self._rows.fileno()).st_size
        self.capacity = max(0, (size - HEADER_BYTES) // self.row_bytes)
        # Rows past the file (cut off when an earlier build finished) are gone.
        self.finished = {p: f for p, f in self.finished.items() if f.row < self.capacity}
        self.next_row = 1 + max((f.row for f in self.finished.values()), default=-1)
        self._journal = open(os.path.join(self.folder, JOURNAL_FILE), "ab")
        self._pending: list[bytes] = []
        self._flushed = time.monotonic()

    def _check(self, info_path: str, expected: dict) -> None:
        try:
            with open(info_path, encoding="utf-8") as src:
                found = json.load(src)
        except (OSError, ValueError) as exc:
            found = {"error": str(exc)}
        if found != expected:
            self.close()
            raise PartialBuildError(
                f'"{self.folder}" holds an unfinished build made with other settings '
                f"({found.get('settings', found)}; this build: {expected['settings']}). "
                "Build with the same px_size and fastdif version to resume it, or delete "
                "that folder to start again."
            )

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
            self._rows.seek(HEADER_BYTES + row * self.row_bytes)
            self._rows.write(decoded.thumbnail)
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
        _datasync(self._rows.fileno())
        self._journal.write(b"".join(self._pending))
        self._journal.flush()
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
            return self.folder
        folder = staging_folder(self.target)
        out = np.lib.format.open_memmap(
            array_file(folder, "tensors"),
            mode="w+",
            dtype=np.uint8,
            shape=(n, self.px_size, self.px_size, 3),
        )
        source = np.memmap(
            array_file(self.folder, "tensors"),
            dtype=np.uint8,
            mode="r",
            offset=HEADER_BYTES,
            shape=(self.capacity, self.px_size, self.px_size, 3),
        )
        step = max(1, (64 << 20) // self.row_bytes)
        for a in range(0, n, step):
            out[a : a + step] = source[rows[a : a + step]]
        out.flush()
        del out, source
        return folder

    def close(self) -> None:
        """Journal what was written and release the folder (also after an error)."""
        if getattr(self, "_journal", None) is not None and not self._journal.closed:
            try:
                self.flush()
            finally:
                self._journal.close()
        if getattr(self, "_rows", None) is not None:
            self._rows.close()
            self._rows = None
        if self._lock is not None:
            os.close(self._lock)
            self._lock = None

    def _resize(self, capacity: int) -> None:
        """Set the file to ``capacity`` rows: a new header, then the new length."""
        header = _header((capacity, self.px_size, self.px_size, 3))
        if capacity >= self.capacity:  # a longer file first: the header never names missing rows
            self._rows.truncate(HEADER_BYTES + capacity * self.row_bytes)
        self._rows.seek(0)
        self._rows.write(header)
        self._rows.truncate(HEADER_BYTES + capacity * self.row_bytes)
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
    finished: dict[str, Finished] = {}
    try:
        with open(path, "rb") as src:
            data = src.read()
    except FileNotFoundError:
        return finished
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
    return finished


def _datasync(fd: int) -> None:
    """Flush ``fd``'s data to the disk (``fdatasync``, or ``fsync`` where there is none)."""
    (getattr(os, "fdatasync", None) or os.fsync)(fd)


def _lock(path: str) -> int | None:
    """Hold an exclusive lock on ``path`` (created) so that two builds never write one store."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
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
