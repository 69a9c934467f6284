"""Decode each content once: byte-identical files share one decode.

Files are compared by size, then by a hash of their first bytes, then of all
their bytes (:func:`first_copies`); only the first of each set of copies is
decoded, and every copy gets its result (:func:`decoding_copies_once`).
"""

from __future__ import annotations

import hashlib
import os
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

from .decode import Decoded
from .files import open_regular


def decoding_copies_once(decode, threads: int | None):
    """``decode(paths, progress)`` that decodes each content once.

    Of byte-identical files (:func:`first_copies`) only the first is
    decoded; each copy yields the same :class:`~fastdif.io.decode.Decoded`,
    in its place, and counts as a file decoded for ``progress``. Only the
    thumbnail is shared: each path keeps its own entry, size, time and
    identity (read by the caller), and a failure's reason names the copy.
    """

    def decode_once(paths, progress=None):
        source = first_copies(paths, threads)
        results = decode([path for k, path in enumerate(paths) if source[k] == k], progress)
        return _with_copies(paths, source, results, progress)

    return decode_once


def _with_copies(paths, source, results, progress):
    """``results`` (one per first copy) in ``paths`` order, each copy given its first's."""
    copies = Counter(first for k, first in enumerate(source) if first != k)
    shared: dict[int, Decoded] = {}
    for k, path in enumerate(paths):
        first = source[k]
        if first == k:
            decoded = next(results)
            if copies[k]:
                shared[k] = decoded
            yield decoded
            continue
        decoded = shared[first]
        copies[first] -= 1
        if not copies[first]:
            del shared[first]
        if decoded.reason is not None:
            reason = decoded.reason.replace(paths[first], path)
            decoded = Decoded(None, 0, 0, reason, decoded.failure)
        if progress:
            progress()
        yield decoded
    yield from results  # none: the caller checks, and it lets a process pool shut down


#: Bytes read first from files of equal size: only files that also begin
#: alike are read whole (so a folder of distinct BMPs, all of one size, is not).
_PREFIX_BYTES = 64 << 10


def first_copies(paths: list[str], threads: int | None) -> list[int]:
    """For each path, the index of the first path with the same bytes: its own if none.

    Files are compared by size, then by the BLAKE2b hash (256 bits) of their
    first :data:`_PREFIX_BYTES`, then of all their bytes: each step only for
    files still alike, on ``threads`` threads. A file that cannot be read is
    nobody's copy (its decoder reports why).
    """
    alike = _split([list(range(len(paths)))], paths, _size, map)
    pool = ThreadPoolExecutor(threads or os.cpu_count() or 1)
    try:
        for key in (lambda path: _digest(path, _PREFIX_BYTES), _digest):
            alike = _split(alike, paths, key, pool.map)
    finally:
        pool.shutdown(cancel_futures=True)  # on Ctrl-C, waits for no file but those being read
    source = list(range(len(paths)))
    for group in alike:
        for k in group[1:]:
            source[k] = group[0]
    return source


def _split(groups: list[list[int]], paths: list[str], key, mapper) -> list[list[int]]:
    """``groups`` of indexes in ``paths``, split by the ``key`` of each path.

    ``mapper`` is :func:`map` or a thread pool's. Groups of one, and indexes
    whose key is None, are left out.
    """
    members = [k for group in groups for k in group]
    keys = dict(zip(members, mapper(key, [paths[k] for k in members]), strict=True))
    split = defaultdict(list)
    for number, group in enumerate(groups):
        for k in group:
            if keys[k] is not None:
                split[number, keys[k]].append(k)
    return [group for group in split.values() if len(group) > 1]


def _size(path: str) -> int | None:
    try:
        return os.stat(path).st_size
    except OSError:
        return None


def _digest(path: str, limit: int | None = None) -> bytes | None:
    """BLAKE2b of the file's first ``limit`` bytes (all: None), or None if it cannot be read.

    hashlib releases the GIL while it hashes.
    """
    digest = hashlib.blake2b(digest_size=32)
    try:
        with open_regular(path) as file:
            if limit is not None:
                digest.update(file.read(limit))
            else:
                while chunk := file.read(1 << 20):
                    digest.update(chunk)
    except OSError:
        return None
    return digest.digest()
